"""State machines in the local runtime: one per pack structure, stack-scoped, removed when unused, re-created."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import PACKS, REPO, submit, wait_for, wait_for_step

FIXTURE_PACKS = REPO / "tests" / "fixtures" / "packs"
PREFIX = "taskrunner-local_tr"  # ${AWS::StackName}_tr for the local stack


def machines(rt: Any) -> set[str]:
    return {
        m["stateMachineArn"] for m in rt.aws.client("stepfunctions").list_state_machines()["stateMachines"]
    }


def gone(rt: Any, arn: str) -> bool:
    return arn not in machines(rt)


def ended_event(machine: str, execution: str) -> dict[str, Any]:
    detail = {"stateMachineArn": machine, "executionArn": execution, "status": "ABORTED"}
    return {"source": "aws.states", "detail-type": "Step Functions Execution Status Change", "detail": detail}


def test_runs_whose_inputs_differ_share_one_stack_scoped_state_machine(runtime: Any) -> None:
    first = runtime.wait(submit(runtime, PACKS / "hello.yaml", {"who": "ops"}).runId, timeout=60)
    second = runtime.wait(submit(runtime, PACKS / "hello.yaml", {"who": "dev"}).runId, timeout=60)

    assert first.planHash != second.planHash
    assert first.status == second.status == "succeeded"
    assert first.stateMachineArn == second.stateMachineArn
    assert first.stateMachineArn.rsplit(":", 1)[-1].startswith(PREFIX + "-hello-")


def test_a_state_machine_is_deleted_once_its_last_execution_ended(runtime: Any) -> None:
    run = runtime.wait(submit(runtime, PACKS / "hello.yaml", {"who": "retire"}).runId, timeout=60)

    assert run.status == "succeeded"
    wait_for(lambda: gone(runtime, run.stateMachineArn), timeout=10)
    assert runtime.svc.workflow.execution_status(run.executionArn) == "DELETED"


def test_a_state_machine_is_kept_while_another_run_executes_it(runtime: Any) -> None:
    from taskrunner.engine.lifecycle import cancel_run

    pack = FIXTURE_PACKS / "handler-events.yaml"
    waiting = submit(runtime, pack, {"targets": ["a", "b"]})
    other = submit(runtime, pack, {"targets": ["c", "d"]})
    for run in (waiting, other):
        wait_for_step(runtime, run.runId, "review", "waiting")
    machine = runtime.svc.store.get_run(waiting.runId, None).stateMachineArn
    assert runtime.svc.store.get_run(other.runId, None).stateMachineArn == machine

    cancel_run(runtime.svc, "local", other.runId, requested_by="test")
    runtime.wait(other.runId, timeout=60)
    wait_for(lambda: runtime.svc.workflow.execution_status(other.executionArn) != "RUNNING", timeout=10)
    retired = runtime.invoke("retire_state_machine", ended_event(machine, other.executionArn)).json()
    assert retired == {"stateMachineArn": machine, "deleted": False}
    assert machine in machines(runtime)

    cancel_run(runtime.svc, "local", waiting.runId, requested_by="test")
    wait_for(lambda: gone(runtime, machine), timeout=10)


def tamper_definition(rt: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Submit failing-step.yaml with its stored plan given another structure (one more attempt for a step) and
    a planHash recomputed to match: the plan check passes, but the plan no longer compiles to the machine."""
    from taskrunner.canonical import digest_of

    store = rt.svc.store
    original = store.create_run

    def create_tampered(record: Any) -> Any:
        plan = json.loads(json.dumps(record.plan))
        plan["steps"][0]["retries"]["maxAttempts"] = 5
        return original(record.model_copy(update={"plan": plan, "planHash": digest_of(plan)}))

    monkeypatch.setattr(store, "create_run", create_tampered)
    try:
        run_id: str = submit(rt, FIXTURE_PACKS / "failing-step.yaml", {"label": "definition"}).runId
    finally:
        monkeypatch.undo()
    return run_id


def test_a_run_whose_plan_compiles_to_another_definition_fails_verification(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = runtime.wait(tamper_definition(runtime, monkeypatch), timeout=60)

    assert run.status == "failed"
    assert run.error is not None
    assert run.error.code == "PlanHashMismatch"
    assert run.stateMachineArn.rsplit(":", 1)[-1] in run.error.message
    assert all(s.attempts == [] for s in run.steps)
    verified = [e for e in runtime.svc.store.read_logs(run.runId) if e.eventType == "plan.verified"]
    assert [(e.level, e.metadata["result"]) for e in verified] == [("error", "mismatch")]


def test_resume_re_creates_a_deleted_state_machine(runtime: Any) -> None:
    from taskrunner.engine.lifecycle import resume_run

    failed = runtime.wait(
        submit(runtime, FIXTURE_PACKS / "failing-step.yaml", {"label": "resume"}).runId, timeout=60
    )
    assert failed.status == "failed"
    wait_for(lambda: gone(runtime, failed.stateMachineArn), timeout=10)

    resumed = resume_run(runtime.svc, "local", failed.runId)
    again = runtime.wait(failed.runId, timeout=60)

    assert resumed.stateMachineArn == failed.stateMachineArn
    assert resumed.executionArn.endswith(f"{failed.runId}-resume-1")
    assert again.status == "failed"
    assert again.step("prepare").status == "succeeded"
    assert len(again.step("prepare").attempts) == 1  # finished steps are not run again
    started = [e.stepId for e in runtime.svc.store.read_logs(failed.runId) if e.eventType == "step.started"]
    assert started.count("broken") == 2


def test_a_same_named_machine_changed_by_hand_is_refused_and_the_run_recorded_failed(runtime: Any) -> None:
    from taskrunner.asl.compiler import compile_plan
    from taskrunner.engine.submit import plan_pack
    from taskrunner.errors import Conflict
    from taskrunner.store.records import idempotent_run_id

    text = (FIXTURE_PACKS / "failing-step.yaml").read_text(encoding="utf-8")
    svc = runtime.svc
    deployment = compile_plan(plan_pack(text, {}).plan).deployment(
        svc.state_machine_prefix, svc.function_arns
    )
    sfn = runtime.aws.client("stepfunctions")
    wait_for(lambda: not any(arn.endswith(":" + deployment.name) for arn in machines(runtime)), timeout=10)
    other = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    sfn.create_state_machine(
        name=deployment.name, definition=json.dumps(other), roleArn=runtime.aws.state_machine_role_arn
    )

    with pytest.raises(Conflict) as error:
        submit(runtime, text, idempotency_key="hand-changed")
    assert deployment.name in error.value.message

    run = svc.store.get_run(idempotent_run_id("local", "hand-changed"), "local")
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.code == "StartFailed"
    assert run.executionArn is None


@pytest.mark.parametrize(
    "detail",
    [
        {"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:x", "status": "RUNNING"},
        {"stateMachineArn": "not-an-arn", "executionArn": "e", "status": "SUCCEEDED"},
    ],
)
def test_retire_refuses_an_event_that_is_no_ended_execution(runtime: Any, detail: dict[str, Any]) -> None:
    before = machines(runtime)
    event = {
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": detail,
    }

    result = runtime.invoke("retire_state_machine", event)

    assert result.is_error
    assert result.json()["errorType"] == "ValidationFailed"
    assert "ExecutionEnded" in result.json()["errorMessage"]
    assert machines(runtime) == before


def test_retire_leaves_machines_of_other_prefixes_alone(runtime: Any) -> None:
    sfn = runtime.aws.client("stepfunctions")
    definition = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})
    role = runtime.aws.state_machine_role_arn
    arn = sfn.create_state_machine(name="prod_tr-other-000000000000", definition=definition, roleArn=role)[
        "stateMachineArn"
    ]

    result = runtime.invoke(
        "retire_state_machine", ended_event(arn, arn.replace("stateMachine", "execution") + ":r")
    )

    assert result.json() == {"stateMachineArn": arn, "deleted": False}
    assert arn in machines(runtime)
