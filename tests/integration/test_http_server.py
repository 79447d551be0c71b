"""The local API Gateway stand-in, end to end over real HTTP, with a Powertools handler behind it."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from cryptography.hazmat.primitives.asymmetric import ec
from taskrunner.api.auth import Scope, principal_from_event, require_scopes
from taskrunner.api.http import new_app
from taskrunner.api.models import RunSummary, SubmitRunRequest, SubmitRunResponse
from taskrunner.api.problems import PROBLEM_JSON
from taskrunner.api.streams import log_response, negotiate_log_format, parse_last_event_id
from taskrunner.errors import ConfigurationError, NotFound
from taskrunner.local.devauth import mint_token
from taskrunner.local.http_server import LISTEN_BACKLOG, LocalApiServer, Route, serve

PLAN_HASH = "sha256:" + "0" * 64
PROBLEM_FIELDS = ("type", "title", "status", "detail", "code", "remediation")


class FakeRuns:
    """In-memory runs per tenant with an append-only log."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.log_polls = 0

    def create(self, tenant: str, run_id: str) -> None:
        with self.lock:
            self.runs[(tenant, run_id)] = {"events": [], "done": False}

    def append(self, tenant: str, run_id: str, event_type: str, *, done: bool = False) -> None:
        with self.lock:
            run = self.runs[(tenant, run_id)]
            sequence = len(run["events"]) + 1
            run["events"].append(
                {
                    "runId": run_id,
                    "sequence": sequence,
                    "timestamp": "2026-01-02T03:04:05.000Z",
                    "eventType": event_type,
                    "level": "info",
                    "message": f"{event_type} #{sequence}",
                }
            )
            run["done"] = done

    def snapshot(self, tenant: str, run_id: str, after: int | None) -> tuple[list[dict[str, Any]], bool]:
        with self.lock:
            run = self.runs.get((tenant, run_id))
            if run is None:
                raise NotFound(f"Run {run_id} not found.", remediation="List your runs with GET /api/runs.")
            self.log_polls += 1
            events = [e for e in run["events"] if after is None or e["sequence"] > after]
            return events, run["done"]


def make_app(runs: FakeRuns) -> APIGatewayHttpResolver:
    app = new_app()

    @app.post("/api/runs", status_code=202)
    def submit(body: SubmitRunRequest) -> SubmitRunResponse:
        principal = principal_from_event(app.current_event)
        require_scopes(principal, Scope.RUN)
        run_id = f"run-{len(runs.runs) + 1}"
        runs.create(principal.tenant_id, run_id)
        return SubmitRunResponse(runId=run_id, planHash=PLAN_HASH, status="pending")

    @app.get("/api/runs/<runId>")
    def get_run(runId: str) -> RunSummary:
        principal = principal_from_event(app.current_event)
        runs.snapshot(principal.tenant_id, runId, None)
        return RunSummary(
            runId=runId,
            packName="p",
            packVersion="1",
            planHash=PLAN_HASH,
            status="running",
            requestedAt="2026-01-02T03:04:05.000Z",
            updatedAt="2026-01-02T03:04:05.000Z",
        )

    @app.get("/api/runs/<runId>/logs")
    def logs(runId: str) -> Response[str]:
        principal = principal_from_event(app.current_event)
        event = app.current_event
        after = parse_last_event_id(
            event.headers.get("last-event-id") or event.get_query_string_value("after")
        )
        items, done = runs.snapshot(principal.tenant_id, runId, after)
        return log_response(items, fmt=negotiate_log_format(event.headers.get("accept")), complete=done)

    @app.get("/api/echo/<name>")
    def echo(name: str) -> dict[str, Any]:
        return app.current_event.raw_event

    @app.get("/.well-known/openapi")
    def openapi() -> Response[str]:
        return Response(200, "application/json", app.get_openapi_json_schema(title="TaskRunner", version="1"))

    return app


@pytest.fixture
def runs() -> FakeRuns:
    return FakeRuns()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs: FakeRuns) -> Iterator[LocalApiServer]:
    monkeypatch.setenv("TASKRUNNER_HOME", str(tmp_path))
    app = make_app(runs)

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        return app.resolve(event, None)  # type: ignore[arg-type]

    def crash(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("handler exploded")

    routes = [
        Route("POST", "/api/runs", (Scope.RUN.value,), True, invoke),
        Route("GET", "/api/runs/{runId}", (Scope.READ.value,), True, invoke),
        Route("GET", "/api/runs/{runId}/logs", (Scope.READ.value,), True, invoke),
        Route("GET", "/api/echo/{name}", (), True, invoke),
        Route("POST", "/api/crash", (), False, crash),
        Route("GET", "/.well-known/openapi", (), False, invoke),
    ]
    with serve(routes, port=0, poll_interval=0.05) as running:
        yield running


def request(
    server: LocalApiServer,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method, headers=headers or {})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None and "Content-Type" not in (headers or {}):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            status, got_headers, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as error:
        status, got_headers, raw = error.code, dict(error.headers), error.read()
    ctype = got_headers.get("Content-Type", "")
    return status, got_headers, json.loads(raw) if "json" in ctype and raw else raw


def tok(*scopes: str, tenant: str = "acme", **kw: Any) -> str:
    return mint_token(scopes or ("packs.read", "packs.run"), tenant, **kw)


# --- authorizer ---------------------------------------------------------------------------------


def test_missing_token_is_401_like_api_gateway(server: LocalApiServer) -> None:
    status, headers, body = request(server, "POST", "/api/runs", body={"packRef": "p"})
    assert (status, headers["Content-Type"], body["code"]) == (401, PROBLEM_JSON, "Unauthorized")
    assert set(PROBLEM_FIELDS) <= body.keys()
    assert "bearer token" in body["detail"]
    assert headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_token_is_401_with_the_reason(server: LocalApiServer) -> None:
    status, headers, body = request(server, "GET", "/api/runs/x", token=tok(ttl_seconds=-30))
    assert (status, headers["Content-Type"], body["code"]) == (401, PROBLEM_JSON, "Unauthorized")
    assert "expired" in body["detail"]
    assert "taskrunner token" in body["remediation"]
    assert "expired" in headers["WWW-Authenticate"]


def test_bad_signature_is_401(server: LocalApiServer) -> None:
    now = int(time.time())
    claims = {
        "iss": "taskrunner-local",
        "aud": "taskrunner",
        "sub": "mallory",
        "iat": now,
        "exp": now + 60,
        "tenant_id": "acme",
        "scope": "packs.read packs.run",
    }
    forged = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    status, headers, body = request(server, "GET", "/api/runs/x", token=forged)
    assert (status, body["code"], body["instance"]) == (401, "Unauthorized", "/api/runs/x")
    assert "signature" in headers["WWW-Authenticate"]


def test_token_without_any_route_scope_is_403(server: LocalApiServer) -> None:
    status, headers, body = request(
        server, "POST", "/api/runs", token=tok("packs.read"), body={"packRef": "p"}
    )
    assert (status, headers["Content-Type"], body["code"]) == (403, PROBLEM_JSON, "Forbidden")
    assert set(PROBLEM_FIELDS) <= body.keys()
    assert "packs.run" in body["detail"]
    assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]


# --- routing and problems -----------------------------------------------------------------------


def test_unknown_route_is_404_problem(server: LocalApiServer) -> None:
    status, headers, body = request(server, "GET", "/api/nothing-here", token=tok())
    assert status == 404
    assert headers["Content-Type"] == PROBLEM_JSON
    assert (body["code"], body["instance"]) == ("NotFound", "/api/nothing-here")


def test_wrong_method_is_405_problem_with_allow(server: LocalApiServer) -> None:
    status, headers, body = request(server, "DELETE", "/api/runs/run-1", token=tok())
    assert (status, body["code"]) == (405, "MethodNotAllowed")
    assert headers["Allow"] == "GET"


def test_bad_body_is_422_problem_naming_the_field(server: LocalApiServer) -> None:
    status, headers, body = request(
        server, "POST", "/api/runs", token=tok(), body={"packRef": "p", "inputs": "not-an-object"}
    )
    assert status == 422
    assert headers["Content-Type"] == PROBLEM_JSON
    assert body["code"] == "ValidationFailed"
    assert [e["path"] for e in body["errors"]] == ["body.inputs"]


def test_submit_then_read_is_tenant_scoped(server: LocalApiServer) -> None:
    status, _, created = request(server, "POST", "/api/runs", token=tok(), body={"packRef": "p"})
    assert status == 202
    run_id = created["runId"]
    status, _, run = request(server, "GET", f"/api/runs/{run_id}", token=tok())
    assert (status, run["runId"]) == (200, run_id)
    status, _, other = request(server, "GET", f"/api/runs/{run_id}", token=tok(tenant="globex"))
    assert (status, other["code"]) == (404, "NotFound")


def test_handler_crash_is_a_500_problem_without_details(server: LocalApiServer) -> None:
    status, headers, body = request(server, "POST", "/api/crash", body={})
    assert (status, headers["Content-Type"], body["code"]) == (500, PROBLEM_JSON, "InternalError")
    assert "exploded" not in json.dumps(body)


def test_openapi_route_needs_no_token(server: LocalApiServer) -> None:
    status, _, body = request(server, "GET", "/.well-known/openapi")
    assert status == 200
    assert body["openapi"] == "3.1.0"


def test_event_is_a_payload_v2_event(server: LocalApiServer) -> None:
    token = tok("packs.read", claims={"groups": ["ops", "dev"], "level": 3, "pack_run_id": "run-9"})
    status, _, event = request(
        server,
        "GET",
        "/api/echo/a%20b?x=1&x=2&y=",
        token=token,
        headers={"Cookie": "c1=v1; c2=v2", "X-Custom": "Yes"},
    )
    assert status == 200
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /api/echo/{name}"
    assert event["rawPath"] == "/api/echo/a%20b"
    assert event["rawQueryString"] == "x=1&x=2&y="
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["pathParameters"] == {"name": "a b"}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["headers"]["x-custom"] == "Yes"
    assert "cookie" not in event["headers"]
    assert "body" not in event
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert (context["http"]["method"], context["http"]["path"]) == ("GET", "/api/echo/a%20b")
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["stage"] == "$default"
    assert context["requestId"]
    assert isinstance(context["timeEpoch"], int)
    claims = context["authorizer"]["jwt"]["claims"]
    assert all(isinstance(v, str) for v in claims.values())
    assert (claims["groups"], claims["level"], claims["tenant_id"]) == ("[ops dev]", "3", "acme")
    assert context["authorizer"]["jwt"]["scopes"] == ["packs.read"]


def test_binary_body_is_base64_encoded(server: LocalApiServer, runs: FakeRuns) -> None:
    captured: dict[str, Any] = {}

    def keep(event: dict[str, Any]) -> dict[str, Any]:
        captured.update(event)
        return {"statusCode": 204, "body": ""}

    with serve([Route("POST", "/upload", (), False, keep)], port=0) as local:
        status, _, _ = request(
            local,
            "POST",
            "/upload",
            body=b"\x00\xffbin",
            headers={"Content-Type": "application/octet-stream"},
        )
    assert status == 204
    assert captured["isBase64Encoded"] is True
    assert captured["body"] == "AP9iaW4="


# --- malformed requests (raw sockets: no client library tidies them up) ------------------------


def raw_exchange(server: LocalApiServer, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as is and read the one answer (the server closes every connection)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, dict(response.getheaders()), response.read()


def raw_post(server: LocalApiServer, body: bytes, content_type: str | None, path: str = "/api/runs") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: localhost", f"Authorization: Bearer {tok()}"]
    lines += [f"Content-Type: {content_type}"] if content_type else []
    lines += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


def assert_problem(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> dict[str, Any]:
    got_status, headers, raw = answer
    assert (got_status, headers.get("Content-Type")) == (status, PROBLEM_JSON), raw[:300]
    document: dict[str, Any] = json.loads(raw)
    assert set(PROBLEM_FIELDS) <= document.keys()
    assert (document["status"], document["code"]) == (status, code)
    return document


HUGE_INT = b'{"manifest": 1' + b"7" * 5000 + b"}"
MALFORMED_BODIES = {
    "multipart-without-boundary": (
        b"--x\r\n\r\nvalue\r\n--x--",
        "multipart/form-data",
        415,
        "UnsupportedMediaType",
    ),
    "binary-without-content-type": (b"\x00\xff\xfe\x80 not text", None, 400, "MalformedBody"),
    "non-utf8-as-json": (b'{"manifest": "\xff\xfe"}', "application/json", 400, "MalformedBody"),
    "lone-surrogate": (b'{"manifest": "\\ud800"}', "application/json", 400, "MalformedBody"),
    "int-over-4300-digits": (HUGE_INT, "application/json", 400, "MalformedBody"),
    "nested-past-recursion": (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "MalformedBody"),
    "nested-200-levels": (
        b'{"inputs": ' + b"[" * 200 + b"]" * 200 + b"}",
        "application/json",
        400,
        "MalformedBody",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED_BODIES))
def test_malformed_body_reaches_the_handler_and_gets_a_problem(server: LocalApiServer, case: str) -> None:
    body, content_type, status, code = MALFORMED_BODIES[case]

    document = assert_problem(raw_exchange(server, raw_post(server, body, content_type)), status, code)

    assert document["instance"] == "/api/runs"
    assert "application/json" in document["remediation"]
    # the server is still up and the bad request changed nothing
    assert request(server, "GET", "/api/runs/run-1", token=tok())[0] == 404


def test_invalid_json_is_a_422_naming_the_position(server: LocalApiServer) -> None:
    document = assert_problem(
        raw_exchange(server, raw_post(server, b'{"packRef": ', "application/json")), 422, "ValidationFailed"
    )
    assert document["errors"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"TRACE /api/runs HTTP/1.1\r\nHost: x\r\n\r\n", 405, "MethodNotAllowed"),
        (b"TRACE /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404, "NotFound"),
        (b"BREW /api/runs/r1 HTTP/1.1\r\nHost: x\r\n\r\n", 405, "MethodNotAllowed"),
        (b"POST /api/runs HTTP/1.1\r\nContent-Length: ten\r\n\r\n", 400, "BadRequest"),
        (
            b"POST /api/runs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            400,
            "BadRequest",
        ),
        (b"POST /api/runs HTTP/1.1\r\nContent-Length: 10485761\r\n\r\n{}", 413, "RequestEntityTooLarge"),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "BadRequest"),
        (
            b"GET /api/runs HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
            431,
            "RequestHeaderFieldsTooLarge",
        ),
    ],
    ids=[
        "trace",
        "trace-unknown-path",
        "unknown-method",
        "bad-length",
        "bad-chunk",
        "too-large",
        "not-http",
        "big-header",
    ],
)
def test_requests_the_gateway_refuses_are_problems(
    server: LocalApiServer, data: bytes, status: int, code: str
) -> None:
    assert_problem(raw_exchange(server, data), status, code)


def test_a_port_in_use_is_a_clear_error(server: LocalApiServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    with pytest.raises(ConfigurationError, match=f"Cannot listen on 127.0.0.1:{port}") as caught:
        serve([], port=port)
    assert "--port" in caught.value.remediation


def test_a_burst_of_128_connections_is_queued_not_reset(runs: FakeRuns) -> None:
    assert LISTEN_BACKLOG >= 128
    local = serve([Route("GET", "/ping", (), False, lambda e: {"statusCode": 204})], port=0)
    host, port = local.url.removeprefix("http://").split(":")
    sockets: list[socket.socket] = []
    try:
        # connect before the server accepts anything: every connection must wait in the backlog
        for _ in range(128):
            sockets.append(socket.create_connection((host, int(port)), timeout=2))
        local.start()
        for sock in sockets:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        statuses = []
        for sock in sockets:
            response = http.client.HTTPResponse(sock)
            response.begin()
            statuses.append(response.status)
        assert statuses == [204] * 128
    finally:
        for sock in sockets:
            sock.close()
        local.shutdown()


# --- SSE ----------------------------------------------------------------------------------------


class SseClient:
    """Reads SSE events from a live connection, one at a time."""

    def __init__(
        self, server: LocalApiServer, path: str, token: str, last_event_id: str | None = None
    ) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=5)
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", path, headers=headers)
        self.response = self.conn.getresponse()

    def next_event(self) -> dict[str, str] | None:
        """The next event, or None at the end of the stream."""
        fields: dict[str, str] = {}
        while True:
            line = self.response.readline()
            if not line:
                return None
            text = line.decode().rstrip("\n")
            if text == "":
                if "data" in fields:
                    return fields
                fields = {}
            elif not text.startswith(":"):
                name, _, value = text.partition(":")
                fields[name] = value.removeprefix(" ")

    def close(self) -> None:
        self.conn.close()


def test_sse_streams_events_appended_while_connected(server: LocalApiServer, runs: FakeRuns) -> None:
    runs.create("acme", "run-1")
    runs.append("acme", "run-1", "run.created")
    runs.append("acme", "run-1", "run.started")
    client = SseClient(server, "/api/runs/run-1/logs", tok("packs.read"))
    try:
        assert client.response.status == 200
        assert (client.response.getheader("Content-Type") or "").startswith("text/event-stream")
        assert client.response.getheader("Content-Length") is None
        first = [client.next_event(), client.next_event()]
        assert [(e["id"], e["event"]) for e in first if e] == [("1", "run.created"), ("2", "run.started")]

        runs.append("acme", "run-1", "step.started")  # appended while the client is connected
        third = client.next_event()
        assert third is not None
        assert (third["id"], third["event"]) == ("3", "step.started")
        assert json.loads(third["data"])["message"] == "step.started #3"

        runs.append("acme", "run-1", "step.succeeded")
        runs.append("acme", "run-1", "run.completed", done=True)
        rest = [client.next_event(), client.next_event()]
        assert [e["id"] for e in rest if e] == ["4", "5"]
        assert client.next_event() is None  # the stream ends once the run is complete
    finally:
        client.close()


def test_sse_resumes_after_last_event_id(server: LocalApiServer, runs: FakeRuns) -> None:
    runs.create("acme", "run-2")
    for kind in ("run.created", "run.started", "step.started", "step.succeeded"):
        runs.append("acme", "run-2", kind)
    runs.append("acme", "run-2", "run.completed", done=True)
    client = SseClient(server, "/api/runs/run-2/logs", tok("packs.read"), last_event_id="3")
    try:
        ids = []
        while (event := client.next_event()) is not None:
            ids.append(event["id"])
        assert ids == ["4", "5"]
    finally:
        client.close()


def test_sse_stops_polling_when_the_client_disconnects(server: LocalApiServer, runs: FakeRuns) -> None:
    runs.create("acme", "run-3")
    runs.append("acme", "run-3", "run.created")
    client = SseClient(server, "/api/runs/run-3/logs", tok("packs.read"))
    assert client.next_event() is not None
    client.response.close()
    client.close()
    time.sleep(0.3)
    polls = runs.log_polls
    time.sleep(0.4)
    assert runs.log_polls == polls  # no more handler invocations for a gone client


def test_sse_on_an_unknown_run_answers_the_problem(server: LocalApiServer) -> None:
    status, headers, body = request(
        server, "GET", "/api/runs/nope/logs", token=tok("packs.read"), headers={"Accept": "text/event-stream"}
    )
    assert (status, headers["Content-Type"], body["code"]) == (404, PROBLEM_JSON, "NotFound")


def test_logs_as_json_pages_when_not_streaming(server: LocalApiServer, runs: FakeRuns) -> None:
    runs.create("acme", "run-4")
    runs.append("acme", "run-4", "run.created")
    runs.append("acme", "run-4", "run.started")
    status, headers, page = request(server, "GET", "/api/runs/run-4/logs?after=1", token=tok("packs.read"))
    assert status == 200
    assert [e["sequence"] for e in page["items"]] == [2]
    assert (page["nextCursor"], page["complete"]) == ("2", False)
    assert headers["x-taskrunner-stream-complete"] == "false"
