"""Lookups over a run's plan: steps by id, parents, the flattened step list a run record starts with."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from taskrunner.errors import NotFound
from taskrunner.plan.document import MapStep, ParallelStep, Plan, PlanStep
from taskrunner.store.records import RunRecord, StepRecord


@dataclass(frozen=True)
class PlanIndex:
    plan: Plan
    steps: dict[str, PlanStep]
    parents: dict[str, str | None]

    def step(self, step_id: str) -> PlanStep:
        try:
            return self.steps[step_id]
        except KeyError:
            raise NotFound(f"step '{step_id}' is not part of this run's plan") from None


def _walk(
    steps: list[PlanStep], parent: str | None, index: dict[str, PlanStep], parents: dict[str, str | None]
) -> None:
    for step in steps:
        index[step.id] = step
        parents[step.id] = parent
        if isinstance(step, ParallelStep | MapStep):
            _walk(step.steps, step.id, index, parents)


def build_index(plan: Plan) -> PlanIndex:
    index: dict[str, PlanStep] = {}
    parents: dict[str, str | None] = {}
    _walk(plan.steps, None, index, parents)
    return PlanIndex(plan, index, parents)


_CACHE: OrderedDict[str, PlanIndex] = OrderedDict()
_LOCK = threading.Lock()


def plan_index(plan_hash: str, plan_document: Mapping[str, object]) -> PlanIndex:
    """The parsed plan of a run, cached by planHash (warm Lambdas and the local runtime reuse it)."""
    with _LOCK:
        cached = _CACHE.get(plan_hash)
        if cached is not None:
            _CACHE.move_to_end(plan_hash)
            return cached
    built = build_index(Plan.model_validate(plan_document))
    with _LOCK:
        _CACHE[plan_hash] = built
        while len(_CACHE) > 16:
            _CACHE.popitem(last=False)
    return built


def run_index(run: RunRecord) -> PlanIndex:
    """The parsed plan of ``run`` from the per-planHash cache: steps are not re-validated per call."""
    return plan_index(run.planHash, run.plan)


def plan_of(run: RunRecord) -> Plan:
    """The typed plan of ``run``, parsed once per planHash."""
    return run_index(run).plan


def initial_steps(plan: Plan) -> list[StepRecord]:
    """Every step of the tree, plan order, status ``pending``."""
    index = build_index(plan)
    return [
        StepRecord(stepId=sid, kind=step.kind, parentId=index.parents[sid], status="pending", attempts=[])
        for sid, step in index.steps.items()
    ]
