"""The web console's server side over HTTP: its static files (CSP, ETag, nothing outside the static
directory), config.json, the development sign-in of ``taskrunner serve``, the approvals inbox and the gate
page's data (tenant-scoped, redacted, ``canDecide``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from taskrunner.local.api_routes import api_routes
from taskrunner.local.console_sign_in import sign_in_route
from taskrunner.local.devauth import verify_token
from taskrunner.local.http_server import serve
from test_http_api import (
    APPROVE,
    GATE,
    READ,
    RUN,
    Api,
    approve_http,
    gated_pack,
    new_tenant,
    started,
    user_token,
    wait_waiting,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

SECRET_PACK = gated_pack("console-secret").replace(
    "  approvals:",
    "  inputs:\n    - {name: target, type: string, default: prod}\n"
    "  secrets:\n    - {name: deployKey, ref: 'env:CONSOLE_DEPLOY_KEY'}\n  approvals:",
)


@pytest.fixture(scope="module")
def api(runtime: Any) -> Iterator[Api]:
    server = serve([*api_routes(runtime), sign_in_route()], port=0, poll_interval=0.05).start()
    try:
        yield Api(server.url)
    finally:
        server.shutdown()


# ------------------------------------------------------------------------------------------ static files
def test_the_console_is_served_with_a_strict_policy_and_revalidated_by_etag(api: Api) -> None:
    for path in ("/console", "/console/", "/console/index.html"):
        page = api.get(path)
        assert page.status == 200, (path, page.body)
        assert page.content_type == "text/html; charset=utf-8"
        assert b'<script type="module" src="/console/app.js">' in page.body
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"

    script = api.get("/console/app.js")
    assert (script.status, script.content_type) == (200, "text/javascript; charset=utf-8")
    assert api.get("/console/console.css").content_type == "text/css; charset=utf-8"
    again = api.get("/console/app.js", headers={"If-None-Match": script.headers["ETag"]})
    assert (again.status, again.body) == (304, b"")


@pytest.mark.parametrize(
    "path",
    [
        "/console/../template.yaml",
        "/console/%2e%2e/template.yaml",
        "/console/..%2f..%2fpyproject.toml",
        "/console/%2Fetc%2Fpasswd",
        "/console/app.py",
        "/console/app.js%00.html",
        "/console/nothing.js",
        "/console/static/app.js",
    ],
)
def test_unknown_or_hostile_paths_are_404_problems(api: Api, path: str) -> None:
    reply = api.get(path)
    assert reply.status == 404, reply.body
    assert reply.content_type == "application/problem+json"
    assert reply.json()["status"] == 404
    assert b"AWSTemplateFormatVersion" not in reply.body


def test_config_offers_the_development_sign_in_locally(api: Api) -> None:
    reply = api.get("/console/config.json")
    assert reply.status == 200
    assert reply.headers["Cache-Control"] == "no-store"
    assert reply.json() == {"signIn": {"oidc": None, "dev": True}}


# ------------------------------------------------------------------------------------------ development sign-in
def test_the_development_sign_in_mints_a_token_for_the_subject_tenant_and_scopes(api: Api) -> None:
    body = {"subject": "ann@example.com", "tenant": "t-sign-in", "scopes": [READ, APPROVE]}
    reply = api.post("/console/dev-sign-in", body=body)
    assert reply.status == 200, reply.body
    claims = verify_token(reply.json()["token"])
    assert (claims["sub"], claims["tenant_id"], claims["scope"]) == (
        "ann@example.com",
        "t-sign-in",
        f"{READ} {APPROVE}",
    )


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"subject": "ann", "tenant": "t1", "scopes": ["packs.root"]}, 422, "packs.root"),
        ({"subject": "", "tenant": "t1", "scopes": [READ]}, 422, "subject"),
        ({"subject": "ann", "tenant": "bad tenant!", "scopes": [READ]}, 422, "tenant"),
        ({"subject": "ann", "tenant": "t1", "scopes": []}, 422, "scopes"),
        ({"subject": "ann", "tenant": "t1", "scopes": [READ], "admin": True}, 422, "admin"),
    ],
)
def test_a_bad_sign_in_is_refused_naming_the_field(
    api: Api, body: dict[str, Any], status: int, words: str
) -> None:
    reply = api.post("/console/dev-sign-in", body=body)
    assert reply.status == status, reply.body
    assert words in reply.json()["detail"]


def test_a_form_post_cannot_sign_in(api: Api) -> None:
    reply = api.call(
        "POST", "/console/dev-sign-in", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert reply.status == 415


# ------------------------------------------------------------------------------------------ inbox and gate page
def test_the_inbox_lists_the_tenants_waiting_gates_and_who_can_decide(api: Api, runtime: Any) -> None:
    tenant, other = new_tenant(), new_tenant()
    # one gate opens after the other (the inbox orders gates by when they opened)
    first = started(api, user_token(tenant, RUN), gated_pack("inbox-one", required=2))
    wait_waiting(api, user_token(tenant, READ), first["runId"])
    second = started(api, user_token(tenant, RUN), gated_pack("inbox-two"))
    elsewhere = started(api, user_token(other, RUN), gated_pack("inbox-other"))
    for run, owner in ((second, tenant), (elsewhere, other)):
        wait_waiting(api, user_token(owner, READ), run["runId"])
    assert approve_http(api, runtime, tenant, "alice", first).status == 200

    alice = api.get("/api/approvals", user_token_for(tenant, "alice", APPROVE)).json()["items"]
    bob = api.get("/api/approvals", user_token_for(tenant, "bob", APPROVE)).json()["items"]
    reader = api.get("/api/approvals", user_token(tenant, READ)).json()["items"]

    assert [i["runId"] for i in alice] == [second["runId"], first["runId"]]  # newest gate first
    assert {i["runId"]: i["canDecide"] for i in alice} == {first["runId"]: False, second["runId"]: True}
    assert all(i["canDecide"] for i in bob)
    assert not any(i["canDecide"] for i in reader)  # no packs.approve
    one = next(i for i in alice if i["runId"] == first["runId"])
    assert (one["packName"], one["gateId"], one["requiredCount"], one["message"]) == (
        "inbox-one",
        GATE,
        2,
        "ship it?",
    )
    assert [(d["approver"], d["decision"]) for d in one["decisions"]] == [("alice", "approve")]
    assert one["planHash"] == first["planHash"]
    assert one["grants"] == [APPROVE]
    assert api.get("/api/approvals", user_token(tenant, RUN)).status == 403
    for run, owner in ((first, tenant), (second, tenant), (elsewhere, other)):
        api.post(f"/api/runs/{run['runId']}/cancel", user_token(owner, RUN), {})


def user_token_for(tenant: str, subject: str, *scopes: str) -> str:
    from taskrunner.local.devauth import mint_token

    return mint_token(scopes, tenant, {"sub": subject})


def test_the_gate_page_data_shows_inputs_without_secret_values_and_the_steps_to_come(
    api: Api, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSOLE_DEPLOY_KEY", "deploy-key-never-shown")
    tenant = new_tenant()
    run = started(api, user_token(tenant, RUN), SECRET_PACK, {"target": "staging"})
    wait_waiting(api, user_token(tenant, READ), run["runId"])

    reply = api.get(f"/api/runs/{run['runId']}/gates/{GATE}", user_token_for(tenant, "carol", APPROVE))

    assert reply.status == 200, reply.body
    gate = reply.json()
    assert b"deploy-key-never-shown" not in reply.body
    assert gate["inputs"] == {"target": "staging", "deployKey": "<secret env:CONSOLE_DEPLOY_KEY>"}
    assert (gate["pack"]["name"], gate["status"], gate["canDecide"]) == ("console-secret", "waiting", True)
    assert [s["stepId"] for s in gate["remainingSteps"]] == ["after"]
    assert 3500 < gate["secondsLeft"] <= 3600
    assert api.get(f"/api/runs/{run['runId']}/gates/{GATE}", user_token(new_tenant(), READ)).status == 404
    assert api.get(f"/api/runs/{run['runId']}/gates/nope", user_token(tenant, READ)).status == 404
    api.post(f"/api/runs/{run['runId']}/cancel", user_token(tenant, RUN), {})


# ------------------------------------------------------------------------------------------ evidence verification
def test_the_evidence_route_says_whether_the_bundle_verifies_against_the_deployment_key(
    api: Api, runtime: Any
) -> None:
    from taskrunner.keys import evidence_key

    tenant = new_tenant()
    run = started(api, user_token(tenant, RUN), gated_pack("console-evidence"))
    wait_waiting(api, user_token(tenant, READ), run["runId"])
    assert approve_http(api, runtime, tenant, "alice", run).status == 200
    assert runtime.wait(run["runId"], timeout=30).status == "succeeded"
    path = f"/api/runs/{run['runId']}/evidence"

    sealed = api.get(path, user_token(tenant, READ)).json()["verification"]
    key = evidence_key(run["runId"])
    original = runtime.svc.artifacts.open(key).read()
    runtime.svc.artifacts.put_bytes(key, original[:-64] + bytes(64), "application/gzip")  # tampered
    try:
        tampered = api.get(path, user_token(tenant, READ)).json()["verification"]
    finally:
        runtime.svc.artifacts.put_bytes(key, original, "application/gzip")

    assert (sealed["verified"], sealed["failures"]) == (True, [])
    assert tampered["verified"] is False
    assert tampered["failures"]
    assert tampered["summary"].startswith(f"{len(tampered['failures'])} problem(s): ")
