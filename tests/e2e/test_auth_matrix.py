"""Every route of the API (read from template.yaml) x every kind of bad credential, over real HTTP.

no token, expired token, bad signature -> 401; a token without the route's scope -> 403; a valid token
of another tenant -> 404 on every run route. The owner's own token is the control: it gets through. Tokens
are minted for the route's authorizer: identity tokens, or approval tokens signed by the issuer's key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from conftest import PACKS
from cryptography.hazmat.primitives.asymmetric import ec
from taskrunner.api.auth import KNOWN_SCOPES
from taskrunner.evidence.signing import public_pem
from taskrunner.local.api_routes import api_routes
from taskrunner.local.devauth import mint_token, signing_key
from taskrunner.local.http_server import serve
from taskrunner.local.template import HttpRoute, find_template, load_template
from test_http_api import (
    APPROVE,
    GATE,
    Api,
    approval_token,
    approve_http,
    decision_body,
    gated_pack,
    issuer_signed,
    started,
    user_token,
    wait_waiting,
)

# handlers that record no metric make Powertools warn on every call; that is expected here
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

OWNER, INTRUDER = "matrix-owner", "matrix-intruder"
# every API route, a route on two APIs (the JWKS: the TaskRunner API and the issuer's) once; the console's
# static files are no API operation (tests/browser covers them)
ROUTES: list[HttpRoute] = list(
    {
        route.route_key: route
        for route, _ in load_template(find_template()).routes()
        if not route.path.startswith("/console")
    }.values()
)
PUBLIC = ("/.well-known/openapi", "/.well-known/jwks.json", "/.well-known/openid-configuration")
CASES = {"no-token": 401, "expired": 401, "bad-signature": 401, "alg-none": 401, "wrong-scope": 403}


@pytest.fixture(scope="module")
def api(runtime: Any) -> Iterator[Api]:
    server = serve(api_routes(runtime), port=0, poll_interval=0.05).start()
    try:
        yield Api(server.url)
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def target(api: Api, runtime: Any) -> dict[str, Any]:
    """A finished run of the owner that passed an approval gate (so every run route has something to show)."""
    run = started(api, user_token(OWNER), gated_pack("matrix"))
    wait_waiting(api, user_token(OWNER), run["runId"])
    assert approve_http(api, runtime, OWNER, "alice", run).status == 200
    assert runtime.wait(run["runId"], timeout=30).status == "succeeded"
    return run


def route_id(route: HttpRoute) -> str:
    return f"{route.method} {route.path}"


def mint(
    context: tuple[Api, Any],
    route: HttpRoute,
    scopes: list[str] | tuple[str, ...],
    tenant: str,
    claims: dict[str, str],
    ttl_seconds: int = 3600,
) -> str:
    """A valid token of ``route``'s authorizer (``context``: the server and its runtime)."""
    if route.authorizer != "ApprovalTokens":
        return mint_token(scopes, tenant, claims, ttl_seconds=ttl_seconds)
    api, runtime = context
    now = int(__import__("time").time())
    base = {"sub": "local-developer", "iat": now, "nbf": now, "exp": now + ttl_seconds}
    return issuer_signed(runtime, api, {**base, **claims, "tenant_id": tenant, "scope": " ".join(scopes)})


def claims_for(route: HttpRoute, run: dict[str, Any], approver: str) -> dict[str, str]:
    if not route.path.endswith("/approve"):
        return {"sub": approver} if route.path.endswith("/approval-token") else {}
    return {
        "sub": approver,
        "pack_run_id": run["runId"],
        "pack_gate_id": GATE,
        "pack_plan_hash": run["planHash"],
    }


def request_for(
    route: HttpRoute, run: dict[str, Any], runtime: Any, tenant: str, approver: str
) -> tuple[str, Any]:
    """(path, body) of a well-formed request to ``route``, so only the credentials decide the answer."""
    path = route.path.replace("{runId}", run["runId"]).replace("{gateId}", GATE)
    path = path.replace("{approver}", "carol").replace("{keyId}", "0" * 64)  # no such key: 404 once let in
    path = path.replace("{packId}", "hello").replace(
        "{version}", "1.0.0"
    )  # nothing published: 404 once let in
    hello = (PACKS / "hello.yaml").read_text(encoding="utf-8")
    if route.path in ("/api/runs", "/api/plans") and route.method == "POST":
        return path, {"manifest": hello, "inputs": {"who": "matrix"}}
    if route.path == "/api/approvers/keys" and route.method == "POST":  # a new key each time: 201
        return path, {
            "publicKeyPem": public_pem(ec.generate_private_key(ec.SECP256R1()).public_key()),
            "label": "m",
        }
    if route.path == "/api/packs/{packId}/versions" and route.method == "POST":  # nothing to publish: 422
        return path, {}
    if route.path == "/api/packs/revocations" and route.method == "PUT":  # signed by no trusted key: 422
        return path, {"payloadType": "application/vnd.taskrunner.pack-revocations+json", "payload": "e30=",
                      "signatures": [{"keyid": "k", "sig": "AAAA"}]}  # fmt: skip
    if route.path.endswith("/promote"):
        return path, {"version": "1.0.0", "channel": "stable"}
    if route.path.endswith("/approve"):
        return path, decision_body(runtime, tenant, approver, run["runId"], run["planHash"])
    return path, None


def token_for(case: str, route: HttpRoute, run: dict[str, Any], context: tuple[Api, Any]) -> str | None:
    scopes = list(route.scopes) or ["packs.read"]
    claims = claims_for(route, run, "bob")
    if case == "no-token":
        return None
    if case == "expired":
        return mint(context, route, scopes, OWNER, claims, ttl_seconds=-120)
    valid = mint(context, route, scopes, OWNER, claims)
    if case == "bad-signature":  # right shape and algorithm, signed by a key the server does not trust
        payload = jwt.decode(valid, options={"verify_signature": False})
        return jwt.encode(payload, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    if case == "alg-none":
        payload = jwt.decode(valid, options={"verify_signature": False})
        return jwt.encode(payload, "", algorithm="none")
    if case == "wrong-scope":
        return mint(context, route, sorted(KNOWN_SCOPES - set(route.scopes)), OWNER, claims)
    raise AssertionError(case)


def test_the_matrix_covers_every_route_of_the_template() -> None:
    keys = {route_id(r) for r in ROUTES}
    assert {"POST /api/runs", "GET /api/runs/{runId}", "POST /api/runs/{runId}/approve"} <= keys
    assert len(keys) == len(ROUTES) >= 14  # every route once, none missing from the parametrisation
    assert all(r.scopes for r in ROUTES if not r.auth_none), "a protected route without a scope"


PROTECTED = [r for r in ROUTES if not r.auth_none]
RUN_ROUTES = [r for r in PROTECTED if "{runId}" in r.path]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("route", PROTECTED, ids=route_id)
def test_bad_credentials_are_refused(
    api: Api, runtime: Any, target: dict[str, Any], route: HttpRoute, case: str
) -> None:
    path, body = request_for(route, target, runtime, OWNER, "bob")

    reply = api.call(route.method, path, token_for(case, route, target, (api, runtime)), body)

    assert reply.status == CASES[case], (route_id(route), case, reply.body)
    challenge = reply.headers.get("WWW-Authenticate", "")
    if CASES[case] == 401:
        assert challenge.startswith("Bearer")
        if case != "no-token":
            assert 'error="invalid_token"' in challenge
    else:
        assert 'error="insufficient_scope"' in challenge


@pytest.mark.parametrize("route", RUN_ROUTES, ids=route_id)
def test_another_tenants_run_is_404(api: Api, runtime: Any, target: dict[str, Any], route: HttpRoute) -> None:
    path, body = request_for(route, target, runtime, INTRUDER, "mallory")
    claims = claims_for(route, target, "mallory")
    token = mint((api, runtime), route, [*route.scopes, *([APPROVE] if claims else [])], INTRUDER, claims)

    reply = api.call(route.method, path, token, body)

    assert reply.status == 404, (route_id(route), reply.body)
    assert reply.content_type.startswith("application/problem+json")
    assert reply.json()["code"] == "NotFound"


OWNER_EXPECTED = {
    "POST /api/runs": 202,
    "POST /api/plans": 200,
    "GET /api/runs": 200,
    "GET /api/runs/{runId}": 200,
    "GET /api/runs/{runId}/logs": 200,
    "GET /api/runs/{runId}/artifacts": 200,
    "GET /api/runs/{runId}/evidence": 200,
    "GET /api/approvals": 200,
    "GET /api/runs/{runId}/gates/{gateId}": 200,  # the approved gate
    "POST /api/runs/{runId}/approve": 409,  # the gate closed when the run went on: a conflict, not a denial
    "POST /api/runs/{runId}/gates/{gateId}/approval-token": 409,  # no token for a closed gate
    "POST /api/runs/{runId}/cancel": 409,  # the run is finished
    "POST /api/runs/{runId}/resume": 409,
    "POST /api/approvers/keys": 201,
    "GET /api/approvers/keys": 200,
    "POST /api/approvers/{approver}/keys/{keyId}/confirm": 404,
    "DELETE /api/approvers/keys/{keyId}": 404,
    "GET /api/packs": 200,
    "GET /api/packs/{packId}/versions": 404,
    "GET /api/packs/{packId}/versions/{version}": 404,
    "POST /api/packs/{packId}/versions": 422,  # the bundle, envelope and SBOM are missing
    "POST /api/packs/{packId}/promote": 404,
    "GET /api/packs/revocations": 404,  # the tenant has none yet
    "PUT /api/packs/revocations": 422,  # no key of the tenant signed it
}


@pytest.mark.parametrize("route", PROTECTED, ids=route_id)
def test_the_owner_gets_through(api: Api, runtime: Any, target: dict[str, Any], route: HttpRoute) -> None:
    path, body = request_for(route, target, runtime, OWNER, "bob")
    claims = claims_for(route, target, "bob")
    token = (
        mint((api, runtime), route, route.scopes, OWNER, claims)
        if claims
        else user_token(OWNER, *route.scopes)
    )

    reply = api.call(route.method, path, token, body)

    assert reply.status == OWNER_EXPECTED[route_id(route)], (route_id(route), reply.body)
    if route.method == "POST" and route.path == "/api/runs":
        assert runtime.wait(reply.json()["runId"], timeout=60).status == "succeeded"


def test_the_public_routes_are_the_openapi_document_and_the_issuers() -> None:
    assert sorted(r.path for r in ROUTES if r.auth_none) == sorted(PUBLIC)


@pytest.mark.parametrize("case", [*CASES, "other-tenant"])
@pytest.mark.parametrize("route", [r for r in ROUTES if r.auth_none], ids=route_id)
def test_the_public_documents_need_no_token(
    api: Api, runtime: Any, target: dict[str, Any], route: HttpRoute, case: str
) -> None:
    context = (api, runtime)
    token = user_token(INTRUDER) if case == "other-tenant" else token_for(case, route, target, context)

    reply = api.call(route.method, route.path, token)

    assert reply.status == 200, (case, reply.body)
    assert reply.json()


def test_an_approval_token_only_approves(api: Api, target: dict[str, Any]) -> None:
    """The approve scope alone reads nothing and starts nothing (scopes are not hierarchical)."""
    waiting = started(api, user_token(OWNER), gated_pack("matrix"))
    wait_waiting(api, user_token(OWNER), waiting["runId"])
    token = approval_token(api, OWNER, "bob", waiting["runId"])

    # not an identity token: the routes of the identity provider's authorizer refuse it
    assert api.get(f"/api/runs/{target['runId']}", token).status == 401
    assert api.post(f"/api/runs/{waiting['runId']}/cancel", token).status == 401
    assert api.post(f"/api/runs/{waiting['runId']}/gates/{GATE}/approval-token", token).status == 401
    assert api.post(f"/api/runs/{waiting['runId']}/cancel", user_token(OWNER)).status == 200


# ------------------------------------------------------------------------------------------ tenant claims
TENANT_VARIANTS: dict[str, Any] = {  # the owner's tenant, as a token might carry it: never the owner
    "padded": f" {OWNER} ",
    "trailing-space": f"{OWNER} ",
    "blank": "   ",
    "nul": f"{OWNER}\u0000",
    "newline": f"{OWNER}\n",
    "traversal": f"{OWNER}/../{INTRUDER}",
    "fullwidth-dash": OWNER.replace("-", "\uff0d"),
    "list": [OWNER],
    "object": {"id": OWNER},
}
ABSENT_TENANT: dict[str, Any] = {"empty": "", "missing": None}


def token_with_tenant(route: HttpRoute, run: dict[str, Any], tenant: Any, context: tuple[Api, Any]) -> str:
    """A correctly signed token whose tenant claim is exactly ``tenant`` (None: no claim at all)."""
    valid = mint(context, route, [*route.scopes, APPROVE], OWNER, claims_for(route, run, "bob"))
    payload = jwt.decode(valid, options={"verify_signature": False})
    payload.pop("tenant_id")
    if tenant is not None:
        payload["tenant_id"] = tenant
    if route.authorizer == "ApprovalTokens":
        return issuer_signed(context[1], context[0], payload)
    return jwt.encode(payload, signing_key(), algorithm="ES256", headers={"typ": "JWT"})


@pytest.mark.parametrize("variant", [*TENANT_VARIANTS, *ABSENT_TENANT])
@pytest.mark.parametrize("route", PROTECTED, ids=route_id)
def test_a_tenant_claim_is_exact_or_refused(
    api: Api, runtime: Any, target: dict[str, Any], route: HttpRoute, variant: str
) -> None:
    path, body = request_for(route, target, runtime, OWNER, "bob")
    tenant = {**TENANT_VARIANTS, **ABSENT_TENANT}[variant]

    reply = api.call(route.method, path, token_with_tenant(route, target, tenant, (api, runtime)), body)

    assert reply.content_type.startswith("application/problem+json"), reply.body
    if variant in ABSENT_TENANT:
        assert reply.status == 401, (route_id(route), variant, reply.body)
    else:
        assert reply.status == 403, (route_id(route), variant, reply.body)
        assert "'tenant_id'" in reply.json()["detail"]
    assert reply.json()["code"] in ("Forbidden", "Unauthorized")  # a problem, never the owner's data


OTHER_TENANTS: dict[str, Any] = {"upper-case": OWNER.upper(), "number": 7}  # valid ids (claims are strings)


@pytest.mark.parametrize("variant", list(OTHER_TENANTS))
def test_a_tenant_claim_is_never_case_folded_or_coerced_to_the_owner(
    api: Api, runtime: Any, target: dict[str, Any], variant: str
) -> None:
    """Another valid tenant id is another tenant: it sees none of the owner's runs."""
    [listing] = [r for r in PROTECTED if route_id(r) == "GET /api/runs"]
    listed = api.get("/api/runs", token_with_tenant(listing, target, OTHER_TENANTS[variant], (api, runtime)))
    assert listed.status == 200, listed.body
    assert target["runId"].encode() not in listed.body
    for route in RUN_ROUTES:
        path, body = request_for(route, target, runtime, OWNER, "bob")
        token = token_with_tenant(route, target, OTHER_TENANTS[variant], (api, runtime))
        reply = api.call(route.method, path, token, body)
        assert reply.status == 404, (route_id(route), reply.body)
