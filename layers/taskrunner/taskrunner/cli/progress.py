"""Rich rendering of a run: a live progress table while it runs, a summary when it ends."""

from __future__ import annotations

from typing import Any

from rich.table import Table

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


def run_table(run: Any, max_rows: int = 40) -> Table:
    """Steps with status and attempts; long runs show the first and the active steps only."""
    table = Table(
        title=f"{run.packName}@{run.packVersion}  {run.runId}  [{STYLE.get(run.status, '')}]{run.status}",
        title_justify="left",
        expand=False,
    )
    table.add_column("step")
    table.add_column("kind")
    table.add_column("status")
    table.add_column("attempts", justify="right")
    by_id = {s.stepId: s for s in run.steps}
    rows = (
        run.steps
        if len(run.steps) <= max_rows
        else [s for s in run.steps if s.status in ("running", "waiting", "failed")][:max_rows]
    )
    for step in rows:
        style = STYLE.get(step.status, "")
        table.add_row(
            "  " * _depth(by_id, step) + step.stepId,
            step.kind,
            f"[{style}]{step.status}[/]",
            str(len(step.attempts)),
        )
    if len(rows) < len(run.steps):
        done = sum(1 for s in run.steps if s.status in ("succeeded", "skipped", "approved"))
        table.caption = f"{done}/{len(run.steps)} steps finished"
    return table


def run_document(run: Any, artifacts: list[Any]) -> dict[str, Any]:
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
