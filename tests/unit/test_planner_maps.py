"""Map expansion: child ids, descendants' prefixes, nested maps, item/index substitution, items rules."""

from __future__ import annotations

from typing import Any

import pytest
from taskrunner.pack import ManifestError
from taskrunner.plan.document import MapStep, ParallelStep, RunStep, iter_steps
from taskrunner.plan.planner import PlanResult, build_plan


def plan_of(steps: list[dict[str, Any]], inputs: dict[str, Any] | None = None) -> PlanResult:
    document = {
        "apiVersion": "stellaops.io/pack.v1",
        "kind": "TaskPack",
        "metadata": {"name": "maps", "version": "1.0.0"},
        "spec": {
            "inputs": [
                {"name": "targets", "type": "array", "default": ["alpha", "beta", "gamma"]},
                {
                    "name": "groups",
                    "type": "array",
                    "default": [{"name": "g0", "hosts": ["h0"]}, {"name": "g1", "hosts": ["h1", "h2"]}],
                },
                {"name": "maybe", "type": "array"},
                {"name": "notalist", "type": "string", "default": "x"},
            ],
            "sandbox": {"mode": "sealed", "egressAllowlist": []},
            "steps": steps,
        },
    }
    return build_plan(document, inputs or {})


def noop(step_id: str, **with_: Any) -> dict[str, Any]:
    return {"id": step_id, "run": {"uses": "noop", "with": with_}}


def ids(result: PlanResult) -> list[str]:
    return [step.id for step in iter_steps(result.plan.steps)]


def test_map_children_are_named_step_index_template() -> None:
    result = plan_of(
        [
            {
                "id": "scan-all",
                "map": {
                    "items": "{{ inputs.targets }}",
                    "step": noop("scan", t="{{ item }}", i="{{ index }}"),
                },
            }
        ]
    )
    mapping = result.plan.steps[0]
    assert isinstance(mapping, MapStep)
    assert (mapping.templateId, mapping.items) == ("scan", ["alpha", "beta", "gamma"])
    assert ids(result) == ["scan-all", "scan-all[0]::scan", "scan-all[1]::scan", "scan-all[2]::scan"]
    children = mapping.steps
    assert [(c.index, c.item) for c in children] == [(0, "alpha"), (1, "beta"), (2, "gamma")]
    assert [c.with_ for c in children if isinstance(c, RunStep)] == [
        {"t": "alpha", "i": 0},
        {"t": "beta", "i": 1},
        {"t": "gamma", "i": 2},
    ]
    assert mapping.index is None
    assert mapping.item is None


def test_descendants_of_a_map_child_share_its_prefix_index_and_item() -> None:
    template = {
        "id": "per-target",
        "parallel": {
            "steps": [
                noop("lint", t="{{ item }}"),
                noop("test", late="{{ item }}-{{ steps.lint.outputs.t }}"),
            ]
        },
    }
    result = plan_of(
        [noop("lint0"), {"id": "scan-all", "map": {"items": "{{ inputs.targets }}", "step": template}}]
    )
    assert ids(result)[2:6] == [
        "scan-all[0]::per-target",
        "scan-all[0]::lint",
        "scan-all[0]::test",
        "scan-all[1]::per-target",
    ]
    child = result.plan.steps[1].steps[1]
    assert isinstance(child, ParallelStep)
    lint, test = child.steps
    assert (child.index, child.item, lint.index, lint.item, test.index, test.item) == (
        1,
        "beta",
        1,
        "beta",
        1,
        "beta",
    )
    assert isinstance(lint, RunStep)
    assert lint.with_ == {"t": "beta"}
    assert isinstance(test, RunStep)
    assert test.with_ == {"late": "{{ item }}-{{ steps.lint.outputs.t }}"}


def test_nested_maps_compose_their_prefixes() -> None:
    inner = {
        "id": "host",
        "map": {"items": "{{ item.hosts }}", "step": noop("ping", host="{{ item }}", n="{{ index }}")},
    }
    result = plan_of([{"id": "group", "map": {"items": "{{ inputs.groups }}", "step": inner}}])
    assert ids(result) == [
        "group",
        "group[0]::host",
        "group[0]::host[0]::ping",
        "group[1]::host",
        "group[1]::host[0]::ping",
        "group[1]::host[1]::ping",
    ]
    last = result.plan.steps[0].steps[1].steps[1]
    assert isinstance(last, RunStep)
    assert (last.index, last.item, last.with_) == (1, "h2", {"host": "h2", "n": 1})
    assert result.plan.steps[0].steps[1].items == ["h1", "h2"]


def test_when_on_the_template_is_decided_per_item() -> None:
    template = {**noop("scan"), "when": "item != 'beta'"}
    result = plan_of([{"id": "m", "map": {"items": "{{ inputs.targets }}", "step": template}}])
    assert [c.whenResolved for c in result.plan.steps[0].steps] == [True, False, True]


def test_literal_item_lists_are_used_as_written() -> None:
    result = plan_of(
        [{"id": "m", "map": {"items": [{"k": 1}, [2], None], "step": noop("t", v="{{ item }}")}}]
    )
    children = result.plan.steps[0].steps
    assert [c.with_ for c in children] == [{"v": {"k": 1}}, {"v": [2]}, {"v": None}]


@pytest.mark.parametrize(("inputs", "count"), [({}, 0), ({"maybe": []}, 0), ({"maybe": [1, 2]}, 2)])
def test_absent_or_empty_item_lists_expand_to_no_children(inputs: dict[str, Any], count: int) -> None:
    result = plan_of([{"id": "m", "map": {"items": "{{ inputs.maybe }}", "step": noop("t")}}], inputs)
    assert len(result.plan.steps[0].steps) == count


def test_items_that_are_not_a_list_are_refused_at_plan_time() -> None:
    with pytest.raises(ManifestError) as info:
        plan_of([{"id": "m", "map": {"items": "{{ inputs.notalist }}", "step": noop("t")}}])
    problem = info.value.problem_list[0]
    assert problem["path"] == "spec.steps[0].map.items"
    assert "must yield a list, got str" in problem["message"]


def test_a_plan_time_error_inside_a_map_child_names_the_item() -> None:
    with pytest.raises(ManifestError) as info:
        plan_of([{"id": "m", "map": {"items": [1, "ab"], "step": noop("t", n="{{ length(item) }}")}}])
    messages = [p["message"] for p in info.value.problem_list]
    assert len(messages) == 1
    assert "(map item 0, in m[0])" in messages[0]
    assert info.value.problem_list[0]["path"] == "spec.steps[0].map.step.run.with.n"


def test_ten_thousand_items_expand_with_unique_ids() -> None:
    result = plan_of(
        [{"id": "m", "map": {"items": "{{ inputs.targets }}", "step": noop("t", v="{{ item }}")}}],
        {"targets": list(range(10_000))},
    )
    children = result.plan.steps[0].steps
    assert len({c.id for c in children}) == 10_000
    assert children[-1].id == "m[9999]::t"
    assert [c.with_ for c in children] == [{"v": i} for i in range(10_000)]
