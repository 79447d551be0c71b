"""RFC 9457 problem+json responses for domain, validation, routing and unexpected errors."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel
from taskrunner.api.auth import Unauthorized
from taskrunner.api.problems import (
    PROBLEM_JSON,
    code_for_status,
    error_response,
    field_path,
    internal_error_response,
    problem,
    problem_responses,
    register_problem_handlers,
    request_validation_response,
    title_of,
)
from taskrunner.errors import Conflict, NotFound, ValidationFailed


def body_of(response: Any) -> dict[str, Any]:
    return json.loads(str(response.body))


def test_problem_document_has_every_rfc9457_member() -> None:
    doc = problem(409, "Conflict", "run r1 is already cancelled", instance="/api/runs/r1/cancel")
    assert doc == {
        "type": "https://stellaops.io/problems/Conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "run r1 is already cancelled",
        "code": "Conflict",
        "remediation": doc["remediation"],
        "instance": "/api/runs/r1/cancel",
    }
    assert doc["remediation"]  # a default hint when the error gives none


def test_domain_error_becomes_problem_response() -> None:
    response = error_response(NotFound("run r9 not found", remediation="List runs with GET /api/runs."), "/x")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == PROBLEM_JSON
    body = body_of(response)
    assert body["code"] == "NotFound"
    assert body["type"].endswith("/NotFound")
    assert body["detail"] == "run r9 not found"
    assert body["remediation"] == "List runs with GET /api/runs."
    assert body["instance"] == "/x"
    assert "errors" not in body


def test_validation_failed_lists_its_problems() -> None:
    problems: list[dict[str, object]] = [
        {"path": "spec.steps[0].id", "line": 12, "column": 7, "message": "invalid id"},
        {"path": "spec.sandbox", "message": "required"},
    ]
    body = body_of(error_response(ValidationFailed("manifest invalid", problems=problems)))
    assert body["status"] == 422
    assert body["errors"] == problems


def test_unauthorized_response_carries_a_bearer_challenge() -> None:
    response = error_response(Unauthorized("token expired"))
    assert response.status_code == 401
    assert str(response.headers["WWW-Authenticate"]).startswith("Bearer")


def test_request_validation_error_lists_field_paths_without_input_values() -> None:
    error = RequestValidationError(
        [
            {
                "loc": ("body", "inputs"),
                "msg": "Input should be a valid dictionary",
                "type": "dict_type",
                "input": "s3cr3t-value",
            },
            {"loc": ("body", "envelope", "signatures", 0, "sig"), "msg": "Field required", "type": "missing"},
            {"loc": ("body",), "msg": "Value error, give exactly one", "type": "value_error"},
        ]
    )
    response = request_validation_response(error, "/api/runs")
    body = body_of(response)
    assert response.status_code == 422
    assert body["code"] == "ValidationFailed"
    assert [e["path"] for e in body["errors"]] == ["body.inputs", "body.envelope.signatures[0].sig", "body"]
    assert body["errors"][2]["message"] == "give exactly one"
    assert "body.inputs" in body["detail"]
    assert "s3cr3t-value" not in str(response.body)


def test_invalid_json_body_is_reported_as_such() -> None:
    error = RequestValidationError([{"loc": ("body", 5), "msg": "JSON decode error", "type": "json_invalid"}])
    item = body_of(request_validation_response(error))["errors"][0]
    assert item == {
        "path": "body",
        "message": "The body is not valid JSON (at character 5).",
        "type": "json_invalid",
    }


def test_internal_error_hides_the_exception_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise RuntimeError("password=hunter2 in /opt/code/secret.py")
    except RuntimeError as error:
        with caplog.at_level(logging.ERROR, logger="taskrunner.api.problems"):
            response = internal_error_response(error, "/api/runs", "req-1")
    body = body_of(response)
    assert response.status_code == 500
    assert body["code"] == "InternalError"
    assert body["requestId"] == "req-1"
    assert "hunter2" not in str(response.body)
    assert "Traceback" not in str(response.body)
    assert any(record.exc_info and "hunter2" in str(record.exc_info[1]) for record in caplog.records)


@pytest.mark.parametrize(
    ("code", "title"), [("ValidationFailed", "Validation failed"), ("NotFound", "Not found"), ("X", "X")]
)
def test_title_of(code: str, title: str) -> None:
    assert title_of(code) == title


@pytest.mark.parametrize(
    ("status", "code"),
    [(404, "NotFound"), (400, "BadRequest"), (405, "MethodNotAllowed"), (503, "InternalError")],
)
def test_code_for_status(status: int, code: str) -> None:
    assert code_for_status(status) == code


def test_field_path() -> None:
    assert field_path(("query", "limit")) == "query.limit"
    assert field_path(("body", "items", 3)) == "body.items[3]"


# --- installed on a real resolver -------------------------------------------------------------


class Thing(BaseModel):
    name: str
    count: int


def make_app() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    register_problem_handlers(app)

    @app.post("/things", responses={200: {"description": "ok"}, **problem_responses(404, 409, 422)})
    def create(thing: Thing) -> dict[str, Any]:
        if thing.name == "dup":
            raise Conflict(f"thing {thing.name} exists", remediation="Pick another name.")
        if thing.name == "bad":
            raise BadRequestError("bad name")
        if thing.name == "crash":
            raise KeyError("internal-detail-xyz")
        return {"name": thing.name}

    return app


def http_event(method: str, path: str, body: Any = None) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "http": {"method": method, "path": path, "sourceIp": "127.0.0.1"},
            "requestId": "req-42",
            "stage": "$default",
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def call(app: APIGatewayHttpResolver, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    result = app.resolve(http_event(method, path, body), None)  # type: ignore[arg-type]
    assert result["headers"]["Content-Type"] in (PROBLEM_JSON, "application/json")
    return result["statusCode"], json.loads(result["body"])


def test_installed_handlers_cover_every_error_kind(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()
    assert call(app, "POST", "/things", {"name": "ok", "count": 1}) == (200, {"name": "ok"})

    status, body = call(app, "POST", "/things", {"name": "dup", "count": 1})
    assert (status, body["code"], body["remediation"], body["instance"]) == (
        409,
        "Conflict",
        "Pick another name.",
        "/things",
    )

    status, body = call(app, "POST", "/things", {"name": "x", "count": "many"})
    assert (status, body["code"]) == (422, "ValidationFailed")
    assert [e["path"] for e in body["errors"]] == ["body.count"]

    status, body = call(app, "POST", "/things", {"name": "bad", "count": 1})
    assert (status, body["code"], body["detail"]) == (400, "BadRequest", "bad name")

    status, body = call(app, "GET", "/nowhere")
    assert (status, body["code"], body["instance"]) == (404, "NotFound", "/nowhere")
    assert "GET /nowhere" in body["detail"]

    with caplog.at_level(logging.ERROR):
        status, body = call(app, "POST", "/things", {"name": "crash", "count": 1})
    assert (status, body["code"], body["requestId"]) == (500, "InternalError", "req-42")
    assert "internal-detail-xyz" not in json.dumps(body)


def test_problem_responses_render_in_openapi() -> None:
    schema = json.loads(make_app().get_openapi_json_schema())
    responses = schema["paths"]["/things"]["post"]["responses"]
    for status in ("404", "409", "422"):
        ref = responses[status]["content"][PROBLEM_JSON]["schema"]["$ref"]
        assert ref == "#/components/schemas/ProblemDetails"
    problem_schema = schema["components"]["schemas"]["ProblemDetails"]
    assert {"type", "title", "status", "detail", "code", "remediation"} <= set(problem_schema["required"])
