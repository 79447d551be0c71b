"""Approver signing keys enrolled through the API, under a per-tenant enrolment policy.

Records live in the artifact store: ``trust/<tenant>/enrolled/<approver>.json`` holds every key one approver
enrolled (a browser per machine, the CLI), ``trust/<tenant>/enrolment-policy.json`` the tenant's policy.
Without a policy a tenant enrols under ``confirm`` (an administrator holding ``packs.admin`` activates each
key); a local deployment (``taskrunner serve``, environment ``local``) enrols under ``self`` instead.

A key that becomes active is signed by the deployment's evidence signer as a DSSE envelope
(:data:`~taskrunner.evidence.layout.ENROLMENT_PAYLOAD_TYPE`); revoking it signs the record again with its
``revokedAt``. Sealed bundles carry these envelopes, so an auditor verifies a decision with the deployment
key alone. The hand-trusted ``trust/<tenant>/<approver>.pem`` of earlier releases keeps working unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskrunner.canonical import canonical_bytes
from taskrunner.engine.services import Services
from taskrunner.errors import ConfigurationError, Conflict, NotFound, ValidationFailed
from taskrunner.identity import Forbidden, Principal, Scope
from taskrunner.keys import APPROVER, TENANT_ID, object_key
from taskrunner.timeutil import iso, parse_iso

EnrolmentMode = Literal["self", "confirm", "closed"]
KeyStatus = Literal["active", "pending", "revoked"]
DEFAULT_ENROLMENT: EnrolmentMode = "confirm"
KEY_ID_PATTERN = r"^[0-9a-f]{64}$"
MAX_LABEL = 64
MAX_PEM_BYTES = 4096
_JSON = "application/json"


class EnrolmentPolicy(BaseModel):
    """Who may enrol approver keys in a tenant, and whether an administrator confirms them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enrolment: EnrolmentMode = DEFAULT_ENROLMENT
    confirmerScope: str = Field(default=Scope.ADMIN.value, min_length=1, max_length=128)
    requireScopes: tuple[str, ...] = ()


class KeyRecord(BaseModel):
    """One enrolled key; ``envelope`` is the deployment-signed record once the key was active."""

    model_config = ConfigDict(extra="forbid")

    keyId: str
    approver: str
    tenantId: str
    label: str
    publicKeyPem: str
    status: KeyStatus
    enrolledAt: str
    confirmedBy: str | None = None
    confirmedAt: str | None = None
    revokedAt: str | None = None
    policy: EnrolmentMode
    envelope: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        """The record as the API answers it (``ApproverKeyOut``)."""
        return self.model_dump(exclude={"publicKeyPem", "policy", "envelope"})

    @property
    def active_from(self) -> str:
        """When the key became usable: its confirmation, or its enrolment under ``self``."""
        return self.confirmedAt or self.enrolledAt

    def statement(self) -> dict[str, Any]:
        """What the deployment signs about this key."""
        return self.model_dump(exclude={"status", "envelope"})


class _ApproverKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeyRecord] = Field(default_factory=list)


def policy_key(tenant_id: str) -> str:
    return object_key("trust", TENANT_ID.check(tenant_id), "enrolment-policy.json")


def records_key(tenant_id: str, approver: str) -> str:
    return object_key("trust", TENANT_ID.check(tenant_id), "enrolled", f"{APPROVER.check(approver)}.json")


def _read_json(svc: Services, key: str) -> Any:
    try:
        with svc.artifacts.open(key) as stream:
            return json.loads(stream.read())
    except NotFound:
        return None
    except ValueError as exc:
        raise ConfigurationError(
            f"{key} in the artifact store is not JSON: {exc}", remediation="restore it or delete it"
        ) from exc


def read_policy(svc: Services, tenant_id: str) -> EnrolmentPolicy:
    """The tenant's enrolment policy; when none is set ``confirm`` (``self`` in a local deployment)."""
    document = _read_json(svc, policy_key(tenant_id))
    if document is None:
        return EnrolmentPolicy(enrolment="self" if svc.environment == "local" else DEFAULT_ENROLMENT)
    try:
        return EnrolmentPolicy.model_validate(document)
    except ValidationError as exc:
        raise ConfigurationError(
            f"the enrolment policy of tenant {tenant_id} is invalid: {exc.errors()[0]['msg']}",
            remediation=f"set it again: taskrunner approvals policy --tenant {tenant_id} --enrolment confirm",
        ) from None


def write_policy(svc: Services, tenant_id: str, policy: EnrolmentPolicy) -> None:
    svc.artifacts.put_bytes(policy_key(tenant_id), canonical_bytes(policy.model_dump(mode="json")), _JSON)


def approver_records(svc: Services, tenant_id: str, approver: str) -> list[KeyRecord]:
    """Every key ``approver`` enrolled in ``tenant_id`` (none when the approver never enrolled one)."""
    if not APPROVER.matches(approver):
        return []
    document = _read_json(svc, records_key(tenant_id, approver))
    if document is None:
        return []
    try:
        return _ApproverKeys.model_validate(document).keys
    except ValidationError as exc:
        raise ConfigurationError(
            f"the key records of approver {approver} in tenant {tenant_id} are invalid: "
            f"{exc.errors()[0]['msg']}",
            remediation=f"restore {records_key(tenant_id, approver)} in the artifact store",
        ) from None


def _save(svc: Services, tenant_id: str, approver: str, records: Sequence[KeyRecord]) -> None:
    document = _ApproverKeys(keys=list(records)).model_dump(mode="json")
    svc.artifacts.put_bytes(records_key(tenant_id, approver), canonical_bytes(document), _JSON)


def check_label(label: object) -> str:
    """A key label: 1-64 printable characters."""
    if not isinstance(label, str) or not 1 <= len(label) <= MAX_LABEL or not label.isprintable():
        raise ValidationFailed(
            f"label {str(label)[:70]!r} is not valid",
            remediation=f"use 1 to {MAX_LABEL} printable characters, e.g. 'laptop browser'",
        )
    return label


def check_key_id(key_id: object) -> str:
    if not isinstance(key_id, str) or not re.fullmatch(KEY_ID_PATTERN, key_id):
        raise ValidationFailed(
            f"key id {str(key_id)[:70]!r} is not valid",
            remediation="use the keyId (64 lower-case hex digits) that enrolment or 'approvals keys' returned",
        )
    return key_id


def _public_key(pem: object) -> tuple[str, str]:
    """``(keyId, normalised PEM)`` of an ECDSA P-256 or Ed25519 SubjectPublicKeyInfo PEM."""
    from taskrunner.evidence.signing import load_trusted_key

    if not isinstance(pem, str) or len(pem.encode("utf-8", "replace")) > MAX_PEM_BYTES:
        raise ValidationFailed(
            f"publicKeyPem is not a PEM public key of at most {MAX_PEM_BYTES} bytes",
            remediation="send the SPKI PEM of an ECDSA P-256 or Ed25519 public key",
        )
    try:
        key = load_trusted_key(pem, "publicKeyPem")
    except ConfigurationError as exc:
        raise ValidationFailed(
            exc.message, remediation="send the SPKI PEM of an ECDSA P-256 or Ed25519 public key"
        ) from None
    return key.keyid, key.pem


def _sign(svc: Services, record: KeyRecord) -> KeyRecord:
    from taskrunner.engine.evidence import run_signer
    from taskrunner.evidence.dsse import sign_envelope
    from taskrunner.evidence.layout import ENROLMENT_PAYLOAD_TYPE

    envelope = sign_envelope(canonical_bytes(record.statement()), ENROLMENT_PAYLOAD_TYPE, [run_signer(svc)])
    return record.model_copy(update={"envelope": envelope})


def enrol(
    svc: Services, principal: Principal, public_key_pem: object, label: object
) -> tuple[KeyRecord, bool]:
    """Enrol a key for the caller; ``(record, created)``. The same key again answers its existing record."""
    approver = APPROVER.check(principal.subject, "the token's 'sub' claim")
    key_id, pem = _public_key(public_key_pem)
    label = check_label(label)
    records = approver_records(svc, principal.tenant_id, approver)
    existing = next((r for r in records if r.keyId == key_id), None)
    if existing is not None:
        return existing, False
    policy = read_policy(svc, principal.tenant_id)
    if policy.enrolment == "closed":
        raise Forbidden(
            f"tenant {principal.tenant_id} does not allow enrolling approver keys (policy: closed)",
            remediation="ask an operator to trust your key or to open enrolment "
            "('taskrunner approvals policy --enrolment confirm')",
        )
    missing = [s for s in policy.requireScopes if not principal.has_scope(s)]
    if missing:
        raise Forbidden(
            f"enrolling an approver key in tenant {principal.tenant_id} requires scope(s) {', '.join(missing)}",
            remediation="use a token that carries every scope the tenant's enrolment policy requires",
        )
    record = KeyRecord(
        keyId=key_id,
        approver=approver,
        tenantId=principal.tenant_id,
        label=label,
        publicKeyPem=pem,
        status="active" if policy.enrolment == "self" else "pending",
        enrolledAt=iso(svc.clock()),
        policy=policy.enrolment,
    )
    if record.status == "active":
        record = _sign(svc, record)
    _save(svc, principal.tenant_id, approver, [*records, record])
    return record, True


def _replace(svc: Services, record: KeyRecord, changes: dict[str, Any]) -> KeyRecord:
    records = approver_records(svc, record.tenantId, record.approver)
    updated = record.model_copy(update=changes)
    if updated.status == "active" or record.envelope is not None:  # a key that never signed stays unsigned
        updated = _sign(svc, updated)
    _save(svc, record.tenantId, record.approver, [updated if r.keyId == record.keyId else r for r in records])
    return updated


def _find(records: Iterable[KeyRecord], key_id: str, approver: str) -> KeyRecord:
    record = next((r for r in records if r.keyId == key_id), None)
    if record is None:
        raise NotFound(
            f"approver {approver} has no enrolled key {key_id}",
            remediation="list the keys with GET /api/approvers/keys ('taskrunner approvals keys')",
        )
    return record


def confirm(svc: Services, principal: Principal, approver: str, key_id: str) -> KeyRecord:
    """Activate a pending key of ``approver`` (the policy's confirmer scope; never one's own key)."""
    approver = APPROVER.check(approver, "the URL")
    key_id = check_key_id(key_id)
    policy = read_policy(svc, principal.tenant_id)
    if not principal.has_scope(policy.confirmerScope):
        raise Forbidden(
            f"confirming approver keys in tenant {principal.tenant_id} requires scope {policy.confirmerScope}",
            remediation=f"ask an administrator holding {policy.confirmerScope} to confirm the key",
        )
    if approver == principal.subject:
        raise Forbidden(
            "an approver cannot confirm their own key",
            remediation="another administrator of the tenant must confirm it",
        )
    record = _find(approver_records(svc, principal.tenant_id, approver), key_id, approver)
    if record.status == "active":
        return record
    if record.status == "revoked":
        raise Conflict(
            f"key {key_id} of approver {approver} was revoked at {record.revokedAt}",
            code="KeyRevoked",
            remediation="a revoked key stays revoked; the approver enrols a new key",
        )
    return _replace(
        svc, record, {"status": "active", "confirmedBy": principal.subject, "confirmedAt": iso(svc.clock())}
    )


def revoke(svc: Services, principal: Principal, key_id: str) -> KeyRecord:
    """Revoke one of the caller's keys; decisions it signed before stay valid, later ones are refused."""
    approver = APPROVER.check(principal.subject, "the token's 'sub' claim")
    key_id = check_key_id(key_id)
    record = _find(approver_records(svc, principal.tenant_id, approver), key_id, approver)
    if record.status == "revoked":
        return record
    return _replace(svc, record, {"status": "revoked", "revokedAt": iso(svc.clock())})


@dataclass(frozen=True)
class KeyChoice:
    """The enrolled key a decision names, or why none may be used."""

    record: KeyRecord | None
    refusal: str | None


def enrolled_key(svc: Services, tenant_id: str, approver: str, keyids: Sequence[str]) -> KeyChoice:
    """The approver's enrolled key among ``keyids`` (a DSSE envelope's ``signatures[].keyid``).

    An active key is chosen; a pending or revoked one is a refusal naming why; none named is ``(None, None)``.
    """
    records = {r.keyId: r for r in approver_records(svc, tenant_id, approver)}
    named = [records[k] for k in keyids if k in records]
    for record in named:
        if record.status == "active" and parse_iso(record.active_from) <= svc.clock():
            return KeyChoice(record, None)
    for record in named:
        if record.status == "pending":
            return KeyChoice(
                None,
                f"key {record.keyId} of approver {approver} is awaiting confirmation by an administrator",
            )
        if record.status == "revoked":
            return KeyChoice(
                None, f"key {record.keyId} of approver {approver} was revoked at {record.revokedAt}"
            )
    return KeyChoice(None, None)


def enrolment_envelopes(
    svc: Services, tenant_id: str, signers: Iterable[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The deployment-signed records of the enrolled keys ``(approver, keyId)`` that signed decisions."""
    found: dict[str, dict[str, Any]] = {}
    by_approver: dict[str, set[str]] = {}
    for approver, key_id in signers:
        by_approver.setdefault(approver, set()).add(key_id)
    for approver, key_ids in sorted(by_approver.items()):
        for record in approver_records(svc, tenant_id, approver):
            if record.keyId in key_ids and record.envelope is not None:
                found[f"{approver}/{record.keyId}"] = record.envelope
    return [found[k] for k in sorted(found)]
