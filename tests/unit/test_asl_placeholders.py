"""Function ARN placeholders: substituted for CreateStateMachine, with clear errors when wrong."""

from __future__ import annotations

import json

import pytest
from taskrunner.asl import PLACEHOLDERS, compile_plan, substitute_placeholders
from taskrunner.errors import TaskRunnerError
from test_asl_scenarios import SCENARIOS

ARNS = {name: f"arn:aws:lambda:eu-west-1:123456789012:function:tr-{name}" for name in PLACEHOLDERS}


def test_placeholders_are_the_five_function_arns() -> None:
    assert PLACEHOLDERS == (
        "VerifyPlanFunctionArn",
        "ExecuteStepFunctionArn",
        "OpenGateFunctionArn",
        "EvaluatePolicyFunctionArn",
        "SealEvidenceFunctionArn",
    )


def test_every_function_name_is_a_placeholder_until_substituted() -> None:
    compiled = compile_plan(SCENARIOS["airgap-import"]())
    text = substitute_placeholders(compiled.definition_bytes, ARNS)
    deployed = json.loads(text)

    assert "${" not in text
    states = deployed["States"]
    assert states["VerifyPlan"]["Parameters"]["FunctionName"] == ARNS["VerifyPlanFunctionArn"]
    assert states["ingest"]["Parameters"]["FunctionName"] == ARNS["ExecuteStepFunctionArn"]
    assert states["review"]["Parameters"]["FunctionName"] == ARNS["OpenGateFunctionArn"]
    assert states["policy"]["Parameters"]["FunctionName"] == ARNS["EvaluatePolicyFunctionArn"]
    assert states["SealFailure"]["Parameters"]["FunctionName"] == ARNS["SealEvidenceFunctionArn"]
    # nothing else changes
    assert json.dumps(deployed, sort_keys=True).count("arn:aws:lambda") == compiled.definition_bytes.count(
        b"${"
    )


def test_values_are_inserted_json_escaped() -> None:
    text = substitute_placeholders(
        b'{"a":"${VerifyPlanFunctionArn}"}', {"VerifyPlanFunctionArn": 'odd"\\value'}
    )

    assert json.loads(text) == {"a": 'odd"\\value'}


def test_missing_value_names_the_placeholder() -> None:
    compiled = compile_plan(SCENARIOS["gates"]())
    values = {name: arn for name, arn in ARNS.items() if name != "OpenGateFunctionArn"}

    with pytest.raises(TaskRunnerError) as error:
        substitute_placeholders(compiled.definition_bytes, values)
    assert error.value.code == "PlaceholderError"
    assert "no value for placeholder ${OpenGateFunctionArn}" in error.value.message
    assert "OpenGateFunctionArn" in error.value.remediation


def test_placeholders_a_definition_does_not_use_need_no_value() -> None:
    compiled = compile_plan(SCENARIOS["hello"]())
    values = {
        name: ARNS[name]
        for name in ("VerifyPlanFunctionArn", "ExecuteStepFunctionArn", "SealEvidenceFunctionArn")
    }

    assert "${" not in substitute_placeholders(compiled.definition_bytes, values)


def test_unknown_names_on_either_side_are_errors() -> None:
    with pytest.raises(TaskRunnerError) as error:
        substitute_placeholders(b'{"a":"${SomethingElse}"}', {**ARNS, "ExtraFunctionArn": "arn:x"})

    message = error.value.message
    assert "unknown placeholder ${SomethingElse} in the definition" in message
    assert "value given for unknown placeholder 'ExtraFunctionArn'" in message


def test_empty_value_counts_as_missing_only_where_it_is_used() -> None:
    with pytest.raises(TaskRunnerError, match=r"no value for placeholder \$\{VerifyPlanFunctionArn\}"):
        substitute_placeholders(b'{"a":"${VerifyPlanFunctionArn}"}', {**ARNS, "VerifyPlanFunctionArn": ""})

    text = substitute_placeholders(b'{"a":"${VerifyPlanFunctionArn}"}', {**ARNS, "OpenGateFunctionArn": ""})
    assert json.loads(text) == {"a": ARNS["VerifyPlanFunctionArn"]}
