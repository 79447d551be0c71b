"""Approval gates over HTTP: counting approvers, rejection, plan binding, grants, signatures, expiry, cancel.

Decisions are DSSE envelopes signed by the approver's key trusted for the tenant, sent with an approval
token from the exchange route, bound to the run, gate and plan (``pack_run_id``, ``pack_gate_id``,
``pack_plan_hash``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import wait_for
from taskrunner.evidence.approvals import ApprovalDecision as SignedDecision
from taskrunner.evidence.approvals import sign_approval
from taskrunner.evidence.dsse import verify_envelope
from taskrunner.evidence.layout import APPROVAL_PAYLOAD_TYPE
from taskrunner.evidence.signing import generate_ed25519_keyfile, load_trusted_key
from taskrunner.keys import trust_key
from taskrunner.local.api_routes import api_routes
from taskrunner.local.http_server import serve
from taskrunner.timeutil import now_iso
from test_http_api import (
    APPROVE,
    GATE,
    READ,
    RUN,
    Api,
    approval_token,
    approve_http,
    bundle_member,
    decision_body,
    exchange_http,
    gated_pack,
    identity_token,
    issuer_signed,
    log_events,
    new_tenant,
    read_url,
    run_detail,
    started,
    step_of,
    user_token,
    wait_waiting,
)

# handlers that record no metric make Powertools warn on every call; that is expected here
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

OTHER_PLAN = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def api(runtime: Any) -> Iterator[Api]:
    server = serve(api_routes(runtime), port=0, poll_interval=0.05).start()
    try:
        yield Api(server.url)
    finally:
        server.shutdown()


def gate_events(api: Api, token: str, run_id: str) -> list[tuple[str, str]]:
    """(eventType, approver) of every gate decision event in the run's log."""
    return [
        (e["eventType"], e.get("metadata", {}).get("approver", ""))
        for e in log_events(api, token, run_id)
        if e["eventType"] in ("gate.approved", "gate.rejected")
    ]


def recorded(runtime: Any, run_id: str) -> list[tuple[str, str]]:
    return [(d.approver, d.decision) for d in runtime.svc.store.get_gate(run_id, GATE).decisions]


def waiting_run(api: Api, tenant: str, manifest: str) -> dict[str, Any]:
    run = started(api, user_token(tenant), manifest)
    wait_waiting(api, user_token(tenant), run["runId"])
    return run


# ------------------------------------------------------------------------------------------ counting


def test_a_two_approver_gate_waits_for_a_second_distinct_approver(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    reader = user_token(tenant, READ)
    run = waiting_run(api, tenant, gated_pack(required=2))

    first = approve_http(api, runtime, tenant, "alice", run)
    again = approve_http(api, runtime, tenant, "alice", run)  # the same approver twice counts once

    assert first.status == 200, first.body
    assert again.status == 200, again.body
    for reply in (first, again):
        assert {k: reply.json()[k] for k in ("status", "approvals", "requiredCount", "decision")} == {
            "status": "waiting",
            "approvals": 1,
            "requiredCount": 2,
            "decision": "approve",
        }
    detail = run_detail(api, reader, run["runId"])
    assert detail["status"] == "running"
    assert step_of(detail, GATE)["status"] == "waiting"
    assert detail["pendingGates"][0]["approvals"] == 1
    assert step_of(detail, "after")["status"] == "pending"
    assert recorded(runtime, run["runId"]) == [("alice", "approve")]

    second = approve_http(api, runtime, tenant, "bob", run)

    assert second.status == 200, second.body
    assert (second.json()["status"], second.json()["approvals"]) == ("approved", 2)
    final = runtime.wait(run["runId"], timeout=30)
    assert final.status == "succeeded"
    detail = run_detail(api, reader, run["runId"])
    assert step_of(detail, GATE)["status"] == "approved"
    assert detail["pendingGates"] == []
    assert [a["status"] for a in step_of(detail, "after")["attempts"]] == ["succeeded"]
    assert gate_events(api, reader, run["runId"]) == [("gate.approved", "alice"), ("gate.approved", "bob")]

    # every decision is in the sealed evidence: approvals/ledger.jsonl, one DSSE envelope per decision
    evidence = api.get(f"/api/runs/{run['runId']}/evidence", reader)
    assert evidence.status == 200, evidence.body
    ledger = bundle_member(read_url(evidence.json()["url"]), "approvals/ledger.jsonl").decode("utf-8")
    envelopes = [json.loads(line) for line in ledger.splitlines()]
    payloads = [json.loads(base64.b64decode(e["payload"])) for e in envelopes]
    for envelope, payload in zip(envelopes, payloads, strict=True):  # signed by the approver's trusted key
        pem = runtime.svc.artifacts.open(trust_key(tenant, payload["approver"])).read()
        assert verify_envelope(envelope, [load_trusted_key(pem, payload["approver"])], APPROVAL_PAYLOAD_TYPE)
    assert sorted((p["approver"], p["decision"]) for p in payloads) == [
        ("alice", "approve"),
        ("bob", "approve"),
    ]
    for payload in payloads:
        assert (payload["runId"], payload["gateId"], payload["planHash"], payload["tenantId"]) == (
            run["runId"],
            GATE,
            run["planHash"],
            tenant,
        )


def test_a_rejection_fails_the_run(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    reader = user_token(tenant, READ)
    run = waiting_run(api, tenant, gated_pack(required=2))

    reply = approve_http(api, runtime, tenant, "carol", run, decision="reject")

    assert reply.status == 200, reply.body
    assert (reply.json()["status"], reply.json()["decision"]) == ("rejected", "reject")
    final = runtime.wait(run["runId"], timeout=30)
    assert final.status == "failed"
    detail = run_detail(api, reader, run["runId"])
    assert detail["status"] == "failed"
    assert detail["outcome"] == "failed"
    assert step_of(detail, GATE)["status"] == "rejected"
    assert step_of(detail, "after")["attempts"] == []  # nothing after the gate ran
    assert gate_events(api, reader, run["runId"]) == [("gate.rejected", "carol")]
    assert runtime.svc.store.get_gate(run["runId"], GATE).status == "rejected"


def test_an_approver_cannot_change_a_decision(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    run = waiting_run(api, tenant, gated_pack(required=2))
    assert approve_http(api, runtime, tenant, "dave", run).status == 200

    changed = approve_http(api, runtime, tenant, "dave", run, decision="reject")

    assert changed.status == 409, changed.body
    assert recorded(runtime, run["runId"]) == [("dave", "approve")]
    assert api.post(f"/api/runs/{run['runId']}/cancel", user_token(tenant)).status == 200


# ------------------------------------------------------------------------------------------ refusals


@pytest.fixture(scope="module")
def parked(api: Api, runtime: Any) -> dict[str, Any]:
    """A run of a tenant waiting on a gate that needs grants beyond packs.approve; refusals leave it waiting."""
    tenant = new_tenant()
    run = waiting_run(api, tenant, gated_pack("strict", required=2, grants=(APPROVE, "change.board")))
    return {**run, "tenant": tenant}


def assert_nothing_recorded(api: Api, runtime: Any, parked: dict[str, Any]) -> None:
    reader = user_token(parked["tenant"], READ)
    assert recorded(runtime, parked["runId"]) == []
    assert gate_events(api, reader, parked["runId"]) == []
    detail = run_detail(api, reader, parked["runId"])
    assert step_of(detail, GATE)["status"] == "waiting"
    assert detail["pendingGates"][0]["approvals"] == 0


GRANTS = (APPROVE, "change.board")


def bound_claims(parked: dict[str, Any], approver: str, **claims: str) -> dict[str, Any]:
    return {
        "sub": approver,
        "tenant_id": parked["tenant"],
        "scope": " ".join(GRANTS),
        "pack_run_id": parked["runId"],
        "pack_gate_id": GATE,
        "pack_plan_hash": parked["planHash"],
        **claims,
    }


@pytest.mark.parametrize(
    ("claims", "body_plan"),
    [
        pytest.param({"pack_plan_hash": OTHER_PLAN}, None, id="token-for-an-old-plan"),
        pytest.param({}, OTHER_PLAN, id="body-planHash"),
    ],
)
def test_a_decision_for_another_plan_is_409_plan_hash_mismatch(
    api: Api, runtime: Any, parked: dict[str, Any], claims: dict[str, str], body_plan: str | None
) -> None:
    tenant, run_id, plan = parked["tenant"], parked["runId"], parked["planHash"]
    body = decision_body(runtime, tenant, "erin", run_id, plan)
    if body_plan:
        body["planHash"] = body_plan
    if claims:  # the issuer's key signed it, for the plan the run had before
        token = issuer_signed(runtime, api, bound_claims(parked, "erin", **claims))
    else:
        token = approval_token(api, tenant, "erin", run_id, scopes=GRANTS)

    reply = api.post(f"/api/runs/{run_id}/approve", token, body)

    assert reply.status == 409, reply.body
    assert reply.content_type.startswith("application/problem+json")
    assert reply.json()["code"] == "PlanHashMismatch"
    assert_nothing_recorded(api, runtime, parked)


@pytest.mark.parametrize(
    ("scopes", "named"),
    [
        pytest.param((READ, RUN), "packs.approve", id="no-approve-scope"),
        pytest.param((APPROVE,), "change.board", id="missing-grant"),
    ],
)
def test_an_exchange_without_the_scope_or_a_grant_is_403(
    api: Api, runtime: Any, parked: dict[str, Any], scopes: tuple[str, ...], named: str
) -> None:
    reply = exchange_http(api, parked["tenant"], "frank", parked["runId"], scopes=scopes)

    assert reply.status == 403, reply.body
    assert named in reply.body.decode() or named in reply.headers.get("WWW-Authenticate", "")
    assert "token" not in reply.json()
    assert_nothing_recorded(api, runtime, parked)


def test_an_identity_token_on_the_approve_route_is_401(
    api: Api, runtime: Any, parked: dict[str, Any]
) -> None:
    tenant, run_id, plan = parked["tenant"], parked["runId"], parked["planHash"]
    body = decision_body(runtime, tenant, "frank", run_id, plan)

    reply = api.post(f"/api/runs/{run_id}/approve", identity_token(tenant, "frank", GRANTS), body)

    assert reply.status == 401, reply.body
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert_nothing_recorded(api, runtime, parked)


def _forge(runtime: Any, tmp: Any, parked: dict[str, Any], how: str) -> tuple[str, dict[str, Any]]:
    """(approver in the token, request body) for one way of getting the signature wrong."""
    tenant, run_id, plan = parked["tenant"], parked["runId"], parked["planHash"]
    body = decision_body(runtime, tenant, "grace", run_id, plan)
    envelope = body["envelope"]
    if how == "unsigned":
        body["envelope"] = {**envelope, "signatures": []}
    elif how == "bogus-signature":
        bogus = base64.b64encode(b"\x00" * 64).decode()
        body["envelope"] = {**envelope, "signatures": [{"keyid": "", "sig": bogus}]}
    elif how == "tampered-payload":
        payload = json.loads(base64.b64decode(envelope["payload"]))
        payload["reason"] = "looks good!"
        body["envelope"] = {**envelope, "payload": base64.b64encode(json.dumps(payload).encode()).decode()}
    elif how == "another-trusted-approver":  # heidi is trusted too, but the token says grace
        body["envelope"] = decision_body(runtime, tenant, "heidi", run_id, plan)["envelope"]
    elif how == "untrusted-key":
        stranger = generate_ed25519_keyfile(tmp / "stranger.pem")
        body["envelope"] = sign_approval(
            SignedDecision(run_id, GATE, plan, tenant, "approve", "looks good", "grace", now_iso()),
            [stranger],
        )
    elif how == "no-key-trusted":  # ivan's token, ivan never registered a key in this tenant
        return "ivan", body
    elif how == "other-gate":
        body["envelope"] = decision_body(runtime, tenant, "grace", run_id, plan, gate="other")["envelope"]
    elif how == "other-run":
        body["envelope"] = decision_body(runtime, tenant, "grace", "another-run", plan)["envelope"]
    elif how == "other-decision":  # signed "reject", submitted as "approve"
        body["envelope"] = decision_body(runtime, tenant, "grace", run_id, plan, decision="reject")[
            "envelope"
        ]
    else:
        raise AssertionError(how)
    return "grace", body


@pytest.mark.parametrize(
    "how",
    [
        "unsigned",
        "bogus-signature",
        "tampered-payload",
        "another-trusted-approver",
        "untrusted-key",
        "no-key-trusted",
        "other-gate",
        "other-run",
        "other-decision",
    ],
)
def test_an_unsigned_or_wrongly_signed_decision_is_403_and_nothing_is_recorded(
    api: Api, runtime: Any, parked: dict[str, Any], tmp_path: Any, how: str
) -> None:
    approver, body = _forge(runtime, tmp_path, parked, how)
    token = approval_token(api, parked["tenant"], approver, parked["runId"], scopes=GRANTS)

    reply = api.post(f"/api/runs/{parked['runId']}/approve", token, body)

    assert reply.status == 403, reply.body
    assert reply.content_type.startswith("application/problem+json")
    assert_nothing_recorded(api, runtime, parked)


def test_a_token_bound_to_another_run_or_gate_is_403(api: Api, runtime: Any, parked: dict[str, Any]) -> None:
    tenant, run_id, plan = parked["tenant"], parked["runId"], parked["planHash"]
    body = decision_body(runtime, tenant, "judy", run_id, plan)
    other = waiting_run(api, tenant, gated_pack("strict", required=2, grants=GRANTS))
    other_run = approval_token(api, tenant, "judy", other["runId"], scopes=GRANTS)
    other_gate = issuer_signed(runtime, api, bound_claims(parked, "judy", pack_gate_id="other"))

    for token in (other_run, other_gate):
        reply = api.post(f"/api/runs/{run_id}/approve", token, body)
        assert reply.status == 403, reply.body
    assert_nothing_recorded(api, runtime, parked)
    assert api.post(f"/api/runs/{other['runId']}/cancel", user_token(tenant)).status == 200


# ------------------------------------------------------------------------------------------ closed gates


def test_a_decision_after_the_gate_closed_is_409(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    run = waiting_run(api, tenant, gated_pack(required=1))
    assert approve_http(api, runtime, tenant, "kim", run).json()["status"] == "approved"

    late = approve_http(api, runtime, tenant, "lee", run)
    late_reject = approve_http(api, runtime, tenant, "mia", run, decision="reject")

    for reply in (late, late_reject):
        assert reply.status == 409, reply.body
        assert reply.content_type.startswith("application/problem+json")
    assert runtime.wait(run["runId"], timeout=30).status == "succeeded"
    after_run = approve_http(api, runtime, tenant, "ned", run)
    assert after_run.status == 409, after_run.body
    assert recorded(runtime, run["runId"]) == [("kim", "approve")]


def test_an_expired_gate_fails_the_run_with_a_remediation_hint(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    reader = user_token(tenant, READ)
    run = waiting_run(api, tenant, gated_pack("short-fuse", expires="PT2S"))

    final = runtime.wait(run["runId"], timeout=30)  # nobody answers within 2 s

    assert final.status == "failed"
    detail = run_detail(api, reader, run["runId"])
    assert detail["status"] == "failed"
    assert detail["pendingGates"] == []
    assert step_of(detail, GATE)["status"] == "expired"
    assert step_of(detail, "after")["attempts"] == []
    assert runtime.svc.store.get_gate(run["runId"], GATE).status == "expired"
    [expired] = [e for e in log_events(api, reader, run["runId"]) if e["eventType"] == "gate.expired"]
    assert expired["stepId"] == GATE
    assert expired["level"] in ("warn", "error")
    assert expired["metadata"].get("remediation"), expired
    late = approve_http(api, runtime, tenant, "olga", run)
    assert late.status == 409, late.body


# ------------------------------------------------------------------------------------------ cancel


def test_cancel_while_waiting_on_a_gate_ends_the_run_cancelled(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    token = user_token(tenant, READ, RUN)
    run = waiting_run(api, tenant, gated_pack(required=2))
    path = f"/api/runs/{run['runId']}/cancel"

    reply = api.post(path, token)

    assert reply.status == 200, reply.body
    assert reply.json() == {"runId": run["runId"], "status": "cancelled"}
    # the cancel answer comes after the run is settled and sealed: no waiting needed
    detail = run_detail(api, token, run["runId"])
    assert detail["status"] == "cancelled"
    assert detail["outcome"] == "cancelled"
    assert step_of(detail, GATE)["status"] == "cancelled"
    assert detail["pendingGates"] == []
    assert runtime.svc.store.get_gate(run["runId"], GATE).status == "cancelled"
    evidence = api.get(f"/api/runs/{run['runId']}/evidence", token)
    assert evidence.status == 200, evidence.body

    again = api.post(path, token)
    assert again.status == 200
    assert again.json()["status"] == "cancelled"

    record = runtime.svc.store.get_run(run["runId"], tenant)
    wait_for(lambda: runtime.svc.workflow.execution_status(record.executionArn) != "RUNNING", timeout=10)
    events = log_events(api, token, run["runId"])
    assert [e["eventType"] for e in events].count("run.cancelled") == 1
    assert [e["eventType"] for e in events].count("run.completed") == 1
    assert not any(e["eventType"] == "step.started" and e.get("stepId") == "after" for e in events)
    assert run_detail(api, token, run["runId"])["status"] == "cancelled"
    assert api.get(f"/api/runs/{run['runId']}/evidence", token).json()["sha256"] == evidence.json()["sha256"]
    assert approve_http(api, runtime, tenant, "pat", run).status == 409  # the gate is closed


def test_cancelling_a_finished_run_is_409(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    token = user_token(tenant, READ, RUN)
    run = waiting_run(api, tenant, gated_pack(required=1))
    assert approve_http(api, runtime, tenant, "quinn", run).status == 200
    assert runtime.wait(run["runId"], timeout=30).status == "succeeded"

    reply = api.post(f"/api/runs/{run['runId']}/cancel", token)

    assert reply.status == 409, reply.body
    assert reply.content_type.startswith("application/problem+json")
    assert run_detail(api, token, run["runId"])["status"] == "succeeded"
