"""``POST /console/dev-sign-in``: the web console's development sign-in, a route only ``taskrunner serve`` has.

The body names a subject, a tenant and scopes; the answer is a development token minted with
:mod:`taskrunner.local.devauth` (what ``taskrunner token`` prints). Only JSON bodies are taken, so a form
of another site cannot post here.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskrunner.api.console import PREFIX
from taskrunner.api.problems import PROBLEM_JSON, problem
from taskrunner.errors import TaskRunnerError
from taskrunner.identity import KNOWN_SCOPES
from taskrunner.keys import APPROVER_PATTERN
from taskrunner.local import devauth
from taskrunner.local.gateway import Route

PATH = f"{PREFIX}/dev-sign-in"
TTL_SECONDS = 8 * 3600


class DevSignIn(BaseModel):
    """Who to sign in as."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(pattern=APPROVER_PATTERN)
    tenant: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(min_length=1, max_length=8)


def _json(status: int, document: dict[str, Any], content_type: str = "application/json") -> dict[str, Any]:
    headers = {"Content-Type": content_type, "Cache-Control": "no-store"}
    return {"statusCode": status, "headers": headers, "body": json.dumps(document, separators=(",", ":"))}


def _refused(status: int, detail: str, remediation: str) -> dict[str, Any]:
    return _json(
        status,
        problem(
            status,
            "ValidationFailed" if status == 422 else "UnsupportedMediaType",
            detail,
            remediation=remediation,
            instance=PATH,
        ),
        PROBLEM_JSON,
    )


def sign_in(event: dict[str, Any]) -> dict[str, Any]:
    """A development token for the subject, tenant and scopes of the JSON body."""
    content_type = str(event.get("headers", {}).get("content-type", "")).split(";")[0].strip().lower()
    if content_type != "application/json":
        return _refused(415, "The sign-in takes a JSON body.", "Send Content-Type: application/json.")
    try:
        request = DevSignIn.model_validate_json(event.get("body") or "")
    except ValidationError as error:
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())
        return _refused(422, f"The sign-in is not valid: {where}.", "Give a subject, a tenant and scopes.")
    unknown = sorted(set(request.scopes) - KNOWN_SCOPES)
    if unknown:
        known = ", ".join(sorted(KNOWN_SCOPES))
        return _refused(422, f"Unknown scope(s): {', '.join(unknown)}.", f"Pick from {known}.")
    try:
        token = devauth.mint_token(request.scopes, request.tenant, {"sub": request.subject}, TTL_SECONDS)
    except TaskRunnerError as error:
        return _refused(422, error.message, error.remediation)
    return _json(200, {"token": token, "tokenType": "Bearer", "expiresIn": TTL_SECONDS})


def sign_in_route() -> Route:
    """The route ``taskrunner serve`` adds to the template's."""
    return Route("POST", PATH, (), False, sign_in)
