"""open_gate: park the execution on an approval gate (the task token is kept server-side)."""

from typing import Any

from taskrunner.engine.gates import open_gate
from taskrunner.engine.payloads import OpenGatePayload
from taskrunner.engine.services import Services
from taskrunner.workers import worker


@worker(OpenGatePayload)
def handler(event: OpenGatePayload, svc: Services) -> dict[str, Any]:
    return open_gate(svc, event.runId, event.tenantId, event.gateId, event.taskToken)
