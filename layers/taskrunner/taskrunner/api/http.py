"""What every HTTP handler shares: the validating resolver, problem+json errors, the caller, the Lambda entry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.logging import correlation_paths

from taskrunner.api.auth import Principal, principal_from_event, require_scopes
from taskrunner.api.problems import register_problem_handlers
from taskrunner.keys import RUN_ID
from taskrunner.observability import annotate, logger, metrics

OPENAPI_TITLE = "TaskRunner API"


def new_app(*routers: Router) -> APIGatewayHttpResolver:
    """An HTTP API resolver with request/response validation, problem+json errors and ``routers`` included."""
    app = APIGatewayHttpResolver(enable_validation=True)
    register_problem_handlers(app)
    for router in routers:
        app.include_router(router)
    return app


def caller(router: Router, *scopes: str, run_id: str | None = None) -> Principal:
    """The authenticated caller of the current request, holding every scope in ``scopes``.

    ``run_id`` (a run route's URL parameter) must be a valid run id (422 otherwise), checked after the caller.
    """
    principal = principal_from_event(router.current_event)
    require_scopes(principal, *scopes)
    annotate(tenantId=principal.tenant_id)
    if run_id is not None:
        RUN_ID.check(run_id, "the URL")
    return principal


def lambda_handler(app: APIGatewayHttpResolver) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda entry point for ``app``: correlation id from the request, EMF metrics flushed per call."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    return handler
