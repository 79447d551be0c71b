"""Simulation: every step of the tree classified, skips propagated to descendants, outputs listed."""

from __future__ import annotations

from typing import Any

from taskrunner.plan.planner import build_plan
from taskrunner.plan.simulate import simulate


def result_for(steps: list[dict[str, Any]], inputs: dict[str, Any] | None = None) -> Any:
    return build_plan(
        {
            "apiVersion": "stellaops.io/pack.v1",
            "kind": "TaskPack",
            "metadata": {"name": "sim", "version": "1.0.0"},
            "spec": {
                "inputs": [{"name": "on", "type": "boolean", "default": True}],
                "approvals": [{"id": "ok", "grants": ["packs.approve"], "expiresAfter": "PT1H"}],
                "policies": [{"id": "p", "expression": "`true`"}],
                "sandbox": {"mode": "sealed", "egressAllowlist": []},
                "steps": steps,
                "outputs": [{"name": "out", "type": "file", "from": "steps.a.outputs"}],
            },
        },
        inputs or {},
    )


def noop(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "run": {"uses": "noop"}, **extra}


STEPS = [
    {"id": "a", "run": {"uses": "noop", "with": {"go": True}}},
    noop("off", when="!(inputs.on)"),
    noop("later", when="steps.a.outputs.go"),
    {"id": "review", "gate.approval": {"approval": "ok"}},
    {"id": "policy", "gate.policy": {"policy": "p"}},
    {"id": "skipped-gate", "when": "!(inputs.on)", "gate.approval": {"approval": "ok"}},
    {
        "id": "block",
        "when": "!(inputs.on)",
        "parallel": {"steps": [noop("inner"), {"id": "m", "map": {"items": [1, 2], "step": noop("leaf")}}]},
    },
    {"id": "each", "map": {"items": [1, 2], "step": {**noop("t"), "when": "item == `2`"}}},
]


def test_every_step_is_classified_depth_first() -> None:
    result = result_for(STEPS)
    assert [s.to_dict() for s in result.simulation.steps] == [
        {"stepId": "a", "kind": "run", "status": "pending"},
        {"stepId": "off", "kind": "run", "status": "skipped"},
        {"stepId": "later", "kind": "run", "status": "pending"},
        {"stepId": "review", "kind": "gate.approval", "status": "requires-approval"},
        {"stepId": "policy", "kind": "gate.policy", "status": "requires-policy"},
        {"stepId": "skipped-gate", "kind": "gate.approval", "status": "skipped"},
        {"stepId": "block", "kind": "parallel", "status": "skipped"},
        {"stepId": "inner", "kind": "run", "status": "skipped"},
        {"stepId": "m", "kind": "map", "status": "skipped"},
        {"stepId": "m[0]::leaf", "kind": "run", "status": "skipped"},
        {"stepId": "m[1]::leaf", "kind": "run", "status": "skipped"},
        {"stepId": "each", "kind": "map", "status": "pending"},
        {"stepId": "each[0]::t", "kind": "run", "status": "skipped"},
        {"stepId": "each[1]::t", "kind": "run", "status": "pending"},
    ]


def test_inputs_change_what_is_skipped() -> None:
    statuses = {s.stepId: s.status for s in result_for(STEPS, {"on": False}).simulation.steps}
    assert statuses["off"] == "pending"
    assert statuses["inner"] == "pending"
    assert statuses["m[1]::leaf"] == "pending"
    assert statuses["skipped-gate"] == "requires-approval"


def test_simulation_lists_outputs_and_serialises() -> None:
    result = result_for([noop("a")])
    assert result.simulation.to_dict() == {
        "steps": [{"stepId": "a", "kind": "run", "status": "pending"}],
        "outputs": [{"name": "out", "type": "file", "from": "steps.a.outputs"}],
    }
    assert simulate(result.plan) == result.simulation
