"""Run log events (DESIGN §5): redacted messages, string-only metadata, gapless sequences from the store."""

from __future__ import annotations

from collections.abc import Mapping

from taskrunner.redaction import Redactor
from taskrunner.store.port import RunStore
from taskrunner.store.records import LogLevel, NewLogEvent

EVENT_TYPES = frozenset(
    [
        "run.created",
        "run.started",
        "plan.verified",
        "step.started",
        "step.succeeded",
        "step.failed",
        "step.retry_scheduled",
        "step.skipped",
        "gate.pending",
        "gate.approved",
        "gate.rejected",
        "gate.expired",
        "gate.refused",
        "policy.evaluated",
        "artifact.captured",
        "run.cancelled",
        "run.completed",
    ]
)


class RunLog:
    """Appends a run's log events through the store (which assigns the sequence); secrets are redacted."""

    def __init__(self, store: RunStore, run_id: str, redactor: Redactor | None = None) -> None:
        self._store = store
        self._run_id = run_id
        self._redactor = redactor

    def emit(
        self,
        event_type: str,
        message: str,
        *,
        level: LogLevel = "info",
        step_id: str | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown log event type {event_type}")
        meta = {
            str(k): v if isinstance(v, str) else str(v) for k, v in (metadata or {}).items() if v is not None
        }
        if self._redactor:
            message = self._redactor.text(message)
            meta = {k: self._redactor.text(v) for k, v in meta.items()}
        event = NewLogEvent(level=level, eventType=event_type, message=message, stepId=step_id, metadata=meta)
        self._store.append_logs(self._run_id, [event])
