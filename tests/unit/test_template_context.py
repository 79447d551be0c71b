"""The run-time template context: what a template sees, and that its cost follows what it reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest
from taskrunner.engine.context import template_context
from taskrunner.pack.expressions import condition_expression, references_of, render
from taskrunner.plan.document import RunStep
from taskrunner.plan.planner import PlanResult, build_plan
from taskrunner.store.records import RunRecord, StepRecord

IDS = ["fetch", "m[0]::fetch", "m[0]::use", "m[1]::fetch", "m[1]::use", "only[0]::scan", "only[0]::use"]


@cache
def _planned() -> PlanResult:
    manifest = {
        "apiVersion": "stellaops.io/pack.v1",
        "kind": "TaskPack",
        "metadata": {"name": "p", "version": "1.0.0"},
        "spec": {
            "inputs": [{"name": "name", "type": "string"}],
            "sandbox": {"mode": "sealed", "egressAllowlist": []},
            "steps": [{"id": "fetch", "run": {"uses": "noop"}}],
        },
    }
    return build_plan(json.dumps(manifest), {"name": "x"}, source_name="p.json")


def _run(ids: list[str]) -> RunRecord:
    """A run of a real plan whose step records are ``ids`` (the context reads records, not the plan's steps)."""
    planned = _planned()
    return RunRecord(
        runId="run-" + "a" * 8,
        tenantId="acme",
        planHash=planned.plan_hash,
        packName="p",
        packVersion="1.0.0",
        requestedAt=datetime(2026, 1, 1, tzinfo=UTC),
        failurePolicy={},
        plan=json.loads(planned.plan_bytes),
        steps=[StepRecord(stepId=sid, kind="run", status="succeeded", outputs={"of": sid}) for sid in ids],
    )


def _step(step_id: str, with_: dict[str, Any]) -> RunStep:
    return RunStep.model_validate({"id": step_id, "uses": "noop", "with": with_})


@pytest.mark.parametrize(
    ("step_id", "template", "expected"),
    [
        ("m[1]::use", "{{ steps.fetch.outputs.of }}", "fetch"),  # a top-level id wins over a sibling
        ("only[0]::use", "{{ steps.scan.outputs.of }}", "only[0]::scan"),  # the sibling of the same item
        ("m[0]::use", '{{ steps."m[1]::fetch".outputs.of }}', "m[1]::fetch"),  # any step by its full id
        ("m[0]::use", "{{ steps.missing.outputs.of }}", None),
        ("m[0]::use", "{{ keys(steps) | length(@) }}", len(IDS) + 1),  # whole steps: all, plus "use"
        ("m[0]::use", "{{ length(keys(@.steps)) }}", len(IDS) + 1),
        ("m[0]::use", "{{ inputs.name }}-{{ run.tenantId }}", "x-acme"),
    ],
)
def test_templates_read_the_same_values_with_and_without_reads(
    step_id: str, template: str, expected: object
) -> None:
    run = _run(IDS)
    step = _step(step_id, {"v": template})
    full = render(step.with_, template_context(run, step))
    limited = render(step.with_, template_context(run, step, reads=references_of(step.with_)))
    assert full == limited == {"v": expected}


def test_a_step_that_names_one_prior_step_sees_only_that_one() -> None:
    run = _run([f"s{i}" for i in range(1000)])
    step = _step("s999", {"v": "{{ steps.s3.outputs.of }}"})
    context = template_context(run, step, reads=references_of(step.with_))
    assert context["steps"] == {"s3": {"outputs": {"of": "s3"}, "status": "succeeded"}}
    when = condition_expression("steps.s5.status == 'succeeded' && inputs.name")
    assert set(template_context(run, step, reads=when.references)["steps"]) == {"s5"}
    assert template_context(run, step, reads=frozenset())["steps"] == {}


def test_step_lookups_stay_right_when_a_copy_changes_the_steps() -> None:
    run = _run(["a", "b"])
    assert run.step("b").stepId == "b"
    changed = run.model_copy(update={"steps": [StepRecord(stepId="b", kind="run")]})
    assert changed.step("b").status == "pending"
    with pytest.raises(Exception, match="no step 'a'"):
        changed.step("a")
