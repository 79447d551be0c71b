"""The committed pack schema equals the export from the models, and it describes the examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from taskrunner.cli.app import app
from taskrunner.plan.schemas import pack_schema, schema_text
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schemas" / "pack.v1.schema.json"


def test_committed_pack_schema_equals_the_export() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == schema_text(pack_schema()), (
        "regenerate with: .venv/bin/python -m taskrunner.plan.schemas schemas"
    )


def test_pack_schema_is_valid_json_schema() -> None:
    Draft202012Validator.check_schema(json.loads(COMMITTED.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "packs").glob("*.yaml")), ids=lambda p: p.name)
def test_valid_examples_satisfy_the_schema(path: Path) -> None:
    validator = Draft202012Validator(pack_schema())
    assert list(validator.iter_errors(yaml.safe_load(path.read_text()))) == []


@pytest.mark.parametrize("name", ["missing-sandbox.yaml", "two-kinds.yaml"])
def test_structurally_invalid_examples_violate_the_schema(name: str) -> None:
    validator = Draft202012Validator(pack_schema())
    document = yaml.safe_load((ROOT / "examples" / "packs" / "invalid" / name).read_text())
    assert list(validator.iter_errors(document))


@pytest.mark.parametrize(
    "name", ["unknown-parameter.yaml", "missing-parameter.yaml", "wrong-parameter-type.yaml"]
)
def test_module_parameters_are_checked_by_the_schema(name: str) -> None:
    validator = Draft202012Validator(pack_schema())
    document = yaml.safe_load((ROOT / "examples" / "packs" / "invalid" / name).read_text())
    assert list(validator.iter_errors(document))


def test_each_with_is_checked_by_the_module_its_uses_names() -> None:
    validator = Draft202012Validator(pack_schema())
    document = yaml.safe_load((ROOT / "examples" / "packs" / "hello.yaml").read_text())
    run = document["spec"]["steps"][1]["run"]
    assert run["uses"] == "artifact.write"
    run["with"]["mediatype"] = "text/plain"
    assert list(validator.iter_errors(document))
    run["uses"] = "noop"  # noop takes any keys
    assert list(validator.iter_errors(document)) == []
    run["uses"], run["with"] = "sleep", {"seconds": "{{ inputs.wait }}"}  # a template stands for any value
    assert list(validator.iter_errors(document)) == []


def test_schema_command_prints_the_committed_schema() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert result.output == COMMITTED.read_text(encoding="utf-8")
