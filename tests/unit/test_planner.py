"""The planner: plan contents, plan-time expressions, when, gates, failure policy and maxParallel."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from taskrunner.canonical import canonical_bytes, digest_of, sha256_digest
from taskrunner.pack import ManifestError
from taskrunner.plan.document import ApprovalGateStep, ParallelStep, Plan, PolicyGateStep, RunStep
from taskrunner.plan.planner import PlanResult, build_plan


def manifest(steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": "stellaops.io/pack.v1",
        "kind": "TaskPack",
        "metadata": {"name": "planner", "version": "2.0.1", "description": "probe"},
        "spec": {
            "inputs": [
                {"name": "who", "type": "string", "default": "world"},
                {"name": "n", "type": "integer", "default": 3},
                {"name": "dry", "type": "boolean", "default": False},
            ],
            "sandbox": {"mode": "sealed", "egressAllowlist": []},
            "steps": steps,
        },
    }
    document["spec"].update(copy.deepcopy(spec))
    return document


def run(step_id: str, **extra: Any) -> dict[str, Any]:
    with_ = extra.pop("with", {})
    return {"id": step_id, "run": {"uses": "noop", "with": with_}, **extra}


def plan_of(steps: list[dict[str, Any]], inputs: dict[str, Any] | None = None, **spec: Any) -> PlanResult:
    return build_plan(manifest(steps, **spec), inputs or {})


def step(result: PlanResult, index: int) -> Any:
    return result.plan.steps[index]


def test_the_plan_holds_the_resolved_pack_and_nothing_run_specific() -> None:
    spec = {
        "secrets": [{"name": "token", "ref": "aws-ssm:/prod/token"}],
        "approvals": [
            {
                "id": "review",
                "grants": ["packs.approve"],
                "requiredCount": 2,
                "expiresAfter": "PT4H",
                "reasonTemplate": "Ship {{ inputs.who }} x{{ inputs.n }}",
            }
        ],
        "policies": [{"id": "small", "expression": "inputs.n < `10`"}],
        "slo": {"runP95Seconds": 60},
        "security": {"secretsRedactionPolicy": "blank"},
        "outputs": [{"name": "out", "type": "value", "from": "steps.a.outputs"}],
    }
    document = manifest([run("a")], **spec)
    result = build_plan(document, {"who": "mars"})
    plan = result.plan.to_document()
    assert set(plan) == {
        "apiVersion", "pack", "inputs", "secrets", "approvals", "policies", "sandbox", "slo", "security",
        "failure", "maxParallel", "steps", "outputs",
    }  # fmt: skip
    assert plan["pack"] == {"name": "planner", "version": "2.0.1", "digest": digest_of(document)}
    assert plan["inputs"] == {"who": "mars", "n": 3, "dry": False}
    assert plan["secrets"] == [{"name": "token", "ref": "aws-ssm:/prod/token"}]
    assert plan["approvals"] == [
        {
            "id": "review",
            "grants": ["packs.approve"],
            "requiredCount": 2,
            "expiresAfter": "PT4H",
            "expiresAfterSeconds": 14400,
            "reason": "Ship mars x3",
        }
    ]
    assert plan["policies"] == [{"id": "small", "expression": "inputs.n < `10`"}]
    assert plan["sandbox"] == {"mode": "sealed", "egressAllowlist": []}
    assert plan["slo"] == {"runP95Seconds": 60}
    assert plan["security"] == {"secretsRedactionPolicy": "blank"}
    assert plan["outputs"] == [{"name": "out", "type": "value", "from": "steps.a.outputs"}]
    assert result.plan_bytes == canonical_bytes(plan)
    assert result.plan_hash == sha256_digest(result.plan_bytes)


def test_with_resolves_input_only_templates_and_keeps_run_time_ones() -> None:
    with_ = {
        "greeting": "hello {{ inputs.who }}",
        "n": "{{ inputs.n }}",
        "flags": ["{{ inputs.dry }}", "literal"],
        "later": "{{ steps.a.outputs.x }}",
        "mixed": "{{ inputs.who }}/{{ steps.a.outputs.x }}",
        "token": "Bearer {{ secrets.token }}",
        "run": "{{ run.id }}",
    }
    result = plan_of(
        [run("a", **{"with": {"x": 1}}), run("b", **{"with": with_})],
        secrets=[{"name": "token", "ref": "env:T"}],
    )
    assert step(result, 1).with_ == {
        "greeting": "hello world",
        "n": 3,
        "flags": [False, "literal"],
        "later": "{{ steps.a.outputs.x }}",
        "mixed": "{{ inputs.who }}/{{ steps.a.outputs.x }}",
        "token": "Bearer {{ secrets.token }}",
        "run": "{{ run.id }}",
    }


def test_input_values_that_look_like_templates_are_escaped_in_the_plan() -> None:
    result = plan_of([run("a", **{"with": {"g": "hi {{ inputs.who }}"}})], {"who": "{{ secrets.token }}"})
    assert step(result, 0).with_ == {"g": "hi {{ '{{' }} secrets.token }}"}


@pytest.mark.parametrize(
    ("when", "inputs", "resolved"),
    [
        ("inputs.dry", {}, False),
        ("inputs.dry", {"dry": True}, True),
        ("inputs.dry == `false`", {}, True),
        ("{{ inputs.n > `5` }}", {}, False),
        ("inputs.who", {"who": ""}, False),
        ("steps.a.outputs.ok", {}, None),
        ("run.id != `null`", {}, None),
    ],
)
def test_when_is_decided_at_plan_time_when_it_reads_inputs_only(
    when: str, inputs: dict[str, Any], resolved: bool | None
) -> None:
    result = plan_of([run("a", **{"with": {"ok": True}}), run("b", when=when)], inputs)
    assert step(result, 1).when == when
    assert step(result, 1).whenResolved is resolved


def test_steps_without_when_have_neither_field() -> None:
    document = plan_of([run("a")]).plan.to_document()["steps"][0]
    assert "when" not in document
    assert "whenResolved" not in document


def test_gates_carry_their_declarations() -> None:
    result = plan_of(
        [
            {"id": "review", "gate.approval": {"approval": "sec", "message": "Approve {{ inputs.who }}"}},
            {
                "id": "later",
                "gate.approval": {"approval": "sec", "message": "saw {{ steps.review.outputs }}"},
            },
            {"id": "check", "gate.policy": {"policy": "small", "failAction": "continue"}},
            {"id": "strict", "gate.policy": {"policy": "small"}},
        ],
        approvals=[
            {"id": "sec", "grants": ["packs.approve", "ops"], "requiredCount": 2, "expiresAfter": "PT30M"}
        ],
        policies=[{"id": "small", "expression": "inputs.n < `10`"}],
    )
    review, later, check, strict = result.plan.steps
    assert isinstance(review, ApprovalGateStep)
    assert isinstance(later, ApprovalGateStep)
    assert (review.approval, review.message, review.requiredCount, review.grants, review.expiresAfterSeconds) == (
        "sec", "Approve world", 2, ["packs.approve", "ops"], 1800,
    )  # fmt: skip
    assert later.message == "saw {{ steps.review.outputs }}"
    assert isinstance(check, PolicyGateStep)
    assert isinstance(strict, PolicyGateStep)
    assert (check.policy, check.expression, check.failAction) == ("small", "inputs.n < `10`", "continue")
    assert strict.failAction == "halt"


def test_failure_policy_defaults() -> None:
    result = plan_of([run("a")])
    assert result.plan.failure.model_dump() == {
        "retries": {"maxAttempts": 1, "backoffSeconds": 0, "backoffRate": 2.0},
        "continueOnError": False,
    }
    a = step(result, 0)
    assert isinstance(a, RunStep)
    assert (a.retries.maxAttempts, a.retries.backoffSeconds, a.retries.backoffRate, a.continueOnError) == (
        1,
        0,
        2.0,
        False,
    )


def test_failure_policy_merges_spec_then_step_per_field() -> None:
    failure = {"retries": {"maxAttempts": 3, "backoffSeconds": 5}, "continueOnError": True}
    steps = [
        run("inherits"),
        run("attempts", retries={"maxAttempts": 2}),
        run("rate", retries={"backoffRate": 1.5}, continueOnError=False),
        {"id": "block", "parallel": {"steps": [run("child")]}},
        {
            "id": "strict-block",
            "parallel": {"continueOnError": False, "steps": [run("child2", continueOnError=True)]},
        },
    ]
    result = plan_of(steps, failure=failure)
    inherits, attempts, rate, block, strict_block = result.plan.steps
    assert result.plan.failure.retries.model_dump() == {
        "maxAttempts": 3,
        "backoffSeconds": 5,
        "backoffRate": 2.0,
    }
    assert inherits.retries.model_dump() == {"maxAttempts": 3, "backoffSeconds": 5, "backoffRate": 2.0}
    assert inherits.continueOnError is True
    assert attempts.retries.model_dump() == {"maxAttempts": 2, "backoffSeconds": 5, "backoffRate": 2.0}
    assert rate.retries.model_dump() == {"maxAttempts": 3, "backoffSeconds": 5, "backoffRate": 1.5}
    assert rate.continueOnError is False
    assert isinstance(block, ParallelStep)
    assert block.continueOnError is True
    assert block.steps[0].continueOnError is True
    assert isinstance(strict_block, ParallelStep)
    assert strict_block.continueOnError is False
    assert strict_block.steps[0].continueOnError is True


@pytest.mark.parametrize(
    ("spec", "block", "expected"),
    [
        ({}, {}, (4, 4, 4)),
        ({"maxParallel": 7}, {}, (7, 7, 7)),
        ({"maxParallel": 7}, {"maxParallel": 2}, (7, 2, 2)),
    ],
)
def test_max_parallel_defaults_to_the_spec_value(
    spec: dict[str, Any], block: dict[str, Any], expected: tuple[int, int, int]
) -> None:
    steps = [
        {"id": "p", "parallel": {**block, "steps": [run("c")]}},
        {"id": "m", "map": {**block, "items": [1], "step": run("t")}},
    ]
    result = plan_of(steps, **spec)
    assert (result.plan.maxParallel, step(result, 0).maxParallel, step(result, 1).maxParallel) == expected


def test_run_step_details_are_kept() -> None:
    result = plan_of(
        [run("a", outputs=["x", "y"], timeoutSeconds=30, **{"with": {"x": 1, "y": 2}}), run("b")]
    )
    a, b = result.plan.steps
    assert (a.uses, a.outputs, a.timeoutSeconds) == ("noop", ["x", "y"], 30)
    assert (b.outputs, b.timeoutSeconds) == ([], None)


def test_plan_time_evaluation_errors_name_the_field_and_position() -> None:
    text = (
        "apiVersion: stellaops.io/pack.v1\nkind: TaskPack\nmetadata: {name: bad, version: 1.0.0}\n"
        "spec:\n  inputs: [{name: n, type: integer, default: 3}]\n"
        "  sandbox: {mode: sealed, egressAllowlist: []}\n"
        "  steps:\n    - id: a\n      run: {uses: noop, with: {len: '{{ length(inputs.n) }}'}}\n"
        "    - id: b\n      when: 'length(inputs.n) > `1`'\n      run: {uses: noop}\n"
    )
    with pytest.raises(ManifestError) as info:
        build_plan(text, {}, source_name="bad.yaml")
    assert [(p["path"], p["line"]) for p in info.value.problem_list] == [
        ("spec.steps[0].run.with.len", 9),
        ("spec.steps[1].when", 11),
    ]
    assert "length" in info.value.problem_list[0]["message"]


def test_the_result_is_a_validated_plan_model_with_its_hash_and_seed() -> None:
    result = plan_of([run("a")])
    assert isinstance(result.plan, Plan)
    assert Plan.model_validate(result.plan.to_document()) == result.plan
    assert result.plan_hash.startswith("sha256:")
    assert len(result.plan_hash) == 71
    assert 0 <= result.rng_seed < 2**64
    assert result.pack.manifest.metadata.name == "planner"
