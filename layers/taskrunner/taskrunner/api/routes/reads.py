"""GET routes (the get_run function): runs, one run, its logs, artifacts, evidence, waiting gates."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseContentModel,
    OpenAPIResponseContentSchema,
)

from taskrunner.api.auth import Scope
from taskrunner.api.http import caller, caller_with_any, requires
from taskrunner.api.models import (
    ApprovalList,
    ApprovalOut,
    ArtifactList,
    ArtifactOut,
    EvidenceOut,
    GateDetail,
    LogEventOut,
    LogPage,
    RunDetail,
    RunList,
    RunSummary,
)
from taskrunner.api.problems import REQUEST_PROBLEMS, problem_responses
from taskrunner.api.streams import log_response, negotiate_log_format, parse_last_event_id
from taskrunner.composition import services
from taskrunner.engine import queries
from taskrunner.timeutil import utc_now

router = Router()
_READ_ERRORS = problem_responses(*REQUEST_PROBLEMS, 404)
_LOG_FORMATS: dict[str, OpenAPIResponseContentSchema | OpenAPIResponseContentModel] = {
    "application/json": {"model": LogPage},
    "application/x-ndjson": {"schema": {"type": "string", "description": "One JSON log event per line."}},
    "text/event-stream": {
        "schema": {
            "type": "string",
            "description": "SSE: id = sequence, event = eventType, data = the event.",
        }
    },
}


def _ok(description: str) -> dict[int, OpenAPIResponse]:
    """A 200 response documented with the handler's return model."""
    return {200: {"description": description}}


@router.get(
    "/api/runs",
    summary="List the tenant's runs, newest first",
    responses={**_ok("A page of runs"), **problem_responses(*REQUEST_PROBLEMS)},
    security=requires(Scope.READ),
)
def list_runs(
    limit: Annotated[int, Query(ge=1, le=200)] = 50, cursor: Annotated[str | None, Query()] = None
) -> RunList:
    principal = caller(router, Scope.READ)
    runs, next_cursor = services().store.list_runs(principal.tenant_id, limit=limit, cursor=cursor)
    return RunList(items=[RunSummary.model_validate(r) for r in runs], nextCursor=next_cursor)


@router.get(
    "/api/runs/<runId>",
    summary="A run with every step, attempt and pending gate",
    responses={**_ok("The run"), **_READ_ERRORS},
    security=requires(Scope.READ),
)
def get_run(runId: str) -> RunDetail:
    principal = caller(router, Scope.READ, run_id=runId)
    view = queries.run_view(services(), principal.tenant_id, runId)
    return RunDetail.of(view.run, view.statuses, view.pending_gates)


@router.get(
    "/api/runs/<runId>/logs",
    summary="Run log: SSE, NDJSON or JSON pages",
    responses={
        200: {"description": "Log events after `after` / `Last-Event-ID`", "content": _LOG_FORMATS},
        **_READ_ERRORS,
    },
    security=requires(Scope.READ),
)
def get_logs(
    runId: str,
    after: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int | None, Query(ge=1, le=5000)] = None,
) -> Response[str]:
    principal = caller(router, Scope.READ, run_id=runId)
    headers = router.current_event.headers
    start = parse_last_event_id(headers.get("last-event-id")) if after is None else after
    read = queries.read_logs(services(), principal.tenant_id, runId, start or 0, limit)
    fmt = negotiate_log_format(headers.get("accept"))
    return log_response([LogEventOut.model_validate(e) for e in read.events], fmt=fmt, complete=read.complete)


@router.get(
    "/api/runs/<runId>/artifacts",
    summary="Artifacts with digests and download URLs",
    responses={**_ok("The run's artifacts"), **_READ_ERRORS},
    security=requires(Scope.READ),
)
def get_artifacts(runId: str) -> ArtifactList:
    principal = caller(router, Scope.READ, run_id=runId)
    artifacts = queries.list_artifacts(services(), principal.tenant_id, runId)
    return ArtifactList(items=[ArtifactOut.of(record, url) for record, url in artifacts])


@router.get(
    "/api/runs/<runId>/evidence",
    summary="The sealed evidence bundle and its verification against the deployment's signing key",
    responses={**_ok("Where the bundle is, its digest and whether it verifies"), **_READ_ERRORS},
    security=requires(Scope.READ),
)
def get_evidence(runId: str) -> EvidenceOut:
    principal = caller(router, Scope.READ, run_id=runId)
    svc = services()
    evidence = queries.evidence_of(svc, principal.tenant_id, runId)
    verification = queries.evidence_verification(svc, principal.tenant_id, runId)
    return EvidenceOut.model_validate({"runId": runId, **evidence, "verification": verification})


@router.get(
    "/api/approvals",
    summary="The tenant's gates waiting for decisions, newest first",
    responses={**_ok("Waiting gates"), **problem_responses(*REQUEST_PROBLEMS)},
    security=requires(Scope.APPROVE, Scope.READ),
)
def list_approvals() -> ApprovalList:
    principal = caller_with_any(router, Scope.APPROVE, Scope.READ)
    views = queries.waiting_gates(services(), principal.tenant_id)
    return ApprovalList(
        items=[ApprovalOut.of(v.run, v.gate, principal.scopes, principal.subject) for v in views]
    )


@router.get(
    "/api/runs/<runId>/gates/<gateId>",
    summary="A gate: pack, plan, redacted inputs, steps still to run, decisions, time left",
    responses={**_ok("The gate"), **_READ_ERRORS},
    security=requires(Scope.APPROVE, Scope.READ),
)
def get_gate(runId: str, gateId: str) -> GateDetail:
    principal = caller_with_any(router, Scope.APPROVE, Scope.READ, run_id=runId)
    view = queries.gate_view(services(), principal.tenant_id, runId, gateId)
    run, gate = view.run, view.gate
    left = None if gate.expiresAt is None else max(0, int((gate.expiresAt - utc_now()).total_seconds()))
    item = ApprovalOut.of(run, gate, principal.scopes, principal.subject)
    return GateDetail.model_validate(
        {
            **item.model_dump(),
            "tenantId": run.tenantId,
            "status": gate.status,
            "pack": {"name": run.packName, "version": run.packVersion, "digest": run.plan["pack"]["digest"]},
            "inputs": view.inputs(),
            "remainingSteps": view.remaining_steps(),
            "secondsLeft": left,
            "closedAt": gate.closedAt,
        }
    )
