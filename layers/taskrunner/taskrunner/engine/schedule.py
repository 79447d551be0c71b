"""Scheduled runs: an EventBridge rule submits a pack stored under ``packs/`` with fixed inputs.

The rule's target keeps the firing's ``id`` and ``time`` (an InputTransformer in template.yaml) and adds
``detail: {packKey, inputs, tenantId?}``. Each firing has its own scheduled ``time``, which with the pack key
is the run's idempotency key: every firing starts one run, a redelivered firing none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskrunner.engine.packs import pack_source
from taskrunner.engine.services import Services
from taskrunner.engine.submit import submit_run
from taskrunner.errors import ValidationFailed
from taskrunner.keys import TENANT_ID
from taskrunner.observability import logger


def submit_scheduled(svc: Services, event: Mapping[str, Any]) -> dict[str, str]:
    """Submit the event's pack once per firing; a redelivery returns the firing's run unchanged.

    ``event`` is the EventBridge event as delivered (untyped JSON): its fields are checked here.
    """
    detail = event.get("detail") or {}
    pack_key = detail.get("packKey")
    if not pack_key:
        raise ValidationFailed(
            "scheduled event has no detail.packKey", remediation="set the ScheduledPackKey parameter"
        )
    fired_at = event.get("time")
    if not isinstance(fired_at, str) or not fired_at:
        raise ValidationFailed(
            "scheduled event has no time, so its firing cannot be told apart from the others",
            remediation="deliver the EventBridge event's time (the ScheduledRunRule InputTransformer in "
            "template.yaml passes <id> and <time>)",
        )
    tenant_id = TENANT_ID.check(detail.get("tenantId") or "default", "detail.tenantId")
    source, release = pack_source(svc, None, pack_key, tenant_id)
    submitted = submit_run(
        svc,
        tenant_id=tenant_id,
        manifest=source,
        release=release,
        inputs=dict(detail.get("inputs") or {}),
        idempotency_key=f"schedule:{pack_key}:{fired_at}",
    )
    logger.info(
        "scheduled run submitted",
        extra={"runId": submitted.run.runId, "newRun": submitted.created, "eventId": event.get("id")},
    )
    return {"runId": submitted.run.runId, "planHash": submitted.run.planHash, "status": submitted.run.status}
