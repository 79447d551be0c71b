"""Approver keys (the approver_keys function): enrol, list, confirm and revoke the keys decisions are signed with."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from taskrunner.api.auth import Scope
from taskrunner.api.http import caller, requires
from taskrunner.api.models import ApproverKeyOut, ApproverKeysOut, EnrolKeyRequest
from taskrunner.api.problems import REQUEST_PROBLEMS, problem_responses
from taskrunner.composition import services
from taskrunner.engine import approver_keys

router = Router()


@router.post(
    "/api/approvers/keys",
    summary="Enrol an approver key",
    responses={
        201: {"description": "The key, enrolled (active, or pending an administrator's confirmation)"},
        200: {"description": "The key was enrolled before: its record"},
        **problem_responses(*REQUEST_PROBLEMS),
    },
    security=requires(Scope.APPROVE),
)
def enrol(request: Annotated[EnrolKeyRequest, Body()]) -> Response[ApproverKeyOut]:
    principal = caller(router, Scope.APPROVE)
    record, created = approver_keys.enrol(services(), principal, request.publicKeyPem, request.label)
    return Response(
        201 if created else 200, "application/json", ApproverKeyOut.model_validate(record.public())
    )


@router.get(
    "/api/approvers/keys",
    summary="List the caller's approver keys",
    responses={200: {"description": "The caller's keys"}, **problem_responses(*REQUEST_PROBLEMS)},
    security=requires(Scope.APPROVE),
)
def list_keys() -> ApproverKeysOut:
    principal = caller(router, Scope.APPROVE)
    records = approver_keys.approver_records(services(), principal.tenant_id, principal.subject)
    return ApproverKeysOut(items=[ApproverKeyOut.model_validate(r.public()) for r in records])


@router.post(
    "/api/approvers/<approver>/keys/<keyId>/confirm",
    summary="Confirm another approver's pending key",
    responses={200: {"description": "The key, active"}, **problem_responses(*REQUEST_PROBLEMS, 404, 409)},
    security=requires(Scope.ADMIN),
)
def confirm(approver: str, keyId: str) -> ApproverKeyOut:
    principal = caller(router)
    record = approver_keys.confirm(services(), principal, approver, keyId)
    return ApproverKeyOut.model_validate(record.public())


@router.delete(
    "/api/approvers/keys/<keyId>",
    summary="Revoke one of the caller's approver keys",
    responses={200: {"description": "The key, revoked"}, **problem_responses(*REQUEST_PROBLEMS, 404)},
    security=requires(Scope.APPROVE),
)
def revoke(keyId: str) -> ApproverKeyOut:
    principal = caller(router, Scope.APPROVE)
    return ApproverKeyOut.model_validate(approver_keys.revoke(services(), principal, keyId).public())
