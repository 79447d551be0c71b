"""The run-record storage port: every handler and the local runtime talk to runs through it.

Errors: :class:`~taskrunner.errors.NotFound` (unknown run, step or gate, or another tenant's run),
:class:`~taskrunner.errors.Conflict` (duplicate run id, contradicting decision),
:class:`~taskrunner.store.errors.StaleUpdate` (a compare-and-set lost),
:class:`~taskrunner.errors.ValidationFailed` (invalid change, cursor or page size).
``expected_status=None`` means "whatever the current status is".
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from taskrunner.store.records import (
    ArtifactRecord,
    Attempt,
    Decision,
    GateRecord,
    LogEvent,
    NewLogEvent,
    RunRecord,
    StepRecord,
)


@runtime_checkable
class RunStore(Protocol):
    """Runs, steps/attempts, logs, artifacts and approval gates."""

    def create_run(self, run: RunRecord) -> tuple[RunRecord, bool]:
        """Store a new run (version 1); same tenant + idempotencyKey returns the existing run, False."""
        ...

    def get_run(self, run_id: str, tenant_id: str | None) -> RunRecord:
        """The run; NotFound when absent or owned by another tenant (``None`` skips the tenant check)."""
        ...

    def list_runs(
        self, tenant_id: str, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[RunRecord], str | None]:
        """A page of the tenant's runs, newest ``updatedAt`` first, and the next page's cursor."""
        ...

    def list_active_runs(self) -> list[RunRecord]:
        """Every run that is not finished (pending or running), of all tenants, for resume at start."""
        ...

    def count_active_runs(self, tenant_id: str | None = None, pack_name: str | None = None) -> int:
        """How many runs are pending or running (the queue depth), of all tenants and packs or only of
        ``tenant_id`` and/or ``pack_name``."""
        ...

    def update_run(
        self, run_id: str, *, expected_status: Collection[str] | None, changes: Mapping[str, Any]
    ) -> RunRecord:
        """Apply ``changes`` if the run's status is one of ``expected_status``; bumps ``version``."""
        ...

    def update_step(
        self,
        run_id: str,
        step_id: str,
        *,
        expected_status: Collection[str] | None,
        changes: Mapping[str, Any],
        attempt: Attempt | None = None,
    ) -> StepRecord:
        """CAS-update one step, appending ``attempt`` (or replacing the attempt with its number)."""
        ...

    def append_logs(self, run_id: str, events: Sequence[NewLogEvent]) -> list[LogEvent]:
        """Append events atomically, assigning the run's next gapless sequences."""
        ...

    def read_logs(self, run_id: str, after_sequence: int = 0, limit: int | None = None) -> list[LogEvent]:
        """Events with ``sequence > after_sequence`` in order, at most ``limit`` items.

        Missing sequences are never skipped silently: each run of them is one ``log.gap`` event (level
        ``warn``, ``sequence`` = the last missing one, metadata ``firstSequence``, ``lastSequence`` and
        ``cause``: ``unwritten`` = reserved by a writer that stopped, ``lost`` = written, then removed);
        see :mod:`taskrunner.store.log_gaps`. Sequences a writer is still storing are not returned yet.
        """
        ...

    def put_artifact(self, record: ArtifactRecord) -> ArtifactRecord:
        """Insert or replace the run's artifact record named ``record.name``."""
        ...

    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        """The run's artifact records, by name."""
        ...

    def open_gate(self, record: GateRecord) -> GateRecord:
        """Create the gate, or refresh the task token of an open one (decisions kept); final gates stay."""
        ...

    def get_gate(self, run_id: str, gate_id: str) -> GateRecord:
        """The gate; NotFound when it was never opened."""
        ...

    def list_gates(self, run_id: str) -> list[GateRecord]:
        """The run's gates, in the order they were opened."""
        ...

    def add_decision(self, run_id: str, gate_id: str, decision: Decision) -> GateRecord:
        """Record an approver's decision on a waiting gate; a repeat is idempotent, a change a Conflict."""
        ...

    def update_gate(
        self,
        run_id: str,
        gate_id: str,
        *,
        expected_status: Collection[str] | None,
        changes: Mapping[str, Any],
    ) -> GateRecord:
        """CAS-update a gate (status, closedAt, reason, message, expiresAt, taskToken)."""
        ...
