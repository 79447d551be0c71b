"""Fail-closed gates: a gate whose evidence is missing refuses, naming what is missing and how to fix it.

The evidence of a gate is what its expression or message reads: the steps it names under ``steps.<id>``. A
gate decides only over steps that succeeded; a step that was skipped, failed (``continueOnError``), cancelled
or never ran leaves the gate without evidence, and the gate refuses (``EvidenceMissing``) instead of deciding
over nulls. Every refusal is a log event whose metadata holds its ``code`` and ``remediation``.
"""

from __future__ import annotations

from collections.abc import Iterable

from taskrunner.engine.context import template_context
from taskrunner.engine.errors import EvidenceMissing
from taskrunner.engine.runlog import RunLog
from taskrunner.errors import TaskRunnerError
from taskrunner.pack.expressions import Reference
from taskrunner.plan.document import PlanStep
from taskrunner.store.records import RunRecord


def missing_evidence(run: RunRecord, step: PlanStep, reads: Iterable[Reference]) -> list[str]:
    """``steps.<id> is <status>`` for every step ``reads`` names that has not succeeded (sorted)."""
    references = frozenset(reads)
    names = sorted({name for root, name in references if root == "steps" and name})
    if not names:
        return []
    view = template_context(run, step, reads=references)["steps"]
    return [
        f"steps.{name} is {view[name]['status']}" if name in view else f"steps.{name} has no record"
        for name in names
        if name not in view or view[name]["status"] != "succeeded"
    ]


def evidence_refusal(gate: str, missing: list[str]) -> EvidenceMissing:
    """The error a gate raises (or answers its token with) when ``missing`` is not empty."""
    return EvidenceMissing(
        f"{gate} refused: its evidence is missing ({'; '.join(missing)})",
        remediation="make the steps the gate reads succeed (or drop them from its expression/message) "
        "and submit again",
    )


def log_refusal(log: RunLog, event_type: str, step_id: str, error: TaskRunnerError) -> None:
    """Record a gate's refusal in the run log, with its code and remediation in the metadata."""
    log.emit(
        event_type,
        error.message,
        level="error",
        step_id=step_id,
        metadata={"code": error.code, "remediation": error.remediation or None},
    )
