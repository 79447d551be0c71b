"""API request/response models and the OpenAPI 3.1 document they render into."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Query
from jsonschema import Draft202012Validator
from pydantic import ValidationError
from taskrunner.api.models import (
    ApproveRequest,
    ArtifactList,
    CancelResponse,
    EvidenceOut,
    GateOut,
    LogPage,
    PlanRequest,
    PlanResponse,
    ResumeResponse,
    RunDetail,
    RunList,
    SimulatedOutput,
    SubmitRunRequest,
    SubmitRunResponse,
)
from taskrunner.api.problems import problem_responses, register_problem_handlers

PLAN_HASH = "sha256:" + "ab" * 32
ENVELOPE: dict[str, Any] = {
    "payloadType": "application/vnd.stellaops.pack-run+json",
    "payload": "e30=",
    "signatures": [{"keyid": "k1", "sig": "c2ln"}],
}


@pytest.mark.parametrize(
    "body",
    [
        {"manifest": "apiVersion: stellaops.io/pack.v1\nkind: TaskPack\n", "inputs": {"a": 1}},
        {"manifest": {"apiVersion": "stellaops.io/pack.v1"}},
        {"packRef": "air-gap-import@1.2.0", "inputs": {}},
    ],
)
def test_plan_request_accepts_manifest_text_object_or_pack_ref(body: dict[str, Any]) -> None:
    request = PlanRequest.model_validate(body)
    assert request.inputs == body.get("inputs", {})


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": {}},
        {"manifest": "", "inputs": {}},
        {"manifest": "kind: TaskPack", "packRef": "p@1"},
    ],
)
def test_plan_request_needs_exactly_one_source(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="exactly one of 'manifest'"):
        PlanRequest.model_validate(body)


def test_manifest_text_is_kept_verbatim() -> None:
    text = "  # indented comment\napiVersion: x\n"
    assert PlanRequest.model_validate({"manifest": text}).manifest == text


def test_submit_request_rejects_unknown_fields_and_bad_idempotency_keys() -> None:
    assert SubmitRunRequest.model_validate({"packRef": "p", "idempotencyKey": "ci-build:42"}).idempotencyKey
    with pytest.raises(ValidationError, match="idempotencyKey"):
        SubmitRunRequest.model_validate({"packRef": "p", "idempotencyKey": "has space"})
    with pytest.raises(ValidationError, match="input"):
        SubmitRunRequest.model_validate({"packRef": "p", "input": {}})  # typo of `inputs`
    with pytest.raises(ValidationError, match="inputs"):
        SubmitRunRequest.model_validate({"packRef": "p", "inputs": ["not", "an", "object"]})


def test_approve_request_validates_decision_plan_hash_and_envelope() -> None:
    ok = ApproveRequest.model_validate(
        {
            "gateId": "review",
            "decision": "approve",
            "reason": "LGTM",
            "planHash": PLAN_HASH,
            "envelope": ENVELOPE,
        }
    )
    assert ok.envelope.signatures[0].keyid == "k1"
    bad: list[dict[str, Any]] = [
        {"decision": "maybe"},
        {"planHash": "sha256:XYZ"},
        {"envelope": {"payload": "e30=", "signatures": [{"sig": "x"}]}},
    ]
    for change in bad:
        body = {
            "gateId": "review",
            "decision": "reject",
            "planHash": PLAN_HASH,
            "envelope": ENVELOPE,
            **change,
        }
        with pytest.raises(ValidationError, match=next(iter(change))):
            ApproveRequest.model_validate(body)
    # An envelope without signatures is well-formed; the approval use case refuses it (403, fail-closed).
    unsigned = ApproveRequest.model_validate({**ok.model_dump(), "envelope": {**ENVELOPE, "signatures": []}})
    assert unsigned.envelope.signatures == []


def test_run_detail_from_a_store_record_ignores_extra_fields() -> None:
    record = {
        "runId": "r1",
        "tenantId": "acme",
        "pack": {"name": "p", "version": "1.0.0", "digest": "sha256:" + "0" * 64},
        "planHash": PLAN_HASH,
        "status": "running",
        "requestedAt": "2026-01-02T03:04:05.000Z",
        "updatedAt": "2026-01-02T03:04:06.000Z",
        "internalLock": "x",
        "steps": [
            {
                "stepId": "scan-all[0]::scan",
                "kind": "run",
                "status": "failed",
                "parentId": "scan-all",
                "attempts": [
                    {
                        "number": 1,
                        "status": "failed",
                        "startedAt": "2026-01-02T03:04:05.100Z",
                        "completedAt": "2026-01-02T03:04:05.200Z",
                        "error": {"code": "StepFailed", "message": "exit 1"},
                        "nextAttemptAt": "2026-01-02T03:04:10.200Z",
                    }
                ],
            },
            {"stepId": "review", "kind": "gate.approval", "status": "waiting"},
        ],
        "pendingGates": [
            {
                "gateId": "review",
                "approvalId": "security-review",
                "requiredCount": 2,
                "approvals": 1,
                "expiresAt": "2026-01-02T07:04:05.000Z",
                "reason": "Import",
            }
        ],
    }
    detail = RunDetail.model_validate(record)
    dumped = detail.model_dump(mode="json", exclude_none=True)
    assert "internalLock" not in dumped
    assert dumped["steps"][1]["status"] == "waiting"
    assert dumped["steps"][0]["attempts"][0]["error"]["code"] == "StepFailed"
    with pytest.raises(ValidationError, match="status"):
        RunDetail.model_validate({**record, "steps": [{"stepId": "x", "kind": "run", "status": "done"}]})


def test_simulated_output_uses_the_from_key_on_the_wire() -> None:
    output = SimulatedOutput.model_validate({"name": "report", "type": "file", "from": "steps.a.outputs.x"})
    assert output.model_dump(by_alias=True) == {"name": "report", "type": "file", "from": "steps.a.outputs.x"}


# --- OpenAPI ---------------------------------------------------------------------------------------


def api_app() -> APIGatewayHttpResolver:
    """Every route of DESIGN §7 declared with the API models, as the handlers declare them."""
    app = APIGatewayHttpResolver(enable_validation=True)
    register_problem_handlers(app)
    errors = problem_responses(400, 401, 403, 404, 409, 422, 500)

    def ok(status: int, model: Any, description: str = "OK") -> dict[int, Any]:
        return {
            status: {"description": description, "content": {"application/json": {"model": model}}},
            **errors,
        }

    @app.post("/api/plans", responses=ok(200, PlanResponse), summary="Plan a pack")
    def plan(body: PlanRequest) -> PlanResponse:
        raise NotImplementedError

    @app.post("/api/runs", status_code=202, responses=ok(202, SubmitRunResponse, "Accepted"))
    def submit(body: SubmitRunRequest) -> SubmitRunResponse:
        raise NotImplementedError

    @app.get("/api/runs", responses=ok(200, RunList))
    def list_runs(
        limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
        cursor: Annotated[str | None, Query(description="Cursor from `nextCursor`.")] = None,
    ) -> RunList:
        raise NotImplementedError

    @app.get("/api/runs/<runId>", responses=ok(200, RunDetail))
    def get_run(runId: str) -> RunDetail:
        raise NotImplementedError

    @app.get("/api/runs/<runId>/logs", responses=ok(200, LogPage))
    def logs(runId: str) -> LogPage:
        raise NotImplementedError

    @app.get("/api/runs/<runId>/artifacts", responses=ok(200, ArtifactList))
    def artifacts(runId: str) -> ArtifactList:
        raise NotImplementedError

    @app.get("/api/runs/<runId>/evidence", responses=ok(200, EvidenceOut))
    def evidence(runId: str) -> EvidenceOut:
        raise NotImplementedError

    @app.post("/api/runs/<runId>/approve", responses=ok(200, GateOut))
    def approve(runId: str, body: ApproveRequest) -> GateOut:
        raise NotImplementedError

    @app.post("/api/runs/<runId>/cancel", responses=ok(200, CancelResponse))
    def cancel(runId: str) -> CancelResponse:
        raise NotImplementedError

    @app.post("/api/runs/<runId>/resume", responses=ok(200, ResumeResponse))
    def resume(runId: str) -> ResumeResponse:
        raise NotImplementedError

    return app


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _structural_check(document: dict[str, Any]) -> None:
    """OpenAPI 3.1 shape, resolvable refs and valid JSON Schema 2020-12 components."""
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"]
    assert document["info"]["version"]
    schemas = document["components"]["schemas"]
    for ref in _refs(document):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, f"unresolved {ref}"
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], f"{method} {path} has no responses"
            assert re.fullmatch(r"[A-Za-z0-9_]+", operation["operationId"])
            for name in re.findall(r"{([^}]+)}", path):
                params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
                assert name in params, f"{method} {path} does not declare path parameter {name}"


def test_every_route_renders_into_a_valid_openapi_31_document() -> None:
    document = json.loads(api_app().get_openapi_json_schema(title="TaskRunner API", version="1.0.0"))
    _structural_check(document)
    try:
        from openapi_spec_validator import validate
    except ImportError:
        pass
    else:
        validate(document)

    paths = document["paths"]
    assert set(paths) == {
        "/api/plans",
        "/api/runs",
        "/api/runs/{runId}",
        "/api/runs/{runId}/logs",
        "/api/runs/{runId}/artifacts",
        "/api/runs/{runId}/evidence",
        "/api/runs/{runId}/approve",
        "/api/runs/{runId}/cancel",
        "/api/runs/{runId}/resume",
    }
    assert "202" in paths["/api/runs"]["post"]["responses"]
    assert "application/problem+json" in paths["/api/runs"]["post"]["responses"]["422"]["content"]
    schemas = document["components"]["schemas"]
    submit = schemas["SubmitRunRequest"]["properties"]
    assert {"manifest", "packRef", "inputs", "idempotencyKey"} <= set(submit)
    # camelCase names, and every property documented
    for name in ("RunDetail", "StepOut", "AttemptOut", "PendingGateOut", "ArtifactOut", "ApproveRequest"):
        for prop, spec in schemas[name]["properties"].items():
            assert re.fullmatch(r"[a-z][A-Za-z0-9]*", prop), f"{name}.{prop}"
            described = (
                "description" in spec or "$ref" in spec or any("$ref" in alt for alt in spec.get("anyOf", []))
            )
            assert described, f"{name}.{prop} has no description"
    assert schemas["ApproveRequest"]["properties"]["decision"]["enum"] == ["approve", "reject"]
