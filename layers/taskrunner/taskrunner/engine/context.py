"""The template context a step sees at run time: inputs, prior step outputs, its map item, the run."""

from __future__ import annotations

from typing import Any

from taskrunner.engine.steptree import plan_of
from taskrunner.plan.document import PlanStep
from taskrunner.store.records import RunRecord


def template_context(
    run: RunRecord, step: PlanStep | None, secrets: dict[str, str] | None = None
) -> dict[str, Any]:
    """``{inputs, steps.<id>.outputs|status, item, index, run, secrets}`` for ``step`` of ``run`` (or for the
    run as a whole, when ``step`` is None: the pack's outputs).

    Inside a map child, sibling steps are also visible under their template ids, so a template written as
    ``steps.fetch.outputs`` reads the ``fetch`` of the same item (``m[3]::fetch``).
    """
    steps: dict[str, Any] = {s.stepId: {"outputs": s.outputs or {}, "status": s.status} for s in run.steps}
    prefix = step.id.rpartition("::")[0] if step else ""
    if prefix:
        lead = prefix + "::"
        for sid, value in list(steps.items()):
            if sid.startswith(lead) and "::" not in sid[len(lead) :]:
                steps.setdefault(sid[len(lead) :], value)
    context: dict[str, Any] = {
        "inputs": plan_of(run).inputs,
        "steps": steps,
        "run": {"id": run.runId, "tenantId": run.tenantId, "planHash": run.planHash},
    }
    if step is not None and step.index is not None:
        context["index"] = step.index
        context["item"] = step.item
    if secrets is not None:
        context["secrets"] = secrets
    return context
