"""POST /api/plans and POST /api/runs (the submit_run function)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from taskrunner.api.auth import Scope
from taskrunner.api.http import caller, requires
from taskrunner.api.models import (
    PackInfo,
    PlanRequest,
    PlanResponse,
    Simulation,
    SubmitRunRequest,
    SubmitRunResponse,
)
from taskrunner.api.problems import REQUEST_PROBLEMS, problem_responses
from taskrunner.composition import services
from taskrunner.engine.packs import manifest_source, pack_source
from taskrunner.engine.submit import plan_pack, submit_run

router = Router()


@router.post(
    "/api/plans",
    summary="Plan a pack (nothing is started)",
    responses={
        200: {"description": "The plan, its planHash and simulation"},
        **problem_responses(*REQUEST_PROBLEMS),
    },
    security=requires(Scope.READ),
)
def create_plan(request: Annotated[PlanRequest, Body()]) -> PlanResponse:
    principal = caller(router, Scope.READ)
    svc = services()
    source = manifest_source(svc, request.manifest, request.packRef, principal.tenant_id)
    planned = plan_pack(source, request.inputs)
    return PlanResponse(
        planHash=planned.plan_hash,
        pack=PackInfo.model_validate(planned.plan.pack),
        plan=planned.plan.to_document(),
        simulation=Simulation.model_validate(planned.simulation),
    )


@router.post(
    "/api/runs",
    summary="Submit a run",
    responses={
        202: {"description": "The run was accepted and started"},
        200: {"description": "The run an earlier request with this idempotencyKey created"},
        **problem_responses(*REQUEST_PROBLEMS, 409, 429),
    },
    security=requires(Scope.RUN),
)
def create_run(request: Annotated[SubmitRunRequest, Body()]) -> Response[SubmitRunResponse]:
    principal = caller(router, Scope.RUN)
    svc = services()
    source, release = pack_source(svc, request.manifest, request.packRef, principal.tenant_id)
    submitted = submit_run(
        svc,
        tenant_id=principal.tenant_id,
        manifest=source,
        release=release,
        inputs=request.inputs,
        idempotency_key=request.idempotencyKey,
    )
    run = submitted.run
    body = SubmitRunResponse(runId=run.runId, planHash=run.planHash, status=run.status)
    return Response(202 if submitted.created else 200, "application/json", body)
