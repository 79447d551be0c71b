"""The ``http.request`` module: one HTTP request, refused unless the sandbox allows every host it reaches.

Redirects are followed here, not by the HTTP library: each hop's host is checked against the allowlist again.
Every host name is resolved once and the connection goes to one of those addresses (the ``Host`` header and TLS SNI
keep the name), so a name cannot be re-resolved to somewhere else between the check and the connection;
link-local and instance-metadata addresses are never connected to, whatever the allowlist says.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import socket
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

from pydantic import Field, JsonValue

from taskrunner.modules.base import ModuleContext, ModuleError
from taskrunner.modules.contracts import Contract, Outputs, Params, parse_params
from taskrunner.redaction import decode_window

_MAX_BODY = 64 * 1024
MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}
_CREDENTIAL_HEADERS = {"authorization", "cookie", "proxy-authorization"}
_FORBIDDEN_NETWORKS = [
    ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")
]  # link-local, where instance metadata (169.254.169.254, fd00:ec2::254) lives


Scalar = str | int | float | bool


class HttpRequestParams(Params):
    url: str = Field(description="an http(s) URL whose host is in spec.sandbox.egressAllowlist")
    method: str | None = Field(None, description="HTTP method (default GET, or POST when a body is given)")
    headers: dict[str, Scalar] | None = Field(None, description="request headers: an object of strings")
    json_: JsonValue = Field(
        None, alias="json", description="a JSON body (sets Content-Type: application/json)"
    )
    body: Scalar | None = Field(None, description="a text body")
    timeout: float | None = Field(None, gt=0, description="seconds to wait for the answer (default 30)")
    expectStatus: int | None = Field(None, description="the status to expect (default: any 2xx)")


class HttpRequestOutputs(Outputs):
    status: int
    contentType: str
    body: str
    truncated: bool
    url: str | None = Field(None, description="the final URL, when redirected")
    json_: JsonValue = Field(None, alias="json", description="the parsed body, when it is JSON")


def _denied(host: str, why: str) -> ModuleError:
    return ModuleError(
        f"http.request: egress to '{host}' is denied by the sandbox; {why}",
        retryable=False,
        code="EgressDenied",
    )


def _addresses(ctx: ModuleContext, parts: SplitResult, port: int) -> list[str]:
    """The addresses the request to ``parts`` may connect to (in order), after the allowlist and address checks."""
    host = parts.hostname or ""
    if not ctx.sandbox.allows_host(host):
        raise _denied(
            host,
            "the deployment is sealed (no egress)"
            if ctx.sandbox.air_gapped
            else "add the host to spec.sandbox.egressAllowlist if the call is intended",
        )
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ModuleError(f"http.request: cannot resolve '{host}': {exc}", code="RequestFailed") from exc
    addresses = [str(info[4][0]) for info in found]
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        ip = getattr(ip, "ipv4_mapped", None) or ip
        if any(ip in network for network in _FORBIDDEN_NETWORKS):
            raise _denied(host, f"it resolves to {address}, a link-local or instance-metadata address")
    return addresses


def _connect(addresses: list[str], port: int, timeout: float | None) -> socket.socket:
    """A connection to the first of ``addresses`` that answers (all were resolved and checked beforehand)."""
    error: OSError = OSError(f"no address to connect to on port {port}")
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as exc:
            error = exc
    raise error


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to addresses resolved beforehand; ``Host`` stays the URL's."""

    def __init__(self, host: str, port: int, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def connect(self) -> None:
        self.sock = _connect(self.addresses, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """Connects to addresses resolved beforehand; SNI and certificate checks use the URL's host."""

    def __init__(self, host: str, port: int, addresses: list[str], timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.addresses = addresses

    def connect(self) -> None:
        raw = _connect(self.addresses, self.port, self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


def _send(
    ctx: ModuleContext, url: str, method: str, headers: dict[str, str], data: bytes | None, timeout: float
) -> tuple[str, int, bytes, str]:
    """Sends the request, following up to MAX_REDIRECTS redirects (each hop checked); the final answer."""
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ModuleError(f"http.request: '{url}' is not an http(s) URL", retryable=False)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ModuleError(f"http.request: '{url}' has an invalid port", retryable=False) from exc
        addresses = _addresses(ctx, parts, port)
        kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
        connection = kind(parts.hostname, port, addresses, timeout)
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            status, location = response.status, response.getheader("Location")
            body, content_type = response.read(_MAX_BODY + 1), response.getheader("Content-Type", "")
        except (OSError, http.client.HTTPException) as exc:
            raise ModuleError(
                f"http.request: {method} {parts.hostname} failed: {exc}", code="RequestFailed"
            ) from exc
        finally:
            connection.close()
        if status not in _REDIRECTS or not location:
            return url, status, body, content_type
        target = urljoin(url, location)
        if urlsplit(target).hostname != parts.hostname:  # credentials are for the host they were given for
            headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
        if status == 303 or (status in (301, 302) and method == "POST"):
            method, data = "GET", None
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        url = target
    raise ModuleError(
        f"http.request: more than {MAX_REDIRECTS} redirects from {url}",
        retryable=False,
        code="TooManyRedirects",
    )


def _headers(params: HttpRequestParams) -> dict[str, str]:
    headers = {str(k): str(v) for k, v in (params.headers or {}).items()}
    for name, value in headers.items():
        try:
            (name + value).encode("latin-1")
        except UnicodeEncodeError:
            valid = False
        else:
            valid = not any(c in name + value for c in "\r\n\0") and ":" not in name
        if not valid:
            raise ModuleError(
                f"http.request: header '{name}' has characters HTTP headers cannot carry (line breaks, NUL or "
                "non-Latin-1); encode the value (e.g. base64) or send it in the body",
                retryable=False,
            )
    return headers


def http_request(ctx: ModuleContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """``url``, ``method`` (GET), ``headers``, ``json`` or ``body``, ``timeout`` (30), ``expectStatus`` (2xx)."""
    parsed = parse_params("http.request", HttpRequestParams, params)
    url = parsed.url
    headers = _headers(parsed)
    data = None
    if "json_" in parsed.model_fields_set:
        data = json.dumps(parsed.json_).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    elif "body" in parsed.model_fields_set:
        data = str(parsed.body).encode("utf-8")
    method = (parsed.method or ("POST" if data is not None else "GET")).upper()
    timeout = parsed.timeout or 30.0
    final_url, status, body, content_type = _send(ctx, url, method, headers, data, timeout)
    expected = parsed.expectStatus
    ok = status == expected if expected is not None else 200 <= status < 300
    if not ok:
        raise ModuleError(f"http.request: {method} {final_url} answered {status}", code="UnexpectedStatus")
    truncated = len(body) > _MAX_BODY
    text = ctx.redactor.clip(decode_window(body[:_MAX_BODY], cut=truncated), _MAX_BODY, cut=truncated)
    result: dict[str, Any] = {
        "status": status,
        "contentType": content_type,
        "body": text,
        "truncated": truncated,
    }
    if final_url != url:
        result["url"] = final_url
    if "json" in content_type:
        with contextlib.suppress(ValueError):
            result["json"] = json.loads(text)
    return result


HTTP_REQUEST = Contract(
    HttpRequestParams,
    HttpRequestOutputs,
    "One HTTP request; refused unless every host it reaches (redirects too) is in `spec.sandbox.egressAllowlist`, "
    "and always refused when the deployment is sealed.",
)
