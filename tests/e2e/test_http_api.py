"""The HTTP API end to end over real HTTP against the local server (the SAM handlers behind it).

Submit, idempotency, problems for bad manifests, run listing and detail, logs as SSE / NDJSON / JSON
pages, artifacts with digests, tenant isolation and the OpenAPI document. The helpers at the top are
shared by the other HTTP end-to-end modules of this directory.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import re
import tarfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import PACKS, wait_for
from taskrunner.local.api_routes import api_routes
from taskrunner.local.approvers import ensure_approver, signed_envelope
from taskrunner.local.devauth import mint_token
from taskrunner.local.http_server import serve
from taskrunner.local.template import find_template, load_template

# handlers that record no metric make Powertools warn on every call; that is expected here
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

READ, RUN, APPROVE, WRITE = "packs.read", "packs.run", "packs.approve", "packs.write"
PLAN_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
GATE = "review"

# ------------------------------------------------------------------------------------------ shared helpers


def gated_pack(
    name: str = "gated", *, required: int = 1, expires: str = "PT1H", grants: tuple[str, ...] = (APPROVE,)
) -> str:
    """A pack that runs ``before``, waits on the approval gate ``review``, then runs ``after``."""
    return f"""\
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {{name: {name}, version: 1.0.0}}
spec:
  approvals:
    - {{id: sign-off, grants: [{", ".join(grants)}], requiredCount: {required}, expiresAfter: {expires}}}
  sandbox: {{mode: sealed, egressAllowlist: []}}
  steps:
    - {{id: before, run: {{uses: noop, with: {{phase: before}}}}}}
    - id: {GATE}
      gate.approval: {{approval: sign-off, message: "ship it?"}}
    - {{id: after, run: {{uses: noop, with: {{phase: after}}}}}}
"""


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def content_type(self) -> str:
        return str(self.headers.get("Content-Type") or "")

    def json(self) -> Any:
        return json.loads(self.body)


class SseStream:
    """An open ``text/event-stream`` response, read event by event as the server flushes them."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self.connection, self.response = connection, response
        self.retry: str | None = None

    def events(self) -> Iterator[dict[str, str]]:
        """``{id, event, data}`` per event until the server closes the stream."""
        block: dict[str, str] = {}
        while True:
            raw = self.response.readline()
            if not raw:
                return
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                if "data" in block:
                    yield block
                block = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "retry":
                self.retry = value
            elif name == "data" and "data" in block:
                block["data"] += "\n" + value
            else:
                block[name] = value

    def close(self) -> None:
        self.connection.close()


class Api:
    """A tiny HTTP client for the local API server."""

    def __init__(self, url: str) -> None:
        split = urllib.parse.urlsplit(url)
        self.url, self.host, self.port = url, str(split.hostname), int(split.port or 80)

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            sent.setdefault("Content-Type", "application/json")
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> Reply:
        return self.call("GET", path, token, **kwargs)

    def post(self, path: str, token: str | None = None, body: Any = None, **kwargs: Any) -> Reply:
        return self.call("POST", path, token, body, **kwargs)

    def stream(
        self, path: str, token: str, last_event_id: str | None = None, timeout: float = 30
    ) -> SseStream:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        assert response.status == 200, (response.status, response.read())
        assert response.headers["Content-Type"].startswith("text/event-stream")
        return SseStream(connection, response)


def user_token(tenant: str, *scopes: str, ttl: int = 3600) -> str:
    return mint_token(scopes or (READ, RUN), tenant, ttl_seconds=ttl)


def submit_http(
    api: Api, token: str, manifest: str, inputs: dict[str, Any] | None = None, key: str | None = None
) -> Reply:
    body: dict[str, Any] = {"manifest": manifest, "inputs": inputs or {}}
    if key is not None:
        body["idempotencyKey"] = key
    return api.post("/api/runs", token, body)


def started(api: Api, token: str, manifest: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    reply = submit_http(api, token, manifest, inputs)
    assert reply.status == 202, reply.body
    return dict(reply.json())


def run_detail(api: Api, token: str, run_id: str) -> dict[str, Any]:
    reply = api.get(f"/api/runs/{run_id}", token)
    assert reply.status == 200, reply.body
    return dict(reply.json())


def step_of(detail: Mapping[str, Any], step_id: str) -> dict[str, Any]:
    return dict(next(s for s in detail["steps"] if s["stepId"] == step_id))


def wait_waiting(api: Api, token: str, run_id: str, gate: str = GATE) -> dict[str, Any]:
    """The run detail once ``gate`` is open (``waiting`` and listed in ``pendingGates``)."""

    def probe() -> dict[str, Any] | None:
        detail = run_detail(api, token, run_id)
        listed = any(g["gateId"] == gate for g in detail["pendingGates"])
        return detail if listed and step_of(detail, gate)["status"] == "waiting" else None

    result: dict[str, Any] = wait_for(probe, timeout=30)
    return result


def log_events(api: Api, token: str, run_id: str) -> list[dict[str, Any]]:
    """Every log event of the run, via JSON pages."""
    reply = api.get(f"/api/runs/{run_id}/logs?limit=5000", token, headers={"Accept": "application/json"})
    assert reply.status == 200, reply.body
    return list(reply.json()["items"])


def identity_token(tenant: str, approver: str, scopes: tuple[str, ...] = (APPROVE,)) -> str:
    """An identity provider's token (a development token) for ``approver``."""
    return mint_token(scopes, tenant, {"sub": approver})


def exchange_http(
    api: Api, tenant: str, approver: str, run_id: str, gate: str = GATE, scopes: tuple[str, ...] = (APPROVE,)
) -> Reply:
    """``approver`` exchanges an identity token for an approval token of ``gate``."""
    path = f"/api/runs/{run_id}/gates/{gate}/approval-token"
    return api.post(path, identity_token(tenant, approver, scopes), {})


def approval_token(
    api: Api, tenant: str, approver: str, run_id: str, gate: str = GATE, scopes: tuple[str, ...] = (APPROVE,)
) -> str:
    """An approval token for one run and gate, from the exchange route."""
    reply = exchange_http(api, tenant, approver, run_id, gate, scopes)
    assert reply.status == 200, reply.body
    return str(reply.json()["token"])


def issuer_signed(rt: Any, api: Api, claims: Mapping[str, Any]) -> str:
    """A token the local issuer's key signs with exactly ``claims`` on top of valid defaults."""
    from taskrunner.api.issuer import token_signer
    from taskrunner.evidence.jws import sign_jwt

    now = int(time.time())
    defaults = {"iss": api.url, "aud": "taskrunner-approvals", "iat": now, "nbf": now, "exp": now + 300}
    signer = token_signer((rt.home / "keys" / "approval-issuer.pem").as_uri())
    return sign_jwt(signer, {**defaults, **claims})


def decision_body(
    rt: Any,
    tenant: str,
    approver: str,
    run_id: str,
    plan_hash: str,
    gate: str = GATE,
    decision: str = "approve",
    reason: str = "looks good",
) -> dict[str, Any]:
    """An approve request whose envelope ``approver`` signed with its key trusted for ``tenant``."""
    signer = ensure_approver(rt.svc, rt.home, tenant, approver)
    envelope = signed_envelope(
        signer,
        run_id=run_id,
        gate_id=gate,
        plan_hash=plan_hash,
        tenant_id=tenant,
        decision=decision,  # type: ignore[arg-type]
        reason=reason,
        approver=approver,
    )
    return {
        "gateId": gate,
        "decision": decision,
        "reason": reason,
        "planHash": plan_hash,
        "envelope": envelope,
    }


def approve_http(
    api: Api, rt: Any, tenant: str, approver: str, run: Mapping[str, Any], decision: str = "approve"
) -> Reply:
    """``approver`` decides: an approval token from the exchange (its refusal is the answer), then the decision."""
    body = decision_body(rt, tenant, approver, run["runId"], run["planHash"], decision=decision)
    exchanged = exchange_http(api, tenant, approver, run["runId"])
    if exchanged.status != 200:
        return exchanged
    return api.post(f"/api/runs/{run['runId']}/approve", exchanged.json()["token"], body)


def read_url(url: str) -> bytes:
    """The bytes behind a download URL the API handed out (``file://`` locally)."""
    with urllib.request.urlopen(url, timeout=30) as response:
        data: bytes = response.read()
        return data


def bundle_member(bundle: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as archive:
        member = archive.extractfile(name)
        assert member is not None, name
        return member.read()


@pytest.fixture(scope="module")
def api(runtime: Any) -> Iterator[Api]:
    """The local API server in front of the module's runtime, on a free port."""
    server = serve(api_routes(runtime), port=0, poll_interval=0.05).start()
    try:
        yield Api(server.url)
    finally:
        server.shutdown()


# ------------------------------------------------------------------------------------------ submit


def test_submit_is_202_with_run_id_plan_hash_and_status(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    token = user_token(tenant, READ, RUN)
    manifest = (PACKS / "hello.yaml").read_text(encoding="utf-8")

    planned = api.post("/api/plans", token, {"manifest": manifest, "inputs": {"who": "http"}})
    reply = submit_http(api, token, manifest, {"who": "http"})

    assert reply.status == 202, reply.body
    assert reply.content_type.startswith("application/json")
    body = reply.json()
    assert set(body) == {"runId", "planHash", "status"}
    assert PLAN_HASH.match(body["planHash"])
    assert body["planHash"] == planned.json()["planHash"]  # the plan that runs is the plan shown
    assert body["status"] in ("pending", "running")
    final = runtime.wait(body["runId"], timeout=60)
    assert (final.tenantId, final.status, final.planHash) == (tenant, "succeeded", body["planHash"])
    detail = run_detail(api, token, body["runId"])
    assert (detail["status"], detail["tenantId"]) == ("succeeded", tenant)


def test_an_idempotency_key_returns_the_same_run(api: Api, runtime: Any) -> None:
    tenant, other = new_tenant(), new_tenant()
    token = user_token(tenant)
    manifest = (PACKS / "hello.yaml").read_text(encoding="utf-8")

    first = submit_http(api, token, manifest, key="nightly-42")
    again = submit_http(api, token, manifest, key="nightly-42")
    elsewhere = submit_http(api, user_token(other), manifest, key="nightly-42")

    assert first.status == 202, first.body
    assert again.status in (200, 202), again.body
    assert again.json()["runId"] == first.json()["runId"]
    assert again.json()["planHash"] == first.json()["planHash"]
    assert elsewhere.status == 202
    assert elsewhere.json()["runId"] != first.json()["runId"]
    listed = api.get("/api/runs", token).json()["items"]
    assert [r["runId"] for r in listed] == [first.json()["runId"]]  # one run, not two
    for run_id in (first.json()["runId"], elsewhere.json()["runId"]):
        assert runtime.wait(run_id, timeout=60).status == "succeeded"


@pytest.mark.parametrize(
    ("manifest", "path", "line"),
    [
        pytest.param(
            "apiVersion: stellaops.io/pack.v1\n"
            "kind: TaskPack\n"
            "metadata: {name: dup, version: 1.0.0}\n"
            "spec:\n"
            "  sandbox: {mode: sealed, egressAllowlist: []}\n"
            "  steps:\n"
            "    - id: a\n"
            "      run: {uses: noop}\n"
            "    - id: a\n"
            "      run: {uses: noop}\n",
            "spec.steps[1].id",
            9,
            id="duplicate-step-id",
        ),
        pytest.param(
            "apiVersion: stellaops.io/pack.v1\n"
            "kind: TaskPack\n"
            "metadata: {name: open, version: 1.0.0}\n"
            "spec:\n"
            "  steps:\n"
            "    - {id: a, run: {uses: noop}}\n",
            "spec.sandbox",
            4,
            id="missing-sandbox",
        ),
        pytest.param(
            "apiVersion: stellaops.io/pack.v1\n"
            "kind: TaskPack\n"
            "metadata: {name: typo, version: 1.0.0}\n"
            "spec:\n"
            "  sandbox: {mode: sealed, egressAllowlist: []}\n"
            "  steps:\n"
            "    - id: a\n"
            "      run: {uses: noop}\n"
            "      retries: {maxAttempts: zero}\n",
            "spec.steps[0].retries.maxAttempts",
            9,
            id="wrong-type",
        ),
    ],
)
def test_a_bad_manifest_is_a_problem_naming_the_field_and_line(
    api: Api, manifest: str, path: str, line: int
) -> None:
    tenant = new_tenant()
    token = user_token(tenant)

    reply = submit_http(api, token, manifest)

    assert reply.status in (400, 422), reply.body
    assert reply.content_type.startswith("application/problem+json")
    problem = reply.json()
    assert problem["status"] == reply.status
    assert problem["code"]
    assert problem["detail"]
    assert problem["remediation"]
    assert problem["type"].endswith(problem["code"])
    located = [(e.get("path"), e.get("line")) for e in problem["errors"]]
    # the offending field is named, and the line is within a line of where it is written
    assert any(p == path and isinstance(n, int) and abs(n - line) <= 1 for p, n in located), located
    assert api.get("/api/runs", token).json()["items"] == []  # nothing was created


def test_bad_inputs_and_bad_bodies_are_problems_naming_the_field(api: Api) -> None:
    tenant = new_tenant()
    token = user_token(tenant)
    hello = (PACKS / "hello.yaml").read_text(encoding="utf-8")

    typed = submit_http(api, token, hello, {"who": 5})
    neither = api.post("/api/runs", token, {"inputs": {}})
    unknown = api.post("/api/runs", token, {"manifest": hello, "input": {}})

    assert typed.status in (400, 422)
    assert typed.content_type.startswith("application/problem+json")
    assert [e["path"] for e in typed.json()["errors"]] == ["inputs.who"]
    for reply, field in ((neither, "body"), (unknown, "body.input")):
        assert reply.status in (400, 422), reply.body
        assert reply.content_type.startswith("application/problem+json")
        assert any(str(e["path"]).startswith(field) for e in reply.json()["errors"]), reply.json()
    assert api.get("/api/runs", token).json()["items"] == []


# ------------------------------------------------------------------------------------------ reads


def test_runs_are_listed_newest_first_with_cursor_paging(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    token = user_token(tenant)
    hello = (PACKS / "hello.yaml").read_text(encoding="utf-8")
    submitted = []
    for who in ("one", "two", "three"):
        run_id = started(api, token, hello, {"who": who})["runId"]
        runtime.wait(run_id, timeout=60)  # finished runs: nothing moves them in the listing
        submitted.append(run_id)

    seen, cursor, pages = [], None, 0
    while True:
        query = "?limit=2" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        page = api.get(f"/api/runs{query}", token)
        assert page.status == 200, page.body
        pages += 1
        seen.extend(page.json()["items"])
        cursor = page.json().get("nextCursor")
        if not cursor:
            break

    assert pages == 2
    assert [r["runId"] for r in seen] == submitted[::-1]
    updated = [r["updatedAt"] for r in seen]
    assert updated == sorted(updated, reverse=True)
    assert {r["status"] for r in seen} == {"succeeded"}
    assert api.get("/api/runs?limit=0", token).status in (400, 422)


def test_a_waiting_gate_reads_waiting_and_is_listed_in_pending_gates(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    token = user_token(tenant)
    run = started(api, token, gated_pack(required=2))

    detail = wait_waiting(api, token, run["runId"])

    assert detail["status"] == "running"
    assert [(s["stepId"], s["kind"], s["status"]) for s in detail["steps"]] == [
        ("before", "run", "succeeded"),
        (GATE, "gate.approval", "waiting"),
        ("after", "run", "pending"),
    ]
    assert [a["number"] for a in step_of(detail, "before")["attempts"]] == [1]
    [gate] = detail["pendingGates"]
    assert (gate["gateId"], gate["approvalId"], gate["requiredCount"], gate["approvals"]) == (
        GATE,
        "sign-off",
        2,
        0,
    )
    assert gate["expiresAt"].endswith("Z")
    assert api.post(f"/api/runs/{run['runId']}/cancel", token).status == 200
    assert runtime.wait(run["runId"], timeout=30).status == "cancelled"


def test_artifacts_are_listed_with_digests_and_evidence_is_downloadable(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    token = user_token(tenant)
    run = started(api, token, (PACKS / "hello.yaml").read_text(encoding="utf-8"), {"who": "digest"})
    runtime.wait(run["runId"], timeout=60)

    reply = api.get(f"/api/runs/{run['runId']}/artifacts", token)
    evidence = api.get(f"/api/runs/{run['runId']}/evidence", token)

    assert reply.status == 200, reply.body
    items = {a["name"]: a for a in reply.json()["items"]}
    report = items["report"]
    content = read_url(report["url"])
    assert report["sha256"] == hashlib.sha256(content).hexdigest()
    assert report["size"] == len(content)
    assert report["status"]
    assert report["type"]
    assert report["storedPath"]
    assert json.loads(content) == {"greeting": "hello digest"}
    assert evidence.status == 200, evidence.body
    bundle = read_url(evidence.json()["url"])
    assert evidence.json()["sha256"].removeprefix("sha256:") == hashlib.sha256(bundle).hexdigest()
    assert evidence.json()["size"] == len(bundle)


# ------------------------------------------------------------------------------------------ logs


def test_sse_delivers_events_as_they_are_appended_and_resumes_from_last_event_id(
    api: Api, runtime: Any
) -> None:
    tenant = new_tenant()
    token = user_token(tenant)
    run = started(api, token, gated_pack())
    path = f"/api/runs/{run['runId']}/logs"

    stream = api.stream(path, token)
    live: list[dict[str, str]] = []
    try:
        events = stream.events()
        for event in events:  # the stream stays open while the run waits on the gate
            live.append(event)
            if event["event"] == "gate.pending":
                break
        waiting_at = int(live[-1]["id"])
        # everything after this point is appended only now, while the stream is open
        assert approve_http(api, runtime, tenant, "alice", run).status == 200
        live.extend(events)  # ...and arrives on the same connection until the run is over
    finally:
        stream.close()

    stored = [e.sequence for e in runtime.svc.store.read_logs(run["runId"])]
    ids = [int(e["id"]) for e in live]
    assert ids == stored == list(range(1, len(stored) + 1))  # no gap, no duplicate, nothing missed
    assert stream.retry is not None
    assert int(stream.retry) > 0
    assert live[-1]["event"] == "run.completed"
    types_after = [e["event"] for e in live if int(e["id"]) > waiting_at]
    assert types_after[0] == "gate.approved"
    assert "step.started" in types_after
    for event in live:
        data = json.loads(event["data"])
        assert (data["sequence"], data["eventType"], data["runId"]) == (
            int(event["id"]),
            event["event"],
            run["runId"],
        )

    middle = ids[len(ids) // 2]
    resumed = api.stream(path, token, last_event_id=str(middle))
    try:
        rest = [int(e["id"]) for e in resumed.events()]
    finally:
        resumed.close()
    assert rest == stored[middle:]  # exactly the events after Last-Event-ID, then the stream ends

    at_end = api.stream(path, token, last_event_id=str(stored[-1]))
    try:
        assert list(at_end.events()) == []
    finally:
        at_end.close()
    bad = api.get(path, token, headers={"Accept": "text/event-stream", "Last-Event-ID": "abc"})
    assert bad.status in (400, 422)
    assert bad.content_type.startswith("application/problem+json")


def test_ndjson_and_json_pages_give_the_same_gapless_log(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    token = user_token(tenant)
    run = started(api, token, (PACKS / "hello.yaml").read_text(encoding="utf-8"))
    runtime.wait(run["runId"], timeout=60)
    path = f"/api/runs/{run['runId']}/logs"
    stored = [e.model_dump(mode="json", exclude_none=True) for e in runtime.svc.store.read_logs(run["runId"])]

    ndjson = api.get(path, token, headers={"Accept": "application/x-ndjson"})
    assert ndjson.status == 200
    assert ndjson.content_type.startswith("application/x-ndjson")
    lines = [json.loads(line) for line in ndjson.body.decode("utf-8").splitlines()]

    paged, after, complete = [], 0, False
    while not complete:
        page = api.get(f"{path}?limit=4&after={after}", token, headers={"Accept": "application/json"})
        assert page.status == 200
        assert page.content_type.startswith("application/json")
        body = page.json()
        assert len(body["items"]) <= 4
        paged.extend(body["items"])
        complete = body["complete"]
        if not complete:
            assert body["nextCursor"] == str(body["items"][-1]["sequence"])
            after = int(body["nextCursor"])

    sequences = list(range(1, len(stored) + 1))
    assert [e["sequence"] for e in lines] == [e["sequence"] for e in paged] == sequences
    assert [e["eventType"] for e in lines] == [e["eventType"] for e in stored]
    assert [e["eventType"] for e in paged] == [e["eventType"] for e in stored]
    assert lines[0]["eventType"] == "run.created"
    assert lines[-1]["eventType"] == "run.completed"
    tail = api.get(f"{path}?after=3", token, headers={"Accept": "application/x-ndjson"})
    assert [json.loads(x)["sequence"] for x in tail.body.decode().splitlines()] == sequences[3:]


# ------------------------------------------------------------------------------------------ auth, tenancy


def test_no_or_bad_token_is_401_and_a_missing_scope_is_403(api: Api) -> None:
    tenant = new_tenant()
    hello = (PACKS / "hello.yaml").read_text(encoding="utf-8")
    valid = user_token(tenant)
    head, payload, signature = valid.split(".")
    forged = f"{head}.{payload}.{signature[::-1]}"

    missing = api.post("/api/runs", None, {"manifest": hello, "inputs": {}})
    garbage = api.post("/api/runs", "not-a-jwt", {"manifest": hello, "inputs": {}})
    tampered = api.post("/api/runs", forged, {"manifest": hello, "inputs": {}})
    read_only = api.post("/api/runs", user_token(tenant, READ), {"manifest": hello, "inputs": {}})

    for reply in (missing, garbage, tampered):
        assert reply.status == 401, reply.body
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert read_only.status == 403, read_only.body
    assert "insufficient_scope" in read_only.headers["WWW-Authenticate"]
    assert "packs.run" in read_only.headers["WWW-Authenticate"]
    assert api.get("/api/runs", user_token(tenant)).json()["items"] == []  # nothing got through


def test_another_tenants_run_is_404_everywhere_and_stays_untouched(api: Api, runtime: Any) -> None:
    owner, intruder = new_tenant(), new_tenant()
    own = user_token(owner)
    foreign = mint_token((READ, RUN, APPROVE), intruder)
    finished = started(api, own, (PACKS / "hello.yaml").read_text(encoding="utf-8"))
    runtime.wait(finished["runId"], timeout=60)
    waiting = started(api, own, gated_pack())
    wait_waiting(api, own, waiting["runId"])

    for suffix in ("", "/logs", "/artifacts", "/evidence"):
        assert api.get(f"/api/runs/{finished['runId']}{suffix}", own).status == 200
        reply = api.get(f"/api/runs/{finished['runId']}{suffix}", foreign)
        assert reply.status == 404, (suffix, reply.body)
        assert reply.content_type.startswith("application/problem+json")
    sse = api.get(f"/api/runs/{finished['runId']}/logs", foreign, headers={"Accept": "text/event-stream"})
    assert sse.status == 404

    # the intruder's approver is trusted in its own tenant and signs a well-formed decision
    body = decision_body(runtime, intruder, "mallory", waiting["runId"], waiting["planHash"])
    assert exchange_http(api, intruder, "mallory", waiting["runId"]).status == 404
    bound = issuer_signed(  # even an approval token for the run, if one leaked, finds no run of its tenant
        runtime,
        api,
        {
            "sub": "mallory",
            "tenant_id": intruder,
            "scope": APPROVE,
            "pack_run_id": waiting["runId"],
            "pack_gate_id": GATE,
            "pack_plan_hash": waiting["planHash"],
        },
    )
    assert api.post(f"/api/runs/{waiting['runId']}/approve", bound, body).status == 404
    assert api.post(f"/api/runs/{waiting['runId']}/cancel", foreign).status == 404
    assert api.post(f"/api/runs/{waiting['runId']}/resume", foreign).status == 404
    assert waiting["runId"] not in {r["runId"] for r in api.get("/api/runs", foreign).json()["items"]}

    detail = run_detail(api, own, waiting["runId"])
    assert detail["status"] == "running"
    assert step_of(detail, GATE)["status"] == "waiting"
    assert detail["pendingGates"][0]["approvals"] == 0
    assert runtime.svc.store.get_gate(waiting["runId"], GATE).decisions == []
    assert api.post(f"/api/runs/{waiting['runId']}/cancel", own).status == 200


# ------------------------------------------------------------------------------------------ OpenAPI


def template_routes() -> list[tuple[str, str]]:
    """The TaskRunner API's routes (not the issuer's own API; not the console's static files)."""
    routes = load_template(find_template()).routes()
    return [
        (r.method.lower(), r.path)
        for r, _ in routes
        if r.api == "TaskRunnerApi" and not r.path.startswith("/console")
    ]


def test_the_openapi_document_is_valid_3_1_and_covers_every_route(api: Api) -> None:
    from openapi_spec_validator import validate

    reply = api.get("/.well-known/openapi")  # public: no token

    assert reply.status == 200, reply.body
    assert reply.content_type.startswith("application/json")
    document = reply.json()
    validate(document)  # raises on an invalid document
    assert document["openapi"].startswith("3.1")
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    missing = [route for route in template_routes() if route not in documented]
    assert missing == []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            success = [code for code in operation["responses"] if str(code).startswith("2")]
            assert success, f"{method.upper()} {path} documents no success response"
            if "{runId}" in path:
                assert "404" in operation["responses"], f"{method.upper()} {path}"
    submit = document["paths"]["/api/runs"]["post"]
    assert "202" in submit["responses"]
    schemas = document["components"]["schemas"]
    for model in (
        "SubmitRunRequest",
        "SubmitRunResponse",
        "RunDetail",
        "RunList",
        "ApproveRequest",
        "ApprovalTokenOut",
    ):
        assert model in schemas, model
    assert {"runId", "planHash", "status"} <= set(schemas["SubmitRunResponse"]["properties"])


def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    token = user_token(new_tenant())

    missing = api.get("/api/nothing-here", token)
    wrong_method = api.call("DELETE", "/api/runs", token)

    assert missing.status == 404
    assert missing.content_type.startswith("application/problem+json")
    assert wrong_method.status == 405
    assert "GET" in wrong_method.headers["Allow"]
