"""The ``http.request`` module: one HTTP request, refused unless the sandbox allows the host."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from taskrunner.modules.base import ModuleContext, ModuleError, require

_MAX_BODY = 64 * 1024


def http_request(ctx: ModuleContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """``url``, ``method`` (GET), ``headers``, ``json`` or ``body``, ``timeout`` (30), ``expectStatus`` (2xx)."""
    url = require(params, "url", str, "http.request")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModuleError(f"http.request: '{url}' is not an http(s) URL", retryable=False)
    if not ctx.sandbox.allows_host(parts.hostname):
        raise ModuleError(
            f"http.request: egress to '{parts.hostname}' is denied by the sandbox; "
            + (
                "the deployment is sealed (no egress)"
                if ctx.sandbox.air_gapped
                else "add the host to spec.sandbox.egressAllowlist if the call is intended"
            ),
            retryable=False,
            code="EgressDenied",
        )
    headers = {str(k): str(v) for k, v in (params.get("headers") or {}).items()}
    data = None
    if "json" in params:
        data = json.dumps(params["json"]).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    elif "body" in params:
        data = str(params["body"]).encode("utf-8")
    method = str(params.get("method") or ("POST" if data is not None else "GET")).upper()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - scheme checked
    timeout = float(params.get("timeout") or 30)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, body = response.status, response.read(_MAX_BODY + 1)
            content_type = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, body, content_type = exc.code, exc.read(_MAX_BODY + 1), exc.headers.get("Content-Type", "")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise ModuleError(
            f"http.request: {method} {parts.hostname} failed: {exc}", code="RequestFailed"
        ) from exc
    expected = params.get("expectStatus")
    ok = status == expected if isinstance(expected, int) else 200 <= status < 300
    if not ok:
        raise ModuleError(f"http.request: {method} {url} answered {status}", code="UnexpectedStatus")
    text = body[:_MAX_BODY].decode("utf-8", errors="replace")
    result: dict[str, Any] = {
        "status": status,
        "contentType": content_type,
        "body": text,
        "truncated": len(body) > _MAX_BODY,
    }
    if "json" in content_type:
        with contextlib.suppress(ValueError):
            result["json"] = json.loads(text)
    return result
