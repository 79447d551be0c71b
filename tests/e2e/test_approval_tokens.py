"""Approval tokens over HTTP: the exchange route, the issuer's JWKS and discovery document, and the gateway
verifying approval tokens on the approve route like API Gateway's JWT authorizer (iss, aud, exp, signature)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from taskrunner.engine.approval_tokens import AUDIENCE
from taskrunner.local.api_routes import api_routes
from taskrunner.local.http_server import serve
from taskrunner.timeutil import parse_iso
from test_http_api import (
    APPROVE,
    GATE,
    READ,
    Api,
    approval_token,
    decision_body,
    exchange_http,
    gated_pack,
    issuer_signed,
    new_tenant,
    started,
    user_token,
    wait_waiting,
)
from test_restart_resume import Serve, cli, trusted_approver

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

GRANTS = (APPROVE, "change.board")
TWO_GATES = f"""\
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {{name: two-gates, version: 1.0.0}}
spec:
  approvals:
    - {{id: sign-off, grants: [packs.approve], requiredCount: 1, expiresAfter: PT1H}}
  sandbox: {{mode: sealed, egressAllowlist: []}}
  steps:
    - id: {GATE}
      gate.approval: {{approval: sign-off}}
    - id: later
      gate.approval: {{approval: sign-off}}
"""


@pytest.fixture(scope="module")
def api(runtime: Any) -> Iterator[Api]:
    server = serve(api_routes(runtime), port=0, poll_interval=0.05).start()
    try:
        yield Api(server.url)
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def parked(api: Api) -> dict[str, Any]:
    """A run waiting on a gate whose approval lists a grant beyond packs.approve."""
    tenant = new_tenant()
    run = started(api, user_token(tenant), gated_pack("strict", grants=GRANTS))
    wait_waiting(api, user_token(tenant), run["runId"])
    return {**run, "tenant": tenant}


def jwks_key(api: Api, token: str) -> Any:
    """The key the token names, from the JWKS as any outside verifier fetches it (PyJWT's PyJWK)."""
    reply = api.get("/.well-known/jwks.json")
    assert reply.status == 200, reply.body
    assert reply.headers["Cache-Control"] == "public, max-age=300"
    keys = {k["kid"]: jwt.PyJWK(k) for k in reply.json()["keys"]}
    return keys[jwt.get_unverified_header(token)["kid"]].key


# ------------------------------------------------------------------------------------------ the exchange


def test_the_exchange_issues_a_token_bound_to_the_run_gate_and_plan(api: Api, parked: dict[str, Any]) -> None:
    before = int(time.time())
    reply = exchange_http(api, parked["tenant"], "alice", parked["runId"], scopes=GRANTS)

    assert reply.status == 200, reply.body
    assert reply.headers["Cache-Control"] == "no-store"
    body = reply.json()
    assert {k: body[k] for k in ("tokenType", "runId", "gateId", "tenantId", "planHash", "approval")} == {
        "tokenType": "Bearer",
        "runId": parked["runId"],
        "gateId": GATE,
        "tenantId": parked["tenant"],
        "planHash": parked["planHash"],
        "approval": "sign-off",
    }
    assert body["grants"] == list(GRANTS)
    discovery = api.get("/.well-known/openid-configuration").json()
    assert discovery["issuer"] == api.url
    assert discovery["jwks_uri"] == api.url + "/.well-known/jwks.json"
    claims = jwt.decode(
        body["token"], jwks_key(api, body["token"]), algorithms=["ES256"], audience=AUDIENCE, issuer=api.url
    )
    assert claims["sub"] == "alice"
    assert claims["tenant_id"] == parked["tenant"]
    assert claims["scope"].split() == list(GRANTS)
    assert (claims["pack_run_id"], claims["pack_gate_id"], claims["pack_plan_hash"]) == (
        parked["runId"],
        GATE,
        parked["planHash"],
    )
    assert before <= claims["iat"] == claims["nbf"] <= claims["exp"] - 300 + 1
    assert claims["exp"] == int(parse_iso(body["expiresAt"]).timestamp())
    assert body["expiresIn"] == 300
    assert (
        claims["jti"]
        != jwt.decode(
            approval_token(api, parked["tenant"], "alice", parked["runId"], scopes=GRANTS),
            options={"verify_signature": False},
        )["jti"]
    )


def test_a_token_never_outlives_its_gate(api: Api) -> None:
    tenant = new_tenant()
    run = started(api, user_token(tenant), gated_pack("short", expires="PT60S"))
    detail = wait_waiting(api, user_token(tenant), run["runId"])
    expires_at = parse_iso(detail["pendingGates"][0]["expiresAt"])

    body = exchange_http(api, tenant, "alice", run["runId"]).json()

    assert parse_iso(body["expiresAt"]) <= expires_at
    assert body["expiresIn"] <= 60
    assert api.post(f"/api/runs/{run['runId']}/cancel", user_token(tenant)).status == 200


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("missing-grant", 403, "Forbidden"),
        ("other-tenant", 404, "NotFound"),
        ("unknown-gate", 404, "NotFound"),
        ("not-a-gate-id", 422, None),
        ("unknown-run", 404, "NotFound"),
    ],
)
def test_the_exchange_refuses(
    api: Api, parked: dict[str, Any], case: str, status: int, code: str | None
) -> None:
    tenant, run_id, gate, scopes = parked["tenant"], parked["runId"], GATE, GRANTS
    if case == "missing-grant":
        scopes = (APPROVE,)
    elif case == "other-tenant":
        tenant = new_tenant()
    elif case == "unknown-gate":
        gate = "nope"
    elif case == "not-a-gate-id":
        gate = "-bad.gate"
    elif case == "unknown-run":
        run_id = "no-such-run"

    reply = exchange_http(api, tenant, "alice", run_id, gate, scopes)

    assert reply.status == status, reply.body
    assert reply.content_type.startswith("application/problem+json")
    assert "token" not in reply.json()
    if code:
        assert reply.json()["code"] == code
    if case == "missing-grant":
        assert "change.board" in reply.json()["detail"]


def test_no_token_for_a_gate_not_open_yet_or_closed(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    run = started(api, user_token(tenant), TWO_GATES)
    wait_waiting(api, user_token(tenant), run["runId"])

    not_open = exchange_http(api, tenant, "alice", run["runId"], "later")
    assert (not_open.status, not_open.json()["code"]) == (409, "GateNotOpen")

    token = approval_token(api, tenant, "alice", run["runId"])
    body = decision_body(runtime, tenant, "alice", run["runId"], run["planHash"])
    assert api.post(f"/api/runs/{run['runId']}/approve", token, body).status == 200

    closed = exchange_http(api, tenant, "bob", run["runId"])
    assert (closed.status, closed.json()["code"]) == (409, "GateClosed")
    assert api.post(f"/api/runs/{run['runId']}/cancel", user_token(tenant)).status == 200


# ------------------------------------------------------------------------------------------ the gateway


def bound(parked: dict[str, Any], **claims: Any) -> dict[str, Any]:
    return {
        "sub": "alice",
        "tenant_id": parked["tenant"],
        "scope": " ".join(GRANTS),
        "pack_run_id": parked["runId"],
        "pack_gate_id": GATE,
        "pack_plan_hash": parked["planHash"],
        **claims,
    }


def forged_by_another_key(api: Api, token: str) -> str:
    """The same header (kid) and claims, signed by a key the issuer never published."""
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers=header)


@pytest.mark.parametrize(
    "case", ["expired", "not-yet-valid", "wrong-iss", "wrong-aud", "other-key", "identity"]
)
def test_the_approve_route_refuses_a_token_the_authorizer_does_not_accept(
    api: Api, runtime: Any, parked: dict[str, Any], case: str
) -> None:
    now = int(time.time())
    if case == "expired":
        token = issuer_signed(runtime, api, bound(parked, iat=now - 400, nbf=now - 400, exp=now - 100))
    elif case == "not-yet-valid":
        token = issuer_signed(runtime, api, bound(parked, nbf=now + 600, exp=now + 900))
    elif case == "wrong-iss":
        token = issuer_signed(runtime, api, bound(parked, iss="https://issuer.example.com"))
    elif case == "wrong-aud":
        token = issuer_signed(runtime, api, bound(parked, aud="taskrunner"))
    elif case == "other-key":
        token = forged_by_another_key(
            api, approval_token(api, parked["tenant"], "alice", parked["runId"], scopes=GRANTS)
        )
    else:
        token = user_token(parked["tenant"], *GRANTS)
    body = decision_body(runtime, parked["tenant"], "alice", parked["runId"], parked["planHash"])

    reply = api.post(f"/api/runs/{parked['runId']}/approve", token, body)

    assert reply.status == 401, reply.body
    assert 'error="invalid_token"' in reply.headers["WWW-Authenticate"]
    assert runtime.svc.store.get_gate(parked["runId"], GATE).decisions == []


def test_the_jwks_is_fetched_again_for_an_unknown_key_id(
    api: Api, runtime: Any, parked: dict[str, Any]
) -> None:
    token = issuer_signed(runtime, api, bound(parked))
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    unknown = jwt.encode(
        claims,
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={**header, "kid": "f" * 64},
    )
    body = decision_body(runtime, parked["tenant"], "alice", parked["runId"], parked["planHash"])

    reply = api.post(f"/api/runs/{parked['runId']}/approve", unknown, body)

    assert reply.status == 401, reply.body
    assert "is not in the issuer's JWKS" in reply.json()["detail"]
    assert api.get(f"/api/runs/{parked['runId']}", user_token(parked["tenant"], READ)).status == 200


# ------------------------------------------------------------------------------------------ the CLI


def test_cli_approve_exchanges_an_approve_only_identity_token_against_serve(tr_home: Path) -> None:
    tr_home.mkdir(parents=True, exist_ok=True)
    server = Serve(tr_home, tr_home / "serve.log").start()
    try:
        run = started(server.api, user_token("local"), gated_pack("cli-remote"))
        wait_waiting(server.api, user_token("local"), run["runId"])
        trusted_approver(tr_home, "alice")
        identity = user_token_for("alice")
        assert server.api.get(f"/api/runs/{run['runId']}", identity).status == 403  # it cannot even read

        refused = cli(
            tr_home,
            "approve",
            run["runId"],
            "nope",
            "--as",
            "alice",
            "--api",
            server.url,
            "--token",
            identity,
            check=False,
        )
        assert refused.returncode == 1
        assert "has no approval gate nope" in refused.stderr
        assert "hint: " in refused.stderr

        done = cli(
            tr_home,
            "approve",
            run["runId"],
            GATE,
            "--as",
            "alice",
            "--api",
            server.url,
            "--token",
            identity,
            "--json",
        )
        assert '"status": "approved"' in done.stdout
        detail = wait_waiting_done(server.api, run["runId"])
        assert detail["status"] == "succeeded"
        assert (tr_home / "keys" / "approval-issuer.pem").stat().st_mode & 0o777 == 0o600
    finally:
        server.stop()


def user_token_for(approver: str) -> str:
    from taskrunner.local.devauth import mint_token

    return mint_token([APPROVE], "local", {"sub": approver})


def wait_waiting_done(api: Api, run_id: str) -> dict[str, Any]:
    from conftest import wait_for

    reader = user_token("local", READ)
    return dict(
        wait_for(
            lambda: (d := api.get(f"/api/runs/{run_id}", reader).json())["status"] == "succeeded" and d,
            timeout=60,
        )
    )


@pytest.mark.parametrize(("body", "status"), [(None, 200), ({}, 200), ({"runId": "other"}, 422), ([], 422)])
def test_the_exchange_takes_no_body_or_an_empty_object(
    api: Api, parked: dict[str, Any], body: Any, status: int
) -> None:
    path = f"/api/runs/{parked['runId']}/gates/{GATE}/approval-token"
    identity = user_token(parked["tenant"], *GRANTS)

    reply = api.post(path, identity, body)

    assert reply.status == status, reply.body
    assert ("token" in reply.json()) is (status == 200)
