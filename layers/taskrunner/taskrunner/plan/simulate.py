"""Simulation: what a run of a plan would do, without running anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from taskrunner.plan.document import MapStep, ParallelStep, Plan, PlanStep

SimulatedStatus = Literal["pending", "skipped", "requires-approval", "requires-policy"]
_GATE_STATUS: dict[str, SimulatedStatus] = {
    "gate.approval": "requires-approval",
    "gate.policy": "requires-policy",
}


@dataclass(frozen=True)
class SimulatedStep:
    stepId: str
    kind: str
    status: SimulatedStatus

    def to_dict(self) -> dict[str, str]:
        return {"stepId": self.stepId, "kind": self.kind, "status": self.status}


@dataclass(frozen=True)
class Simulation:
    """Every step of the tree (depth first, parents first) with its expected status, and the outputs."""

    steps: tuple[SimulatedStep, ...]
    outputs: tuple[dict[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps], "outputs": [dict(o) for o in self.outputs]}


def simulate(plan: Plan) -> Simulation:
    """Classify each step: ``skipped`` when its plan-time ``when`` (or an ancestor's) is false, gates as
    ``requires-approval`` / ``requires-policy``, everything else ``pending``."""
    steps: list[SimulatedStep] = []
    _classify(plan.steps, False, steps)
    outputs = tuple({"name": o.name, "type": o.type, "from": o.from_} for o in plan.outputs)
    return Simulation(tuple(steps), outputs)


def _classify(tree: list[PlanStep], skipped: bool, out: list[SimulatedStep]) -> None:
    for step in tree:
        here = skipped or step.whenResolved is False
        status: SimulatedStatus = "skipped" if here else _GATE_STATUS.get(step.kind, "pending")
        out.append(SimulatedStep(step.id, step.kind, status))
        if isinstance(step, ParallelStep | MapStep):
            _classify(step.steps, here, out)
