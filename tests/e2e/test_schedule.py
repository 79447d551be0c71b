"""The scheduled run, fired as EventBridge fires it: the real Scheduled Event through the target's
InputTransformer from template.yaml, into the submit_run handler."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from conftest import PACKS, eventbridge_scheduled_event, transform_input
from taskrunner.local.template import IntrinsicResolver

PACK_KEY = "packs/hello.yaml"
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


@pytest.fixture(scope="module")
def fire(runtime: Any) -> Any:
    """``fire(event_id, time)``: what the schedule target delivers for that firing, invoked on submit_run."""
    runtime.svc.artifacts.put_bytes(PACK_KEY, (PACKS / "hello.yaml").read_bytes(), "application/yaml")
    aws = runtime.aws
    values = dataclasses.replace(
        aws.values,
        parameters={
            **aws.values.parameters,
            "ScheduledPackKey": PACK_KEY,
            "ScheduledInputs": '{"who": "cron"}',
        },
    )
    (target,) = aws.template.resources["ScheduledRunRule"]["Properties"]["Targets"]
    transformer = IntrinsicResolver(aws.template, values).resolve(target["InputTransformer"])
    rule_arn = f"arn:aws:events:{aws.region}:{aws.account_id}:rule/{aws.stack_name}-ScheduledRunRule"

    def invoke(event_id: str, fired_at: str) -> dict[str, Any]:
        event = transform_input(transformer, eventbridge_scheduled_event(rule_arn, event_id, fired_at))
        result = runtime.invoke("submit_run", event)
        assert not result.is_error, result.payload
        answer: dict[str, Any] = result.json()
        return answer

    return invoke


def test_each_firing_starts_one_run_and_a_redelivered_firing_none(runtime: Any, fire: Any) -> None:
    first = fire(str(uuid.uuid4()), "2026-11-30T10:00:00Z")
    # one run at a time: the local runtime creates its signing key when the first run is sealed
    assert runtime.wait(first["runId"], timeout=60).status == "succeeded"
    second = fire(str(uuid.uuid4()), "2026-11-30T11:00:00Z")
    assert second["runId"] != first["runId"]
    assert runtime.wait(second["runId"], timeout=60).status == "succeeded"

    again = fire(str(uuid.uuid4()), "2026-11-30T10:00:00Z")  # the first firing, delivered a second time
    assert (again["runId"], again["planHash"]) == (first["runId"], first["planHash"])

    runs, _ = runtime.svc.store.list_runs("default", limit=50)
    assert sorted(r.runId for r in runs) == sorted([first["runId"], second["runId"]])
    assert {r.packName for r in runs} == {"hello"}


def test_an_event_without_its_firing_time_is_refused_and_starts_nothing(runtime: Any, fire: Any) -> None:
    before, _ = runtime.svc.store.list_runs("default", limit=50)
    result = runtime.invoke(
        "submit_run", {"detail-type": "Scheduled Event", "detail": {"packKey": PACK_KEY, "inputs": {}}}
    )
    assert result.is_error
    assert result.json()["errorType"] == "ValidationFailed"
    assert "no time" in result.json()["errorMessage"]
    after, _ = runtime.svc.store.list_runs("default", limit=50)
    assert after == before
