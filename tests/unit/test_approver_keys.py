"""Approver key enrolment rules: policies (self, confirm, closed, required scopes), confirmation, revocation,
which key a decision may use, and what the deployment signs about an active key."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from taskrunner.engine.approver_keys import (
    EnrolmentPolicy,
    approver_records,
    confirm,
    enrol,
    enrolled_key,
    enrolment_envelopes,
    read_policy,
    records_key,
    revoke,
    write_policy,
)
from taskrunner.engine.evidence import run_signer
from taskrunner.engine.services import Services
from taskrunner.errors import Conflict, NotFound, ValidationFailed
from taskrunner.evidence.dsse import verify_envelope
from taskrunner.evidence.enrolment import key_use_problems, parse_statement
from taskrunner.evidence.layout import ENROLMENT_PAYLOAD_TYPE
from taskrunner.evidence.signing import key_id, load_trusted_key, public_pem
from taskrunner.identity import Forbidden, Principal
from taskrunner.store.file_artifacts import FileArtifactStore
from taskrunner.timeutil import parse_iso, utc_now

TENANT = "acme"


@pytest.fixture
def svc(tmp_path: Path) -> Services:
    (tmp_path / "objects").mkdir()
    unused = cast(Any, None)  # enrolment touches only the artifact store and the evidence signer
    return Services(
        store=unused,
        artifacts=FileArtifactStore(tmp_path / "objects"),
        workflow=unused,
        notifier=unused,
        functions=unused,
        secrets=unused,
        load_redaction_key=lambda: b"k" * 32,
        function_arns={},
        signing_key_uri=f"file://{tmp_path}/signing.pem",
        environment="aws",
    )


def who(subject: str, *scopes: str) -> Principal:
    return Principal(subject=subject, tenant_id=TENANT, scopes=frozenset({"packs.approve", *scopes}))


def p256() -> str:
    return public_pem(ec.generate_private_key(ec.SECP256R1()).public_key())


def stored(svc: Services, approver: str) -> bytes | None:
    try:
        return svc.artifacts.open(records_key(TENANT, approver)).read()
    except NotFound:
        return None


def test_without_a_policy_the_cloud_confirms_and_a_local_deployment_enrols_itself(svc: Services) -> None:
    assert read_policy(svc, TENANT).enrolment == "confirm"
    svc.environment = "local"
    assert read_policy(svc, TENANT).enrolment == "self"
    write_policy(svc, TENANT, EnrolmentPolicy(enrolment="closed"))
    assert read_policy(svc, TENANT).enrolment == "closed"


def test_self_enrolment_is_active_at_once_and_signed_by_the_deployment(svc: Services) -> None:
    write_policy(svc, TENANT, EnrolmentPolicy(enrolment="self"))
    pem = p256()
    record, created = enrol(svc, who("alice"), pem, "laptop")
    assert created
    assert record.status == "active"
    assert record.keyId == load_trusted_key(pem).keyid
    assert record.envelope is not None
    deployment = load_trusted_key(run_signer(svc).public_key_pem)
    statement, problems = parse_statement(
        verify_envelope(record.envelope, [deployment], ENROLMENT_PAYLOAD_TYPE)
    )
    assert problems == []
    assert statement is not None
    assert {k: statement[k] for k in ("tenantId", "approver", "keyId", "label", "policy", "confirmedBy")} == {
        "tenantId": TENANT,
        "approver": "alice",
        "keyId": record.keyId,
        "label": "laptop",
        "policy": "self",
        "confirmedBy": None,
    }
    assert enrol(svc, who("alice"), pem, "other label") == (record, False)
    assert enrolment_envelopes(svc, TENANT, [("alice", record.keyId), ("bob", record.keyId)]) == [
        record.envelope
    ]


def test_confirm_policy_leaves_the_key_pending_unsigned_until_an_administrator_confirms(
    svc: Services,
) -> None:
    record, _ = enrol(svc, who("alice"), p256(), "laptop")
    assert (record.status, record.envelope) == ("pending", None)
    choice = enrolled_key(svc, TENANT, "alice", [record.keyId])
    assert choice.record is None
    assert "awaiting confirmation by an administrator" in (choice.refusal or "")
    with pytest.raises(Forbidden, match=r"requires scope packs\.admin"):
        confirm(svc, who("bob"), "alice", record.keyId)
    with pytest.raises(Forbidden, match="cannot confirm their own key"):
        confirm(svc, who("alice", "packs.admin"), "alice", record.keyId)
    assert approver_records(svc, TENANT, "alice") == [record]
    active = confirm(svc, who("bob", "packs.admin"), "alice", record.keyId)
    assert (active.status, active.confirmedBy) == ("active", "bob")
    assert active.envelope is not None
    assert enrolled_key(svc, TENANT, "alice", ["f" * 64, record.keyId]).record == active


def test_the_policy_names_the_confirmer_scope(svc: Services) -> None:
    write_policy(svc, TENANT, EnrolmentPolicy(enrolment="confirm", confirmerScope="keys.officer"))
    record, _ = enrol(svc, who("alice"), p256(), "laptop")
    with pytest.raises(Forbidden, match=r"keys\.officer"):
        confirm(svc, who("bob", "packs.admin"), "alice", record.keyId)
    assert confirm(svc, who("bob", "keys.officer"), "alice", record.keyId).status == "active"


def test_closed_and_required_scopes_refuse_and_write_nothing(svc: Services) -> None:
    write_policy(svc, TENANT, EnrolmentPolicy(enrolment="closed"))
    with pytest.raises(Forbidden, match="policy: closed"):
        enrol(svc, who("alice"), p256(), "laptop")
    write_policy(svc, TENANT, EnrolmentPolicy(enrolment="self", requireScopes=("packs.run", "keys.enrol")))
    with pytest.raises(Forbidden, match=r"packs\.run, keys\.enrol"):
        enrol(svc, who("alice"), p256(), "laptop")
    assert stored(svc, "alice") is None
    assert enrol(svc, who("alice", "packs.run", "keys.enrol"), p256(), "laptop")[0].status == "active"


@pytest.mark.parametrize(
    ("pem", "label", "match"),
    [
        ("not a pem", "laptop", "not a PEM public key"),
        (
            public_pem(generate_private_key(public_exponent=65537, key_size=2048).public_key()),
            "x",
            "only Ed25519",
        ),
        (public_pem(ec.generate_private_key(ec.SECP384R1()).public_key()), "x", "only Ed25519"),
        ("-----BEGIN PRIVATE KEY-----\n", "x", "private key"),
        (None, "x", "not a PEM public key"),
        ("x" * 5000, "x", "at most 4096 bytes"),
        (public_pem(ed25519.Ed25519PrivateKey.generate().public_key()), "", "label"),
        (public_pem(ed25519.Ed25519PrivateKey.generate().public_key()), "a" * 65, "label"),
        (public_pem(ed25519.Ed25519PrivateKey.generate().public_key()), "tab\there", "label"),
    ],
)
def test_bad_keys_and_labels_are_refused_without_writing(
    svc: Services, pem: Any, label: str, match: str
) -> None:
    with pytest.raises(ValidationFailed, match=match):
        enrol(svc, who("alice"), pem, label)
    assert stored(svc, "alice") is None


def test_revoked_keys_are_refused_and_stay_revoked(svc: Services) -> None:
    write_policy(svc, TENANT, EnrolmentPolicy(enrolment="self"))
    record, _ = enrol(svc, who("alice"), p256(), "laptop")
    with pytest.raises(NotFound):
        revoke(svc, who("bob"), record.keyId)  # only one's own keys
    with pytest.raises(ValidationFailed):
        revoke(svc, who("alice"), "../../etc")
    revoked = revoke(svc, who("alice"), record.keyId)
    assert revoked.status == "revoked"
    assert revoked.revokedAt is not None
    assert revoke(svc, who("alice"), record.keyId) == revoked
    choice = enrolled_key(svc, TENANT, "alice", [record.keyId])
    assert choice.record is None
    assert "was revoked at" in (choice.refusal or "")
    with pytest.raises(Conflict, match="revoked"):
        confirm(svc, who("bob", "packs.admin"), "alice", record.keyId)
    statement = json.loads(
        verify_envelope(
            revoked.envelope or {}, [load_trusted_key(run_signer(svc).public_key_pem)], ENROLMENT_PAYLOAD_TYPE
        )
    )
    assert statement["revokedAt"] == revoked.revokedAt


def test_a_key_covers_decisions_from_activation_until_revocation() -> None:
    enrolled = parse_iso("2026-01-01T00:00:00.000Z")
    statement = {
        "tenantId": TENANT,
        "approver": "alice",
        "keyId": key_id(ec.generate_private_key(ec.SECP256R1()).public_key()),
        "enrolledAt": "2026-01-01T00:00:00.000Z",
        "confirmedAt": "2026-01-02T00:00:00.000Z",
        "revokedAt": "2026-01-03T00:00:00.000Z",
    }
    covered = parse_iso("2026-01-02T12:00:00.000Z")
    assert key_use_problems(statement, approver="alice", tenant_id=TENANT, decided_at=covered) == []
    for moment, phrase in ((enrolled, "before key"), (enrolled + timedelta(days=2), "after key")):
        assert phrase in " ".join(
            key_use_problems(statement, approver="alice", tenant_id=TENANT, decided_at=moment)
        )
    problems = key_use_problems(statement, approver="bob", tenant_id="other", decided_at=covered)
    assert len(problems) == 2
    assert "not 'bob'" in problems[1]
    assert "not 'other'" in problems[0]


def test_a_key_enrolled_in_the_future_is_not_yet_usable(svc: Services) -> None:
    write_policy(svc, TENANT, EnrolmentPolicy(enrolment="self"))
    svc.clock = lambda: utc_now() + timedelta(hours=1)
    record, _ = enrol(svc, who("alice"), p256(), "laptop")
    svc.clock = utc_now
    assert enrolled_key(svc, TENANT, "alice", [record.keyId]).record is None
