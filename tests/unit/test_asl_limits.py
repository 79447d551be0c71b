"""Limits analysis: the history-event model, the DISTRIBUTED switch, definition size and payload bound.

Expected figures are derived from the model documented in ``taskrunner.asl.limits``:
state 2 events, Task attempt 3 (4 with a task token), 3 Lambda-service retries per Lambda task,
envelope = execution 2 + VerifyPlan/SealEvidence/SealFailure (14 each) + Succeed 2 + Fail 2 = 48,
a Map = items Pass 2 + Map 2 + started/succeeded 2 + clean-up Pass 2 = 8, per inline item 2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from taskrunner.asl import PLACEHOLDERS, analyse_limits, compile_plan, substitute_placeholders
from taskrunner.asl.limits import (
    HISTORY_EVENT_BUDGET,
    HISTORY_EVENT_LIMIT,
    MIN_TASK_STATE_BYTES,
    pack_floors,
)
from taskrunner.pack.loader import load_pack
from taskrunner.plan.document import MapStep, RetryPolicy, RunStep
from taskrunner.plan.planner import build_plan
from test_asl_scenarios import (
    SCENARIOS,
    approval,
    map_of,
    parallel,
    plan,
    policy,
    run,
    run_template,
)

REPO = Path(__file__).resolve().parents[2]
ENVELOPE = 48
LAMBDA_TASK = 2 + 3 * (1 + 3)  # one attempt plus three Lambda-service retries
MAP_STATES = 8
ITEM = 2
BASE_PAYLOAD = 1_024 + 256 + 32_768 + 512


def items_bytes(count: int) -> int:
    return len('"mapItems":' + json.dumps(list(range(count)), separators=(",", ":")))


def test_budget_keeps_a_safety_margin_under_the_cap() -> None:
    assert HISTORY_EVENT_LIMIT == 25_000
    assert HISTORY_EVENT_BUDGET == 20_000


def test_sequential_steps_count_every_retry() -> None:
    report = compile_plan(SCENARIOS["run-retries"]()).limits

    fetch = 2 + 3 * (3 + 3)  # maxAttempts 3
    quick = 2 + 3 * (2 + 3)  # maxAttempts 2
    assert report.history_events == ENVELOPE + fetch + LAMBDA_TASK + quick
    assert report.ok
    assert report.maps == ()


def test_gates_and_tolerated_failures() -> None:
    gates = compile_plan(SCENARIOS["gates"]()).limits
    tolerant = compile_plan(SCENARIOS["continue-on-error"]()).limits

    approval_gate = 2 + 4 * (1 + 3)  # TaskSubmitted makes a token attempt 4 events
    assert gates.history_events == ENVELOPE + approval_gate + 2 * LAMBDA_TASK
    assert (
        tolerant.history_events == ENVELOPE + 3 * LAMBDA_TASK + 2
    )  # + the Succeed a caught error may end in


def test_parallel_and_dispatching_map() -> None:
    branches = compile_plan(SCENARIOS["parallel"]()).limits
    dispatched = compile_plan(SCENARIOS["parallel-dispatch"]()).limits

    assert branches.history_events == ENVELOPE + (2 + 2 + 2 * LAMBDA_TASK) + LAMBDA_TASK
    per_child = ITEM + 2 + LAMBDA_TASK  # iteration, dispatching Choice, the child's Task
    assert dispatched.history_events == ENVELOPE + MAP_STATES + 3 * per_child
    (entry,) = dispatched.maps
    assert entry.to_dict() == {
        "stepId": "checks",
        "kind": "parallel",
        "items": 3,
        "mode": "INLINE",
        "inlineEvents": MAP_STATES + 3 * per_child,
        "childHistoryEvents": None,
    }


def test_map_at_the_budget_stays_inline() -> None:
    compiled = compile_plan(SCENARIOS["map-1246"]())
    report = compiled.limits

    assert report.history_events == ENVELOPE + MAP_STATES + 1_246 * (ITEM + LAMBDA_TASK)
    assert report.history_events <= HISTORY_EVENT_BUDGET
    assert report.maps[0].mode == "INLINE"
    assert compiled.definition["States"]["scan-all"]["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}


def test_map_over_the_budget_switches_to_distributed() -> None:
    compiled = compile_plan(SCENARIOS["map-1247"]())
    report = compiled.limits

    assert ENVELOPE + MAP_STATES + 1_247 * (ITEM + LAMBDA_TASK) > HISTORY_EVENT_BUDGET
    assert report.history_events == ENVELOPE + MAP_STATES + 2  # + MapRunStarted/Succeeded
    assert report.max_child_history_events == 2 + LAMBDA_TASK
    assert compiled.definition["States"]["scan-all"]["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "STANDARD",
    }


def test_ten_thousand_item_map_is_distributed_and_within_every_limit() -> None:
    compiled = compile_plan(SCENARIOS["map-10000"]())
    report = compiled.limits

    assert report.ok, report.problems
    (entry,) = report.maps
    assert (entry.step_id, entry.kind, entry.items, entry.mode) == ("scan-all", "map", 10_000, "DISTRIBUTED")
    assert entry.inline_events == MAP_STATES + 10_000 * (ITEM + LAMBDA_TASK)
    assert entry.child_history_events == 2 + LAMBDA_TASK
    assert report.history_events == ENVELOPE + MAP_STATES + 2
    assert report.definition_bytes == len(compiled.definition_bytes)
    deployed = substitute_placeholders(compiled.definition_bytes, {name: "x" * 140 for name in PLACEHOLDERS})
    assert report.deployed_definition_bytes == len(deployed.encode())
    assert report.payload_bytes == BASE_PAYLOAD + items_bytes(10_000)
    processor = compiled.definition["States"]["scan-all"]["ItemProcessor"]
    assert processor["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert compiled.definition["States"]["scan-all"]["MaxConcurrency"] == 8


def test_largest_saving_switches_first() -> None:
    big, small = 800, 600
    compiled = compile_plan(
        plan(
            map_of("small", "t", small, run_template("t")),
            map_of("big", "t", big, run_template("t")),
        ),
    )
    modes = {entry.step_id: entry.mode for entry in compiled.limits.maps}

    assert modes == {"big": "DISTRIBUTED", "small": "INLINE"}
    assert compiled.limits.history_events == ENVELOPE + (MAP_STATES + 2) + MAP_STATES + small * (
        ITEM + LAMBDA_TASK
    )


def test_map_inside_a_parallel_can_switch() -> None:
    compiled = compile_plan(plan(parallel("fan", map_of("huge", "t", 1_300, run_template("t")), run("side"))))
    (entry,) = compiled.limits.maps

    assert entry.mode == "DISTRIBUTED"
    assert compiled.limits.history_events == ENVELOPE + (2 + 2 + (MAP_STATES + 2) + LAMBDA_TASK)
    branch = compiled.definition["States"]["fan"]["Branches"][0]
    assert branch["States"]["huge"]["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"


def test_outer_map_switches_and_inner_maps_are_analysed_per_child_execution() -> None:
    outer, inner = 20, 70
    compiled = compile_plan(
        plan(
            map_of(
                "regions",
                "hosts",
                outer,
                lambda prefix, index: map_of(
                    prefix + "hosts", "patch", inner, run_template("patch"), index=index
                ),
            )
        ),
    )
    report = compiled.limits
    inner_events = MAP_STATES + inner * (ITEM + LAMBDA_TASK)
    modes = {entry.step_id: (entry.mode, entry.items) for entry in report.maps}

    assert ENVELOPE + MAP_STATES + outer * (ITEM + inner_events) > HISTORY_EVENT_BUDGET
    assert modes == {"regions": ("DISTRIBUTED", outer), "regions[*]::hosts": ("INLINE", inner)}
    assert report.max_child_history_events == 2 + inner_events
    inner_map = compiled.definition["States"]["regions"]["ItemProcessor"]["States"]["regions_hosts"]
    assert inner_map["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}


def test_too_many_sequential_steps_are_reported() -> None:
    count = 2_500
    report = compile_plan(plan(*(run(f"step-{index}") for index in range(count)))).limits

    assert report.history_events == ENVELOPE + count * LAMBDA_TASK
    assert not report.ok
    assert len(report.problems) == 2
    assert "history events" in report.problems[0]
    assert f"{report.history_events:,}" in report.problems[0]
    assert "1,048,576-byte limit" in report.problems[1]
    assert report.definition_bytes > 1_048_576


def test_state_payload_bound_grows_with_the_item_list() -> None:
    count = 45_000
    children = [RunStep(id=f"m[{index}]::t", uses="noop", index=index) for index in range(count)]
    huge = MapStep(id="m", maxParallel=4, templateId="t", items=list(range(count)), steps=children)
    report = analyse_limits(plan(huge), b"{}")

    assert report.payload_bytes == BASE_PAYLOAD + items_bytes(count)
    assert report.payload_bytes > 262_144
    assert any("payload limit" in problem for problem in report.problems)


def test_analyse_limits_matches_the_compiled_report() -> None:
    scenario = SCENARIOS["airgap-import"]()
    compiled = compile_plan(scenario)

    assert analyse_limits(scenario, compiled.definition_bytes) == compiled.limits


def test_report_is_json_ready() -> None:
    report = compile_plan(SCENARIOS["map-in-parallel"]()).limits
    document = json.loads(json.dumps(report.to_dict()))

    assert document["ok"] is True
    assert document["historyEvents"]["budget"] == HISTORY_EVENT_BUDGET
    assert document["historyEvents"]["limit"] == HISTORY_EVENT_LIMIT
    assert document["definitionBytes"]["limit"] == 1_048_576
    assert document["payloadBytes"]["limit"] == 262_144
    assert document["maps"][0]["stepId"] == "scan-all"
    assert document["problems"] == []


@pytest.mark.parametrize("max_attempts", [1, 4])
def test_retries_inside_map_items_count_per_item(max_attempts: int) -> None:
    report = compile_plan(
        plan(map_of("m", "t", 5, run_template("t", retries=RetryPolicy(maxAttempts=max_attempts))))
    ).limits

    item_task = 2 + 3 * (max_attempts + 3)
    assert report.history_events == ENVELOPE + MAP_STATES + 5 * (ITEM + item_task)


def test_gate_helpers_are_counted_inside_parallels() -> None:
    report = compile_plan(plan(parallel("p", approval("a"), policy("b")))).limits

    assert report.history_events == ENVELOPE + 2 + 2 + (2 + 4 * 4) + LAMBDA_TASK


def _task_states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        if state["Type"] == "Task":
            yield name, state
        for branch in state.get("Branches", []):
            yield from _task_states(branch["States"])
        if "ItemProcessor" in state:
            yield from _task_states(state["ItemProcessor"]["States"])


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_task_state_is_at_least_the_floor_size(scenario: str) -> None:
    definition = compile_plan(SCENARIOS[scenario]()).definition
    sizes = [
        len(json.dumps({name: state}, separators=(",", ":")))
        for name, state in _task_states(definition["States"])
    ]
    assert sizes
    assert min(sizes) >= MIN_TASK_STATE_BYTES


@pytest.mark.parametrize("path", sorted((REPO / "examples" / "packs").glob("*.yaml")), ids=lambda p: p.name)
def test_floors_never_exceed_the_compiled_report(path: Path) -> None:
    required = {"bundlePath": "/tmp/bundle.tar", "bundleSha256": "0" * 64}
    result = build_plan(path, required if path.name == "airgap-import.yaml" else {})
    spec = result.pack.manifest.spec
    floors = pack_floors(spec.steps, spec.maxParallel)
    assert ENVELOPE < floors.history_events <= result.compiled.limits.history_events
    assert 0 < floors.definition_bytes <= result.compiled.limits.definition_bytes
    assert floors.problems() == []


def test_floors_of_a_long_sequence_name_both_limits() -> None:
    steps = load_pack(
        {
            "apiVersion": "stellaops.io/pack.v1",
            "kind": "TaskPack",
            "metadata": {"name": "long", "version": "1.0.0"},
            "spec": {
                "sandbox": {"mode": "sealed", "egressAllowlist": []},
                "steps": [{"id": f"s{i}", "run": {"uses": "noop"}} for i in range(3_000)],
            },
        }
    ).manifest.spec.steps
    floors = pack_floors(steps, 4)
    assert floors.history_events == ENVELOPE + 3_000 * LAMBDA_TASK
    assert floors.definition_bytes == 3_000 * MIN_TASK_STATE_BYTES
    history, definition = floors.problems()
    assert history.startswith(
        f"the run would record at least {ENVELOPE + 3_000 * LAMBDA_TASK:,} history events"
    )
    assert definition.startswith(f"the definition would hold at least {3_000 * MIN_TASK_STATE_BYTES:,} bytes")
    # inside a map or a parallel that may run as a Map, steps may be child executions: no history floor
    assert pack_floors([], 4).history_events == ENVELOPE
