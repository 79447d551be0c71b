"""Gate decisions: scope, grants, token binding, a DSSE-signed payload by a key trusted for the tenant.

Fail-closed: a decision without a valid envelope, from an approver without a trusted key, for another
plan, after the gate closed or with an expired envelope (signed before the gate opened or after it expires,
or dated in the future) is refused and changes nothing but the refusal's ``gate.refused`` log event. ``requiredCount`` distinct approvers pass
the gate (SendTaskSuccess); any rejection fails it (SendTaskFailure ``ApprovalRejected``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from taskrunner.engine.approver_keys import approver_records, enrolled_key
from taskrunner.engine.errors import PlanHashMismatch
from taskrunner.engine.fail_closed import log_refusal
from taskrunner.engine.runlog import RunLog
from taskrunner.engine.services import Services
from taskrunner.engine.slo import record_latency
from taskrunner.engine.steptree import run_index
from taskrunner.errors import Conflict, NotFound
from taskrunner.identity import Forbidden, Principal
from taskrunner.keys import APPROVER, trust_key
from taskrunner.plan.document import ApprovalGateStep
from taskrunner.store.errors import StaleUpdate
from taskrunner.store.records import Decision, GateRecord, RunRecord
from taskrunner.timeutil import iso, parse_iso

if TYPE_CHECKING:
    from taskrunner.evidence.signing import TrustedKey

DecisionWord = Literal["approve", "reject"]
CLOCK_SKEW = timedelta(seconds=60)  # how far an approver's clock may be off the deployment's


@dataclass(frozen=True)
class ApprovalDecision:
    run_id: str
    gate_id: str
    decision: DecisionWord
    reason: str | None
    plan_hash: str
    envelope: dict[str, Any]


def approver_key(svc: Services, tenant_id: str, approver: str, keyids: Sequence[str] = ()) -> TrustedKey:
    """The key ``approver`` signs with in ``tenant_id``: the active enrolled key among ``keyids`` (the
    envelope's ``signatures[].keyid``), else the hand-trusted ``trust/<tenant>/<approver>.pem``."""
    from taskrunner.evidence.signing import load_trusted_key  # crypto stack loads on the first decision

    if not APPROVER.matches(approver):
        raise Forbidden(
            f"approver {approver[:70]!r} (the token's 'sub' claim) is not a valid approver name",
            remediation=f"approve with a token whose 'sub' is an approver name: {APPROVER.hint}",
        )
    choice = enrolled_key(svc, tenant_id, approver, keyids)
    if choice.record is not None:
        return load_trusted_key(choice.record.publicKeyPem, f"enrolled key {choice.record.keyId}")
    if choice.refusal is not None:
        raise Forbidden(
            choice.refusal,
            code="ApproverKeyNotActive",
            remediation="sign with an active key: 'taskrunner approvals keys' lists yours",
        )
    try:
        pem = svc.artifacts.open(trust_key(tenant_id, approver)).read()
    except NotFound:
        named = ", ".join(k[:16] for k in keyids) or "none"
        raise Forbidden(
            f"approver {approver} has no key trusted for tenant {tenant_id} (the envelope names keyid {named}, "
            "which is not one of the approver's enrolled keys)",
            remediation="enrol the key ('taskrunner approvals enrol' or POST /api/approvers/keys) and sign "
            "with it, naming its keyId in the envelope",
        ) from None
    return load_trusted_key(pem, f"approver {approver}")


def _check_binding(principal: Principal, decision: ApprovalDecision, plan_hash: str) -> None:
    for claim, expected in (("pack_run_id", decision.run_id), ("pack_gate_id", decision.gate_id)):
        if principal.claim(claim) != expected:
            raise Forbidden(
                f"token claim {claim} does not match {expected}",
                remediation=f"use an approval token minted for this run and gate ({claim}={expected})",
            )
    if principal.claim("pack_plan_hash") != plan_hash or decision.plan_hash != plan_hash:
        raise PlanHashMismatch(
            f"the decision is bound to another plan than run {decision.run_id}'s {plan_hash}",
            remediation="re-read the run and approve its current planHash",
        )


def _verified_payload(
    svc: Services, principal: Principal, decision: ApprovalDecision, plan_hash: str
) -> dict[str, Any]:
    from taskrunner.evidence.approvals import approval_problems
    from taskrunner.evidence.dsse import DsseError, envelope_keyids, verify_envelope
    from taskrunner.evidence.layout import APPROVAL_PAYLOAD_TYPE

    keyids = envelope_keyids(decision.envelope)
    key = approver_key(svc, principal.tenant_id, principal.subject, keyids)
    try:
        payload = verify_envelope(decision.envelope, [key], APPROVAL_PAYLOAD_TYPE)
    except DsseError as exc:
        raise Forbidden(
            f"decision envelope rejected: {exc.message}",
            code="InvalidApprovalSignature",
            remediation="sign the decision payload with the approver's registered key",
        ) from None
    problems = approval_problems(
        payload, run_id=decision.run_id, plan_hash=plan_hash, tenant_id=principal.tenant_id
    )
    document = json.loads(payload) if not problems else {}
    expected = {
        "gateId": decision.gate_id,
        "decision": decision.decision,
        "approver": principal.subject,
        "reason": decision.reason or "",
    }
    problems += [
        f"{k} in the signed payload is {document.get(k)!r}, not {v!r}"
        for k, v in expected.items()
        if document and (document.get(k) or "") != v
    ]
    if not problems:
        problems += _key_use_problems(svc, principal, key.keyid, document["decidedAt"])
    if problems:
        raise Forbidden(
            "decision envelope does not match the request: " + "; ".join(problems),
            code="InvalidApprovalSignature",
            remediation="sign exactly the decision you submit",
        )
    return document


def _key_use_problems(svc: Services, principal: Principal, keyid: str, decided_at: str) -> list[str]:
    """An enrolled key signs only decisions dated while it is active (what offline verification checks)."""
    from taskrunner.evidence.enrolment import key_use_problems

    record = next(
        (r for r in approver_records(svc, principal.tenant_id, principal.subject) if r.keyId == keyid), None
    )
    if record is None or record.status != "active":  # the hand-trusted key
        return []
    try:
        moment = parse_iso(decided_at)
    except ValueError:
        return [f"decidedAt {decided_at[:40]!r} is not an ISO-8601 time"]
    return key_use_problems(
        record.statement(), approver=principal.subject, tenant_id=principal.tenant_id, decided_at=moment
    )


def envelope_expiry(gate: GateRecord, decided_at: datetime, now: datetime) -> Forbidden | None:
    """Why a decision dated ``decided_at`` is not valid for ``gate`` now, or None: a decision envelope is
    valid from the gate's opening to its expiry (give or take ``CLOCK_SKEW``) and never dated ahead of now."""
    closes = gate.expiresAt
    window = f"the gate opened at {iso(gate.openedAt)}" + (f" and expires at {iso(closes)}" if closes else "")
    remediation = (
        "sign a fresh decision now, while the gate waits (check the signing machine's clock): " + window
    )
    if decided_at > now + CLOCK_SKEW:
        return Forbidden(
            f"decision envelope is dated {iso(decided_at)}, ahead of the deployment's clock ({iso(now)})",
            code="ApprovalEnvelopeNotYetValid",
            remediation=remediation,
        )
    if decided_at < gate.openedAt - CLOCK_SKEW or (closes is not None and decided_at > closes + CLOCK_SKEW):
        return Forbidden(
            f"decision envelope dated {iso(decided_at)} has expired for gate {gate.gateId}: {window}",
            code="ApprovalEnvelopeExpired",
            remediation=remediation,
        )
    return None


def gate_view(gate: GateRecord, decision: str) -> dict[str, str | int]:
    approvals = sum(1 for d in gate.decisions if d.decision == "approve")
    return {
        "runId": gate.runId,
        "gateId": gate.gateId,
        "status": gate.status,
        "decision": decision,
        "requiredCount": gate.requiredCount,
        "approvals": approvals,
    }


def decide(svc: Services, principal: Principal, decision: ApprovalDecision) -> GateRecord:
    run = svc.store.get_run(decision.run_id, principal.tenant_id)
    step = run_index(run).steps.get(decision.gate_id)
    if not isinstance(step, ApprovalGateStep):
        raise NotFound(f"run {run.runId} has no approval gate {decision.gate_id}")
    _check_binding(principal, decision, run.planHash)
    missing = [g for g in step.grants if not principal.has_scope(g)]
    if missing:
        raise Forbidden(
            f"approval {step.approval} requires grant(s) {', '.join(missing)}",
            remediation="use a token that carries every grant the approval lists",
        )
    gate = next((g for g in svc.store.list_gates(run.runId) if g.gateId == decision.gate_id), None)
    if gate is None:
        raise Conflict(
            f"gate {decision.gate_id} is not open yet",
            code="GateNotOpen",
            remediation="wait until the run reaches the gate (status waiting)",
        )
    try:
        document = _verified_payload(svc, principal, decision, run.planHash)
    except Forbidden as refused:  # the run's log says why a decision for it was refused, and what to do
        log_refusal(RunLog(svc.store, run.runId), "gate.refused", decision.gate_id, refused)
        raise
    record = Decision(
        approver=principal.subject,
        decision=decision.decision,
        reason=decision.reason,
        decidedAt=parse_iso(document["decidedAt"]),
        envelope=decision.envelope,
    )
    already = any(d.approver == record.approver and d.decision == record.decision for d in gate.decisions)
    if gate.status != "waiting" and not already:
        raise Conflict(
            f"gate {decision.gate_id} is already {gate.status}",
            code="GateClosed",
            remediation="decisions are accepted only while the gate is waiting",
        )
    expired = None if already else envelope_expiry(gate, record.decidedAt, svc.clock())
    if expired is not None:
        log_refusal(RunLog(svc.store, run.runId), "gate.refused", decision.gate_id, expired)
        raise expired
    gate = svc.store.add_decision(run.runId, decision.gate_id, record)
    if not already:
        verb = "approved" if decision.decision == "approve" else "rejected"
        RunLog(svc.store, run.runId).emit(
            f"gate.{verb}",
            f"gate {decision.gate_id} {verb} by {record.approver}",
            step_id=decision.gate_id,
            level="info" if verb == "approved" else "warn",
            metadata={"approver": record.approver},
        )
    return _settle(svc, gate, run)


def _settle(svc: Services, gate: GateRecord, run: RunRecord) -> GateRecord:
    """Close the gate when a rejection or enough distinct approvals are in, answering its task token once."""
    approvers = {d.approver for d in gate.decisions if d.decision == "approve"}
    rejected = any(d.decision == "reject" for d in gate.decisions)
    if gate.status != "waiting" or not (rejected or len(approvers) >= gate.requiredCount):
        return gate
    status = "rejected" if rejected else "approved"
    try:
        closed = svc.store.update_gate(
            gate.runId,
            gate.gateId,
            expected_status={"waiting"},
            changes={"status": status, "closedAt": svc.clock()},
        )
    except StaleUpdate:  # a concurrent decision closed it first
        return svc.store.get_gate(gate.runId, gate.gateId)
    svc.store.update_step(
        gate.runId, gate.gateId, expected_status=None, changes={"status": status, "completedAt": svc.clock()}
    )
    if closed.closedAt is not None:
        record_latency("ApprovalLatency", (closed.closedAt - closed.openedAt).total_seconds(), run)
    if gate.taskToken:
        if rejected:
            reason = next(d.reason for d in gate.decisions if d.decision == "reject") or "rejected"
            svc.workflow.send_task_failure(gate.taskToken, "ApprovalRejected", reason)
        else:
            svc.workflow.send_task_success(gate.taskToken, {"gateId": gate.gateId, "status": "approved"})
    return closed
