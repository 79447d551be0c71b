"""The ASL compiler: envelope, every step kind, retries and catchers, map templates, names, bytes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from taskrunner.asl import PLACEHOLDERS, compile_plan, validate_definition
from taskrunner.asl import compiler as compiler_module
from taskrunner.canonical import canonical_bytes, sha256_hex
from taskrunner.errors import TaskRunnerError
from taskrunner.plan.document import RetryPolicy
from test_asl_scenarios import (
    SCENARIOS,
    approval,
    map_of,
    parallel,
    plan,
    policy,
    run,
    run_template,
)

LAMBDA_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
LAMBDA_RETRIER = {"ErrorEquals": LAMBDA_ERRORS, "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2}
TO_SEAL_FAILURE = {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "SealFailure"}
CONTEXT = {"runId.$": "$.runId", "tenantId.$": "$.tenantId"}


def compiled(scenario: str) -> dict[str, Any]:
    return compile_plan(SCENARIOS[scenario]()).definition


def all_states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state of the definition by name, nested branches and item processors included."""
    found: dict[str, dict[str, Any]] = {}

    def collect(states: dict[str, Any]) -> None:
        for name, state in states.items():
            found[name] = state
            for branch in state.get("Branches", []):
                collect(branch["States"])
            if "ItemProcessor" in state:
                collect(state["ItemProcessor"]["States"])

    collect(definition["States"])
    return found


def step_state(definition: dict[str, Any], step_id: str) -> dict[str, Any]:
    """The Task whose payload names ``step_id`` (a literal or a States.Format template)."""
    for state in all_states(definition).values():
        payload = state.get("Parameters", {}).get("Payload", {})
        for key in ("stepId", "gateId"):
            if payload.get(key) == step_id:
                return state
            template = payload.get(f"{key}.$", "")
            if (
                template.startswith("States.Format(")
                and re.sub(r"\{\}", "*", template.split("'")[1]) == step_id
            ):
                return state
    raise AssertionError(f"no state runs {step_id!r}")


def path_from(definition: dict[str, Any], start: str, states: dict[str, Any] | None = None) -> list[str]:
    """State names visited from ``start`` following Next (the success path)."""
    states = states if states is not None else definition["States"]
    visited, name = [], start
    while name is not None:
        visited.append(name)
        name = states[name].get("Next")
    return visited


# -- envelope -------------------------------------------------------------------------------------------


def test_envelope_verifies_runs_steps_and_seals() -> None:
    definition = compiled("hello")
    states = definition["States"]

    assert path_from(definition, definition["StartAt"]) == [
        "VerifyPlan",
        "greet",
        "report",
        "SealEvidence",
        "Succeed",
    ]
    assert states["VerifyPlan"]["Parameters"] == {
        "FunctionName": "${VerifyPlanFunctionArn}",
        "Payload": {
            **CONTEXT,
            "planHash.$": "$.planHash",
            "stateMachine.$": "$$.StateMachine.Name",
            "functionArn": "${VerifyPlanFunctionArn}",
        },
    }
    assert states["SealEvidence"]["Parameters"]["Payload"] == {**CONTEXT, "outcome": "succeeded"}
    assert states["SealFailure"]["Parameters"]["Payload"] == {
        **CONTEXT,
        "outcome": "failed",
        "error.$": "$.error",
    }
    assert states["SealFailure"]["Next"] == "Fail"
    assert states["Fail"]["Type"] == "Fail"
    assert states["Fail"]["Error"]
    assert states["Fail"]["Cause"]
    assert states["VerifyPlan"]["Catch"] == [TO_SEAL_FAILURE]
    assert states["SealEvidence"]["Catch"] == [TO_SEAL_FAILURE]


def test_envelope_retrier_is_the_one_every_lambda_task_uses() -> None:
    states = all_states(compiled("airgap-import"))

    for name, state in states.items():
        if state["Type"] == "Task":
            assert state["Retry"][-1] == LAMBDA_RETRIER, name


def test_plan_without_states_goes_straight_to_sealing() -> None:
    definition = compile_plan(plan(map_of("nothing", "noop", 0, run_template("noop")))).definition

    assert definition["States"]["VerifyPlan"]["Next"] == "SealEvidence"
    assert validate_definition(definition) == []


def test_definition_is_jsonpath_only_with_constant_size_state() -> None:
    definition = compiled("airgap-import")
    text = json.dumps(definition)

    for construct in ('"QueryLanguage"', '"Assign"', '"Arguments"', '"Output"', "{%"):
        assert construct not in text
    for name, state in all_states(definition).items():
        if state["Type"] in ("Task", "Parallel", "Map"):
            assert "ResultPath" in state, name
            assert state["ResultPath"] is None, name


# -- run steps ------------------------------------------------------------------------------------------


def test_run_step_invokes_execute_step_with_retries_from_its_policy() -> None:
    definition = compiled("run-retries")
    fetch = step_state(definition, "fetch")

    assert fetch["Resource"] == "arn:aws:states:::lambda:invoke"
    assert fetch["Parameters"] == {
        "FunctionName": "${ExecuteStepFunctionArn}",
        "Payload": {**CONTEXT, "stepId": "fetch", "attempt.$": "$$.State.RetryCount"},
    }
    assert fetch["TimeoutSeconds"] == 120
    assert fetch["Retry"] == [
        {"ErrorEquals": ["StepFailed"], "IntervalSeconds": 3, "MaxAttempts": 2, "BackoffRate": 1.5},
        LAMBDA_RETRIER,
    ]
    assert fetch["Catch"] == [TO_SEAL_FAILURE]


def test_single_attempt_policy_retries_only_lambda_errors() -> None:
    once = step_state(compiled("run-retries"), "once")

    assert once["Retry"] == [LAMBDA_RETRIER]
    assert "TimeoutSeconds" not in once


def test_sub_second_backoff_becomes_the_one_second_minimum() -> None:
    quick = step_state(compiled("run-retries"), "quick")

    assert quick["Retry"][0] == {
        "ErrorEquals": ["StepFailed"],
        "IntervalSeconds": 1,
        "MaxAttempts": 1,
        "BackoffRate": 1,
    }


def test_continue_on_error_catches_into_the_next_step() -> None:
    definition = compiled("continue-on-error")

    assert step_state(definition, "tolerant")["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "last"}
    ]
    assert step_state(definition, "first")["Catch"] == [TO_SEAL_FAILURE]
    assert step_state(definition, "last")["Catch"] == [TO_SEAL_FAILURE]


def test_continue_on_error_on_the_last_step_continues_to_sealing() -> None:
    tolerant = step_state(compiled("continue-on-error-last"), "tolerant")

    assert tolerant["Catch"][0]["Next"] == "SealEvidence"
    assert tolerant["Next"] == "SealEvidence"


# -- parallel -------------------------------------------------------------------------------------------


def test_parallel_has_one_branch_per_child_and_catches_for_them() -> None:
    definition = compiled("parallel")
    checks = definition["States"]["checks"]

    assert checks["Type"] == "Parallel"
    assert checks["ResultPath"] is None
    assert checks["Catch"] == [TO_SEAL_FAILURE]
    assert checks["Next"] == "after"
    assert [branch["StartAt"] for branch in checks["Branches"]] == ["lint", "license"]
    for branch in checks["Branches"]:
        (task,) = branch["States"].values()
        assert task["End"] is True
        assert "Catch" not in task  # errors propagate to the Parallel, which seals the failure


def test_parallel_continue_on_error_tolerates_each_child_in_its_branch() -> None:
    checks = compiled("parallel-continue")["States"]["checks"]

    for branch in checks["Branches"]:
        task = branch["States"][branch["StartAt"]]
        (caught,) = task["Catch"]
        assert caught["ErrorEquals"] == ["States.ALL"]
        assert branch["States"][caught["Next"]] == {"Type": "Succeed"}
    assert checks["Catch"] == [TO_SEAL_FAILURE]


def test_parallel_above_max_parallel_dispatches_children_from_a_map() -> None:
    definition = compiled("parallel-dispatch")
    states = definition["States"]

    assert path_from(definition, "checks_items") == [
        "checks_items",
        "checks",
        "checks_done",
        "SealEvidence",
        "Succeed",
    ]
    assert states["checks_items"] == {
        "Type": "Pass",
        "Result": [0, 1, 2],
        "ResultPath": "$.mapItems",
        "Next": "checks",
    }
    dispatch_map = states["checks"]
    assert dispatch_map["MaxConcurrency"] == 2
    assert dispatch_map["ItemsPath"] == "$.mapItems"
    assert dispatch_map["ItemSelector"] == {**CONTEXT, "index.$": "$$.Map.Item.Value"}
    assert dispatch_map["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
    assert dispatch_map["ResultPath"] is None
    assert dispatch_map["Catch"] == [TO_SEAL_FAILURE]
    processor = dispatch_map["ItemProcessor"]
    choice = processor["States"][processor["StartAt"]]
    assert choice == {
        "Type": "Choice",
        "Choices": [
            {"Variable": "$.index", "NumericEquals": 0, "Next": "lint"},
            {"Variable": "$.index", "NumericEquals": 1, "Next": "license"},
        ],
        "Default": "provenance",
    }
    assert states["checks_done"] == {"Type": "Pass", "Parameters": CONTEXT, "Next": "SealEvidence"}


def test_dispatched_parallel_continue_on_error_ends_failed_children_in_one_succeed() -> None:
    processor = compiled("parallel-dispatch-continue")["States"]["checks"]["ItemProcessor"]
    targets = {processor["States"][name]["Catch"][0]["Next"] for name in ("lint", "license", "provenance")}

    assert targets == {"checks_continue"}
    assert processor["States"]["checks_continue"] == {"Type": "Succeed"}


# -- map ------------------------------------------------------------------------------------------------


def test_map_compiles_its_template_once_with_ids_from_the_item_index() -> None:
    states = compiled("map")["States"]
    scan_map = states["scan-all"]

    assert states["scan-all_items"]["Result"] == [0, 1, 2]
    assert scan_map["MaxConcurrency"] == 2
    assert scan_map["ItemSelector"] == {**CONTEXT, "index.$": "$$.Map.Item.Value"}
    assert scan_map["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
    (task,) = scan_map["ItemProcessor"]["States"].values()
    assert task["Parameters"]["Payload"] == {
        **CONTEXT,
        "stepId.$": "States.Format('scan-all[{}]::scan', $.index)",
        "attempt.$": "$$.State.RetryCount",
    }
    assert task["End"] is True
    assert states["scan-all_done"]["Next"] == "publish"


def test_parallel_in_map_renders_descendant_ids_with_the_map_prefix() -> None:
    definition = compiled("parallel-in-map")

    lint = step_state(definition, "targets[*]::lint")
    assert lint["Parameters"]["Payload"]["stepId.$"] == "States.Format('targets[{}]::lint', $.index)"
    # the inner parallel (3 children, maxParallel 2) is a dispatching Map carrying the outer index along
    inner = all_states(definition)["targets_checks"]
    assert inner["ItemSelector"] == {**CONTEXT, "index.$": "$.index", "index1.$": "$$.Map.Item.Value"}
    assert "Catch" not in inner  # inside an item: errors propagate to the outer Map
    assert all_states(definition)["targets_checks_done"]["Parameters"] == {**CONTEXT, "index.$": "$.index"}
    gate = step_state(definition, "audit[*]::gate")
    assert gate["Parameters"]["Payload"]["stepId.$"] == "States.Format('audit[{}]::gate', $.index)"
    assert "Catch" not in gate


def test_map_in_parallel_runs_inside_a_branch_without_its_own_catch() -> None:
    definition = compiled("map-in-parallel")
    fanout = definition["States"]["fanout"]
    first = fanout["Branches"][0]

    assert path_from(definition, first["StartAt"], first["States"]) == [
        "scan-all_items",
        "scan-all",
        "scan-all_done",
    ]
    scan_map = first["States"]["scan-all"]
    assert scan_map["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "scan-all_continue"}
    ]
    assert first["States"]["scan-all_done"]["End"] is True
    assert fanout["Catch"] == [TO_SEAL_FAILURE]


def test_map_in_map_renders_ids_from_both_indices() -> None:
    patch = step_state(compiled("map-in-map"), "regions[*]::hosts[*]::patch")

    assert patch["Parameters"]["Payload"]["stepId.$"] == (
        "States.Format('regions[{}]::hosts[{}]::patch', $.index, $.index1)"
    )


def test_map_children_of_different_shapes_are_dispatched_by_index_ranges() -> None:
    regions = compiled("map-in-map")["States"]["regions"]
    processor = regions["ItemProcessor"]
    choice = processor["States"][processor["StartAt"]]
    item_counts = {
        name: len(state["Result"]) for name, state in processor["States"].items() if name.endswith("_items")
    }

    # inner sizes per region: [2, 3, 3, 2, 1]; the size-3 group (regions 1-2) is the Default (last largest)
    assert item_counts[choice["Default"]] == 3
    first, second = choice["Choices"]
    assert first["Or"] == [
        {"Variable": "$.index", "NumericEquals": 0},
        {"Variable": "$.index", "NumericEquals": 3},
    ]
    assert item_counts[first["Next"]] == 2
    assert {key: value for key, value in second.items() if key != "Next"} == {
        "Variable": "$.index",
        "NumericEquals": 4,
    }
    assert item_counts[second["Next"]] == 1


def test_contiguous_index_range_becomes_one_and_condition() -> None:
    choice = compiler_module._choice("index", [[0, 1, 2, 5], [3, 4, 6, 7, 8, 9]], ["small", "large"])

    assert choice["Default"] == "large"
    assert choice["Choices"] == [
        {
            "Or": [
                {
                    "And": [
                        {"Variable": "$.index", "NumericGreaterThanEquals": 0},
                        {"Variable": "$.index", "NumericLessThanEquals": 2},
                    ]
                },
                {"Variable": "$.index", "NumericEquals": 5},
            ],
            "Next": "small",
        }
    ]


def test_map_without_items_compiles_to_nothing() -> None:
    definition = compiled("empty-map")

    assert path_from(definition, "VerifyPlan") == ["VerifyPlan", "only", "SealEvidence", "Succeed"]


def test_map_child_ids_must_follow_the_planner_convention() -> None:
    broken = map_of("scan-all", "scan", 2, lambda prefix, index: run(f"scan-{index}"))

    with pytest.raises(TaskRunnerError) as error:
        compile_plan(plan(broken))
    assert error.value.code == "CompileError"
    assert "scan-all[0]::scan" in error.value.message


# -- gates ----------------------------------------------------------------------------------------------


def test_approval_gate_waits_for_its_token_until_it_expires() -> None:
    review = step_state(compiled("gates"), "review")

    assert review["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert review["Parameters"] == {
        "FunctionName": "${OpenGateFunctionArn}",
        "Payload": {**CONTEXT, "gateId": "review", "taskToken.$": "$$.Task.Token"},
    }
    assert review["TimeoutSeconds"] == 3_600
    assert "HeartbeatSeconds" not in review
    assert review["Catch"] == [
        {
            "ErrorEquals": ["States.Timeout", "States.HeartbeatTimeout", "ApprovalRejected"],
            "ResultPath": "$.error",
            "Next": "SealFailure",
        },
        TO_SEAL_FAILURE,
    ]


def test_policy_gate_halts_through_policy_denied() -> None:
    definition = compiled("gates")

    for gate_id in ("halting", "lenient"):  # the Lambda raises PolicyDenied only for failAction halt
        gate = step_state(definition, gate_id)
        assert gate["Parameters"] == {
            "FunctionName": "${EvaluatePolicyFunctionArn}",
            "Payload": {**CONTEXT, "stepId": gate_id},
        }
        assert gate["Catch"] == [{**TO_SEAL_FAILURE, "ErrorEquals": ["PolicyDenied"]}, TO_SEAL_FAILURE]


def test_gates_in_map_render_their_ids_from_the_index() -> None:
    definition = compiled("gates-in-map")

    review = step_state(definition, "sign-off[*]::review")
    assert review["Parameters"]["Payload"]["gateId.$"] == "States.Format('sign-off[{}]::review', $.index)"
    assert review["TimeoutSeconds"] == 14_400


def test_when_does_not_change_the_definition() -> None:
    plain = compile_plan(plan(run("a"), approval("b")))
    conditional = compile_plan(
        plan(run("a", when="inputs.x", whenResolved=False), approval("b", when="inputs.y"))
    )

    assert conditional.definition_bytes == plain.definition_bytes


# -- names and bytes ------------------------------------------------------------------------------------


def test_state_names_are_valid_unique_and_keep_envelope_names() -> None:
    definition = compiled("long-ids")
    names = list(all_states(definition))

    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name), name
    assert step_state(definition, "VerifyPlan") is definition["States"]["VerifyPlan-2"]
    assert step_state(definition, "SealFailure") is definition["States"]["SealFailure-2"]
    assert definition["States"]["VerifyPlan"]["Parameters"]["FunctionName"] == "${VerifyPlanFunctionArn}"


ARNS = {name: f"arn:aws:lambda:eu-west-1:111122223333:function:prod-{name}" for name in PLACEHOLDERS}


def test_state_machine_name_is_prefix_pack_and_deployed_definition_digest() -> None:
    result = compile_plan(SCENARIOS["airgap-import"]()).deployment("prod_tr", ARNS)

    assert result.name == "prod_tr-airgap-import-" + sha256_hex(result.definition.encode())[:12]
    assert "${" not in result.definition


def test_two_stacks_never_share_a_state_machine_even_with_one_prefix() -> None:
    compiled_plan = compile_plan(SCENARIOS["hello"]())
    other_arns = {name: arn.replace("111122223333", "444455556666") for name, arn in ARNS.items()}

    assert compiled_plan.deployment("tr", ARNS).name != compiled_plan.deployment("tr", other_arns).name
    assert compiled_plan.deployment("dev_tr", ARNS).name.startswith("dev_tr-demo-")


def test_state_machine_name_fits_step_functions_rules() -> None:
    result = compile_plan(plan(run("a"), name="Very Long/Pack:Name " * 6)).deployment("p" * 57, ARNS)

    assert len(result.name) == 80
    assert re.fullmatch(r"p{57}-[A-Za-z0-9_-]{8,}-[0-9a-f]{12}", result.name)


@pytest.mark.parametrize("prefix", ["", "has space", "p" * 58, "a:b"])
def test_state_machine_prefix_must_be_short_and_safe(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        compile_plan(plan(run("a"))).deployment(prefix, ARNS)


def test_inputs_that_only_change_values_compile_to_one_definition() -> None:
    first = plan(run("a", with_={"target": "one"}))
    second = plan(run("a", with_={"target": "two"}))

    assert compile_plan(first).definition_bytes == compile_plan(second).definition_bytes
    assert b"sha256:" not in compile_plan(first).definition_bytes


@pytest.mark.parametrize("scenario", ["airgap-import", "map-in-map", "long-ids"])
def test_definition_bytes_are_rfc8785_canonical(scenario: str) -> None:
    result = compile_plan(SCENARIOS[scenario]())

    assert result.definition_bytes == canonical_bytes(result.definition)


def test_fractional_backoff_rate_is_encoded_canonically() -> None:
    result = compile_plan(SCENARIOS["run-retries"]())

    assert result.definition_bytes == canonical_bytes(result.definition)
    assert b'"BackoffRate":1.5' in result.definition_bytes


def test_non_ascii_comment_is_encoded_canonically() -> None:
    result = compile_plan(plan(run("a"), name="paquet-été"))

    assert result.definition_bytes == canonical_bytes(result.definition)


def test_different_plans_compile_to_different_definitions() -> None:
    base = compile_plan(plan(run("a", retries=RetryPolicy(maxAttempts=2))))
    more_retries = compile_plan(plan(run("a", retries=RetryPolicy(maxAttempts=3))))

    assert base.digest != more_retries.digest


# -- errors ---------------------------------------------------------------------------------------------


def test_timeout_beyond_the_step_functions_maximum_is_refused() -> None:
    with pytest.raises(TaskRunnerError) as error:
        compile_plan(plan(approval("review", seconds=100_000_000)))
    assert error.value.code == "CompileError"
    assert "'review'" in error.value.message
    assert "99,999,999" in error.value.message


def test_invalid_output_is_refused_with_every_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        compiler_module, "validate_definition", lambda definition: ["first issue", "second issue"]
    )

    with pytest.raises(TaskRunnerError) as error:
        compile_plan(plan(run("a")))
    assert error.value.code == "CompileError"
    assert "first issue" in error.value.message
    assert "second issue" in error.value.message


def test_gates_inside_a_parallel_leave_errors_to_it() -> None:
    definition = compile_plan(plan(parallel("both", approval("ok"), policy("fine")))).definition

    branches = definition["States"]["both"]["Branches"]
    assert [branch["StartAt"] for branch in branches] == ["ok", "fine"]
    assert all("Catch" not in branch["States"][branch["StartAt"]] for branch in branches)
