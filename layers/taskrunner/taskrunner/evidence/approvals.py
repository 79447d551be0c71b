"""Approval ledger entries: a DSSE envelope per gate decision, bound to run, gate, plan and tenant."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from taskrunner.canonical import canonical_bytes
from taskrunner.evidence.dsse import sign_envelope
from taskrunner.evidence.hashing import json_failure
from taskrunner.evidence.layout import APPROVAL_PAYLOAD_TYPE
from taskrunner.evidence.signing import EvidenceSigner

Decision = Literal["approve", "reject"]
DECISIONS = ("approve", "reject")
_STRING_FIELDS = ("runId", "gateId", "planHash", "tenantId", "decision", "approver", "decidedAt")


@dataclass(frozen=True)
class ApprovalDecision:
    """One recorded gate decision (``decidedAt`` is ISO-8601 UTC with ``Z``)."""

    run_id: str
    gate_id: str
    plan_hash: str
    tenant_id: str
    decision: Decision
    reason: str
    approver: str
    decided_at: str

    def to_payload(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "gateId": self.gate_id,
            "planHash": self.plan_hash,
            "tenantId": self.tenant_id,
            "decision": self.decision,
            "reason": self.reason,
            "approver": self.approver,
            "decidedAt": self.decided_at,
        }


def sign_approval(decision: ApprovalDecision, signers: Sequence[EvidenceSigner]) -> dict[str, Any]:
    """The ledger envelope of ``decision`` (payloadType ``application/vnd.stellaops.pack-approval+json``)."""
    return sign_envelope(canonical_bytes(decision.to_payload()), APPROVAL_PAYLOAD_TYPE, signers)


def approval_problems(payload: bytes, *, run_id: str, plan_hash: str, tenant_id: str) -> list[str]:
    """What is wrong with a verified approval payload, given the run it must be bound to."""
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        return [f"payload is not JSON: {json_failure(exc)}"]
    if not isinstance(document, dict):
        return ["payload is not a JSON object"]
    problems = [
        f"field {name!r} is missing or not a string"
        for name in _STRING_FIELDS
        if not isinstance(document.get(name), str)
    ]
    if "reason" in document and not isinstance(document["reason"], str):
        problems.append("field 'reason' is not a string")
    if isinstance(document.get("decision"), str) and document["decision"] not in DECISIONS:
        problems.append(f"decision {document['decision']!r} is not one of {', '.join(DECISIONS)}")
    for name, expected in (("runId", run_id), ("planHash", plan_hash), ("tenantId", tenant_id)):
        value = document.get(name)
        if isinstance(value, str) and value != expected:
            problems.append(f"{name} {value!r} does not match the bundle's {expected!r}")
    return problems
