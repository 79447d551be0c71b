"""Calling a deployed TaskRunner API from the CLI: bearer-token JSON requests, problems as errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer

from taskrunner.errors import TaskRunnerError, ValidationFailed

ApiOpt = Annotated[str, typer.Option("--api", help="TaskRunner API base URL.")]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="TASKRUNNER_TOKEN", help="Bearer token for --api.")
]


def api_call(api: str, token: str | None, method: str, path: str, body: Any = None) -> Any:
    """``method`` on ``api`` + ``path`` with the bearer token; the decoded JSON answer."""
    if not token:
        raise ValidationFailed("--api needs a token", remediation="pass --token or set TASKRUNNER_TOKEN")
    return api_request(method, api.rstrip("/") + path, token, body)


def api_request(method: str, url: str, token: str, body: Any = None) -> Any:
    """``method`` on ``url`` with the bearer token and a JSON body; the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - the user names the API
        url,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise api_error(method, url, exc.code, exc.read()) from None
    except urllib.error.URLError as exc:
        raise TaskRunnerError(f"cannot reach {url}: {exc.reason}", code="ApiError") from None


def api_error(method: str, url: str, status: int, body: bytes) -> TaskRunnerError:
    """The error of an API answer: its problem's detail and remediation, else the body as it came."""
    try:
        problem = json.loads(body)
    except ValueError:
        problem = None
    if isinstance(problem, dict) and isinstance(problem.get("detail"), str):
        return TaskRunnerError(
            f"{method} {url} answered {status}: {problem['detail']}",
            code=str(problem.get("code") or "ApiError"),
            remediation=str(problem.get("remediation") or ""),
        )
    text = body.decode("utf-8", "replace")[:2000]
    return TaskRunnerError(f"{method} {url} answered {status}: {text}", code="ApiError")


def token_claim(token: str | None, name: str) -> str | None:
    """A claim of a JWT read without verifying it (the API verifies the token; this only names things)."""
    import base64

    try:
        body = (token or "").split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError):
        return None
    value = claims.get(name) if isinstance(claims, dict) else None
    return value if isinstance(value, str) else None
