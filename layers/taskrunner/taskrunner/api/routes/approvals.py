"""POST approve and the approval-token exchange (the approve_gate function)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from taskrunner.api.auth import Scope
from taskrunner.api.http import caller, requires
from taskrunner.api.issuer import token_issuer
from taskrunner.api.models import ApprovalTokenOut, ApprovalTokenRequest, ApproveRequest, GateOut
from taskrunner.api.problems import REQUEST_PROBLEMS, problem_responses
from taskrunner.composition import services
from taskrunner.engine.approval_tokens import issue_approval_token
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


@router.post(
    "/api/runs/<runId>/gates/<gateId>/approval-token",
    summary="Exchange the identity token for an approval token bound to this run, gate and plan",
    responses={
        200: {"description": "The approval token (ES256 JWT, audience taskrunner-approvals)"},
        **problem_responses(*REQUEST_PROBLEMS, 404, 409),
    },
    security=requires(Scope.APPROVE),
)
def approval_token(
    runId: str, gateId: str, request: Annotated[ApprovalTokenRequest | None, Body()] = None
) -> Response[ApprovalTokenOut]:
    principal = caller(router, Scope.APPROVE, run_id=runId)
    issued = issue_approval_token(
        services(), principal, runId, gateId, token_issuer(router.current_event.raw_event)
    )
    body = ApprovalTokenOut.model_validate(
        {
            "token": issued.token,
            "expiresAt": issued.expires_at,
            "expiresIn": issued.expires_in,
            "runId": issued.run_id,
            "gateId": issued.gate_id,
            "tenantId": issued.tenant_id,
            "planHash": issued.plan_hash,
            "approval": issued.approval,
            "grants": list(issued.grants),
        }
    )
    return Response(200, "application/json", body, headers={"Cache-Control": "no-store"})
