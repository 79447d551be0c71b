"""What every HTTP handler shares: the validating resolver, problem+json errors, the caller, the Lambda entry."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskrunner.api.auth import Principal, Scope, principal_from_event, require_any_scope, require_scopes
from taskrunner.api.bodies import body_problem
from taskrunner.api.problems import PROBLEM_JSON, register_problem_handlers
from taskrunner.keys import RUN_ID
from taskrunner.observability import annotate, logger, metrics, traced

OPENAPI_TITLE = "TaskRunner API"
BEARER_JWT = "bearerJwt"


def requires(*scopes: Scope) -> list[dict[str, list[str]]]:
    """A route's OpenAPI ``security``: a bearer JWT granting ``scopes`` (its AuthorizationScopes in template.yaml;
    the gateway lets a token with any one of them through)."""
    return [{BEARER_JWT: [scope.value for scope in scopes]}]


class JsonApiResolver(APIGatewayHttpResolver):
    """A validating HTTP API resolver that first refuses bodies it cannot read (``taskrunner.api.bodies``)."""

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        refused = body_problem(event)
        if refused is None:
            return super().resolve(event, context)
        return {
            "statusCode": refused["status"],
            "headers": {"Content-Type": PROBLEM_JSON, "Cache-Control": "no-store"},
            "body": json.dumps(refused, separators=(",", ":"), ensure_ascii=False),
            "isBase64Encoded": False,
        }


def new_app(*routers: Router) -> APIGatewayHttpResolver:
    """An HTTP API resolver with request/response validation, problem+json errors and ``routers`` included."""
    app = JsonApiResolver(enable_validation=True)
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


def caller_with_any(router: Router, *scopes: str, run_id: str | None = None) -> Principal:
    """Like :func:`caller`, for a route open to a token holding any one of ``scopes``."""
    principal = principal_from_event(router.current_event)
    require_any_scope(principal, *scopes)
    annotate(tenantId=principal.tenant_id)
    if run_id is not None:
        RUN_ID.check(run_id, "the URL")
    return principal


def lambda_handler(app: APIGatewayHttpResolver) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda entry point for ``app``: correlation id from the request, EMF metrics flushed per call, one
    trace subsegment per call named for the route."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with traced(str(event.get("routeKey") or "request")):
            return app.resolve(event, context)

    return handler
