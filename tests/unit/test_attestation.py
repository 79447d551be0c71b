"""The run attestation (in-toto Statement v1), approval payloads and inputs.lock redaction rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from taskrunner.canonical import canonical_bytes
from taskrunner.errors import ValidationFailed
from taskrunner.evidence.approvals import ApprovalDecision, approval_problems, sign_approval
from taskrunner.evidence.attestation import StepSummary, build_statement, statement_problems
from taskrunner.evidence.dsse import verify_envelope
from taskrunner.evidence.layout import APPROVAL_PAYLOAD_TYPE
from taskrunner.evidence.lock_redaction import is_redacted, lock_problems, redact_lock
from taskrunner.evidence.signing import generate_ed25519_keyfile, load_trusted_keys
from taskrunner.plan.document import PackRef, Plan
from taskrunner.plan.inputs_lock import build_inputs_lock
from taskrunner.redaction import fingerprint

PLAN_HASH = "sha256:" + "1" * 64
PACK = PackRef(name="hello", version="1.2.0", digest="sha256:" + "2" * 64)


def statement(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "run_id": "run-1",
        "tenant_id": "tenant-a",
        "pack": PACK,
        "plan_hash": PLAN_HASH,
        "inputs_lock_digest": "sha256:" + "3" * 64,
        "inputs_digest": "sha256:" + "4" * 64,
        "output_digests": {"outputs/z.bin": "sha256:" + "5" * 64, "outputs/a.json": "sha256:" + "6" * 64},
        "steps": [StepSummary("fetch", "succeeded", 2), StepSummary("review", "approved", 1)],
        "approvals_ledger_digest": "sha256:" + "7" * 64,
        "outcome": "succeeded",
        "requested_at": "2026-01-02T03:04:05.000Z",
        "started_at": "2026-01-02T03:04:06.000Z",
        "completed_at": "2026-01-02T03:05:00.123Z",
    }
    arguments.update(overrides)
    return build_statement(**arguments)


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "cancelled"])
def test_statement_is_an_in_toto_v1_statement_for_every_outcome(outcome: str) -> None:
    doc = statement(outcome=outcome)
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"] == "https://stellaops.io/attestations/pack-run/v1"
    assert doc["predicate"]["outcome"] == outcome
    assert statement_problems(json.loads(canonical_bytes(doc))) == []


def test_subjects_are_the_outputs_sorted_by_name_with_hex_digests() -> None:
    doc = statement()
    assert doc["subject"] == [
        {"name": "outputs/a.json", "digest": {"sha256": "6" * 64}},
        {"name": "outputs/z.bin", "digest": {"sha256": "5" * 64}},
    ]
    assert list(doc["predicate"]["outputDigests"]) == ["outputs/a.json", "outputs/z.bin"]


def test_predicate_binds_run_plan_inputs_steps_approvals_and_times() -> None:
    predicate = statement()["predicate"]
    assert predicate == {
        "runId": "run-1",
        "tenantId": "tenant-a",
        "pack": {"name": "hello", "version": "1.2.0", "digest": "sha256:" + "2" * 64},
        "planHash": PLAN_HASH,
        "inputsLockDigest": "sha256:" + "3" * 64,
        "inputsDigest": "sha256:" + "4" * 64,
        "outputDigests": {"outputs/a.json": "sha256:" + "6" * 64, "outputs/z.bin": "sha256:" + "5" * 64},
        "steps": [
            {"stepId": "fetch", "status": "succeeded", "attempts": 2},
            {"stepId": "review", "status": "approved", "attempts": 1},
        ],
        "approvalsLedgerDigest": "sha256:" + "7" * 64,
        "outcome": "succeeded",
        "requestedAt": "2026-01-02T03:04:05.000Z",
        "startedAt": "2026-01-02T03:04:06.000Z",
        "completedAt": "2026-01-02T03:05:00.123Z",
    }


def test_a_run_cancelled_before_it_started_has_no_started_at() -> None:
    doc = statement(outcome="cancelled", started_at=None, steps=[StepSummary("fetch", "cancelled", 0)])
    assert "startedAt" not in doc["predicate"]
    assert statement_problems(doc) == []


def test_invalid_fields_are_all_reported() -> None:
    with pytest.raises(ValidationFailed) as info:
        statement(
            outcome="done",
            plan_hash="abc",
            completed_at="2026-01-02 03:05:00",
            output_digests={"outputs/x": "md5:00"},
            steps=[StepSummary("fetch", "exploded", -1)],
        )
    messages = [p["message"] for p in info.value.problems]
    assert messages == [
        "outcome 'done' is not one of succeeded, failed, cancelled",
        "planHash 'abc' is not a sha256:<64 hex> digest",
        "output 'outputs/x' 'md5:00' is not a sha256:<64 hex> digest",
        "completedAt '2026-01-02 03:05:00' is not an ISO-8601 UTC timestamp ending in Z",
        "step 'fetch' has unknown status 'exploded'",
        "step 'fetch' has a negative attempt count",
    ]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(_type="https://in-toto.io/Statement/v0.1"), "_type is"),
        (lambda d: d.update(predicateType="x"), "predicateType is 'x'"),
        (lambda d: d.update(subject=[{"name": 1}]), "subject is not a list"),
        (lambda d: d["predicate"].pop("runId"), "predicate.runId is missing"),
        (
            lambda d: d["predicate"].update(planHash="sha256:xyz"),
            "predicate.planHash is missing or not a sha256",
        ),
        (lambda d: d["predicate"].pop("inputsLockDigest"), "predicate.inputsLockDigest is missing"),
        (lambda d: d["predicate"].update(outcome="ok"), "predicate.outcome 'ok' is not one of"),
        (lambda d: d["predicate"].update(startedAt=5), "predicate.startedAt is not a string"),
        (lambda d: d["predicate"].pop("steps"), "predicate.steps is missing"),
        (lambda d: d.update(predicate=[]), "predicate is not a JSON object"),
    ],
)
def test_statement_problems_name_the_offending_field(mutate: Any, message: str) -> None:
    doc = statement()
    mutate(doc)
    problems = statement_problems(doc)
    assert any(message in p for p in problems), problems


def test_statement_problems_of_a_non_object() -> None:
    assert statement_problems([1]) == ["the statement is not a JSON object"]


# --- approvals ----------------------------------------------------------------------------------

DECISION = ApprovalDecision(
    run_id="run-1",
    gate_id="review",
    plan_hash=PLAN_HASH,
    tenant_id="tenant-a",
    decision="approve",
    reason="looks fine",
    approver="alice@example.com",
    decided_at="2026-01-02T03:04:30.000Z",
)


def test_signed_approval_binds_run_gate_plan_and_tenant(tmp_path: Any) -> None:
    signer = generate_ed25519_keyfile(tmp_path / "k.pem")
    envelope = sign_approval(DECISION, [signer])
    payload = verify_envelope(envelope, load_trusted_keys([signer.public_key_pem]), APPROVAL_PAYLOAD_TYPE)
    assert json.loads(payload) == {
        "runId": "run-1",
        "gateId": "review",
        "planHash": PLAN_HASH,
        "tenantId": "tenant-a",
        "decision": "approve",
        "reason": "looks fine",
        "approver": "alice@example.com",
        "decidedAt": "2026-01-02T03:04:30.000Z",
    }
    assert approval_problems(payload, run_id="run-1", plan_hash=PLAN_HASH, tenant_id="tenant-a") == []


def test_approval_bound_elsewhere_is_reported_field_by_field() -> None:
    payload = canonical_bytes(DECISION.to_payload())
    problems = approval_problems(
        payload, run_id="run-2", plan_hash="sha256:" + "9" * 64, tenant_id="tenant-b"
    )
    assert problems == [
        "runId 'run-1' does not match the bundle's 'run-2'",
        f"planHash '{PLAN_HASH}' does not match the bundle's 'sha256:{'9' * 64}'",
        "tenantId 'tenant-a' does not match the bundle's 'tenant-b'",
    ]


def test_malformed_approval_payloads() -> None:
    check = {"run_id": "run-1", "plan_hash": PLAN_HASH, "tenant_id": "tenant-a"}
    assert approval_problems(b"{", **check)[0].startswith("payload is not JSON")
    assert approval_problems(b"[]", **check) == ["payload is not a JSON object"]
    bad = {**DECISION.to_payload(), "decision": "maybe", "reason": 3}
    del bad["gateId"]
    assert approval_problems(canonical_bytes(bad), **check) == [
        "field 'gateId' is missing or not a string",
        "field 'reason' is not a string",
        "decision 'maybe' is not one of approve, reject",
    ]


# --- inputs.lock --------------------------------------------------------------------------------

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (fingerprint("s3cret", KEY), True),
        ("<redacted>", True),
        ("<unresolved>", True),
        ("hmac-sha256:" + "A" * 64, False),
        ("hmac-sha256:" + "a" * 63, False),
        ("s3cret", False),
        (None, False),
    ],
)
def test_only_fingerprints_and_placeholders_count_as_redacted(value: Any, ok: bool) -> None:
    assert is_redacted(value) is ok


def test_lock_problems_find_secret_values_in_every_accepted_shape() -> None:
    lock = {
        "inputs": {"password": "not a secret input, left alone"},
        "secrets": {
            "token": "s3cret",
            "apiKey": {"ref": "aws-ssm:/x", "value": "<redacted>"},
            "noValue": {"ref": "env:X"},
        },
    }
    assert lock_problems(lock) == [
        "secret 'token' is not redacted: its value must be 'hmac-sha256:<64 hex>', '<redacted>' or '<unresolved>'",
        "secret 'noValue' has no 'value'",
    ]
    as_list = {"secrets": [{"name": "token", "value": "s3cret"}, "junk"]}
    assert lock_problems(as_list) == [
        "secret 'token' is not redacted: its value must be 'hmac-sha256:<64 hex>', '<redacted>' or '<unresolved>'",
        "secret '#2' is not an object",
    ]
    assert lock_problems({"secrets": 5}) == [
        "inputs.lock the 'secrets' member is neither an object nor a list"
    ]
    assert lock_problems([]) == ["inputs.lock is not a JSON object"]
    assert lock_problems({"inputs": {}}) == []


@pytest.mark.parametrize(
    ("policy", "expected"), [("hash", fingerprint("s3cret", KEY)), ("blank", "<redacted>")]
)
def test_redact_lock_applies_the_policy_and_keeps_redacted_values(policy: Any, expected: str) -> None:
    secrets: dict[str, Any] = {
        "token": "s3cret",
        "done": "<unresolved>",
        "nested": {"ref": "r", "value": "s3cret"},
    }
    lock = {"inputs": {"n": 1}, "secrets": secrets}
    redacted = redact_lock(lock, policy, KEY)
    assert redacted == {
        "inputs": {"n": 1},
        "secrets": {"token": expected, "done": "<unresolved>", "nested": {"ref": "r", "value": expected}},
    }
    assert secrets["token"] == "s3cret"  # the input is not modified
    assert lock_problems(redacted) == []


@pytest.mark.parametrize("policy", ["hash", "blank"])
def test_the_planners_inputs_lock_is_clean_and_a_leaked_value_is_not(policy: str) -> None:
    plan = Plan.model_validate(
        {
            "pack": {"name": "p", "version": "1", "digest": "sha256:" + "0" * 64},
            "inputs": {"region": "eu"},
            "secrets": [{"name": "token", "ref": "env:TOKEN"}, {"name": "unused", "ref": "env:UNUSED"}],
            "sandbox": {"mode": "sealed", "egressAllowlist": []},
            "security": {"secretsRedactionPolicy": policy},
            "steps": [{"kind": "run", "id": "s", "uses": "noop"}],
        }
    )
    lock = build_inputs_lock(plan, redaction_key=KEY, secret_values={"token": "s3cret"})
    assert lock_problems(lock) == []
    lock["secrets"]["token"]["value"] = "s3cret"
    assert lock_problems(lock) == [
        "secret 'token' is not redacted: its value must be 'hmac-sha256:<64 hex>', '<redacted>' or '<unresolved>'"
    ]
