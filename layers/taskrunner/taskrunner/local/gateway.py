"""API Gateway HTTP API semantics for the local server: routes, payload v2 events, JWT authorizer answers.

Routes match like API Gateway (``GET /api/runs/{runId}``; literal paths first; a trailing slash no route
takes is ignored). The JWT authorizer
answers 401 (no or an invalid token) and 403 (no scope of the route) before any handler runs. Handlers
get a payload v2 event (lower-cased headers, ``cookies``, ``rawQueryString``, base64 for bodies that
are not UTF-8 text, ``requestContext.authorizer.jwt``) and their Lambda proxy results are read back as
API Gateway reads them. Where API Gateway answers ``{"message": ...}`` (401, 403, 404, 413...), this
emulation answers RFC 9457 problem+json, as the API documents for every error.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from taskrunner.api.auth import Unauthorized, split_scopes
from taskrunner.api.problems import PROBLEM_JSON, code_for_status, problem
from taskrunner.local import devauth

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
# A JWT authorizer: the verified claims of a token sent to ``base_url`` (``http://host:port``), else Unauthorized.
Verify = Callable[[str, str], dict[str, Any]]


def identity_token(token: str, base_url: str) -> dict[str, Any]:
    """The ``TaskRunnerJwt`` authorizer locally: development tokens (``taskrunner token``)."""
    return devauth.verify_token(token)


MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API payload limit
_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive"}
_TEXT_TYPES = re.compile(
    r"^(text/.*|application/(json|.*\+json|xml|.*\+xml|x-www-form-urlencoded|javascript|"
    r"x-ndjson|ndjson|yaml|x-yaml|problem\+json))$"
)


@dataclass(frozen=True)
class Route:
    """One API route: ``scopes`` are the AuthorizationScopes (any one suffices; empty: any token), ``verify``
    its authorizer (when ``auth``)."""

    method: str
    path_template: str
    scopes: tuple[str, ...]
    auth: bool
    invoke: Invoke
    verify: Verify = identity_token

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
    """Whether API Gateway passes ``body`` as text: a text media type (or none) and valid UTF-8."""
    if content_type and not _TEXT_TYPES.match(content_type.split(";")[0].strip().lower()):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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
    merged["x-forwarded-proto"] = "http"  # set by the gateway, as API Gateway does ("https" there)
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


def gateway_problem(
    status: int, detail: str, path: str, *, remediation: str = "", headers: Sequence[tuple[str, str]] = ()
) -> ProxyResult:
    """An answer of the gateway itself (no handler ran), as problem+json."""
    document = problem(status, code_for_status(status), detail, remediation=remediation, instance=path)
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    all_headers = [("Content-Type", PROBLEM_JSON), ("Cache-Control", "no-store"), *headers]
    return ProxyResult(status, all_headers, body)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (API Gateway also takes a bare token)."""
    header = (authorization or "").strip()
    return header[7:].strip() if header[:7].lower() == "bearer " else header


def authorize(
    route: Route, authorization: str | None, path: str, base_url: str = ""
) -> dict[str, Any] | ProxyResult:
    """The verified claims for ``route`` (requested at ``base_url``), or the 401/403 its JWT authorizer answers."""
    token = bearer_token(authorization)
    if not token:
        detail = "The request has no bearer token."
        remediation = "Send 'Authorization: Bearer <token>'; mint one with: taskrunner token --scopes ..."
        return gateway_problem(
            401, detail, path, remediation=remediation, headers=[("WWW-Authenticate", "Bearer")]
        )
    try:
        claims = route.verify(token, base_url)
    except Unauthorized as error:
        reason = error.message.replace('"', "'")
        challenge = f'Bearer scope="" error="invalid_token" error_description="{reason}"'
        return gateway_problem(
            401, error.message, path, remediation=error.remediation, headers=[("WWW-Authenticate", challenge)]
        )
    granted = split_scopes(claims.get("scope")) | split_scopes(claims.get("scp"))
    if route.scopes and not granted & set(route.scopes):
        wanted = " ".join(route.scopes)
        detail = f"{route.route_key} needs a token with the scope {wanted}."
        remediation = f"Mint a token with that scope: taskrunner token --scopes {','.join(route.scopes)} ..."
        challenge = f'Bearer scope="{wanted}" error="insufficient_scope"'
        return gateway_problem(
            403, detail, path, remediation=remediation, headers=[("WWW-Authenticate", challenge)]
        )
    return claims


class RouteTable:
    """Routes in API Gateway's order of preference; :meth:`match` finds a request's route."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = sorted((_CompiledRoute(r) for r in routes), key=lambda c: c.priority)

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
        if not allowed and len(path) > 1 and path.endswith("/"):
            return self.match(method, path[:-1])  # as API Gateway does, `/console/` is `/console`
        if allowed:
            allow = ", ".join(dict.fromkeys(allowed))
            detail = f"{method} is not allowed on {path}; use {allow}."
            return gateway_problem(405, detail, path, headers=[("Allow", allow)])
        return gateway_problem(404, f"No route matches {method} {path}.", path)
