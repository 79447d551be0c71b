"""Scheduled runs: an EventBridge rule submits a pack stored under ``packs/`` with fixed inputs."""

from __future__ import annotations

from typing import Any

from taskrunner.composition import services
from taskrunner.engine.packs import manifest_source
from taskrunner.engine.submit import submit_run
from taskrunner.errors import ValidationFailed
from taskrunner.keys import TENANT_ID
from taskrunner.observability import logger


def submit_scheduled(event: dict[str, Any]) -> dict[str, Any]:
    """``detail: {packKey, inputs, tenantId?}``; the event id is the idempotency key, so a redelivery is a no-op."""
    detail = event.get("detail") or {}
    pack_key = detail.get("packKey")
    if not pack_key:
        raise ValidationFailed(
            "scheduled event has no detail.packKey", remediation="set the ScheduledPackKey parameter"
        )
    svc = services()
    submitted = submit_run(
        svc,
        tenant_id=TENANT_ID.check(detail.get("tenantId") or "default", "detail.tenantId"),
        manifest=manifest_source(svc, None, pack_key),
        inputs=dict(detail.get("inputs") or {}),
        idempotency_key=f"schedule-{event.get('id') or event.get('time')}",
    )
    logger.info("scheduled run submitted", extra={"runId": submitted.run.runId, "newRun": submitted.created})
    return {"runId": submitted.run.runId, "planHash": submitted.run.planHash, "status": submitted.run.status}
