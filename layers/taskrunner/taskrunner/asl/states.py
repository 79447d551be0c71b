"""Builders for the ASL fragments the compiler emits (JSONPath query language only).

Every Lambda task passes a constant-size payload built from the execution context (``runId``,
``tenantId``) and literals, and discards the invoke result (``ResultPath: null``), so the state never
grows with what a step produces.
"""

from __future__ import annotations

import math
from typing import Any

from taskrunner.asl.placeholders import placeholder
from taskrunner.plan.document import RetryPolicy

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
LAMBDA_INVOKE_WAIT_FOR_TOKEN = "arn:aws:states:::lambda:invoke.waitForTaskToken"  # noqa: S105 - not a secret

LAMBDA_SERVICE_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
LAMBDA_SERVICE_RETRY_ATTEMPTS = 3
STEP_FAILED = "StepFailed"
POLICY_DENIED = "PolicyDenied"
APPROVAL_REJECTED = "ApprovalRejected"
APPROVAL_ENDED_ERRORS = ("States.Timeout", "States.HeartbeatTimeout", APPROVAL_REJECTED)
ALL_ERRORS = "States.ALL"
ERROR_PATH = "$.error"

# Where Map states find their item list in the state, and the execution-input fields every state keeps.
ITEMS_FIELD = "mapItems"
RUN_FIELDS = ("runId", "tenantId")


def index_field(depth: int) -> str:
    """State field holding the item index of the ``depth``-th enclosing Map (0 = outermost)."""
    return "index" if depth == 0 else f"index{depth}"


def context_selector(index_fields: tuple[str, ...]) -> dict[str, str]:
    """Payload template copying the run fields and the enclosing Map indices from the state."""
    return {f"{field}.$": f"$.{field}" for field in (*RUN_FIELDS, *index_fields)}


def lambda_service_retrier() -> dict[str, Any]:
    """Retry transient Lambda service errors: 3 more attempts, 1 s then doubling."""
    return {
        "ErrorEquals": list(LAMBDA_SERVICE_ERRORS),
        "IntervalSeconds": 1,
        "MaxAttempts": LAMBDA_SERVICE_RETRY_ATTEMPTS,
        "BackoffRate": 2,
    }


def step_failed_retrier(policy: RetryPolicy) -> dict[str, Any] | None:
    """The ``StepFailed`` retrier for a step's retry policy, or None when it allows one attempt only.

    Step Functions wants a whole number of seconds of at least 1, so the backoff is rounded up.
    """
    if policy.maxAttempts <= 1:
        return None
    return {
        "ErrorEquals": [STEP_FAILED],
        "IntervalSeconds": max(1, math.ceil(policy.backoffSeconds)),
        "MaxAttempts": policy.maxAttempts - 1,
        "BackoffRate": json_number(policy.backoffRate),
    }


def json_number(value: float) -> int | float:
    """``value`` as an int when it is whole (``2.0`` -> ``2``), as Step Functions writes it."""
    return int(value) if float(value).is_integer() else value


def catcher(errors: list[str], target: str) -> dict[str, Any]:
    """Catch ``errors``, keep the error at ``$.error`` and go to ``target``."""
    return {"ErrorEquals": errors, "ResultPath": ERROR_PATH, "Next": target}


def lambda_task(
    function: str,
    payload: dict[str, Any],
    *,
    wait_for_token: bool = False,
    retry: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Task invoking the Lambda behind ``${function}`` whose result is discarded."""
    return {
        "Type": "Task",
        "Resource": LAMBDA_INVOKE_WAIT_FOR_TOKEN if wait_for_token else LAMBDA_INVOKE,
        "Parameters": {"FunctionName": placeholder(function), "Payload": payload},
        "ResultPath": None,
        "Retry": [*(retry or []), lambda_service_retrier()],
    }


def items_pass(count: int) -> dict[str, Any]:
    """A Pass state that puts the item indices ``0..count-1`` where the next Map reads them."""
    return {"Type": "Pass", "Result": list(range(count)), "ResultPath": f"$.{ITEMS_FIELD}"}


def clear_pass(index_fields: tuple[str, ...]) -> dict[str, Any]:
    """A Pass state that drops the item list again, leaving only the run fields and indices."""
    return {"Type": "Pass", "Parameters": context_selector(index_fields)}


def format_step_id(chunks: tuple[str, ...], index_fields: tuple[str, ...]) -> str:
    """``States.Format(...)`` joining the literal ``chunks`` of a step id with the Map indices between them.

    Characters the intrinsic-function grammar reserves (``' { } \\``) are escaped with a backslash.
    """
    template = "{}".join(
        "".join("\\" + char if char in "'{}\\" else char for char in chunk) for chunk in chunks
    )
    args = ", ".join(f"$.{field}" for field in index_fields)
    return f"States.Format('{template}', {args})"
