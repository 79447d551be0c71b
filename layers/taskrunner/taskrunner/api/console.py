"""The web console's static files and sign-in configuration, as API Gateway HTTP API (payload v2) answers.

Only the files found under the static directory when the function starts can be served: a request names
one of them exactly (after percent-decoding) or gets a 404 problem, so no path can reach outside it.
Every answer carries a strict Content-Security-Policy (same-origin scripts and styles, nothing inline).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from taskrunner.api.problems import PROBLEM_JSON, problem
from taskrunner.config import ConsoleSettings

PREFIX = "/console"
CONFIG_PATH = "config.json"
INDEX = "index.html"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
_TEXT = (".html", ".js", ".css", ".svg", ".json")


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def load_static(directory: Path) -> dict[str, StaticFile]:
    """Every servable file under ``directory`` by its relative path (``app.js``, ``pages/runs.js``)."""
    files: dict[str, StaticFile] = {}
    for path in sorted(directory.rglob("*")):
        content_type = CONTENT_TYPES.get(path.suffix)
        if path.is_file() and not path.is_symlink() and content_type:
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            files[path.relative_to(directory).as_posix()] = StaticFile(body, content_type, etag)
    return files


def security_headers(settings: ConsoleSettings) -> dict[str, str]:
    """CSP (scripts, styles and requests to this origin only; the issuer too when signing in with OIDC)."""
    connect = "'self'"
    if settings.oidc_issuer and settings.oidc_client_id:
        split = urlsplit(settings.oidc_issuer)
        connect += f" {split.scheme}://{split.netloc}"
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def config_document(settings: ConsoleSettings) -> dict[str, Any]:
    """``config.json``: how to sign in (OIDC authorization code + PKCE, and/or the development form)."""
    oidc = None
    if settings.oidc_issuer and settings.oidc_client_id:
        oidc = {
            "issuer": settings.oidc_issuer,
            "clientId": settings.oidc_client_id,
            "scopes": settings.oidc_scopes.split(),
        }
    return {"signIn": {"oidc": oidc, "dev": settings.dev_sign_in}}


def _answer(status: int, headers: Mapping[str, str], body: bytes, content_type: str) -> dict[str, Any]:
    text = content_type.split(";")[0] in ("application/json", PROBLEM_JSON) or content_type.startswith(
        ("text/", "image/svg")
    )
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_type, **headers},
        "body": body.decode("utf-8") if text else base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": not text,
    }


def answer(
    event: Mapping[str, Any], files: Mapping[str, StaticFile], settings: ConsoleSettings
) -> dict[str, Any]:
    """The answer to ``GET /console`` or ``GET /console/{proxy+}``."""
    raw_path = str(event.get("rawPath") or "")
    headers = security_headers(settings)
    name = unquote(raw_path[len(PREFIX) :].lstrip("/")) if raw_path.startswith(PREFIX) else raw_path
    if name == CONFIG_PATH:
        body = json.dumps(config_document(settings), separators=(",", ":")).encode("utf-8")
        return _answer(200, {**headers, "Cache-Control": "no-store"}, body, "application/json")
    found = files.get(name or INDEX)
    if found is None:
        document = problem(
            404,
            "NotFound",
            f"The console has no file {name[:200]!r}.",
            remediation=f"Open {PREFIX}/ and follow its links.",
            instance=raw_path[:1000],
        )
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return _answer(404, {**headers, "Cache-Control": "no-store"}, body, PROBLEM_JSON)
    cache = {**headers, "ETag": found.etag, "Cache-Control": "no-cache"}
    request_headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    if found.etag in [tag.strip() for tag in request_headers.get("if-none-match", "").split(",")]:
        return {"statusCode": 304, "headers": cache, "body": "", "isBase64Encoded": False}
    return _answer(200, cache, found.body, found.content_type)
