"""Cancel and resume a run; retire a state machine no execution uses any more."""

from __future__ import annotations

from taskrunner.engine.errors import RunFinished
from taskrunner.engine.ports import WorkflowEngine
from taskrunner.engine.runlog import RunLog
from taskrunner.engine.seal import seal_run
from taskrunner.engine.services import Services
from taskrunner.engine.submit import start_execution
from taskrunner.errors import Conflict
from taskrunner.plan.document import Plan
from taskrunner.store.records import ACTIVE_RUN_STATUSES, RunRecord

ACTIVE = ACTIVE_RUN_STATUSES


def cancel_run(svc: Services, tenant_id: str, run_id: str, requested_by: str = "api") -> RunRecord:
    """Stop the execution, fail every waiting gate token with RunCancelled, mark the run cancelled, seal it.

    Sealing is the SealEvidence function's job (it alone may sign and write evidence): it is invoked
    asynchronously, so the returned run may not be sealed yet. Without a deployed function, seal here.
    """
    run = svc.store.get_run(run_id, tenant_id)
    if run.status == "cancelled":
        return run  # idempotent
    if run.status not in ACTIVE:
        raise RunFinished(
            f"run {run_id} already {run.status}", remediation="only pending or running runs can be cancelled"
        )
    svc.store.update_run(run_id, expected_status=ACTIVE, changes={"status": "cancelled"})
    RunLog(svc.store, run_id).emit(
        "run.cancelled",
        f"run {run_id} cancelled by {requested_by}",
        level="warn",
        metadata={"requestedBy": requested_by},
    )
    if run.executionArn:
        svc.workflow.stop_execution(run.executionArn, "RunCancelled", f"cancelled by {requested_by}")
    for gate in svc.store.list_gates(run_id):
        if gate.status == "waiting" and gate.taskToken:
            svc.workflow.send_task_failure(gate.taskToken, "RunCancelled", f"run {run_id} was cancelled")
    seal_function = svc.function_arns.get("SealEvidenceFunctionArn")
    if seal_function:
        svc.functions.invoke_async(
            seal_function, {"runId": run_id, "tenantId": tenant_id, "outcome": "cancelled"}
        )
    else:
        seal_run(svc, run_id, tenant_id, "cancelled")
    return svc.store.get_run(run_id, tenant_id)


def resume_count(execution_arn: str | None) -> int:
    """How many times a run was resumed, read off its current execution name (``<runId>-resume-<n>``)."""
    name = (execution_arn or "").rsplit(":", 1)[-1]
    _head, sep, count = name.rpartition("-resume-")
    return int(count) if sep and count.isdigit() else 0


def execution_run_id(execution_name: str) -> str:
    """The run an execution belongs to, read off its name (``<runId>`` or ``<runId>-resume-<n>``)."""
    head, sep, count = execution_name.rpartition("-resume-")
    return head if sep and count.isdigit() else execution_name


def resume_run(svc: Services, tenant_id: str, run_id: str, *, force: bool = False) -> RunRecord:
    """Start a new execution of the same definition: finished steps pass, approved gates pass, open gates re-open.

    A running run is resumed only with ``force`` (the local runtime after a restart, when its engine state is
    gone); a failed run is reopened; succeeded and cancelled runs are final.
    """
    run = svc.store.get_run(run_id, tenant_id)
    if run.status in ("succeeded", "cancelled"):
        raise RunFinished(
            f"run {run_id} already {run.status}", remediation="submit the pack again for a new run"
        )
    running = run.status in ACTIVE and not force
    if running and run.executionArn and svc.workflow.execution_status(run.executionArn) == "RUNNING":
        raise Conflict(f"run {run_id} is still executing", remediation="wait for it, or cancel it first")
    for step in run.steps:
        if step.status in ("failed", "running", "cancelled") or (
            step.kind in ("parallel", "map") and step.status != "pending"
        ):
            svc.store.update_step(
                run_id,
                step.stepId,
                expected_status=None,
                changes={"status": "pending", "completedAt": None, "error": None},
            )
    resumes = resume_count(run.executionArn) + 1
    svc.store.update_run(
        run_id,
        expected_status=None,
        changes={"status": "running", "outcome": None, "error": None, "completedAt": None, "evidence": None},
    )
    from taskrunner.asl.compiler import compile_plan

    compiled = compile_plan(Plan.model_validate(run.plan))
    return start_execution(
        svc, svc.store.get_run(run_id, tenant_id), compiled, execution_name=f"{run_id}-resume-{resumes}"
    )


def retire_state_machine(
    workflow: WorkflowEngine, prefix: str, machine_arn: str, ended_execution: str
) -> bool:
    """After ``ended_execution`` ended: delete its state machine (one of this deployment's, by ``prefix``)
    unless another execution of it is running. Submit and resume create it again when needed."""
    if not machine_arn.rsplit(":", 1)[-1].startswith(prefix + "-"):
        return False
    return workflow.delete_state_machine_if_idle(machine_arn, ended_execution)
