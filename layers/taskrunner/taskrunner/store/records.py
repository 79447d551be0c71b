"""Run records: the documents every store keeps (camelCase on the wire, UTC millisecond timestamps).

Timestamps are normalised to UTC with millisecond precision (what BSON dates hold), so a record reads
back identically from every store. JSON serialisation writes them as ``2026-01-02T03:04:05.678Z``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    StrictStr,
    ValidationError,
    create_model,
)

from taskrunner.errors import Conflict, NotFound, ValidationFailed
from taskrunner.keys import RUN_ID_PATTERN, TENANT_ID_PATTERN
from taskrunner.store.errors import ensure_status
from taskrunner.timeutil import iso, utc_now


def _utc_ms(moment: datetime) -> datetime:
    """UTC (naive values are taken as UTC), truncated to milliseconds."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


UtcDatetime = Annotated[datetime, AfterValidator(_utc_ms), PlainSerializer(iso, when_used="json")]

RunStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
StepStatus = Literal[
    "pending",
    "running",
    "succeeded",
    "failed",
    "skipped",
    "cancelled",
    "waiting",
    "approved",
    "rejected",
    "expired",
]
AttemptStatus = Literal["running", "succeeded", "failed", "cancelled"]
StepKind = Literal["run", "parallel", "map", "gate.approval", "gate.policy"]
LogLevel = Literal["trace", "debug", "info", "warn", "error"]
ArtifactStatus = Literal["pending", "copied", "materialized", "skipped"]
GateStatus = Literal["waiting", "approved", "rejected", "expired", "cancelled"]

ACTIVE_RUN_STATUSES: frozenset[str] = frozenset({"pending", "running"})
TERMINAL_RUN_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
FINAL_GATE_STATUSES: frozenset[str] = frozenset({"approved", "rejected", "expired", "cancelled"})


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorInfo(_Record):
    code: str
    message: str


class Attempt(_Record):
    """One execution attempt of a step (``number`` is 1-based)."""

    number: int = Field(ge=1)
    startedAt: UtcDatetime
    completedAt: UtcDatetime | None = None
    status: AttemptStatus
    error: ErrorInfo | None = None
    nextAttemptAt: UtcDatetime | None = None


class StepRecord(_Record):
    """State of one step of the flattened plan tree (map children included)."""

    stepId: str
    kind: StepKind
    parentId: str | None = None
    status: StepStatus = "pending"
    attempts: list[Attempt] = Field(default_factory=list)
    outputs: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    startedAt: UtcDatetime | None = None
    completedAt: UtcDatetime | None = None


class RunRecord(_Record):
    """A run: its plan, status and every step. ``version`` is bumped by the store on each write."""

    runId: str = Field(pattern=RUN_ID_PATTERN)
    tenantId: str = Field(pattern=TENANT_ID_PATTERN)
    planHash: str
    status: RunStatus = "pending"
    packName: str
    packVersion: str
    idempotencyKey: str | None = Field(None, min_length=1)
    requestedAt: UtcDatetime
    createdAt: UtcDatetime = Field(default_factory=utc_now)
    updatedAt: UtcDatetime = Field(default_factory=utc_now)
    startedAt: UtcDatetime | None = None
    completedAt: UtcDatetime | None = None
    stateMachineArn: str | None = None
    executionArn: str | None = None
    outcome: Literal["succeeded", "failed", "cancelled"] | None = None
    error: ErrorInfo | None = None
    outputs: dict[str, Any] | None = None
    evidence: dict[str, Any] | None = None  # location, sha256, size of the sealed bundle
    packRelease: dict[str, Any] | None = (
        None  # the signed registry version run: name, version, digest, keyIds
    )
    version: int = Field(0, ge=0)
    failurePolicy: dict[str, Any]
    plan: dict[str, Any]
    steps: list[StepRecord] = Field(default_factory=list)
    _positions: dict[str, int] | None = PrivateAttr(default=None)

    @property
    def sealed(self) -> bool:
        """The run is over: its outcome is final and its evidence was sealed (or sealing was refused)."""
        return self.status in TERMINAL_RUN_STATUSES and self.evidence is not None

    def step(self, step_id: str) -> StepRecord:
        """The step ``step_id``; NotFound when the plan has no such step. O(1): steps keep their positions,
        so an index built once serves every later look-up (checked on each use, rebuilt if stale)."""
        index = self._positions
        position = index.get(step_id) if index is not None else None
        if position is None or position >= len(self.steps) or self.steps[position].stepId != step_id:
            index = self._positions = {step.stepId: i for i, step in enumerate(self.steps)}
            position = index.get(step_id)
        if position is not None:
            return self.steps[position]
        raise NotFound(f"run {self.runId} has no step {step_id!r}", remediation="use a step id of the plan")


class NewLogEvent(_Record):
    """A log event before the store assigns its ``sequence``."""

    timestamp: UtcDatetime = Field(default_factory=utc_now)
    level: LogLevel = "info"
    eventType: str = Field(min_length=1)
    message: str
    stepId: str | None = None
    metadata: dict[str, StrictStr] = Field(default_factory=dict)


class LogEvent(NewLogEvent):
    """A stored log event; ``(runId, sequence)`` is unique, sequences are assigned gapless from 1 (readers
    get a ``log.gap`` event where some are missing, see :mod:`taskrunner.store.log_gaps`)."""

    runId: str
    sequence: int = Field(ge=1)


class ArtifactRecord(_Record):
    """One captured output of a run; a run has at most one record per ``name``."""

    runId: str
    name: str = Field(min_length=1)
    type: str = Field(min_length=1)  # file | object | ...
    status: ArtifactStatus
    sourcePath: str | None = None
    storedPath: str | None = None
    notes: str | None = None
    capturedAt: UtcDatetime = Field(default_factory=utc_now)
    sha256: str | None = None
    size: int | None = Field(None, ge=0)
    mediaType: str | None = None


class Decision(_Record):
    """One approver's signed decision on a gate."""

    approver: str = Field(min_length=1)
    decision: Literal["approve", "reject"]
    reason: str | None = None
    decidedAt: UtcDatetime = Field(default_factory=utc_now)
    envelope: dict[str, Any]  # DSSE envelope


class GateRecord(_Record):
    """An approval gate of a run; ``taskToken`` is server-side only (see :meth:`public`)."""

    runId: str
    tenantId: str
    gateId: str
    approvalId: str
    status: GateStatus = "waiting"
    requiredCount: int = Field(1, ge=1)
    grants: list[str] = Field(default_factory=list)
    reason: str | None = None
    message: str | None = None
    planHash: str
    openedAt: UtcDatetime = Field(default_factory=utc_now)
    expiresAt: UtcDatetime | None = None
    closedAt: UtcDatetime | None = None
    taskToken: str | None = None
    decisions: list[Decision] = Field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """JSON view safe to show to clients (no task token)."""
        return self.model_dump(mode="json", exclude={"taskToken"}, exclude_none=True)


class _Patch:
    """Validates a partial update of a record: only ``fields`` may change; ``None`` clears a field."""

    def __init__(self, model: type[BaseModel], fields: tuple[str, ...]) -> None:
        definitions: dict[str, Any] = {}
        for name in fields:
            info = model.model_fields[name]
            # Omitted keys stay unset; an explicit None is validated (and only optional fields accept it).
            annotation = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
            definitions[name] = (annotation, None)
        self._model = create_model(
            f"{model.__name__}Changes", __config__=ConfigDict(extra="forbid"), **definitions
        )
        self._name = model.__name__

    def validate(self, changes: Mapping[str, Any], *, json: bool) -> dict[str, Any]:
        """The validated changes, JSON-ready (``json=True``) or as Python values (datetimes kept)."""
        try:
            patch = self._model.model_validate(dict(changes))
        except ValidationError as exc:
            problems: list[dict[str, object]] = [
                {"path": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
            ]
            fields = ", ".join(str(p["path"]) for p in problems)
            raise ValidationFailed(
                f"invalid {self._name} change ({fields})",
                problems,
                remediation=f"only these fields may change: {', '.join(self._model.model_fields)}",
            ) from None
        return patch.model_dump(mode="json" if json else "python", exclude_unset=True)


RUN_CHANGES = _Patch(
    RunRecord,
    (
        "status",
        "startedAt",
        "completedAt",
        "stateMachineArn",
        "executionArn",
        "outcome",
        "error",
        "outputs",
        "evidence",
    ),
)
STEP_CHANGES = _Patch(StepRecord, ("status", "outputs", "error", "startedAt", "completedAt"))
GATE_CHANGES = _Patch(GateRecord, ("status", "reason", "message", "expiresAt", "closedAt", "taskToken"))


def apply_changes(document: dict[str, Any], changes: Mapping[str, Any]) -> None:
    """Apply validated changes to a stored document in place (``None`` removes the field)."""
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value


def changed_step(step: StepRecord, changes: Mapping[str, Any], attempt: Attempt | None) -> StepRecord:
    """``step`` with ``changes`` applied and ``attempt`` appended (or replacing the same number)."""
    data = step.model_dump(exclude_none=True)
    apply_changes(data, STEP_CHANGES.validate(changes, json=False))
    if attempt is not None:
        attempts = [a for a in data["attempts"] if a["number"] != attempt.number]
        attempts.append(attempt.model_dump(exclude_none=True))
        data["attempts"] = sorted(attempts, key=lambda a: a["number"])
    return StepRecord.model_validate(data)


def changed_gate(gate: GateRecord, changes: Mapping[str, Any]) -> GateRecord:
    """``gate`` with ``changes`` applied."""
    data = gate.model_dump(exclude_none=True)
    apply_changes(data, GATE_CHANGES.validate(changes, json=False))
    return GateRecord.model_validate(data)


def idempotent_run_id(tenant_id: str, idempotency_key: str) -> str:
    """A run id derived from ``(tenant, idempotency key)``: concurrent submissions collide on the id.

    Using it makes idempotent creation race-free in every store (a duplicate id with the same tenant and
    key returns the existing run).
    """
    digest = hashlib.sha256(f"{tenant_id}\0{idempotency_key}".encode()).hexdigest()
    return f"run-{digest[:32]}"


def reopened_gate(existing: GateRecord, opening: GateRecord) -> GateRecord:
    """The gate after opening it again: a final gate stays as is; an open one takes the new task token."""
    if existing.status in FINAL_GATE_STATUSES or existing.taskToken == opening.taskToken:
        return existing
    return existing.model_copy(update={"taskToken": opening.taskToken})


def decided_gate(gate: GateRecord, decision: Decision) -> GateRecord:
    """``gate`` with ``decision`` recorded, or ``gate`` itself when the approver already decided the same.

    Raises Conflict when the approver decided differently before, StaleUpdate when the gate is closed.
    """
    for previous in gate.decisions:
        if previous.approver == decision.approver:
            if previous.decision == decision.decision:
                return gate
            raise Conflict(
                f"{decision.approver} already decided {previous.decision!r} on gate {gate.gateId}",
                remediation="a decision cannot be changed; ask another approver instead",
            )
    ensure_status(f"gate {gate.gateId} of run {gate.runId}", gate.status, ("waiting",))
    return gate.model_copy(update={"decisions": [*gate.decisions, decision]})
