"""Rich rendering of a run: a live progress table while it runs, a summary when it ends."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from taskrunner.engine.seal import container_statuses
from taskrunner.store.records import GateRecord, RunRecord
from taskrunner.timeutil import utc_now

STYLE = {
    "succeeded": "green",
    "approved": "green",
    "failed": "red",
    "rejected": "red",
    "expired": "red",
    "cancelled": "yellow",
    "skipped": "dim",
    "waiting": "magenta",
    "running": "cyan",
    "pending": "white",
}


def _depth(steps: dict[str, Any], step: Any) -> int:
    depth, parent = 0, step.parentId
    while parent:
        depth, parent = depth + 1, steps[parent].parentId
    return depth


def time_left(until: datetime, now: datetime) -> str:
    """``1h 05m left``, ``42s left`` or ``expired``."""
    seconds = int((until - now).total_seconds())
    if seconds <= 0:
        return "expired"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m left"
    return f"{minutes}m {secs:02d}s left" if minutes else f"{secs}s left"


def gate_progress(gate: GateRecord) -> str:
    """``1/2 approvals``."""
    approvals = sum(1 for d in gate.decisions if d.decision == "approve")
    return f"{approvals}/{gate.requiredCount} approvals"


def gate_detail(gate: GateRecord, now: datetime) -> str:
    """Approvals so far, who decided, and the time left while the gate is open."""
    approvers = [d.approver for d in gate.decisions if d.decision == "approve"]
    rejecters = [d.approver for d in gate.decisions if d.decision == "reject"]
    parts = [gate_progress(gate) + (f": {', '.join(approvers)}" if approvers else "")]
    if rejecters:
        parts.append(f"rejected by {', '.join(rejecters)}")
    if gate.status == "waiting" and gate.expiresAt is not None:
        parts.append(time_left(gate.expiresAt, now))
    return "; ".join(parts)


def run_table(
    run: RunRecord,
    gates: Mapping[str, GateRecord] | None = None,
    max_rows: int = 40,
    now: datetime | None = None,
) -> Table:
    """Steps with status, attempts and gate details; long runs show the active steps only.

    Map and parallel rows show the status derived from their children (the rule the store applies when
    the run is sealed), so a finished container reads finished while the run is still live.
    """
    now = now or utc_now()
    gates = gates or {}
    title = Text(f"{run.packName}@{run.packVersion}  {run.runId}  ")
    title.append(run.status, style=STYLE.get(run.status, ""))
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("step", no_wrap=True)
    for column in ("kind", "status"):
        table.add_column(column)
    table.add_column("attempts", justify="right")
    table.add_column("detail")
    statuses = container_statuses(run.steps, {s.stepId: s.status for s in run.steps}, live=not run.sealed)
    by_id = {s.stepId: s for s in run.steps}
    active = ("running", "waiting", "failed")
    rows = (
        run.steps
        if len(run.steps) <= max_rows
        else [s for s in run.steps if statuses[s.stepId] in active][:max_rows]
    )
    for step in rows:
        status = statuses[step.stepId]
        gate = gates.get(step.stepId)
        table.add_row(
            Text("  " * _depth(by_id, step) + step.stepId),
            Text(step.kind),
            Text(status, style=STYLE.get(status, "")),
            str(len(step.attempts)),
            Text(gate_detail(gate, now) if gate else ""),
        )
    if len(rows) < len(run.steps):
        done = sum(1 for s in run.steps if statuses[s.stepId] in ("succeeded", "skipped", "approved"))
        table.caption = f"{done}/{len(run.steps)} steps finished"
    return table


def run_document(run: RunRecord, artifacts: list[Any]) -> dict[str, Any]:
    """The ``taskrunner run --json`` document."""
    from taskrunner.engine.queries import jsonable

    return {
        "runId": run.runId,
        "planHash": run.planHash,
        "status": run.status,
        "steps": [{"stepId": s.stepId, "status": s.status, "attempts": len(s.attempts)} for s in run.steps],
        "outputs": jsonable(run.outputs or {}),
        "artifacts": [{"name": a.name, "sha256": a.sha256, "size": a.size} for a in artifacts],
        "evidence": jsonable(run.evidence),
        **({"error": jsonable(run.error)} if run.error else {}),
    }
