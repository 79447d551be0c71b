"""Payloads the state machine sends the worker Lambdas (see ``taskrunner.asl``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    runId: str = Field(min_length=1)
    tenantId: str = Field(min_length=1)


class VerifyPlanPayload(_Payload):
    planHash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


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
