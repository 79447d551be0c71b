"""The served OpenAPI document declares the JWT authorizer: bearer scheme, each route's scope, every error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openapi_spec_validator import validate
from taskrunner.api.http import BEARER_JWT
from taskrunner.api.problems import PROBLEM_JSON, REQUEST_PROBLEMS
from taskrunner.api.routes.openapi import openapi_json
from taskrunner.local.template import HttpRoute, find_template, load_template

# the routes of the TaskRunner API (the approval-token issuer's API serves only its discovery and JWKS; the
# console's static files are no API operation)
ROUTES: list[HttpRoute] = [
    r
    for r, _ in load_template(find_template()).routes()
    if r.api == "TaskRunnerApi" and not r.path.startswith("/console")
]


def test_the_document_has_exactly_the_routes_of_the_api(document: dict[str, Any]) -> None:
    documented = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    assert documented == {route.route_key for route in ROUTES}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(openapi_json())
    return parsed


def test_the_document_is_valid_and_has_the_bearer_jwt_scheme(document: dict[str, Any]) -> None:
    validate(document)
    scheme = document["components"]["securitySchemes"][BEARER_JWT]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert "security" not in document  # no global requirement: the OpenAPI route is public


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.route_key)
def test_each_operation_requires_the_scopes_of_its_template_route(
    document: dict[str, Any], route: HttpRoute
) -> None:
    operation = document["paths"][route.path][route.method.lower()]
    if route.auth_none:
        assert "security" not in operation
    else:
        assert operation["security"] == [{BEARER_JWT: list(route.scopes)}]


@pytest.mark.parametrize("route", [r for r in ROUTES if not r.auth_none], ids=lambda r: r.route_key)
def test_each_protected_operation_documents_the_request_problems(
    document: dict[str, Any], route: HttpRoute
) -> None:
    responses = document["paths"][route.path][route.method.lower()]["responses"]
    for status in REQUEST_PROBLEMS:
        assert PROBLEM_JSON in responses[str(status)]["content"], (route.route_key, status)
