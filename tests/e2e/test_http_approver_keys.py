"""Approver keys over HTTP: enrolment under each policy, confirm and revoke, decisions signed by enrolled keys
(WebCrypto-style raw r||s ECDSA signatures), and sealed bundles that verify with the deployment key alone.
"""

from __future__ import annotations

import io
import json
import tarfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from taskrunner.canonical import canonical_bytes
from taskrunner.cli.app import app
from taskrunner.engine.approver_keys import EnrolmentPolicy, approver_records, records_key, write_policy
from taskrunner.engine.evidence import run_signer
from taskrunner.evidence.dsse import sign_envelope
from taskrunner.evidence.layout import APPROVER_KEYS, ENROLMENT_PAYLOAD_TYPE
from taskrunner.evidence.signing import key_id, public_pem
from taskrunner.evidence.verify import verify_bundle
from taskrunner.local.api_routes import api_routes
from taskrunner.local.approvers import signed_envelope
from taskrunner.local.devauth import mint_token
from taskrunner.local.http_server import serve
from test_http_api import (
    APPROVE,
    GATE,
    Api,
    Reply,
    approval_token,
    gated_pack,
    new_tenant,
    read_url,
    started,
    user_token,
    wait_waiting,
)
from typer.testing import CliRunner

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

ADMIN = "packs.admin"
KEYS = "/api/approvers/keys"


class WebCryptoKey:
    """An ECDSA P-256 key signing as WebCrypto does: raw ``r || s`` (IEEE P1363), not DER."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.public_key_pem = public_pem(self.private_key.public_key())
        self.keyid = key_id(self.private_key.public_key())

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self.private_key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.fixture(scope="module")
def api(runtime: Any) -> Iterator[Api]:
    server = serve(api_routes(runtime), port=0, poll_interval=0.05).start()
    try:
        yield Api(server.url)
    finally:
        server.shutdown()


def enrol(
    api: Api, tenant: str, approver: str, key: WebCryptoKey, *scopes: str, label: str = "browser"
) -> Reply:
    token = mint_token(scopes or (APPROVE,), tenant, {"sub": approver})
    return api.post(KEYS, token, {"publicKeyPem": key.public_key_pem, "label": label})


def decide(
    api: Api, tenant: str, approver: str, run: dict[str, Any], key: WebCryptoKey, **fields: Any
) -> Reply:
    """POST approve with a decision ``key`` signed (``decidedAt`` and friends overridable)."""
    envelope = signed_envelope(
        key,
        run_id=run["runId"],
        gate_id=GATE,
        plan_hash=run["planHash"],
        tenant_id=tenant,
        decision="approve",
        reason="ship it",
        approver=fields.pop("signed_as", approver),
        decided_at=fields.pop("decided_at", None),
    )
    body = {
        "gateId": GATE,
        "decision": "approve",
        "reason": "ship it",
        "planHash": run["planHash"],
        "envelope": envelope,
    }
    return api.post(
        f"/api/runs/{run['runId']}/approve",
        approval_token(api, tenant, approver, run["runId"]),
        body,
    )


def waiting_run(api: Api, tenant: str) -> dict[str, Any]:
    run = started(api, user_token(tenant), gated_pack())
    wait_waiting(api, user_token(tenant), run["runId"])
    return run


def sealed_bundle(api: Api, tenant: str, run_id: str, tmp_path: Path) -> Path:
    def sealed() -> bytes | None:
        reply = api.get(f"/api/runs/{run_id}/evidence", user_token(tenant))
        return read_url(reply.json()["url"]) if reply.status == 200 else None

    path = tmp_path / f"{run_id}.tar.gz"
    path.write_bytes(wait_for(sealed, timeout=60))
    return path


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, mode="r:gz") as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]


def rewrite(path: Path, out: Path, changes: dict[str, bytes]) -> Path:
    """A copy of the bundle with some members replaced (the manifest then no longer matches them)."""
    with tarfile.open(out, mode="w:gz") as archive:
        for name, data in {**members(path), **changes}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out


def recorded(runtime: Any, run_id: str) -> list[str]:
    return [d.approver for d in runtime.svc.store.get_gate(run_id, GATE).decisions]


# ------------------------------------------------------------------------------------------ enrolment


def test_self_enrolment_signs_a_decision_with_raw_ecdsa_and_the_bundle_verifies_with_the_deployment_key(
    api: Api, runtime: Any, tmp_path: Path
) -> None:
    tenant, key = new_tenant(), WebCryptoKey()
    write_policy(runtime.svc, tenant, EnrolmentPolicy(enrolment="self"))
    first = enrol(api, tenant, "alice@example.com", key)
    assert first.status == 201, first.body
    record = first.json()
    assert (record["keyId"], record["approver"], record["tenantId"], record["status"]) == (
        key.keyid,
        "alice@example.com",
        tenant,
        "active",
    )
    again = enrol(api, tenant, "alice@example.com", key, label="renamed")
    assert (again.status, again.json()) == (200, record)
    listed = api.get(KEYS, mint_token((APPROVE,), tenant, {"sub": "alice@example.com"}))
    assert listed.json() == {"items": [record]}
    assert api.get(KEYS, mint_token((APPROVE,), tenant, {"sub": "bob"})).json() == {"items": []}

    run = waiting_run(api, tenant)
    reply = decide(api, tenant, "alice@example.com", run, key)
    assert reply.status == 200, reply.body
    assert reply.json()["status"] == "approved"

    bundle = sealed_bundle(api, tenant, run["runId"], tmp_path)
    assert APPROVER_KEYS in members(bundle)
    deployment = run_signer(runtime.svc).public_key_pem
    report = verify_bundle(bundle, [deployment], require_dsse=True)
    assert report.ok, report.failures
    assert report.summary["enrolledKeys"] == [key.keyid]
    assert report.summary["approvals"] == {"entries": 1, "verified": 1}

    # the deployment key is what makes the enrolled key count: another trust root verifies nothing
    stranger = WebCryptoKey().public_key_pem
    assert not verify_bundle(bundle, [stranger]).ok

    # a tampered enrolment record: its envelope no longer verifies, so the decision has no key either
    keys_line = members(bundle)[APPROVER_KEYS]
    tampered = keys_line.replace(b'"payload":"', b'"payload":"eyJ9', 1)
    report = verify_bundle(
        rewrite(bundle, tmp_path / "tampered.tar.gz", {APPROVER_KEYS: tampered}), [deployment]
    )
    assert any(f.startswith(f"{APPROVER_KEYS} line 1: no signature verifies") for f in report.failures), (
        report.failures
    )
    assert any(f.startswith("approvals/ledger.jsonl line 1: no signature verifies") for f in report.failures)


def forged_enrolment(runtime: Any, key: WebCryptoKey, **statement: Any) -> bytes:
    """An enrolment record the deployment key signs (what a compromised store might hold)."""
    envelope = sign_envelope(canonical_bytes(statement), ENROLMENT_PAYLOAD_TYPE, [run_signer(runtime.svc)])
    return canonical_bytes(envelope) + b"\n"


@pytest.mark.parametrize(
    ("change", "failure"),
    [
        ({"revokedAt": "2000-01-01T00:00:00.000Z"}, "after key {k} was revoked (2000-01-01T00:00:00.000Z)"),
        ({"approver": "mallory"}, "key {k} is enrolled for approver 'mallory', not 'carol'"),
        (
            {"confirmedAt": "2999-01-01T00:00:00.000Z", "confirmedBy": "admin", "policy": "confirm"},
            "before key {k} was active",
        ),
    ],
)
def test_verify_names_an_enrolment_that_does_not_cover_the_decision(
    api: Api, runtime: Any, tmp_path: Path, change: dict[str, Any], failure: str
) -> None:
    tenant, key = new_tenant(), WebCryptoKey()
    write_policy(runtime.svc, tenant, EnrolmentPolicy(enrolment="self"))
    assert enrol(api, tenant, "carol", key).status == 201
    run = waiting_run(api, tenant)
    assert decide(api, tenant, "carol", run, key).status == 200
    bundle = sealed_bundle(api, tenant, run["runId"], tmp_path)
    record = runtime.svc.artifacts.open(records_key(tenant, "carol")).read()
    statement = {k: v for k, v in json.loads(record)["keys"][0].items() if k not in ("status", "envelope")}
    forged = forged_enrolment(runtime, key, **{**statement, **change})
    report = verify_bundle(
        rewrite(bundle, tmp_path / "forged.tar.gz", {APPROVER_KEYS: forged}),
        [run_signer(runtime.svc).public_key_pem],
    )
    expected = failure.format(k=key.keyid[:16])
    assert any(f.startswith("approvals/ledger.jsonl line 1: ") and expected in f for f in report.failures), (
        report.failures
    )


def test_confirm_policy_keeps_a_key_pending_until_another_administrator_confirms_it(
    api: Api, runtime: Any
) -> None:
    tenant, key = new_tenant(), WebCryptoKey()
    write_policy(runtime.svc, tenant, EnrolmentPolicy(enrolment="confirm"))
    pending = enrol(api, tenant, "dave", key)
    assert (pending.status, pending.json()["status"], pending.json()["confirmedBy"]) == (201, "pending", None)

    run = waiting_run(api, tenant)
    refused = decide(api, tenant, "dave", run, key)
    assert refused.status == 403, refused.body
    assert "awaiting confirmation by an administrator" in refused.json()["detail"]
    assert recorded(runtime, run["runId"]) == []

    confirm = f"/api/approvers/dave/keys/{key.keyid}/confirm"
    own = api.post(confirm, mint_token((APPROVE, ADMIN), tenant, {"sub": "dave"}), {})
    assert own.status == 403
    assert "cannot confirm their own key" in own.json()["detail"]
    assert (
        api.post(confirm, mint_token((APPROVE,), tenant, {"sub": "erin"}), {}).status == 403
    )  # gateway: no packs.admin
    unknown = api.post(
        f"/api/approvers/dave/keys/{'0' * 64}/confirm", mint_token((ADMIN,), tenant, {"sub": "erin"}), {}
    )
    assert unknown.status == 404
    confirmed = api.post(confirm, mint_token((ADMIN,), tenant, {"sub": "erin"}), {})
    assert confirmed.status == 200, confirmed.body
    assert (confirmed.json()["status"], confirmed.json()["confirmedBy"]) == ("active", "erin")

    # a decision dated before the confirmation is refused: offline verification would refuse it too
    early = decide(api, tenant, "dave", run, key, decided_at=pending.json()["enrolledAt"])
    assert early.status == 403
    assert "before key" in early.json()["detail"]
    assert decide(api, tenant, "dave", run, key).status == 200
    assert recorded(runtime, run["runId"]) == ["dave"]


def test_a_revoked_key_signs_nothing_more(api: Api, runtime: Any) -> None:
    tenant, key = new_tenant(), WebCryptoKey()
    write_policy(runtime.svc, tenant, EnrolmentPolicy(enrolment="self"))
    assert enrol(api, tenant, "frank", key).status == 201
    token = mint_token((APPROVE,), tenant, {"sub": "frank"})
    assert api.call("DELETE", f"{KEYS}/{'1' * 64}", token).status == 404
    assert api.call("DELETE", f"{KEYS}/not-a-key", token).status == 422
    revoked = api.call("DELETE", f"{KEYS}/{key.keyid}", token)
    assert (revoked.status, revoked.json()["status"]) == (200, "revoked")
    assert revoked.json()["revokedAt"]
    run = waiting_run(api, tenant)
    refused = decide(api, tenant, "frank", run, key)
    assert refused.status == 403
    assert "was revoked at" in refused.json()["detail"]
    assert recorded(runtime, run["runId"]) == []
    confirm = api.post(
        f"/api/approvers/frank/keys/{key.keyid}/confirm", mint_token((ADMIN,), tenant, {"sub": "gina"}), {}
    )
    assert confirm.status == 409  # a revoked key stays revoked


def test_an_unknown_keyid_is_refused_naming_it(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    write_policy(runtime.svc, tenant, EnrolmentPolicy(enrolment="self"))
    assert enrol(api, tenant, "hank", WebCryptoKey()).status == 201
    run = waiting_run(api, tenant)
    stranger = WebCryptoKey()
    refused = decide(api, tenant, "hank", run, stranger)
    assert refused.status == 403
    assert stranger.keyid[:16] in refused.json()["detail"]
    assert recorded(runtime, run["runId"]) == []


def test_closed_and_scoped_policies(api: Api, runtime: Any) -> None:
    closed, scoped = new_tenant(), new_tenant()
    write_policy(runtime.svc, closed, EnrolmentPolicy(enrolment="closed"))
    refused = enrol(api, closed, "ivy", WebCryptoKey())
    assert refused.status == 403
    assert "policy: closed" in refused.json()["detail"]
    assert api.get(KEYS, mint_token((APPROVE,), closed, {"sub": "ivy"})).json() == {"items": []}

    write_policy(runtime.svc, scoped, EnrolmentPolicy(enrolment="self", requireScopes=("packs.run",)))
    refused = enrol(api, scoped, "ivy", WebCryptoKey())
    assert refused.status == 403
    assert "packs.run" in refused.json()["detail"]
    assert enrol(api, scoped, "ivy", WebCryptoKey(), APPROVE, "packs.run").status == 201


def test_enrolment_needs_the_approve_scope(api: Api) -> None:
    tenant = new_tenant()
    reply = api.post(
        KEYS, mint_token(("packs.read",), tenant, {"sub": "jo"}), {"publicKeyPem": "x", "label": "y"}
    )
    assert reply.status == 403


# ------------------------------------------------------------------------------------------ property

_VALID_PEM = WebCryptoKey().public_key_pem
_texts = st.text(max_size=80) | st.sampled_from(["", "a" * 65, "../x", "alice", "0" * 64, "%2F", "\x00", "é"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    operation=st.sampled_from(["enrol", "confirm", "revoke"]),
    approver=_texts,
    pem=_texts | st.just(_VALID_PEM) | st.just(_VALID_PEM.replace("\n", "\r\n")),
    label=_texts,
    key=_texts | st.just(WebCryptoKey().keyid),
    caller=st.sampled_from(["alice", "bob@example.com", "a" * 129, "-x", "ünï"]),
)
def test_arbitrary_values_never_crash_the_key_routes_and_refusals_write_nothing(
    api: Api, runtime: Any, operation: str, approver: str, pem: str, label: str, key: str, caller: str
) -> None:
    tenant = new_tenant()
    token = mint_token((APPROVE, ADMIN), tenant, {"sub": caller})
    segment = urllib.parse.quote(approver, safe="") or "x"
    key_segment = urllib.parse.quote(key, safe="") or "x"
    if operation == "enrol":
        reply = api.post(KEYS, token, {"publicKeyPem": pem, "label": label})
    elif operation == "confirm":
        reply = api.post(f"/api/approvers/{segment}/keys/{key_segment}/confirm", token, {})
    else:
        reply = api.call("DELETE", f"{KEYS}/{key_segment}", token)
    assert reply.status < 500, reply.body
    written = [r for who in {caller, approver} for r in approver_records(runtime.svc, tenant, who)]
    if reply.status >= 400:
        assert written == [], reply.body
        assert reply.content_type.startswith("application/problem+json")
    else:
        assert (operation, reply.status, [r.keyId for r in written]) == (
            "enrol",
            201,
            [reply.json()["keyId"]],
        )


# ------------------------------------------------------------------------------------------ CLI


def cli(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_cli_enrols_a_key_file_and_approve_api_signs_with_it(
    api: Api, runtime: Any, tmp_path: Path
) -> None:
    tenant = new_tenant()
    write_policy(runtime.svc, tenant, EnrolmentPolicy(enrolment="self"))
    token = mint_token((APPROVE,), tenant, {"sub": "cli-user"})
    run = waiting_run(api, tenant)
    keyless = CliRunner().invoke(
        app, ["approve", run["runId"], GATE, "--as", "cli-user", "--api", api.url, "--token", token]
    )
    assert keyless.exit_code == 1
    assert "approver cli-user has no signing key on this machine" in keyless.output
    assert "taskrunner approvals enrol --api" in keyless.output
    assert runtime.svc.store.get_gate(run["runId"], GATE).decisions == []
    enrolled = cli("approvals", "enrol", "--api", api.url, "--token", token, "--label", "build box")
    key_file = Path(runtime.home) / "keys" / "approvers" / "cli-user.p256.pem"
    assert (enrolled["status"], enrolled["label"], key_file.stat().st_mode & 0o777) == (
        "active",
        "build box",
        0o600,
    )
    assert cli("approvals", "enrol", "--api", api.url, "--token", token)["keyId"] == enrolled["keyId"]
    assert [k["keyId"] for k in cli("approvals", "keys", "--api", api.url, "--token", token)["items"]] == [
        enrolled["keyId"]
    ]

    # the identity token alone (packs.approve): the CLI exchanges it for the approval token
    gate = cli("approve", run["runId"], GATE, "--as", "cli-user", "--api", api.url, "--token", token)
    assert gate["status"] == "approved"
    [decision] = runtime.svc.store.get_gate(run["runId"], GATE).decisions
    assert [s["keyid"] for s in decision.envelope["signatures"]] == [enrolled["keyId"]]

    revoked = cli("approvals", "revoke-key", enrolled["keyId"], "--api", api.url, "--token", token)
    assert revoked["status"] == "revoked"


def test_the_cli_confirms_a_pending_key_and_sets_policies(api: Api, runtime: Any, tmp_path: Path) -> None:
    tenant = new_tenant()
    assert cli("approvals", "policy", "--tenant", tenant, "--enrolment", "confirm")["enrolment"] == "confirm"
    token = mint_token((APPROVE,), tenant, {"sub": "kim"})
    pending = cli(
        "approvals", "enrol", "--api", api.url, "--token", token, "--key", str(tmp_path / "kim.pem")
    )
    assert pending["status"] == "pending"
    admin = mint_token((ADMIN,), tenant, {"sub": "lee"})
    confirmed = cli("approvals", "confirm", "kim", pending["keyId"], "--api", api.url, "--token", admin)
    assert (confirmed["status"], confirmed["confirmedBy"]) == ("active", "lee")
    refused = CliRunner().invoke(app, ["approvals", "policy", "--tenant", tenant, "--enrolment", "open"])
    assert refused.exit_code != 0
    assert "self, confirm or closed" in refused.output
