"""verify_plan: the first state of every execution — the run's plan and its state machine are unchanged.

The stored plan must re-hash to the run's planHash, which must be the planHash the execution was started
with; and the stored plan must still compile to the definition of the state machine running it (its name
ends in the digest of its deployed definition). Either difference aborts the run with ``PlanHashMismatch``.
"""

from __future__ import annotations

from collections.abc import Mapping

from taskrunner.canonical import digest_of
from taskrunner.engine.errors import PlanHashMismatch, RunCancelled
from taskrunner.engine.runlog import RunLog
from taskrunner.engine.services import Services
from taskrunner.plan.document import Plan


def verify_plan(
    svc: Services, run_id: str, tenant_id: str, plan_hash: str, state_machine: str, function_arn: str
) -> dict[str, str]:
    run = svc.store.get_run(run_id, tenant_id)
    if run.status == "cancelled":
        raise RunCancelled(f"run {run_id} was cancelled")
    log = RunLog(svc.store, run_id)
    actual = digest_of(run.plan)
    if actual != plan_hash or run.planHash != plan_hash:
        _mismatch(
            log,
            plan_hash,
            actual,
            f"stored plan of run {run_id} hashes to {actual}, not {plan_hash}",
            "the stored plan was modified; submit the pack again to get a new run",
        )
    expected = expected_state_machine(svc, run.plan, function_arn)
    if expected != state_machine:
        _mismatch(
            log,
            expected,
            state_machine,
            f"run {run_id} is executing state machine {state_machine}, but its plan compiles to {expected}",
            "the state machine or the compiler changed since the run was submitted; resume the run "
            "(it starts the state machine its plan compiles to now) or submit the pack again",
        )
    if run.status == "pending":
        svc.store.update_run(
            run_id, expected_status={"pending"}, changes={"status": "running", "startedAt": svc.clock()}
        )
        log.emit("run.started", f"run {run_id} started")
    log.emit(
        "plan.verified", f"plan verified: {plan_hash}", metadata={"planHash": plan_hash, "result": "match"}
    )
    return {"runId": run_id, "planHash": plan_hash}


def expected_state_machine(svc: Services, plan: Mapping[str, object], verify_function_arn: str) -> str:
    """The name of the state machine ``plan`` compiles to in this deployment."""
    from taskrunner.asl.compiler import compile_plan

    arns = {**svc.function_arns, "VerifyPlanFunctionArn": verify_function_arn}
    return compile_plan(Plan.model_validate(plan)).deployment(svc.state_machine_prefix, arns).name


def _mismatch(log: RunLog, expected: str, actual: str, message: str, remediation: str) -> None:
    log.emit(
        "plan.verified",
        f"plan mismatch: {message}",
        level="error",
        metadata={"expected": expected, "actual": actual, "result": "mismatch"},
    )
    raise PlanHashMismatch(message, remediation=remediation)
