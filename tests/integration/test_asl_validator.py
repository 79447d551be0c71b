"""Compiled definitions against the npm ``asl-validator`` (JSON schema + transition checks of ASL).

Install it with ``make asl-tools``. Without it these tests are skipped, except in CI (``CI=true``),
where a missing validator fails them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from taskrunner.asl import compile_plan, validate_definition
from test_asl_moto import SCENARIOS, deployable

VALIDATOR = (
    Path(__file__).resolve().parents[2] / ".tools" / "node" / "node_modules" / ".bin" / "asl-validator"
)
SCENARIO_NAMES = sorted(SCENARIOS)


def _validator() -> Path:
    if VALIDATOR.exists():
        return VALIDATOR
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"asl-validator is not installed at {VALIDATOR}; run `make asl-tools`")
    pytest.skip("asl-validator is not installed; run `make asl-tools`")


def run_validator(*definitions: str) -> subprocess.CompletedProcess[str]:
    """``asl-validator --json-definition D1 --json-definition D2 ...``."""
    arguments = [argument for definition in definitions for argument in ("--json-definition", definition)]
    return subprocess.run(
        [str(_validator()), *arguments], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def verdicts() -> dict[str, str]:
    """Per scenario, ``valid`` or the validator's complaint (one validator process for all)."""
    result = run_validator(*(deployable(compile_plan(SCENARIOS[name]())) for name in SCENARIO_NAMES))
    found: dict[str, str] = {}
    for position, name in enumerate(SCENARIO_NAMES, start=1):
        label = f'"JSON definition #{position}"'
        if f"State machine definition {label} is valid" in result.stdout:
            found[name] = "valid"
        else:
            found[name] = result.stderr or result.stdout or f"no verdict (exit {result.returncode})"
    return found


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_asl_validator_accepts_every_compiled_definition(verdicts: dict[str, str], scenario: str) -> None:
    assert verdicts[scenario] == "valid"


def _broken_definitions() -> dict[str, dict[str, Any]]:
    compiled = compile_plan(SCENARIOS["hello"]())
    deployed = json.loads(deployable(compiled))
    dangling = json.loads(json.dumps(deployed))
    dangling["States"]["greet"]["Next"] = "nowhere"
    unreachable = json.loads(json.dumps(deployed))
    unreachable["States"]["orphan"] = {"Type": "Pass", "End": True}
    no_terminal = {
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}},
    }
    return {"dangling Next": dangling, "unreachable state": unreachable, "no terminal state": no_terminal}


@pytest.mark.parametrize("case", sorted(_broken_definitions()))
def test_asl_validator_and_our_validator_both_reject_broken_definitions(case: str) -> None:
    definition = _broken_definitions()[case]

    result = run_validator(json.dumps(definition))

    assert result.returncode == 1
    assert re.search(r"is invalid", result.stderr)
    assert validate_definition(definition) != []
