"""Approval tokens: short-lived ES256 JWTs bound to one run, gate and plan, issued to a caller who may decide.

A caller with ``packs.approve`` and every grant of the gate's approval exchanges their identity token for one
while the gate waits. The token carries ``pack_run_id``, ``pack_gate_id`` and ``pack_plan_hash`` (what the
approve route binds a decision to), ``scope`` = ``packs.approve`` plus the grants, and expires after the TTL
or when the gate does, whichever is first. It is never logged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from taskrunner.engine.services import Services
from taskrunner.engine.steptree import run_index
from taskrunner.errors import Conflict, NotFound
from taskrunner.identity import Forbidden, Principal, Scope
from taskrunner.keys import STEP_ID
from taskrunner.observability import logger
from taskrunner.plan.document import ApprovalGateStep

if TYPE_CHECKING:
    from taskrunner.evidence.signing import EvidenceSigner

AUDIENCE = "taskrunner-approvals"
DEFAULT_TTL_SECONDS = 300


@dataclass(frozen=True)
class TokenIssuer:
    """Who signs approval tokens: the issuer URL (``iss``), the EC P-256 signer (made when first signing) and
    the lifetime."""

    issuer: str
    signer: Callable[[], EvidenceSigner]
    ttl_seconds: int = DEFAULT_TTL_SECONDS


@dataclass(frozen=True)
class ApprovalToken:
    token: str
    expires_at: datetime
    expires_in: int
    run_id: str
    gate_id: str
    tenant_id: str
    plan_hash: str
    approval: str
    grants: tuple[str, ...]


def issue_approval_token(
    svc: Services, principal: Principal, run_id: str, gate_id: str, issuer: TokenIssuer
) -> ApprovalToken:
    """An approval token for ``principal`` on the open gate ``gate_id`` of their tenant's run ``run_id``."""
    from taskrunner.evidence.jws import sign_jwt

    STEP_ID.check(gate_id, "the URL")
    run = svc.store.get_run(run_id, principal.tenant_id)
    step = run_index(run).steps.get(gate_id)
    if not isinstance(step, ApprovalGateStep):
        raise NotFound(f"run {run.runId} has no approval gate {gate_id}")
    missing = [g for g in step.grants if not principal.has_scope(g)]
    if missing:
        raise Forbidden(
            f"approval {step.approval} requires grant(s) {', '.join(missing)}",
            remediation="sign in with an identity token that carries every grant the approval lists",
        )
    gate = next((g for g in svc.store.list_gates(run.runId) if g.gateId == gate_id), None)
    if gate is None:
        raise Conflict(
            f"gate {gate_id} is not open yet",
            code="GateNotOpen",
            remediation="wait until the run reaches the gate (status waiting)",
        )
    now = svc.clock().replace(microsecond=0)
    expires = now + timedelta(seconds=issuer.ttl_seconds)
    if gate.expiresAt is not None:
        expires = min(expires, gate.expiresAt.replace(microsecond=0))
    if gate.status != "waiting" or expires <= now:
        raise Conflict(
            f"gate {gate_id} is already {gate.status if gate.status != 'waiting' else 'expired'}",
            code="GateClosed",
            remediation="approval tokens are issued only while the gate is waiting",
        )
    grants = tuple(step.grants)
    claims = {
        "iss": issuer.issuer,
        "aud": AUDIENCE,
        "sub": principal.subject,
        "tenant_id": principal.tenant_id,
        "scope": " ".join(dict.fromkeys((Scope.APPROVE.value, *grants))),
        "pack_run_id": run.runId,
        "pack_gate_id": gate_id,
        "pack_plan_hash": run.planHash,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": uuid.uuid4().hex,
    }
    token = sign_jwt(issuer.signer(), claims)
    logger.info(
        "approval token issued",
        extra={"runId": run.runId, "gateId": gate_id, "approver": principal.subject, "jti": claims["jti"]},
    )
    return ApprovalToken(
        token=token,
        expires_at=expires,
        expires_in=int((expires - now).total_seconds()),
        run_id=run.runId,
        gate_id=gate_id,
        tenant_id=principal.tenant_id,
        plan_hash=run.planHash,
        approval=step.approval,
        grants=grants,
    )
