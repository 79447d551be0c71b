"""The committed plan schema equals the export from the plan document models and describes real plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from taskrunner.plan.planner import build_plan
from taskrunner.plan.schemas import SCHEMAS, plan_schema, schema_text, write_schemas

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schemas" / "plan.v1.schema.json"
PACKS = ROOT / "examples" / "packs"


def test_committed_plan_schema_equals_the_export() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == schema_text(plan_schema()), (
        "regenerate with: .venv/bin/python -m taskrunner.plan.schemas schemas"
    )


@pytest.mark.parametrize("name", ["hello.yaml", "control-flow.yaml"])
def test_plans_satisfy_the_plan_schema(name: str) -> None:
    validator = Draft202012Validator(json.loads(COMMITTED.read_text(encoding="utf-8")))
    document = json.loads(build_plan(PACKS / name, {}).plan_bytes)
    assert list(validator.iter_errors(document)) == []
    document["steps"][0]["kind"] = "teleport"
    assert list(validator.iter_errors(document))


def test_write_schemas_writes_every_schema(tmp_path: Path) -> None:
    written = write_schemas(tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(SCHEMAS)
    for path in written:
        assert path.read_text(encoding="utf-8") == (ROOT / "schemas" / path.name).read_text(encoding="utf-8")
