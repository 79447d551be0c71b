"""seal_evidence: settle every step, compute the run's outputs, record the outcome, seal the evidence."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from taskrunner.engine.context import template_context
from taskrunner.engine.runlog import RunLog
from taskrunner.engine.services import Services
from taskrunner.engine.slo import record_latency, working_seconds
from taskrunner.engine.steptree import plan_of
from taskrunner.errors import ValidationFailed
from taskrunner.observability import count
from taskrunner.pack.expressions import evaluate
from taskrunner.store.records import RunRecord, StepRecord

OUTCOMES = ("succeeded", "failed", "cancelled")
OPEN_STEP = frozenset({"pending", "running", "waiting"})


def parse_error(error: object) -> dict[str, str] | None:
    """A Catch error ``{Error, Cause}`` (Cause may be a Lambda error JSON) as ``{code, message}``."""
    if not error:
        return None
    if not isinstance(error, dict):
        return {"code": "Error", "message": str(error)}
    code, cause = str(error.get("Error") or "Error"), error.get("Cause") or ""
    try:
        decoded = json.loads(cause)
        message = str(decoded.get("errorMessage") or cause) if isinstance(decoded, dict) else str(cause)
    except (TypeError, ValueError):
        message = str(cause)
    return {"code": code, "message": message or code}


def _closing_status(step_status: str, kind: str, error_code: str | None, outcome: str) -> str:
    if kind == "gate.approval" and step_status == "waiting":
        return "expired" if error_code == "States.Timeout" else "cancelled"
    return "cancelled" if outcome != "succeeded" or step_status == "running" else "skipped"


def container_statuses(
    steps: Sequence[StepRecord], statuses: dict[str, str], *, live: bool
) -> dict[str, str]:
    """Statuses of parallel and map steps derived from their children (bottom-up, plan order reversed).

    Finished children decide: all skipped -> skipped, any failed/rejected/expired -> failed, any cancelled ->
    cancelled, else succeeded. While the run is ``live``, a container with an open child is running.
    """
    derived = dict(statuses)
    children: dict[str, list[str]] = {}
    for record in steps:
        if record.parentId:
            children.setdefault(record.parentId, []).append(record.stepId)
    for record in reversed(steps):
        if record.kind not in ("parallel", "map"):
            continue
        kids = [derived[c] for c in children.get(record.stepId, [])]
        if live and any(k in OPEN_STEP for k in kids):
            derived[record.stepId] = "pending" if all(k == "pending" for k in kids) else "running"
        elif kids and all(k == "skipped" for k in kids):
            derived[record.stepId] = "skipped"
        elif any(k in ("failed", "rejected", "expired") for k in kids):
            derived[record.stepId] = "failed"
        elif any(k == "cancelled" for k in kids):
            derived[record.stepId] = "cancelled"
        else:
            derived[record.stepId] = "succeeded"
    return derived


def settle_steps(svc: Services, run: RunRecord, outcome: str, error_code: str | None) -> None:
    """Close every open step (gates expire on timeout) and derive parallel/map statuses from their children."""
    statuses: dict[str, str] = {s.stepId: s.status for s in run.steps}
    now = svc.clock()
    for record in run.steps:
        if record.kind in ("parallel", "map") or record.status not in OPEN_STEP:
            continue
        status = _closing_status(record.status, record.kind, error_code, outcome)
        statuses[record.stepId] = status
        svc.store.update_step(
            run.runId, record.stepId, expected_status=None, changes={"status": status, "completedAt": now}
        )
        if record.kind == "gate.approval" and record.status == "waiting":
            svc.store.update_gate(
                run.runId,
                record.stepId,
                expected_status={"waiting"},
                changes={"status": status, "closedAt": now},
            )
            if status == "expired":
                RunLog(svc.store, run.runId).emit(
                    "gate.expired",
                    f"gate {record.stepId} expired before enough approvals",
                    level="error",
                    step_id=record.stepId,
                    metadata={"remediation": "resubmit the run and approve within the gate's expiresAfter"},
                )
    for step_id, status in container_statuses(run.steps, statuses, live=False).items():
        if status != statuses[step_id]:
            svc.store.update_step(run.runId, step_id, expected_status=None, changes={"status": status})


def run_outputs(run: RunRecord) -> dict[str, Any]:
    """The pack's ``outputs`` evaluated over the finished run (step outputs are already redacted)."""
    context = template_context(run, None)
    return {o.name: evaluate(o.from_, context) for o in plan_of(run).outputs}


def seal_run(
    svc: Services, run_id: str, tenant_id: str, outcome: str, error: object = None
) -> dict[str, object]:
    """Record the final outcome once; sealing an already sealed run returns its result unchanged."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    run = svc.store.get_run(run_id, tenant_id)
    if run.sealed:
        return {"runId": run_id, "outcome": run.status}
    if run.status == "cancelled":
        outcome = "cancelled"
    parsed = parse_error(error)
    settle_steps(svc, run, outcome, parsed["code"] if parsed else None)
    run = svc.store.get_run(run_id, tenant_id)
    outputs = run_outputs(run) if outcome == "succeeded" else {}
    completed = svc.clock()
    svc.store.update_run(
        run_id,
        expected_status=None,
        changes={
            "status": outcome,
            "outcome": outcome,
            "completedAt": completed,
            "outputs": outputs,
            **({"error": parsed} if parsed else {}),
        },
    )
    RunLog(svc.store, run_id).emit(
        "run.completed",
        f"run {run_id} {outcome}" + (f": {parsed['message']}" if parsed else ""),
        level="info" if outcome == "succeeded" else "error",
        metadata={"outcome": outcome, **({"error": parsed["code"]} if parsed else {})},
    )
    count(f"Runs{outcome.capitalize()}")
    if outcome == "succeeded":
        record_latency("RunDuration", working_seconds(run, svc.store.list_gates(run_id), completed), run)
    return {
        "runId": run_id,
        "outcome": outcome,
        "evidence": _seal_evidence(svc, run_id, tenant_id).get("location"),
    }


def _seal_evidence(svc: Services, run_id: str, tenant_id: str) -> Mapping[str, object]:
    """Seal the bundle; when the run's own record cannot be sealed (its stored plan no longer hashes to the
    planHash), record why instead, so the run is still closed and the refusal is visible."""
    from taskrunner.engine.evidence import seal_evidence_bundle

    try:
        return seal_evidence_bundle(svc, svc.store.get_run(run_id, tenant_id))
    except ValidationFailed as exc:
        refusal = {"refused": {"code": exc.code, "message": exc.message}}
        svc.store.update_run(run_id, expected_status=None, changes={"evidence": refusal})
        return refusal
