"""Every example pack, planned for real and compiled, passes moto's ASL parser and the npm asl-validator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from taskrunner.asl import compile_plan, validate_definition
from taskrunner.plan.planner import build_plan
from test_asl_moto import deployable
from test_asl_validator import run_validator

PACKS = Path(__file__).resolve().parents[2] / "examples" / "packs"
INPUTS: dict[str, dict[str, Any]] = {
    "airgap-import.yaml": {"bundlePath": "/data/bundle.tar", "bundleSha256": "0" * 64},
}
EXAMPLES = sorted(p.name for p in PACKS.glob("*.yaml"))


def _compiled(name: str) -> Any:
    planned = build_plan(PACKS / name, INPUTS.get(name, {}))
    return compile_plan(planned.plan)


def test_there_are_examples_to_check() -> None:
    assert {"hello.yaml", "airgap-import.yaml"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_compiles_to_a_valid_definition_within_limits(name: str) -> None:
    compiled = _compiled(name)
    assert validate_definition(compiled.definition) == []
    assert compiled.limits.ok, compiled.limits.to_dict()


@pytest.mark.parametrize("name", EXAMPLES)
def test_moto_accepts_the_compiled_example(name: str) -> None:
    compiled = _compiled(name)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):  # moto parses the ASL
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="test_tr-" + compiled.digest[:12],
            definition=deployable(compiled),
            roleArn="arn:aws:iam::123456789012:role/taskrunner-states",
        )["stateMachineArn"]
        described = json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])
    assert described["StartAt"] == "VerifyPlan"


def test_asl_validator_accepts_every_compiled_example() -> None:
    result = run_validator(*(deployable(_compiled(name)) for name in EXAMPLES))
    for position in range(1, len(EXAMPLES) + 1):
        assert f'State machine definition "JSON definition #{position}" is valid' in result.stdout, (
            EXAMPLES[position - 1],
            result.stdout,
            result.stderr,
        )
