"""The pre-flight every path runs (validate/plan/simulate/compile, POST /api/plans, POST /api/runs): steps
of the wrong shape are located errors, and packs over the configured bounds or the Step Functions limits are
refused (422 PlanTooLarge) before they are expanded or started, with the limits in the message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO
from taskrunner.asl.limits import DEFINITION_BYTES_LIMIT, ENVELOPE_EVENTS, HISTORY_EVENT_BUDGET
from taskrunner.cli.app import app
from taskrunner.pack.limits import MAX_NESTING_DEPTH, MAX_PLANNED_STEPS
from typer.testing import CliRunner

PLAN_EVENT = json.loads((REPO / "events" / "submit_run-create-plan.json").read_text(encoding="utf-8"))
RUN_EVENT = json.loads((REPO / "events" / "submit_run-create-run.json").read_text(encoding="utf-8"))
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

KIND_VARIANTS: dict[str, tuple[dict[str, Any], str, str]] = {
    # name: (step body besides its id, the path of the problem, a fragment of its message)
    "run-null": ({"run": None}, "spec.steps[0]", "run has no value"),
    "run-empty": ({"run": ""}, "spec.steps[0].run", "run must be a mapping of its fields, got ''"),
    "run-list": ({"run": []}, "spec.steps[0].run", "run must be a mapping of its fields, got []"),
    "run-number": ({"run": 5}, "spec.steps[0].run", "run must be a mapping of its fields, got 5"),
    "parallel-null": ({"parallel": None}, "spec.steps[0]", "parallel has no value"),
    "parallel-text": ({"parallel": "x"}, "spec.steps[0].parallel", "parallel must be a mapping"),
    "parallel-steps-null": ({"parallel": {"steps": None}}, "spec.steps[0].parallel.steps", "must be a list"),
    "parallel-step-null": (
        {"parallel": {"steps": [None]}},
        "spec.steps[0].parallel.steps[0]",
        "step must be a mapping",
    ),
    "map-null": ({"map": None}, "spec.steps[0]", "map has no value"),
    "map-step-null": (
        {"map": {"items": [1], "step": None}},
        "spec.steps[0].map.step",
        "step must be a mapping",
    ),
    "approval-null": ({"gate.approval": None}, "spec.steps[0]", "gate.approval has no value"),
    "policy-text": ({"gate.policy": "x"}, "spec.steps[0].gate.policy", "gate.policy must be a mapping"),
    "no-kind": ({}, "spec.steps[0]", "exactly one kind key, found 0"),
}


def pack(steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stellaops.io/pack.v1",
        "kind": "TaskPack",
        "metadata": {"name": "preflight", "version": "1.0.0"},
        "spec": {"sandbox": {"mode": "sealed", "egressAllowlist": []}, "steps": steps, **spec},
    }


def run_steps(count: int, prefix: str = "s") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", "run": {"uses": "noop", "with": {"n": i}}} for i in range(count)]


def nested_maps(depth: int, width: int) -> dict[str, Any]:
    step: dict[str, Any] = {"id": "leaf", "run": {"uses": "noop"}}
    for level in range(depth):
        step = {"id": f"m{level}", "map": {"items": list(range(width)), "step": step}}
    return pack([step])


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def written(tmp_path: Path, document: dict[str, Any]) -> str:
    path = tmp_path / "pack.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return str(path)


def request(runtime: Any, event: dict[str, Any], document: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"manifest": yaml.safe_dump(document, sort_keys=False)})
    result = runtime.invoke("submit_run", {**event, "body": body, "isBase64Encoded": False})
    answer = result.json()
    assert not result.is_error, answer
    return int(answer["statusCode"]), json.loads(answer["body"])


# -- kind keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "plan", "simulate", "compile"])
@pytest.mark.parametrize("variant", sorted(KIND_VARIANTS))
def test_a_step_of_the_wrong_shape_is_a_located_error_in_every_command(
    tmp_path: Path, variant: str, command: str
) -> None:
    body, path, fragment = KIND_VARIANTS[variant]
    file = written(tmp_path, pack([{"id": "a", **body}]))
    result = cli(command, file)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    located = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith(file)]
    assert any(
        line.startswith(f"{file}:") and f": {path}: " in line and fragment in line and "(hint: " in line
        for line in located
    ), result.stderr


@pytest.mark.parametrize("event", [PLAN_EVENT, RUN_EVENT], ids=["plans", "runs"])
@pytest.mark.parametrize("variant", sorted(KIND_VARIANTS))
def test_a_step_of_the_wrong_shape_is_a_422_from_the_api(runtime: Any, variant: str, event: Any) -> None:
    body, path, fragment = KIND_VARIANTS[variant]
    status, answer = request(runtime, event, pack([{"id": "a", **body}]))
    assert (status, answer["code"]) == (422, "InvalidPack"), answer
    assert any(e["path"] == path and fragment in e["message"] and e["line"] for e in answer["errors"]), answer


# -- bounds and Step Functions limits -----------------------------------------------------------------


def test_nesting_deeper_than_the_limit_is_refused_where_it_happens(tmp_path: Path) -> None:
    assert cli("plan", written(tmp_path, nested_maps(MAX_NESTING_DEPTH, 1))).exit_code == 0
    result = cli("plan", written(tmp_path, nested_maps(MAX_NESTING_DEPTH + 1, 1)))
    assert result.exit_code == 1
    assert f"nested {MAX_NESTING_DEPTH + 1} deep, over the limit of {MAX_NESTING_DEPTH}" in result.stderr
    assert "spec.steps[0]" + ".map.step" * MAX_NESTING_DEPTH + ":" in result.stderr


def test_map_expansion_is_counted_before_it_is_done(tmp_path: Path) -> None:
    # 4^8 = 65,536 leaves: refused from the item counts; the refusal names the outermost map
    result = cli("compile", written(tmp_path, nested_maps(8, 4)))
    assert result.exit_code == 1
    assert (
        f"more than {MAX_PLANNED_STEPS:,} steps (the limit) once this map expands its 4 items"
        in result.stderr
    )
    assert "spec.steps[0].map.items:" in result.stderr


def test_nested_maps_reading_the_outer_item_are_counted_item_by_item(tmp_path: Path) -> None:
    inner = {"id": "inner", "map": {"items": "{{ item }}", "step": {"id": "leaf", "run": {"uses": "noop"}}}}
    rows = [list(range(10))] * 2 + [list(range(MAX_PLANNED_STEPS))]
    document = pack([{"id": "outer", "map": {"items": rows, "step": inner}}])
    result = cli("plan", written(tmp_path, document))
    assert result.exit_code == 1
    assert "once this map expands its 25,000 items" in result.stderr
    document["spec"]["steps"][0]["map"]["items"] = rows[:2]
    assert cli("plan", written(tmp_path, document)).exit_code == 0


def test_a_sequential_pack_past_the_history_budget_is_refused_by_plan_and_compile(tmp_path: Path) -> None:
    # every run step may record 14 events at least (2 + 3 per attempt, 1 + 3 Lambda-service retries)
    file = written(tmp_path, pack(run_steps(1_500)))
    for command in ("plan", "compile"):
        result = cli(command, file, "--json")
        assert result.exit_code == 1
        assert result.stdout == ""
        assert "PlanTooLarge" not in result.stderr  # the CLI prints the message, not the code
        assert f"history events, over the budget of {HISTORY_EVENT_BUDGET:,}" in result.stderr
        assert "split the pack" in result.stderr
    assert cli("plan", written(tmp_path, pack(run_steps(1_000)))).exit_code == 0


def test_the_exact_history_with_retries_is_refused_with_the_limits_report(tmp_path: Path) -> None:
    # 1,200 steps pass the floor (14 events each) but may make 3 + 3 attempts each: 2 + 3 x 6 events
    document = pack(run_steps(1_200), failure={"retries": {"maxAttempts": 3}})
    result = cli("compile", written(tmp_path, document), "--limits")
    assert result.exit_code == 1
    events = f"{1_200 * (2 + 3 * 6) + ENVELOPE_EVENTS:,}"
    assert f"the run may record {events} history events" in result.stderr
    assert f"[limits report: worst-case history {events} events" in result.stderr
    assert f"of {DEFINITION_BYTES_LIMIT:,} bytes" in result.stderr


def test_a_definition_over_one_mebibyte_is_refused_though_its_history_fits(tmp_path: Path) -> None:
    # a parallel run one child at a time compiles to a Map dispatching 2,000 distinct states: DISTRIBUTED
    # keeps every history small, but the definition is over 1 MiB
    document = pack([{"id": "all", "parallel": {"maxParallel": 1, "steps": run_steps(2_000, "c")}}])
    result = cli("compile", written(tmp_path, document))
    assert result.exit_code == 1, result.stdout[-500:]
    assert f"over the {DEFINITION_BYTES_LIMIT:,}-byte limit" in result.stderr
    assert "history events, over" not in result.stderr
    document["spec"]["steps"][0]["parallel"]["steps"] = run_steps(1_200, "c")  # 21,600 events inline
    limits = json.loads(cli("compile", written(tmp_path, document), "--json").stdout)["limits"]
    assert limits["ok"]
    assert limits["maps"][0]["mode"] == "DISTRIBUTED"


@pytest.mark.parametrize("event", [PLAN_EVENT, RUN_EVENT], ids=["plans", "runs"])
def test_the_api_refuses_a_pack_over_the_limits_and_starts_nothing(runtime: Any, event: Any) -> None:
    before = runtime.svc.store.count_active_runs()
    status, answer = request(runtime, event, pack(run_steps(2_000)))
    assert (status, answer["code"]) == (422, "PlanTooLarge"), answer
    assert any("history events, over the budget" in e["message"] for e in answer["errors"]), answer
    assert all(e["hint"].startswith("split the pack") for e in answer["errors"])
    assert runtime.svc.store.count_active_runs() == before
