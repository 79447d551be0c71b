"""A local stand-in for API Gateway HTTP API in front of the Lambda handlers (stdlib, threaded).

It matches routes like API Gateway (``GET /api/runs/{runId}``), enforces the JWT authorizer with
local development tokens (401/403 as API Gateway answers them), hands each handler a payload v2
event and writes back its Lambda proxy result. ``GET .../logs`` with ``Accept: text/event-stream``
is streamed for real: the handler is polled with the latest ``Last-Event-ID`` and each new chunk
is flushed until it answers ``x-taskrunner-stream-complete: true`` or the client goes away.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from taskrunner.api.auth import Unauthorized, split_scopes
from taskrunner.api.problems import PROBLEM_JSON, problem
from taskrunner.api.streams import (
    LAST_EVENT_ID_HEADER,
    SSE_CONTENT_TYPE,
    SSE_HEARTBEAT,
    STREAM_COMPLETE_HEADER,
    last_event_id_in,
    negotiate_log_format,
)
from taskrunner.local import devauth

logger = logging.getLogger(__name__)

Invoke = Callable[[dict[str, Any]], dict[str, Any]]

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API payload limit
_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive"}
_TEXT_TYPES = re.compile(
    r"^(text/.*|application/(json|.*\+json|xml|.*\+xml|x-www-form-urlencoded|javascript|"
    r"x-ndjson|ndjson|yaml|x-yaml|problem\+json))$"
)
_DISCONNECTED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout)


@dataclass(frozen=True)
class Route:
    """One API route: ``scopes`` are the AuthorizationScopes (any one suffices; empty: any token)."""

    method: str
    path_template: str
    scopes: tuple[str, ...]
    auth: bool
    invoke: Invoke

    @property
    def route_key(self) -> str:
        return f"{self.method.upper()} {self.path_template}"


class _CompiledRoute:
    def __init__(self, route: Route) -> None:
        self.route = route
        self.method = route.method.upper()
        self.names: list[str] = []
        pattern = ""
        greedy = 0
        for piece in re.split(r"(\{[^}]+\})", route.path_template):
            if piece.startswith("{") and piece.endswith("}"):
                name = piece[1:-1]
                group = f"p{len(self.names)}"
                if name.endswith("+"):
                    name, greedy = name[:-1], greedy + 1
                    pattern += f"(?P<{group}>.+)"
                else:
                    pattern += f"(?P<{group}>[^/]+)"
                self.names.append(name)
            else:
                pattern += re.escape(piece)
        self.regex = re.compile(f"^{pattern}$")
        literal = len(re.sub(r"\{[^}]+\}", "", route.path_template))
        # API Gateway prefers literal paths, then fewer parameters, then non-greedy ones.
        self.priority = (greedy, len(self.names), -literal)

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.match(path)
        if not found:
            return None
        return {name: unquote(found.group(f"p{i}")) for i, name in enumerate(self.names)}


def stringify_claim(value: Any) -> str:
    """A claim value as API Gateway passes it: strings as is, arrays as ``[a b]``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(stringify_claim(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _is_text(content_type: str | None, body: bytes) -> bool:
    if not content_type:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    return bool(_TEXT_TYPES.match(content_type.split(";")[0].strip().lower()))


def build_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    route_key: str,
    path_parameters: Mapping[str, str],
    source_ip: str,
    claims: Mapping[str, Any] | None,
    stage: str = "$default",
) -> dict[str, Any]:
    """An API Gateway HTTP API payload v2 event."""
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = time.time()
    context: dict[str, Any] = {
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": merged.get("host", "localhost"),
        "domainPrefix": merged.get("host", "localhost").split(".")[0].split(":")[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": merged.get("user-agent", ""),
        },
        "requestId": uuid.uuid4().hex,
        "routeKey": route_key,
        "stage": stage,
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if claims is not None:
        scopes = sorted(split_scopes(claims.get("scope")) | split_scopes(claims.get("scp")))
        context["authorizer"] = {
            "jwt": {
                "claims": {k: stringify_claim(v) for k, v in claims.items() if v is not None},
                "scopes": scopes or None,
            }
        }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": context,
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        if _is_text(merged.get("content-type"), body):
            event["body"] = body.decode("utf-8")
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


@dataclass
class ProxyResult:
    """A Lambda proxy result, normalised for writing."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


def parse_proxy_result(result: Any) -> ProxyResult:
    """Read a handler's answer like API Gateway does (payload v2 inference for non-proxy shapes)."""
    if not isinstance(result, Mapping) or "statusCode" not in result:
        return ProxyResult(200, [("Content-Type", "application/json")], json.dumps(result).encode("utf-8"))
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), str(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values or [])
    headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or [])
    headers = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    raw = result.get("body")
    if raw is None:
        body = b""
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = (raw if isinstance(raw, str) else json.dumps(raw)).encode("utf-8")
    return ProxyResult(int(result["statusCode"]), headers, body)


def _message(status: int, message: str, extra_headers: Sequence[tuple[str, str]] = ()) -> ProxyResult:
    body = json.dumps({"message": message}).encode("utf-8")
    return ProxyResult(status, [("Content-Type", "application/json"), *extra_headers], body)


def _problem(
    status: int, code: str, detail: str, path: str, headers: Sequence[tuple[str, str]] = ()
) -> ProxyResult:
    body = json.dumps(problem(status, code, detail, instance=path)).encode("utf-8")
    return ProxyResult(status, [("Content-Type", PROBLEM_JSON), *headers], body)


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    api: LocalApiServer


class _Httpd6(_Httpd):
    address_family = socket.AF_INET6


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TaskRunnerLocal/1"
    timeout = 60
    server: _Httpd

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)

    # -- request --------------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        api = self.server.api
        split = urlsplit(self.path)
        raw_path = split.path or "/"
        method = self.command.upper()
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            self._write(_message(400, "Bad Request"))
            return
        if body is None:
            self.close_connection = True
            self._write(_message(413, "Request Entity Too Large"))
            return
        matched = api.match(method, raw_path)
        if isinstance(matched, ProxyResult):
            self._write(matched)
            return
        route, params = matched
        claims: dict[str, Any] | None = None
        if route.auth:
            claims_or_error = self._authorize(route)
            if isinstance(claims_or_error, ProxyResult):
                self._write(claims_or_error)
                return
            claims = claims_or_error
        event = build_event(
            method=method,
            raw_path=raw_path,
            raw_query=split.query,
            headers=list(self.headers.items()),
            body=body,
            route_key=route.route_key,
            path_parameters=params,
            source_ip=self.client_address[0],
            claims=claims,
            stage=api.stage,
        )
        streaming = (
            method == "GET"
            and raw_path.rstrip("/").endswith("/logs")
            and negotiate_log_format(self.headers.get("Accept")) == "sse"
        )
        if streaming:
            self._stream(route, event)
        else:
            self._write(api.invoke(route, event))

    def _authorize(self, route: Route) -> dict[str, Any] | ProxyResult:
        header = (self.headers.get("Authorization") or "").strip()
        token = header[7:].strip() if header[:7].lower() == "bearer " else header
        if not token:
            return _message(401, "Unauthorized", [("WWW-Authenticate", "Bearer")])
        try:
            claims = devauth.verify_token(token)
        except Unauthorized as error:
            reason = error.message.replace('"', "'")
            challenge = f'Bearer scope="" error="invalid_token" error_description="{reason}"'
            return _message(401, "Unauthorized", [("WWW-Authenticate", challenge)])
        granted = split_scopes(claims.get("scope")) | split_scopes(claims.get("scp"))
        if route.scopes and not granted & set(route.scopes):
            wanted = " ".join(route.scopes)
            challenge = f'Bearer scope="{wanted}" error="insufficient_scope"'
            return _message(403, "Forbidden", [("WWW-Authenticate", challenge)])
        return claims

    # -- response -------------------------------------------------------------------------

    def _write(self, result: ProxyResult) -> None:
        try:
            self.send_response(result.status)
            for name, value in result.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(result.body)))
            self.end_headers()
            if self.command != "HEAD" and result.body:
                self.wfile.write(result.body)
            self.wfile.flush()
        except _DISCONNECTED:
            self.close_connection = True

    def _client_gone(self) -> bool:
        """True when the client closed its side (readable socket with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _stream(self, route: Route, event: dict[str, Any]) -> None:
        api = self.server.api
        first = api.invoke(route, event)
        content_type = (first.header("content-type") or "").lower()
        if first.status != 200 or not content_type.startswith(SSE_CONTENT_TYPE):
            self._write(first)
            return
        self.close_connection = True
        try:
            self.send_response(200)
            for name, value in first.headers:
                if name.lower() not in {STREAM_COMPLETE_HEADER, "cache-control"}:
                    self.send_header(name, value)
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            self._pump(route, event, first)
        except _DISCONNECTED:
            logger.debug("SSE client disconnected from %s", event["rawPath"])

    def _pump(self, route: Route, event: dict[str, Any], result: ProxyResult) -> None:
        api = self.server.api
        last_id = event["headers"].get(LAST_EVENT_ID_HEADER)
        last_write = time.monotonic()
        first = True
        while True:
            chunk = result.body.decode("utf-8", errors="replace")
            # The first chunk goes out as is (it carries the retry hint); later ones only with events.
            if (first and chunk) or any(line.startswith("data:") for line in chunk.splitlines()):
                first = False
                self.wfile.write(result.body)
                self.wfile.flush()
                last_write = time.monotonic()
                last_id = last_event_id_in(chunk) or last_id
            if (result.header(STREAM_COMPLETE_HEADER) or "").lower() == "true":
                return
            if api.stopping.wait(api.poll_interval) or self._client_gone():
                return
            if time.monotonic() - last_write >= api.heartbeat_seconds:
                self.wfile.write(SSE_HEARTBEAT.encode("ascii"))
                self.wfile.flush()
                last_write = time.monotonic()
            event = _next_poll(event, last_id)
            result = api.invoke(route, event)
            if result.status != 200:
                logger.warning("log stream of %s ended: handler answered %s", event["rawPath"], result.status)
                return


def _next_poll(event: dict[str, Any], last_id: str | None) -> dict[str, Any]:
    """The event of the next poll: same request, fresh id and time, latest ``Last-Event-ID``."""
    headers = dict(event["headers"])
    if last_id is not None:
        headers[LAST_EVENT_ID_HEADER] = last_id
    now = time.time()
    context = {
        **event["requestContext"],
        "requestId": uuid.uuid4().hex,
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    return {**event, "headers": headers, "requestContext": context}


class LocalApiServer:
    """The local HTTP API; ``start()`` serves in a background thread, ``shutdown()`` stops it.

    Requests are served concurrently, but with ``serialize`` (the default) one handler invocation
    runs at a time, as Powertools resolvers keep the current event on the (shared) app object.
    An open SSE stream holds the lock only while one poll runs.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        poll_interval: float = 0.2,
        heartbeat_seconds: float = 15.0,
        stage: str = "$default",
        serialize: bool = True,
    ) -> None:
        self.routes = sorted((_CompiledRoute(r) for r in routes), key=lambda c: c.priority)
        self.poll_interval = poll_interval
        self.heartbeat_seconds = heartbeat_seconds
        self.stage = stage
        self.stopping = threading.Event()
        self._invoke_lock: threading.Lock | None = threading.Lock() if serialize else None
        self._serving = threading.Event()
        self._thread: threading.Thread | None = None
        self._httpd = (_Httpd6 if ":" in host else _Httpd)((host, port), _RequestHandler)
        self._httpd.api = self

    @property
    def url(self) -> str:
        address = self._httpd.server_address
        host, port = str(address[0]), int(address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | ProxyResult:
        """The route and path parameters for a request, or the 404/405 answer."""
        allowed: list[str] = []
        for compiled in self.routes:
            params = compiled.match(path)
            if params is None:
                continue
            if compiled.method in (method, "ANY"):
                return compiled.route, params
            allowed.append(compiled.method)
        if allowed:
            allow = ", ".join(dict.fromkeys(allowed))
            return _problem(
                405,
                "MethodNotAllowed",
                f"{method} is not allowed on {path}; use {allow}.",
                path,
                [("Allow", allow)],
            )
        return _problem(404, "NotFound", f"No route matches {method} {path}.", path)

    def invoke(self, route: Route, event: dict[str, Any]) -> ProxyResult:
        """Run the route's handler; a crash answers 500 like API Gateway does."""
        try:
            if self._invoke_lock is None:
                return parse_proxy_result(route.invoke(event))
            with self._invoke_lock:
                return parse_proxy_result(route.invoke(event))
        except Exception:
            logger.exception(
                "handler of %s failed (requestId %s)", route.route_key, event["requestContext"]["requestId"]
            )
            return _message(500, "Internal Server Error")

    def start(self) -> LocalApiServer:
        """Serve in a daemon thread; returns self."""
        if self._thread is None:
            self._serving.set()
            self._thread = threading.Thread(target=self.serve_forever, name="taskrunner-http", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``shutdown()`` (or Ctrl-C)."""
        self._serving.set()
        logger.info("serving the TaskRunner API on %s", self.url)
        try:
            self._httpd.serve_forever(poll_interval=0.1)
        finally:
            self.stopping.set()
            self._serving.clear()

    def shutdown(self) -> None:
        """Stop accepting requests, end open streams and close the socket."""
        self.stopping.set()
        if self._serving.is_set():
            self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> LocalApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def serve(
    routes: Sequence[Route], host: str = "127.0.0.1", port: int = 8080, **options: Any
) -> LocalApiServer:
    """A server for ``routes`` bound to ``host:port`` (``port=0``: any free port); call ``start()``."""
    return LocalApiServer(routes, host, port, **options)


__all__ = [
    "LocalApiServer",
    "ProxyResult",
    "Route",
    "build_event",
    "parse_proxy_result",
    "serve",
    "stringify_claim",
]
