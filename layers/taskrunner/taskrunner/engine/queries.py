"""Read side of the API: run detail, listings, logs, artifacts and evidence, scoped to a tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from taskrunner.engine.seal import container_statuses
from taskrunner.engine.services import Services
from taskrunner.errors import NotFound
from taskrunner.keys import artifact_key, evidence_key
from taskrunner.store.records import TERMINAL_RUN_STATUSES
from taskrunner.timeutil import iso


def jsonable(value: Any) -> Any:
    """Records as JSON: datetimes become ISO-8601 ``Z`` strings, recursively."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump())
    return value


def _attempt(a: Any) -> dict[str, Any]:
    out = jsonable(a)
    if out.get("error") is not None and not isinstance(out["error"], dict):
        out["error"] = {"code": "StepFailed", "message": str(out["error"])}
    return out


def run_summary(run: Any) -> dict[str, Any]:
    keys = (
        "runId",
        "packName",
        "packVersion",
        "planHash",
        "status",
        "outcome",
        "requestedAt",
        "startedAt",
        "completedAt",
        "updatedAt",
    )
    return jsonable({k: getattr(run, k, None) for k in keys})


def run_detail(svc: Services, tenant_id: str, run_id: str) -> dict[str, Any]:
    run = svc.store.get_run(run_id, tenant_id)
    gates = [g for g in svc.store.list_gates(run_id) if g.status == "waiting"]
    live = run.status not in TERMINAL_RUN_STATUSES
    statuses = (
        container_statuses(run.steps, {s.stepId: s.status for s in run.steps}, live=live) if live else {}
    )
    detail = run_summary(run)
    detail.update(
        tenantId=run.tenantId,
        pack={"name": run.packName, "version": run.packVersion, "digest": run.plan["pack"]["digest"]},
        outputs=jsonable(getattr(run, "outputs", None)),
        error=jsonable(run.error),
        steps=[
            {
                "stepId": s.stepId,
                "kind": s.kind,
                "status": statuses.get(s.stepId, s.status),
                "parentId": s.parentId,
                "attempts": [_attempt(a) for a in s.attempts],
                "outputs": jsonable(s.outputs),
            }
            for s in run.steps
        ],
        pendingGates=[
            {
                "gateId": g.gateId,
                "approvalId": g.approvalId,
                "requiredCount": g.requiredCount,
                "approvals": sum(1 for d in g.decisions if d.decision == "approve"),
                "expiresAt": jsonable(g.expiresAt),
                "reason": g.reason,
            }
            for g in gates
        ],
    )
    return detail


def list_runs(svc: Services, tenant_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    runs, next_cursor = svc.store.list_runs(tenant_id, limit=limit, cursor=cursor)
    return {"items": [run_summary(r) for r in runs], "nextCursor": next_cursor}


def read_logs(svc: Services, tenant_id: str, run_id: str, after: int, limit: int | None) -> dict[str, Any]:
    """Events after ``after``; ``complete`` once the run is over and nothing follows."""
    run = svc.store.get_run(run_id, tenant_id)
    events = svc.store.read_logs(run_id, after_sequence=after, limit=limit)
    last = events[-1].sequence if events else after
    complete = run.sealed and not svc.store.read_logs(run_id, after_sequence=last, limit=1)
    return {
        "items": [jsonable(e) for e in events],
        "nextCursor": str(last) if events else None,
        "complete": complete,
    }


def list_artifacts(svc: Services, tenant_id: str, run_id: str) -> dict[str, Any]:
    svc.store.get_run(run_id, tenant_id)  # tenant check
    items = []
    for a in svc.store.list_artifacts(run_id):
        item = jsonable(a)
        item["url"] = svc.artifacts.presign(artifact_key(run_id, a.name)) if a.storedPath else None
        items.append(item)
    return {"items": items}


def evidence_of(svc: Services, tenant_id: str, run_id: str) -> dict[str, Any]:
    run = svc.store.get_run(run_id, tenant_id)
    if run.evidence and "refused" in run.evidence:
        refused = run.evidence["refused"]
        raise NotFound(
            f"run {run_id} has no evidence: sealing was refused: {refused['message']}",
            code="EvidenceRefused",
            remediation="the run's stored record was altered; submit the pack again",
        )
    if not run.evidence:
        raise NotFound(
            f"run {run_id} has no sealed evidence yet",
            remediation="evidence is sealed when the run finishes; poll the run status",
        )
    evidence = dict(run.evidence)
    return {"runId": run_id, **evidence, "url": svc.artifacts.presign(evidence_key(run_id))}
