"""evaluate_policy: a policy gate; PolicyDenied halts the run when the gate's failAction is halt."""

from typing import Any

from taskrunner.engine.gates import evaluate_policy
from taskrunner.engine.payloads import EvaluatePolicyPayload
from taskrunner.engine.services import Services
from taskrunner.workers import worker


@worker(EvaluatePolicyPayload)
def handler(event: EvaluatePolicyPayload, svc: Services) -> dict[str, Any]:
    return evaluate_policy(svc, event.runId, event.tenantId, event.stepId)
