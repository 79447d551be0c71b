"""seal_evidence: record the run's outcome and seal its signed evidence bundle."""

from typing import Any

from taskrunner.engine.payloads import SealEvidencePayload
from taskrunner.engine.seal import seal_run
from taskrunner.engine.services import Services
from taskrunner.workers import worker


@worker(SealEvidencePayload)
def handler(event: SealEvidencePayload, svc: Services) -> dict[str, Any]:
    return seal_run(svc, event.runId, event.tenantId, event.outcome, event.error)
