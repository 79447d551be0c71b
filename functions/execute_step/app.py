"""execute_step: run one step of a pack run (idempotent per runId + stepId)."""

from typing import Any

from taskrunner.engine.execute import execute_step
from taskrunner.engine.payloads import ExecuteStepPayload
from taskrunner.engine.services import Services
from taskrunner.workers import worker


@worker(ExecuteStepPayload)
def handler(event: ExecuteStepPayload, svc: Services) -> dict[str, Any]:
    return execute_step(svc, event.runId, event.tenantId, event.stepId, event.attempt)
