"""Run-time ``when`` evaluation for a step and its ancestors."""

from __future__ import annotations

from taskrunner.engine.context import template_context
from taskrunner.engine.steptree import PlanIndex
from taskrunner.pack.expressions import condition_expression, truthy
from taskrunner.store.records import RunRecord


def skip_reason(run: RunRecord, index: PlanIndex, step_id: str) -> str | None:
    """Why ``step_id`` must be skipped (its own or an ancestor's ``when`` is false), or None to run it."""
    current: str | None = step_id
    while current is not None:
        step = index.step(current)
        if step.whenResolved is False:
            return f"when of {current} is false at plan time"
        if step.when and step.whenResolved is None:
            when = condition_expression(step.when)
            if not truthy(when.evaluate(template_context(run, step, reads=when.references))):
                return f"when of {current} is false"
        current = index.parents[current]
    return None
