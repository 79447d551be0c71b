"""POST approve (the approve_gate function)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from taskrunner.api.auth import Scope
from taskrunner.api.http import caller, requires
from taskrunner.api.models import ApproveRequest, GateOut
from taskrunner.api.problems import REQUEST_PROBLEMS, problem_responses
from taskrunner.composition import services
from taskrunner.engine.approvals import ApprovalDecision, decide

router = Router()


@router.post(
    "/api/runs/<runId>/approve",
    summary="Approve or reject a gate",
    responses={
        200: {"description": "The gate after the decision"},
        **problem_responses(*REQUEST_PROBLEMS, 404, 409),
    },
    security=requires(Scope.APPROVE),
)
def approve(runId: str, request: Annotated[ApproveRequest, Body()]) -> GateOut:
    principal = caller(router, Scope.APPROVE, run_id=runId)
    decision = ApprovalDecision(
        run_id=runId,
        gate_id=request.gateId,
        decision=request.decision,
        reason=request.reason,
        plan_hash=request.planHash,
        envelope=request.envelope.model_dump(),
    )
    return GateOut.of(decide(services(), principal, decision), request.decision)
