"""What every HTTP handler shares: the validating resolver, problem+json errors, the caller, the Lambda entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.logging import correlation_paths

from taskrunner.api.auth import Principal, principal_from_event, require_scopes
from taskrunner.api.problems import register_problem_handlers
from taskrunner.errors import ValidationFailed
from taskrunner.observability import annotate, logger, metrics
from taskrunner.pack.limits import TooManyDigits, bounded_int

OPENAPI_TITLE = "TaskRunner API"


def new_app(*routers: Router) -> APIGatewayHttpResolver:
    """An HTTP API resolver with request/response validation, problem+json errors and ``routers`` included."""
    app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=request_json)
    register_problem_handlers(app)
    for router in routers:
        app.include_router(router)
    return app


def request_json(body: str) -> Any:
    """A JSON request body; nesting beyond Python's recursion limit or huge integers are a 422, not a 500."""
    try:
        return json.loads(body, parse_int=bounded_int)
    except RecursionError:
        raise ValidationFailed(
            "the request body is nested too deeply to parse",
            [{"path": "body", "message": "nested too deeply", "type": "json_too_deep"}],
            remediation="flatten the JSON body (manifests and inputs may nest at most 64 levels)",
        ) from None
    except TooManyDigits as exc:
        raise ValidationFailed(
            f"invalid request body: {exc.message}",
            [{"path": "body", "message": exc.message, "type": "json_number_too_long"}],
            remediation="send the number as a string",
        ) from None


def caller(router: Router, *scopes: str) -> Principal:
    """The authenticated caller of the current request, holding every scope in ``scopes``."""
    principal = principal_from_event(router.current_event)
    require_scopes(principal, *scopes)
    annotate(tenantId=principal.tenant_id)
    return principal


def lambda_handler(app: APIGatewayHttpResolver) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda entry point for ``app``: correlation id from the request, EMF metrics flushed per call."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    return handler
