"""Payloads the state machine sends the worker Lambdas (see ``taskrunner.asl``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    runId: str = Field(min_length=1)
    tenantId: str = Field(min_length=1)


class VerifyPlanPayload(_Payload):
    planHash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")  # the execution input's
    stateMachine: str = Field(min_length=1, max_length=80)  # $$.StateMachine.Name
    functionArn: str = Field(min_length=1)  # this function, as the definition calls it


class ExecuteStepPayload(_Payload):
    stepId: str = Field(min_length=1)
    attempt: int = Field(0, ge=0)  # $$.State.RetryCount


class OpenGatePayload(_Payload):
    gateId: str = Field(min_length=1)
    taskToken: str = Field(min_length=1)


class EvaluatePolicyPayload(_Payload):
    stepId: str = Field(min_length=1)


class SealEvidencePayload(_Payload):
    outcome: Literal["succeeded", "failed", "cancelled"]
    error: dict[str, Any] | None = None


class ExecutionEnded(BaseModel):
    """``detail`` of an EventBridge "Step Functions Execution Status Change" event for an ended execution."""

    model_config = ConfigDict(extra="ignore")

    stateMachineArn: str = Field(
        pattern=r"^arn:aws[a-z-]*:states:[a-z0-9-]+:[0-9]{12}:stateMachine:[A-Za-z0-9_-]{1,80}$"
    )
    executionArn: str = Field(min_length=1)
    status: Literal["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]
