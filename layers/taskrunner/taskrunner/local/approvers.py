"""Local approvers: an Ed25519 key per approver, trusted for a tenant, and signed decisions.

Keys live at ``<home>/keys/approvers/<name>.pem``; the public key is registered as the trust root the
approval use case reads (``trust/<tenant>/<name>.pem`` in the artifact store). A key enrolled through the
API (``taskrunner approvals enrol``) lives at ``<home>/keys/approvers/<name>.p256.pem`` and is preferred.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taskrunner.engine.approvals import ApprovalDecision, DecisionWord, decide, gate_view
from taskrunner.engine.services import Services
from taskrunner.errors import ConfigurationError
from taskrunner.evidence.approvals import ApprovalDecision as SignedDecision
from taskrunner.evidence.approvals import sign_approval
from taskrunner.evidence.signing import EvidenceSigner, ensure_ed25519_keyfile, file_signer, p256_file_signer
from taskrunner.identity import Principal, Scope
from taskrunner.keys import APPROVER, trust_key
from taskrunner.store.records import RunRecord
from taskrunner.timeutil import now_iso


def approver_key_path(home: Path, name: str) -> Path:
    return home / "keys" / "approvers" / f"{APPROVER.check(name)}.pem"


def enrolled_key_path(home: Path, name: str) -> Path:
    """The ECDSA P-256 key ``taskrunner approvals enrol`` creates for ``name``."""
    return home / "keys" / "approvers" / f"{APPROVER.check(name)}.p256.pem"


def approver_signer(home: Path, name: str) -> EvidenceSigner:
    """The key ``name`` signs decisions with: the enrolled ECDSA P-256 key when there is one, else the
    hand-trusted Ed25519 key."""
    enrolled, trusted = enrolled_key_path(home, name), approver_key_path(home, name)
    if enrolled.exists():
        return p256_file_signer(enrolled)
    if not trusted.exists():
        raise ConfigurationError(
            f"approver {name} has no signing key on this machine ({enrolled} or {trusted})",
            remediation="enrol one with 'taskrunner approvals enrol --api URL --token T' (as the same user), "
            "or generate one with 'taskrunner keys generate' and have it trusted with 'taskrunner approvals trust'",
        )
    return file_signer(trusted)


def ensure_approver(svc: Services, home: Path, tenant_id: str, name: str) -> EvidenceSigner:
    """The approver's signer, creating its key and trusting it for ``tenant_id`` on first use."""
    path = approver_key_path(home, name)
    signer = ensure_ed25519_keyfile(path)
    svc.artifacts.put_bytes(
        trust_key(tenant_id, name), signer.public_key_pem.encode(), "application/x-pem-file"
    )
    return signer


def signed_envelope(
    signer: EvidenceSigner,
    *,
    run_id: str,
    gate_id: str,
    plan_hash: str,
    tenant_id: str,
    decision: DecisionWord,
    reason: str | None,
    approver: str,
    decided_at: str | None = None,
) -> dict[str, Any]:
    """The DSSE envelope an approver signs for one decision."""
    payload = SignedDecision(
        run_id=run_id,
        gate_id=gate_id,
        plan_hash=plan_hash,
        tenant_id=tenant_id,
        decision=decision,
        reason=reason or "",
        approver=approver,
        decided_at=decided_at or now_iso(),
    )
    return sign_approval(payload, [signer])


def approve_locally(
    svc: Services,
    home: Path,
    *,
    tenant_id: str,
    run_id: str,
    gate_id: str,
    approver: str,
    decision: DecisionWord = "approve",
    reason: str | None = None,
) -> dict[str, Any]:
    """Decide a gate as ``approver`` with a local key, through the same checks as the API."""
    run = svc.store.get_run(run_id, tenant_id)
    signer = ensure_approver(svc, home, tenant_id, approver)
    envelope = signed_envelope(
        signer,
        run_id=run_id,
        gate_id=gate_id,
        plan_hash=run.planHash,
        tenant_id=tenant_id,
        decision=decision,
        reason=reason,
        approver=approver,
    )
    return decide_signed(
        svc,
        run,
        gate_id=gate_id,
        approver=approver,
        decision=decision,
        reason=reason,
        plan_hash=run.planHash,
        envelope=envelope,
    )


def decide_signed(
    svc: Services,
    run: Any,
    *,
    gate_id: str,
    approver: str,
    decision: DecisionWord,
    reason: str | None,
    plan_hash: str,
    envelope: dict[str, Any],
) -> dict[str, Any]:
    """Apply a signed decision made without an API token: the approver's signature is the authority, and
    the token bindings a gateway would check are the ones the decision itself claims."""
    principal = Principal(
        subject=approver,
        tenant_id=run.tenantId,
        scopes=frozenset({Scope.APPROVE.value, *gate_grants(run, gate_id)}),
        claims={"pack_run_id": run.runId, "pack_gate_id": gate_id, "pack_plan_hash": plan_hash},
    )
    gate = decide(
        svc,
        principal,
        ApprovalDecision(
            run_id=run.runId,
            gate_id=gate_id,
            decision=decision,
            reason=reason,
            plan_hash=plan_hash,
            envelope=envelope,
        ),
    )
    return gate_view(gate, decision)


def gate_grants(run: RunRecord, gate_id: str) -> list[str]:
    """The grants the approval behind ``gate_id`` requires."""
    from taskrunner.engine.steptree import run_index
    from taskrunner.plan.document import ApprovalGateStep

    step = run_index(run).steps.get(gate_id)
    return list(step.grants) if isinstance(step, ApprovalGateStep) else []
