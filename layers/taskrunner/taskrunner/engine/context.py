"""The template context a step sees at run time: inputs, prior step outputs, its map item, the run."""

from __future__ import annotations

from typing import Any

from taskrunner.engine.steptree import plan_of
from taskrunner.errors import NotFound
from taskrunner.pack.expressions import WHOLE_CONTEXT, Reference
from taskrunner.plan.document import PlanStep
from taskrunner.store.records import RunRecord, StepRecord


def template_context(
    run: RunRecord,
    step: PlanStep | None,
    secrets: dict[str, str] | None = None,
    *,
    reads: frozenset[Reference] | None = None,
) -> dict[str, Any]:
    """``{inputs, steps.<id>.outputs|status, item, index, run, secrets}`` for ``step`` of ``run`` (or for the
    run as a whole, when ``step`` is None: the pack's outputs).

    Inside a map child, sibling steps are also visible under their template ids, so a template written as
    ``steps.fetch.outputs`` reads the ``fetch`` of the same item (``m[3]::fetch``).

    ``reads`` (the references of the templates to evaluate) limits ``steps`` to the steps they name, so the
    cost does not grow with the run; without it, or when they read ``steps`` or the context as a whole,
    every step is there.
    """
    prefix = step.id.rpartition("::")[0] if step else ""
    whole = reads is None or bool({("steps", None), (WHOLE_CONTEXT, None)} & reads)
    if whole:
        steps = _all_steps(run, prefix)
    else:
        assert reads is not None
        steps = _named_steps(run, prefix, {name for root, name in reads if root == "steps" and name})
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


def _view(record: StepRecord) -> dict[str, Any]:
    return {"outputs": record.outputs or {}, "status": record.status}


def _all_steps(run: RunRecord, prefix: str) -> dict[str, Any]:
    steps: dict[str, Any] = {s.stepId: _view(s) for s in run.steps}
    if prefix:
        lead = prefix + "::"
        for sid, value in list(steps.items()):
            if sid.startswith(lead) and "::" not in sid[len(lead) :]:
                steps.setdefault(sid[len(lead) :], value)
    return steps


def _named_steps(run: RunRecord, prefix: str, names: set[str]) -> dict[str, Any]:
    """The steps ``names`` (a step id, else inside a map item the sibling of that template id)."""
    steps: dict[str, Any] = {}
    for name in names:
        for sid in (name, f"{prefix}::{name}") if prefix else (name,):
            try:
                steps[name] = _view(run.step(sid))
                break
            except NotFound:
                continue
    return steps
