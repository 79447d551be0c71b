"""POST cancel and resume (the cancel_run function)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from taskrunner.api.auth import Scope
from taskrunner.api.http import caller, requires
from taskrunner.api.models import CancelResponse, ResumeResponse
from taskrunner.api.problems import REQUEST_PROBLEMS, problem_responses
from taskrunner.composition import services
from taskrunner.engine.lifecycle import cancel_run, resume_run

router = Router()


@router.post(
    "/api/runs/<runId>/cancel",
    summary="Cancel a run",
    responses={200: {"description": "The run, cancelled"}, **problem_responses(*REQUEST_PROBLEMS, 404, 409)},
    security=requires(Scope.RUN),
)
def cancel(runId: str) -> CancelResponse:
    principal = caller(router, Scope.RUN, run_id=runId)
    run = cancel_run(services(), principal.tenant_id, runId, requested_by=principal.subject)
    return CancelResponse(runId=run.runId, status=run.status)


@router.post(
    "/api/runs/<runId>/resume",
    summary="Resume a run",
    responses={200: {"description": "The run, resumed"}, **problem_responses(*REQUEST_PROBLEMS, 404, 409)},
    security=requires(Scope.RUN),
)
def resume(runId: str) -> ResumeResponse:
    principal = caller(router, Scope.RUN, run_id=runId)
    run = resume_run(services(), principal.tenant_id, runId)
    return ResumeResponse(
        runId=run.runId, status=run.status, executionName=(run.executionArn or "").rsplit(":", 1)[-1]
    )
