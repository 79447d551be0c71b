"""verify_plan: the first state of every execution — the stored plan must still hash to the compiled planHash."""

from __future__ import annotations

from taskrunner.canonical import digest_of
from taskrunner.engine.errors import PlanHashMismatch, RunCancelled
from taskrunner.engine.runlog import RunLog
from taskrunner.engine.services import Services


def verify_plan(svc: Services, run_id: str, tenant_id: str, plan_hash: str) -> dict[str, str]:
    run = svc.store.get_run(run_id, tenant_id)
    if run.status == "cancelled":
        raise RunCancelled(f"run {run_id} was cancelled")
    log = RunLog(svc.store, run_id)
    actual = digest_of(run.plan)
    if actual != plan_hash or run.planHash != plan_hash:
        log.emit(
            "plan.verified",
            f"plan hash mismatch: expected {plan_hash}, stored plan hashes to {actual}",
            level="error",
            metadata={"expected": plan_hash, "actual": actual, "result": "mismatch"},
        )
        raise PlanHashMismatch(
            f"stored plan of run {run_id} hashes to {actual}, not {plan_hash}",
            remediation="the stored plan was modified; submit the pack again to get a new run",
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
