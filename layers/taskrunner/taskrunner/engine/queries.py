"""Read side of the API: run detail, listings, logs, artifacts and evidence, scoped to a tenant."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from taskrunner.engine.seal import container_statuses
from taskrunner.engine.services import Services
from taskrunner.errors import NotFound
from taskrunner.keys import APPROVER, artifact_key, evidence_key, trust_key
from taskrunner.store.records import TERMINAL_RUN_STATUSES, ArtifactRecord, GateRecord, LogEvent, RunRecord
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


def run_summary(run: RunRecord) -> dict[str, Any]:
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


@dataclass(frozen=True)
class RunView:
    """A run as a reader sees it: container steps of a live run carry the status their children give them."""

    run: RunRecord
    statuses: dict[str, str]  # derived statuses of a live run's steps; empty once it is over
    pending_gates: list[GateRecord]


def run_view(svc: Services, tenant_id: str, run_id: str) -> RunView:
    run = svc.store.get_run(run_id, tenant_id)
    gates = [g for g in svc.store.list_gates(run_id) if g.status == "waiting"]
    live = run.status not in TERMINAL_RUN_STATUSES
    statuses = (
        container_statuses(run.steps, {s.stepId: s.status for s in run.steps}, live=live) if live else {}
    )
    return RunView(run, statuses, gates)


def run_detail(svc: Services, tenant_id: str, run_id: str) -> dict[str, Any]:
    """The run with every step, its outputs and error, and pending gates, as JSON."""
    view = run_view(svc, tenant_id, run_id)
    run = view.run
    detail = run_summary(run)
    detail.update(
        tenantId=run.tenantId,
        pack={"name": run.packName, "version": run.packVersion, "digest": run.plan["pack"]["digest"]},
        outputs=jsonable(run.outputs),
        error=jsonable(run.error),
        steps=[
            {
                "stepId": s.stepId,
                "kind": s.kind,
                "status": view.statuses.get(s.stepId, s.status),
                "parentId": s.parentId,
                "attempts": [jsonable(a) for a in s.attempts],
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
            for g in view.pending_gates
        ],
    )
    return detail


@dataclass(frozen=True)
class LogsRead:
    events: list[LogEvent]
    complete: bool  # the run is over and nothing follows the last event


def read_logs(svc: Services, tenant_id: str, run_id: str, after: int, limit: int | None) -> LogsRead:
    """Events after ``after``; ``complete`` once the run is over and nothing follows."""
    run = svc.store.get_run(run_id, tenant_id)
    events = svc.store.read_logs(run_id, after_sequence=after, limit=limit)
    last = events[-1].sequence if events else after
    complete = run.sealed and not svc.store.read_logs(run_id, after_sequence=last, limit=1)
    return LogsRead(events, complete)


def list_artifacts(svc: Services, tenant_id: str, run_id: str) -> list[tuple[ArtifactRecord, str | None]]:
    """The run's artifacts, each with its download URL (None when it was not stored)."""
    svc.store.get_run(run_id, tenant_id)  # tenant check
    return [
        (a, svc.artifacts.presign(artifact_key(run_id, a.name)) if a.storedPath else None)
        for a in svc.store.list_artifacts(run_id)
    ]


def evidence_of(svc: Services, tenant_id: str, run_id: str) -> dict[str, Any]:
    """Where the run's sealed evidence bundle is (location, sha256, size) and its download ``url``."""
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
    return {**run.evidence, "url": svc.artifacts.presign(evidence_key(run_id))}


def approver_key_pems(svc: Services, tenant_id: str, run_id: str) -> list[bytes]:
    """Public keys (PEM) of the approvers who decided on the run's gates, as the tenant trusts them."""
    approvers = sorted({d.approver for gate in svc.store.list_gates(run_id) for d in gate.decisions})
    pems: list[bytes] = []
    for approver in approvers:
        if APPROVER.matches(approver):
            try:
                pems.append(svc.artifacts.open(trust_key(tenant_id, approver)).read())
            except NotFound:
                continue  # an approver whose key is not kept as a trust file
    return pems


def publisher_key_pems(svc: Services, tenant_id: str, run_id: str) -> list[str]:
    """The tenant's trusted publisher keys, for a run of a signed registry pack (its bundle holds the pack's
    signed statement)."""
    from taskrunner.engine.registry import publisher_keys

    if svc.store.get_run(run_id, tenant_id).packRelease is None:
        return []
    return [key.pem for key in publisher_keys(svc, tenant_id).values()]


def evidence_verification(svc: Services, tenant_id: str, run_id: str) -> dict[str, Any]:
    """The run's sealed bundle checked as ``taskrunner verify --require-dsse`` checks it, against the
    deployment's own signing key and its approvers' keys: ``verified``, a one-line ``summary`` and the
    ``failures``."""
    from taskrunner.engine.evidence import run_signer
    from taskrunner.evidence.verify import verify_bundle

    with tempfile.TemporaryDirectory(prefix="evidence-") as directory:
        path = Path(directory) / "bundle.tar.gz"
        with svc.artifacts.open(evidence_key(run_id)) as source, path.open("wb") as target:
            shutil.copyfileobj(source, target)
        trusted: list[bytes | str] = [
            run_signer(svc).public_key_pem,
            *approver_key_pems(svc, tenant_id, run_id),
            *publisher_key_pems(svc, tenant_id, run_id),
        ]
        report = verify_bundle(path, trusted, require_dsse=True)
    summary = (
        "the signed manifest, every file digest and every approval signature check out"
        if report.ok
        else f"{len(report.failures)} problem(s): {report.failures[0]}"
    )
    return {"verified": report.ok, "summary": summary, "failures": report.failures[:50]}


@dataclass(frozen=True)
class GateView:
    """A gate with its run: what an approver is asked to decide."""

    run: RunRecord
    gate: GateRecord

    def remaining_steps(self) -> list[dict[str, Any]]:
        """Steps after the gate that have not started yet (``stepId``, ``kind``, ``parentId``)."""
        steps = self.run.steps
        position = next((i for i, s in enumerate(steps) if s.stepId == self.gate.gateId), -1)
        return [
            {"stepId": s.stepId, "kind": s.kind, "parentId": s.parentId}
            for s in steps[position + 1 :]
            if s.status in ("pending", "running", "waiting")
        ]

    def inputs(self) -> dict[str, Any]:
        """The run's inputs as planned; secrets appear only as their reference, never a value."""
        plan = self.run.plan
        redacted = {s["name"]: f"<secret {s['ref']}>" for s in plan.get("secrets", [])}
        return {**jsonable(plan.get("inputs", {})), **redacted}


def waiting_gates(svc: Services, tenant_id: str) -> list[GateView]:
    """The tenant's gates waiting for decisions, newest opened first (only active runs can have one)."""
    found = [
        GateView(run, gate)
        for run in svc.store.list_active_runs()
        if run.tenantId == tenant_id
        for gate in svc.store.list_gates(run.runId)
        if gate.status == "waiting"
    ]
    return sorted(found, key=lambda view: view.gate.openedAt, reverse=True)


def gate_view(svc: Services, tenant_id: str, run_id: str, gate_id: str) -> GateView:
    """The gate ``gate_id`` of the tenant's run ``run_id``; NotFound for another tenant's run or a gate
    that was never opened."""
    return GateView(svc.store.get_run(run_id, tenant_id), svc.store.get_gate(run_id, gate_id))
