"""GET /.well-known/openapi (the get_run function): the OpenAPI 3.1 document of the whole API, generated from
every route's models."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from taskrunner.api.problems import PUBLIC_REQUEST_PROBLEMS, problem_responses

router = Router()


@router.get(
    "/.well-known/openapi",
    summary="This API's OpenAPI 3.1 document",
    responses={
        200: {
            "description": "This document",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        **problem_responses(*PUBLIC_REQUEST_PROBLEMS),
    },
)
def openapi() -> Response[str]:
    return Response(200, "application/json", openapi_json())


@cache
def openapi_json() -> str:
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    from taskrunner.api.http import BEARER_JWT, OPENAPI_TITLE, new_app
    from taskrunner.api.routes import approvals, approver_keys, issuer, lifecycle, packs, reads, submit

    app = new_app(
        submit.router,
        reads.router,
        router,
        approvals.router,
        approver_keys.router,
        packs.router,
        lifecycle.router,
        issuer.router,
    )
    bearer = HTTPBearer(
        bearerFormat="JWT",
        description="A JWT whose `scope` claim grants the operation's scope and whose `tenant_id` names the "
        "tenant (API Gateway's JWT authorizer; locally minted by `taskrunner token`).",
    )
    return app.get_openapi_json_schema(
        title=OPENAPI_TITLE,
        version=__import__("taskrunner").__version__,
        openapi_version="3.1.0",
        description="Run Task Packs deterministically, with approval gates, policy gates and signed evidence.",
        security_schemes={BEARER_JWT: bearer},
    )
