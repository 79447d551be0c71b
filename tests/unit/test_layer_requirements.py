"""The Lambda layer installs exactly the runtime dependencies pyproject.toml pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[^\]]*\])?==(?P<version>[^\s;]+)$")


def _normalise(requirement: str) -> tuple[str, str, str]:
    match = _PIN.match(requirement.strip())
    assert match, f"{requirement!r} is not an exact pin (name[extras]==version)"
    name = re.sub(r"[-_.]+", "-", match["name"]).lower()
    extras = ",".join(
        sorted(e.strip().lower() for e in (match["extras"] or "[]")[1:-1].split(",") if e.strip())
    )
    return name, extras, match["version"]


def _layer_requirements() -> list[str]:
    lines = (ROOT / "layers" / "taskrunner" / "requirements.txt").read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def test_layer_requirements_are_exactly_the_pyproject_runtime_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = sorted(_normalise(dep) for dep in project["dependencies"])
    layer = sorted(_normalise(line) for line in _layer_requirements())
    assert layer == pinned


def test_layer_requirements_include_boto3_and_no_local_or_dev_tools() -> None:
    names = {_normalise(line)[0] for line in _layer_requirements()}
    assert "boto3" in names
    assert not names & {"moto", "pytest", "typer", "rich", "mongomock-ng"}
