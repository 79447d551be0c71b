"""A local stand-in for API Gateway HTTP API in front of the Lambda handlers, served by Werkzeug.

A threaded Werkzeug server (listen backlog :data:`LISTEN_BACKLOG`) runs a WSGI app that applies
:mod:`taskrunner.local.gateway` (routes, JWT authorizer, payload v2 events) and writes back each
handler's proxy result. ``GET .../logs`` with ``Accept: text/event-stream`` is streamed for real: the
handler is polled with the latest ``Last-Event-ID`` and each new chunk is flushed until it answers
``x-taskrunner-stream-complete: true`` or the client goes away. Requests the gateway refuses
(malformed, too large, no route, bad token) are answered with problem+json, never a 500.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit
from wsgiref.types import StartResponse, WSGIEnvironment

from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from taskrunner.api.problems import PROBLEM_JSON, code_for_status, problem
from taskrunner.api.streams import (
    LAST_EVENT_ID_HEADER,
    SSE_CONTENT_TYPE,
    SSE_HEARTBEAT,
    STREAM_COMPLETE_HEADER,
    last_event_id_in,
    negotiate_log_format,
)
from taskrunner.errors import ConfigurationError
from taskrunner.local.gateway import (
    MAX_BODY_BYTES,
    ProxyResult,
    Route,
    RouteTable,
    authorize,
    build_event,
    gateway_problem,
    parse_proxy_result,
)

logger = logging.getLogger(__name__)

LISTEN_BACKLOG = 1024


class _RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler, logging to ``taskrunner.local.http_server`` and refusing bad HTTP as problems."""

    timeout = 60  # a client that sends nothing for a minute is dropped

    def log(self, type: str, message: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), message % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.info("%s %r %s %s", self.address_string(), self.requestline, code, size)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP (bad request line, oversized headers...) answered as problem+json."""
        detail = message or explain or "The request is not valid HTTP/1.1."
        document = problem(code, code_for_status(code), detail, instance=None)
        body = json.dumps(document, separators=(",", ":")).encode("utf-8")
        self.log_error("code %d, message %s", code, detail)
        self.request_version = "HTTP/1.1"  # also answer a request line that did not parse with a status line
        self.send_response(code)
        self.send_header("Content-Type", PROBLEM_JSON)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` with a deep backlog, or a clear error if it cannot be had."""
    try:
        return socket.create_server(
            (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET, backlog=LISTEN_BACKLOG
        )
    except OSError as error:
        raise ConfigurationError(
            f"Cannot listen on {host}:{port}: {error.strerror or error}.",
            remediation="Pick another --port (0 picks a free one) or stop the program using it.",
        ) from None


def _request_target(environ: WSGIEnvironment) -> tuple[str, str]:
    """(rawPath, rawQueryString) exactly as the client sent them (still percent-encoded)."""
    raw = str(environ.get("RAW_URI") or environ.get("PATH_INFO") or "/")
    target = raw.encode("latin-1").decode("utf-8", "replace")  # undo Werkzeug's WSGI encoding
    if not target.startswith("/"):  # absolute-form (http://host/path)
        split = urlsplit(target)
        return split.path or "/", split.query
    path, _, query = target.partition("?")
    return path or "/", query.partition("#")[0]


def _response(result: ProxyResult, stream: Iterable[bytes] | None = None) -> Response:
    """``result`` as a Werkzeug response; with ``stream``, its chunks are sent as they come (chunked)."""
    response = Response(result.body if stream is None else stream, status=result.status)
    response.headers.clear()
    for name, value in result.headers:
        response.headers.add(name, value)
    if stream is None:
        response.headers["Content-Length"] = str(len(result.body))
    else:
        response.direct_passthrough = True
    return response


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
        listener: socket.socket | None = None,
    ) -> None:
        self.table = RouteTable(routes)
        self.poll_interval = poll_interval
        self.heartbeat_seconds = heartbeat_seconds
        self.stage = stage
        self.stopping = threading.Event()
        self._invoke_lock: threading.Lock | None = threading.Lock() if serialize else None
        self._serving = threading.Event()
        self._thread: threading.Thread | None = None
        listener = listener or listen(host, port)  # a socket bound beforehand: its URL was known earlier
        try:
            self._httpd: BaseWSGIServer = make_server(
                host,
                port,
                self.wsgi_app,
                threaded=True,
                request_handler=_RequestHandler,
                fd=listener.fileno(),
            )
        finally:
            listener.close()  # Werkzeug serves a duplicate of it

    @property
    def url(self) -> str:
        address = self._httpd.server_address
        host, port = str(address[0]), int(address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    # -- one request ----------------------------------------------------------------------

    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI application: gateway checks, handler invocation, SSE streaming."""
        request = Request(environ)
        request.max_content_length = MAX_BODY_BYTES
        return self._answer(request)(environ, start_response)

    def _answer(self, request: Request) -> Response:
        raw_path, raw_query = _request_target(request.environ)
        method = request.method.upper()
        body = self._body(request, raw_path)
        if isinstance(body, ProxyResult):
            return _response(body)
        matched = self.table.match(method, raw_path)
        if isinstance(matched, ProxyResult):
            return _response(matched)
        route, params = matched
        claims: dict[str, Any] | None = None
        if route.auth:
            authorized = authorize(
                route, request.headers.get("Authorization"), raw_path, f"http://{request.host}"
            )
            if isinstance(authorized, ProxyResult):
                return _response(authorized)
            claims = authorized
        event = build_event(
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=list(request.headers.items()),
            body=body,
            route_key=route.route_key,
            path_parameters=params,
            source_ip=request.remote_addr or "127.0.0.1",
            claims=claims,
            stage=self.stage,
        )
        streaming = method == "GET" and raw_path.rstrip("/").endswith("/logs")
        if streaming and negotiate_log_format(request.headers.get("Accept")) == "sse":
            return self._stream(route, event, request.environ.get("werkzeug.socket"))
        return _response(self.invoke(route, event))

    @staticmethod
    def _body(request: Request, path: str) -> bytes | ProxyResult:
        """The request body, or the 400/413 API Gateway answers for an unreadable or oversized one."""
        length = request.headers.get("Content-Length")
        if length is not None and not length.strip().isdigit():
            return gateway_problem(400, f"Content-Length {length!r} is not a byte count.", path)
        try:
            return request.get_data(cache=False)
        except HTTPException as error:
            status = error.code or 400
            detail = "The body is larger than 10 MiB." if status == 413 else "The body could not be read."
            return gateway_problem(status, detail, path)
        except (OSError, ValueError) as error:  # a malformed chunked body
            return gateway_problem(400, f"The body could not be read: {error}.", path)

    def invoke(self, route: Route, event: dict[str, Any]) -> ProxyResult:
        """Run the route's handler; a crash answers 500 (problem+json) like API Gateway does."""
        try:
            if self._invoke_lock is None:
                return parse_proxy_result(route.invoke(event))
            with self._invoke_lock:
                return parse_proxy_result(route.invoke(event))
        except Exception:
            request_id = event["requestContext"]["requestId"]
            logger.exception("handler of %s failed (requestId %s)", route.route_key, request_id)
            return gateway_problem(500, f"The handler failed (requestId {request_id}).", event["rawPath"])

    # -- SSE ------------------------------------------------------------------------------

    def _stream(self, route: Route, event: dict[str, Any], connection: socket.socket | None) -> Response:
        first = self.invoke(route, event)
        content_type = (first.header("content-type") or "").lower()
        if first.status != 200 or not content_type.startswith(SSE_CONTENT_TYPE):
            return _response(first)
        skipped = {STREAM_COMPLETE_HEADER, "cache-control"}
        headers = [(k, v) for k, v in first.headers if k.lower() not in skipped]
        headers += [("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")]
        chunks = self._pump(route, event, first, connection)
        return _response(ProxyResult(200, headers, b""), chunks)

    def _pump(
        self, route: Route, event: dict[str, Any], result: ProxyResult, connection: socket.socket | None
    ) -> Iterator[bytes]:
        last_id = event["headers"].get(LAST_EVENT_ID_HEADER)
        last_write = time.monotonic()
        first = True
        while True:
            chunk = result.body.decode("utf-8", errors="replace")
            # The first chunk goes out as is (it carries the retry hint); later ones only with events.
            if (first and chunk) or any(line.startswith("data:") for line in chunk.splitlines()):
                first = False
                yield result.body
                last_write = time.monotonic()
                last_id = last_event_id_in(chunk) or last_id
            if (result.header(STREAM_COMPLETE_HEADER) or "").lower() == "true":
                return
            if self.stopping.wait(self.poll_interval) or _client_gone(connection):
                return
            if time.monotonic() - last_write >= self.heartbeat_seconds:
                yield SSE_HEARTBEAT.encode("ascii")
                last_write = time.monotonic()
            event = _next_poll(event, last_id)
            result = self.invoke(route, event)
            if result.status != 200:
                logger.warning("log stream of %s ended: handler answered %s", event["rawPath"], result.status)
                return

    # -- lifecycle ------------------------------------------------------------------------

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


def _client_gone(connection: socket.socket | None) -> bool:
    """True when the client closed its side (readable socket with nothing to read)."""
    if connection is None:
        return False
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def serve(
    routes: Sequence[Route], host: str = "127.0.0.1", port: int = 8080, **options: Any
) -> LocalApiServer:
    """A server for ``routes`` bound to ``host:port`` (``port=0``: any free port); call ``start()``."""
    return LocalApiServer(routes, host, port, **options)


def base_url(listener: socket.socket) -> str:
    """``http://host:port`` of a listening socket."""
    host, port = listener.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"


__all__ = ["LISTEN_BACKLOG", "LocalApiServer", "Route", "base_url", "listen", "serve"]
