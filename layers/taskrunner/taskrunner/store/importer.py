"""Backfill file-store runs into MongoDB: state, logs, artifacts and approvals, idempotently.

Per run: log events the target does not hold yet (by sequence; a ``log.gap`` is not an event and is not
copied, so the target reports the same sequences missing), then the run document (kept when the
target has the same or a newer version), then artifacts and gates that differ. Re-running imports
nothing twice; a run that advanced in the file store since the last import is brought up to date.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from taskrunner.store.file_store import FileRunStore
from taskrunner.store.log_gaps import GAP_EVENT_TYPE
from taskrunner.store.mongo_store import MongoRunStore

LOG_BATCH = 1000


@dataclass
class ImportReport:
    """Counts of what an import wrote."""

    runs_inserted: int = 0
    runs_updated: int = 0
    runs_unchanged: int = 0
    logs: int = 0
    artifacts: int = 0
    approvals: int = 0

    @property
    def written(self) -> int:
        return self.runs_inserted + self.runs_updated + self.logs + self.artifacts + self.approvals


def import_file_store(
    source: FileRunStore, target: MongoRunStore, *, on_run: Callable[[str], None] | None = None
) -> ImportReport:
    """Copy every run of ``source`` into ``target``; ``on_run`` is told each run id before it is copied."""
    report = ImportReport()
    for run_id in source.iter_run_ids():
        if on_run is not None:
            on_run(run_id)
        run = source.get_run(run_id, None)
        last = target.last_log_sequence(run_id)
        while batch := source.read_logs(run_id, after_sequence=last, limit=LOG_BATCH):
            report.logs += target.import_logs([e for e in batch if e.eventType != GAP_EVENT_TYPE])
            last = batch[-1].sequence
        outcome = target.import_run(run, log_sequence=last)
        if outcome == "inserted":
            report.runs_inserted += 1
        elif outcome == "updated":
            report.runs_updated += 1
        else:
            report.runs_unchanged += 1
        report.artifacts += sum(target.import_artifact(a) for a in source.list_artifacts(run_id))
        report.approvals += sum(target.import_gate(g) for g in source.list_gates(run_id))
    return report
