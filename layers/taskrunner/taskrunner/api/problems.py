"""RFC 9457 problem details (``application/problem+json``) for every API error.

Each problem carries ``type`` (``https://stellaops.io/problems/<code>``), ``title``, ``status``,
``detail``, the stable ``code``, a ``remediation`` hint, the request path as ``instance`` and, for
validation failures, ``errors`` (one entry per offending field). Unexpected errors become a 500
``InternalError`` that reveals nothing of the exception; the exception is logged instead.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field

from taskrunner.errors import TaskRunnerError, TooManyRequests, ValidationFailed

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://stellaops.io/problems/"
INTERNAL_ERROR = "InternalError"

_DEFAULT_REMEDIATION: dict[int, str] = {
    400: "Fix the request and send it again.",
    401: "Send a valid bearer token: 'Authorization: Bearer <token>'.",
    403: "Use a token that grants the required scope.",
    404: "Check the path and identifiers; resources of other tenants are not visible.",
    405: "Use one of the methods listed in the Allow header.",
    409: "Reload the resource and retry with its current state.",
    413: "Send a body of at most 10 MiB.",
    415: "Send the body as 'Content-Type: application/json'.",
    422: "Fix the listed fields and send the request again.",
    429: "Wait for the time in the Retry-After header, then send the request again.",
    500: "Retry later; if it persists, report the requestId and time to the operator.",
}


class ProblemItem(BaseModel):
    """One offending field of a validation failure."""

    model_config = ConfigDict(extra="allow")

    path: str | None = Field(None, description="Where the problem is, e.g. `body.inputs.bundlePath`.")
    message: str = Field(description="What is wrong and how to fix it.")
    type: str | None = Field(None, description="Machine-readable kind of the problem.")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, extended with `code`, `remediation` and `errors`."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI identifying the problem type: `https://stellaops.io/problems/<code>`.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="HTTP status code.")
    detail: str = Field(description="What went wrong for this request.")
    code: str = Field(description="Stable error code, e.g. `NotFound`, `ValidationFailed`.")
    remediation: str = Field(description="How to fix the request.")
    instance: str | None = Field(None, description="The request path.")
    errors: list[ProblemItem] | None = Field(None, description="Every offending field (validation failures).")


def problem_type(code: str) -> str:
    return PROBLEM_TYPE_BASE + code


def title_of(code: str) -> str:
    """``ValidationFailed`` -> ``Validation failed``."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", code).split()
    return " ".join([words[0], *(w.lower() for w in words[1:])]) if words else code


def code_for_status(status: int) -> str:
    """A code for a bare HTTP status: 404 -> ``NotFound``, 500 -> ``InternalError``."""
    if status >= 500:
        return INTERNAL_ERROR
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "HttpError"
    return "".join(word.capitalize() for word in re.split(r"[^A-Za-z0-9]+", phrase) if word)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    remediation: str = "",
    instance: str | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A problem document (a plain dict, ready to serialise)."""
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title_of(code),
        "status": status,
        "detail": detail,
        "code": code,
        "remediation": remediation or _DEFAULT_REMEDIATION.get(status, _DEFAULT_REMEDIATION[400]),
    }
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = _json_safe([dict(e) for e in errors])
    if extra:
        body.update(_json_safe(dict(extra)))
    return body


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    remediation: str = "",
    instance: str | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[str]:
    """A Powertools ``Response`` carrying a problem document."""
    body = problem(
        status, code, detail, remediation=remediation, instance=instance, errors=errors, extra=extra
    )
    all_headers: dict[str, str] = {"Cache-Control": "no-store"}
    if status == 401:
        all_headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    all_headers.update(headers or {})
    return Response(
        status_code=status,
        content_type=PROBLEM_JSON,
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        headers=all_headers,
    )


def error_response(error: TaskRunnerError, instance: str | None = None) -> Response[str]:
    """The problem response of a domain error (its ``status``, ``code``, message and remediation)."""
    errors = error.problems if isinstance(error, ValidationFailed) else None
    later = error.retry_after_seconds if isinstance(error, TooManyRequests) else None
    return problem_response(
        error.status,
        error.code,
        error.message,
        remediation=error.remediation,
        instance=instance,
        errors=errors,
        extra={"retryAfterSeconds": later} if later is not None else None,
        headers={"Retry-After": str(later)} if later is not None else None,
    )


def field_path(loc: Iterable[Any]) -> str:
    """``("body", "steps", 0, "id")`` -> ``body.steps[0].id``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _validation_item(error: Mapping[str, Any]) -> dict[str, Any]:
    loc = tuple(error.get("loc") or ())
    kind = str(error.get("type") or "invalid")
    if kind == "json_invalid":
        position = loc[1] if len(loc) > 1 else None
        where = f" (at character {position})" if isinstance(position, int) else ""
        return {"path": "body", "message": f"The body is not valid JSON{where}.", "type": kind}
    message = str(error.get("msg") or "Invalid value")
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return {"path": field_path(loc), "message": message, "type": kind}


def request_validation_response(error: RequestValidationError, instance: str | None = None) -> Response[str]:
    """422 problem listing every invalid field of a request Powertools rejected.

    Only the field path, pydantic's message and the error type are shown, never the input value.
    """
    items = [_validation_item(e) for e in error.errors()]
    paths = ", ".join(dict.fromkeys(str(i["path"]) for i in items))
    count = len(items)
    detail = f"The request has {count} invalid field{'s' if count != 1 else ''}: {paths}."
    return problem_response(422, "ValidationFailed", detail, instance=instance, errors=items)


def service_error_response(error: ServiceError, instance: str | None = None) -> Response[str]:
    """A Powertools ``ServiceError`` (``NotFoundError``, ``BadRequestError``...) as a problem."""
    status = int(error.status_code)
    if status >= 500:
        return internal_error_response(error, instance)
    detail = error.msg if isinstance(error.msg, str) else json.dumps(error.msg, default=str)
    return problem_response(status, code_for_status(status), detail, instance=instance)


def internal_error_response(
    error: BaseException, instance: str | None = None, request_id: str | None = None
) -> Response[str]:
    """500 ``InternalError``: logs the exception, shows neither its text nor a stack trace."""
    logger.error(
        "unhandled error serving %s (requestId %s)",
        instance or "?",
        request_id or "?",
        exc_info=(type(error), error, error.__traceback__),
    )
    return problem_response(
        500,
        INTERNAL_ERROR,
        "The server failed to process the request.",
        instance=instance,
        extra={"requestId": request_id} if request_id else None,
    )


def _request_info(app: APIGatewayHttpResolver) -> tuple[str | None, str | None, str | None]:
    """(path, method, requestId) of the request being served, from the raw event."""
    try:
        raw = app.current_event.raw_event
    except AttributeError:
        return None, None, None
    context = raw.get("requestContext") or {}
    http = context.get("http") or {}
    path = raw.get("rawPath") or http.get("path")
    return path, http.get("method"), context.get("requestId")


def register_problem_handlers(app: APIGatewayHttpResolver) -> None:
    """Install problem+json exception handlers (domain, validation, Powertools, catch-all) on ``app``."""

    @app.exception_handler(TaskRunnerError)
    def _domain(error: TaskRunnerError) -> Response[str]:
        return error_response(error, _request_info(app)[0])

    @app.exception_handler(RequestValidationError)
    def _validation(error: RequestValidationError) -> Response[str]:
        return request_validation_response(error, _request_info(app)[0])

    @app.exception_handler(RequestUnsupportedContentType)
    def _content_type(error: RequestUnsupportedContentType) -> Response[str]:
        path, _, _ = _request_info(app)
        return problem_response(415, "UnsupportedMediaType", "The request body must be JSON.", instance=path)

    @app.exception_handler(ServiceError)
    def _service(error: ServiceError) -> Response[str]:
        path, method, request_id = _request_info(app)
        if int(error.status_code) == 404 and error.msg == "Not found":
            error = ServiceError(404, f"No route matches {method or 'the request'} {path or ''}".rstrip())
        if int(error.status_code) >= 500:
            return internal_error_response(error, path, request_id)
        return service_error_response(error, path)

    @app.exception_handler(ResponseValidationError)
    def _response_validation(error: ResponseValidationError) -> Response[str]:
        path, _, request_id = _request_info(app)
        return internal_error_response(error, path, request_id)

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[str]:
        path, _, request_id = _request_info(app)
        return internal_error_response(error, path, request_id)


# What a protected route may answer about the request itself: malformed (400), no or a bad token (401),
# a token without the route's scope (403), a body too large (413), not JSON (415) or invalid (422).
REQUEST_PROBLEMS = (400, 401, 403, 413, 415, 422)
# What a public route may answer about the request itself.
PUBLIC_REQUEST_PROBLEMS = (400, 413, 415)


def problem_responses(*statuses: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI ``responses`` entries documenting problem+json errors, for route decorators."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"model": ProblemDetails}},
        }
        for status in statuses
    }
