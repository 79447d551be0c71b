"""Pack-wide rules: unique ids, references, and every expression (syntax, roots, declared names)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from taskrunner.pack import ManifestError, Problem, load_pack

RUN = {"run": {"uses": "noop"}}


def base(**spec: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": "stellaops.io/pack.v1",
        "kind": "TaskPack",
        "metadata": {"name": "rules", "version": "1.0.0"},
        "spec": {
            "inputs": [{"name": "xs", "type": "array", "default": [1]}, {"name": "flag", "type": "boolean"}],
            "secrets": [{"name": "token", "ref": "env:TOKEN"}],
            "approvals": [{"id": "review", "grants": ["packs.approve"], "expiresAfter": "PT1H"}],
            "policies": [{"id": "ok", "expression": "`true`"}],
            "sandbox": {"mode": "sealed", "egressAllowlist": []},
            "steps": [{"id": "first", **RUN}],
        },
    }
    document["spec"].update(copy.deepcopy(spec))
    return document


def problems(document: dict[str, Any]) -> list[Problem]:
    with pytest.raises(ManifestError) as info:
        load_pack(document)
    return info.value.problem_list


def only(document: dict[str, Any]) -> Problem:
    found = problems(document)
    assert len(found) == 1, found
    return found[0]


def step(step_id: str, **body: Any) -> dict[str, Any]:
    return {"id": step_id, **(body or RUN)}


@pytest.mark.parametrize(
    ("steps", "path"),
    [
        ([step("a"), step("a")], "spec.steps[1].id"),
        ([step("a"), step("p", parallel={"steps": [step("a")]})], "spec.steps[1].parallel.steps[0].id"),
        ([step("p", parallel={"steps": [step("b"), step("b")]})], "spec.steps[0].parallel.steps[1].id"),
        ([step("a"), step("m", map={"items": [1], "step": step("a")})], "spec.steps[1].map.step.id"),
        ([step("m", map={"items": [1], "step": step("m")})], "spec.steps[0].map.step.id"),
    ],
)
def test_step_ids_are_unique_across_the_whole_pack(steps: list[dict[str, Any]], path: str) -> None:
    found = only(base(steps=steps))
    assert found["path"] == path
    assert "is used twice (first at spec." in found["message"]


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        (
            {"inputs": [{"name": "a", "type": "string"}, {"name": "a", "type": "number"}]},
            "spec.inputs[1].name",
        ),
        ({"secrets": [{"name": "s", "ref": "env:A"}, {"name": "s", "ref": "env:B"}]}, "spec.secrets[1].name"),
        (
            {"policies": [{"id": "p", "expression": "`1`"}, {"id": "p", "expression": "`2`"}]},
            "spec.policies[1].id",
        ),
        (
            {
                "outputs": [
                    {"name": "o", "type": "value", "from": "inputs"},
                    {"name": "o", "type": "value", "from": "inputs"},
                ]
            },
            "spec.outputs[1].name",
        ),
    ],
)
def test_declaration_names_are_unique(spec: dict[str, Any], path: str) -> None:
    assert only(base(**spec))["path"] == path


def test_gates_must_name_declared_approvals_and_policies() -> None:
    found = problems(
        base(
            steps=[
                step("g", **{"gate.approval": {"approval": "nope"}}),
                step("h", **{"gate.policy": {"policy": "nah"}}),
            ]
        )
    )
    assert [(p["path"], p["message"]) for p in found] == [
        ("spec.steps[0].gate.approval.approval", 'names "nope", which spec.approvals does not define'),
        ("spec.steps[1].gate.policy.policy", 'names "nah", which spec.policies does not define'),
    ]
    assert "review" in found[0]["hint"]
    assert "ok" in found[1]["hint"]


@pytest.mark.parametrize(
    ("when", "fragment"),
    [
        ("inputs.[", "does not parse"),
        ("env.X", "unknown root 'env'"),
        ("inputs.missing", "inputs.missing is not declared"),
        ("steps.ghost.outputs.x", "steps.ghost names no step of this pack"),
        ("item.enabled", "item is only defined inside a map step"),
        ("index == `0`", "index is only defined inside a map step"),
        ("secrets.token == 'x'", "secrets cannot be read here"),
        ("@", "reads the whole context"),
        ("{{ inputs.flag }} x", "must be one expression"),
    ],
)
def test_when_conditions_are_checked(when: str, fragment: str) -> None:
    found = only(base(steps=[step("a", when=when, **RUN)]))
    assert found["path"] == "spec.steps[0].when"
    assert fragment in found["message"]
    assert found["hint"]


@pytest.mark.parametrize(
    "when",
    [
        "inputs.flag",
        "{{ inputs.flag }}",
        "steps.first.outputs.ok",
        "run.id != `null`",
        "length(inputs.xs) > `0`",
    ],
)
def test_valid_when_conditions_are_accepted(when: str) -> None:
    first = step("first", run={"uses": "noop", "with": {"ok": True}})
    load_pack(base(steps=[first, step("a", when=when, **RUN)]))


def test_run_with_may_read_everything_declared_including_secrets() -> None:
    with_ = {
        "a": "{{ inputs.xs }}",
        "b": "Bearer {{ secrets.token }}",
        "c": ["{{ steps.first.outputs }}"],
        "d": "{{ run.id }}",
    }
    load_pack(base(steps=[step("first"), step("use", run={"uses": "noop", "with": with_})]))


@pytest.mark.parametrize(
    ("with_", "path", "fragment"),
    [
        ({"a": "{{ secrets.nope }}"}, "spec.steps[0].run.with.a", "secrets.nope is not declared"),
        (
            {"deep": {"list": ["ok", "{{ inputs.[ }}"]}},
            "spec.steps[0].run.with.deep.list[1]",
            "does not parse",
        ),
        ({"a": "{{ item }}"}, "spec.steps[0].run.with.a", "item is only defined inside a map step"),
        ({"a": "x {{ inputs.xs"}, "spec.steps[0].run.with.a", "unclosed {{"),
    ],
)
def test_templates_in_run_with_are_checked_at_their_exact_path(
    with_: dict[str, Any], path: str, fragment: str
) -> None:
    found = only(base(steps=[step("a", run={"uses": "noop", "with": with_})]))
    assert (found["path"], fragment in found["message"]) == (path, True)


def test_item_and_index_are_available_inside_map_templates_and_their_descendants() -> None:
    inner = step(
        "p",
        parallel={
            "steps": [step("leaf", run={"uses": "noop", "with": {"i": "{{ item }}", "n": "{{ index }}"}})]
        },
    )
    load_pack(
        base(steps=[step("m", map={"items": "{{ inputs.xs }}", "step": {**inner, "when": "item != `0`"}})])
    )


def test_map_items_must_resolve_at_plan_time() -> None:
    steps = [step("first"), step("m", map={"items": "{{ steps.first.outputs.xs }}", "step": step("c")})]
    found = only(base(steps=steps))
    assert found["path"] == "spec.steps[1].map.items"
    assert found["message"].startswith(
        "map.items must resolve at plan time (inputs only), but it reads steps.first"
    )


@pytest.mark.parametrize("items", ["{{ secrets.token }}", "{{ run.id }}", "{{ item }}"])
def test_map_items_may_not_read_secrets_run_or_an_outer_item_outside_a_map(items: str) -> None:
    found = only(base(steps=[step("m", map={"items": items, "step": step("c")})]))
    assert found["path"] == "spec.steps[0].map.items"


def test_nested_map_items_may_read_the_outer_item() -> None:
    inner = step("inner", map={"items": "{{ item.children }}", "step": step("leaf")})
    load_pack(base(steps=[step("outer", map={"items": [{"children": [1]}], "step": inner})]))


def test_reason_templates_may_read_inputs_only() -> None:
    approvals = [
        {
            "id": "review",
            "grants": ["g"],
            "expiresAfter": "PT1H",
            "reasonTemplate": "see {{ steps.first.outputs }}",
        }
    ]
    found = only(base(approvals=approvals))
    assert found["path"] == "spec.approvals[0].reasonTemplate"
    assert "inputs only" in found["hint"]


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"policies": [{"id": "ok", "expression": "secrets.token"}]}, "spec.policies[0].expression"),
        ({"policies": [{"id": "ok", "expression": "length("}]}, "spec.policies[0].expression"),
        ({"outputs": [{"name": "o", "type": "value", "from": "secrets.token"}]}, "spec.outputs[0].from"),
        (
            {"outputs": [{"name": "o", "type": "value", "from": "steps.ghost.outputs"}]},
            "spec.outputs[0].from",
        ),
        (
            {
                "steps": [
                    step("g", **{"gate.approval": {"approval": "review", "message": "{{ secrets.token }}"}})
                ]
            },
            "spec.steps[0].gate.approval.message",
        ),
    ],
)
def test_policies_outputs_and_messages_are_checked(spec: dict[str, Any], path: str) -> None:
    assert only(base(**spec))["path"] == path


@pytest.mark.parametrize(
    ("spec", "path", "named"),
    [
        ({"steps": [{"id": "slow", **RUN, "timeoutSeconds": 901}]}, "spec.steps[0].timeoutSeconds", "'slow'"),
        (
            {"steps": [step("m", map={"items": [1], "step": {"id": "t", **RUN, "timeoutSeconds": 3600}})]},
            "spec.steps[0].map.step.timeoutSeconds",
            "'t'",
        ),
        (
            {"sandbox": {"mode": "sealed", "egressAllowlist": [], "wallClockSeconds": 1200}},
            "spec.sandbox.wallClockSeconds",
            "sandbox.wallClockSeconds",
        ),
    ],
)
def test_step_time_beyond_one_lambda_invocation_is_refused(
    spec: dict[str, Any], path: str, named: str
) -> None:
    found = only(base(**spec))

    assert found["path"] == path
    assert named in found["message"]
    assert "900-second" in found["message"]
    assert found["line"] is None or found["line"] >= 1


def test_step_time_of_exactly_one_lambda_invocation_is_accepted() -> None:
    document = base(
        sandbox={"mode": "sealed", "egressAllowlist": [], "wallClockSeconds": 900},
        steps=[{"id": "slow", **RUN, "timeoutSeconds": 900}],
    )

    assert load_pack(document).manifest.spec.steps[0].timeoutSeconds == 900


def test_step_time_problem_points_at_the_line_of_the_field() -> None:
    text = (
        "apiVersion: stellaops.io/pack.v1\n"
        "kind: TaskPack\n"
        "metadata: {name: rules, version: 1.0.0}\n"
        "spec:\n"
        "  sandbox: {mode: sealed, egressAllowlist: []}\n"
        "  steps:\n"
        "    - id: slow\n"
        "      run: {uses: noop}\n"
        "      timeoutSeconds: 1800\n"
    )
    found = only(text)  # type: ignore[arg-type]

    assert (found["line"], found["path"]) == (9, "spec.steps[0].timeoutSeconds")


def test_slo_approval_bound_needs_approvals() -> None:
    document = base(slo={"approvalP95Seconds": 600})
    document["spec"]["approvals"] = []
    found = only(document)
    assert (found["path"], found["message"]) == (
        "spec.slo.approvalP95Seconds",
        "the pack declares no approvals to measure",
    )
    assert "spec.approvals" in found["hint"]


def test_slo_approval_bound_past_every_expiry_is_refused() -> None:
    found = only(base(slo={"approvalP95Seconds": 3601}))  # the only approval expires after PT1H
    assert found["path"] == "spec.slo.approvalP95Seconds"
    assert "3,600 s" in found["message"]
    assert "at most 3600" in found["hint"]


@pytest.mark.parametrize(
    ("slo", "path"),
    [
        ({"runP95Seconds": 0}, "spec.slo.runP95Seconds"),
        ({"runP95Seconds": 365 * 24 * 3600 + 1}, "spec.slo.runP95Seconds"),
        ({"approvalP95Seconds": -5}, "spec.slo.approvalP95Seconds"),
        ({"maxQueueDepth": 0}, "spec.slo.maxQueueDepth"),
        ({"maxQueueDepth": 10_001}, "spec.slo.maxQueueDepth"),
        ({"runP95Seconds": "fast"}, "spec.slo.runP95Seconds"),
        ({"p99Seconds": 5}, "spec.slo.p99Seconds"),
    ],
)
def test_slo_bounds_are_refused_with_their_field(slo: dict[str, Any], path: str) -> None:
    assert only(base(slo=slo))["path"] == path


def test_slo_error_carries_line_and_column() -> None:
    text = (
        "apiVersion: stellaops.io/pack.v1\nkind: TaskPack\nmetadata: {name: s, version: 1.0.0}\n"
        "spec:\n  sandbox: {mode: sealed, egressAllowlist: []}\n  slo:\n    approvalP95Seconds: 60\n"
        "  steps: [{id: a, run: {uses: noop}}]\n"
    )
    with pytest.raises(ManifestError) as info:
        load_pack(text)
    [found] = info.value.problem_list
    assert (found["line"], found["path"]) == (7, "spec.slo.approvalP95Seconds")


def test_a_valid_slo_loads() -> None:
    slo = {"runP95Seconds": 900, "approvalP95Seconds": 3600, "maxQueueDepth": 50}
    assert load_pack(base(slo=slo)).manifest.spec.slo is not None
