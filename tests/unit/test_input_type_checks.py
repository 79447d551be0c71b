"""Input type checks: a value of the plain declared type passes without jsonschema, anything else is judged
by JSON Schema 2020-12 exactly as before, and planning a pack without ``schema`` keywords never imports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from taskrunner.pack.models import schema_violation

REPO = Path(__file__).resolve().parents[2]
KINDS = ("string", "number", "integer", "boolean", "array", "object")
VALUES: list[Any] = [
    "x", "", 0, 1, -3, 2**70, 1.0, 1.5, float("nan"), True, False, None, [], [1, "a"], {}, {"k": 1},
]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_a_value_passes_exactly_when_json_schema_type_accepts_it(kind: str) -> None:
    for value in VALUES:
        accepted = Draft202012Validator({"type": kind}).is_valid(value)
        assert (schema_violation(value, kind, None) is None) is accepted, (kind, value)


def test_a_mismatch_is_still_explained() -> None:
    assert schema_violation("three", "integer", None) == '"three" is not an integer'
    assert schema_violation(True, "number", None) == "true is not a number"


def test_planning_a_pack_without_schema_keywords_does_not_import_jsonschema() -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from taskrunner.pack import load_pack\n"
        "from taskrunner.plan.planner import build_plan\n"
        f"build_plan(load_pack(Path({str(REPO / 'examples/packs/hello.yaml')!r})), {{'who': 'you'}})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jsonschema', 'referencing')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
