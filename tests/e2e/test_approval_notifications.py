"""The ApprovalRequested event, as an EventBridge rule delivers it: the gate's console link, never its task token."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import REPO, submit, wait_for, wait_for_step

PACK = REPO / "tests" / "fixtures" / "packs" / "approval-gate.yaml"
BASE = "https://runs.example.com"
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


@pytest.fixture(scope="module")
def linked_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local runtime whose deployment knows its public URL (``TASKRUNNER_API__PUBLIC_URL``)."""
    from support.clock import fast_clock
    from taskrunner.local.runtime import LocalRuntime

    home = tmp_path_factory.mktemp("notify-home")
    saved = {name: os.environ.get(name) for name in ("TASKRUNNER_HOME", "TASKRUNNER_API__PUBLIC_URL")}
    os.environ.update(TASKRUNNER_HOME=str(home), TASKRUNNER_API__PUBLIC_URL=BASE + "/")
    try:
        with fast_clock(0.01), LocalRuntime(home) as rt:
            yield rt
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def approval_requests(rt: Any) -> str:
    """An SQS queue receiving ApprovalRequested from the deployment's bus through a rule, as a user would wire it."""
    events, sqs = rt.aws.client("events"), rt.aws.client("sqs")
    bus = rt.aws.ref("EventBus")
    queue_url = sqs.create_queue(QueueName="approval-requests")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="approval-requests",
        EventBusName=bus,
        EventPattern=json.dumps({"source": ["stellaops.taskrunner"], "detail-type": ["ApprovalRequested"]}),
    )
    events.put_targets(
        Rule="approval-requests", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}]
    )
    return queue_url


def test_approval_requested_carries_the_gate_console_url_and_no_task_token(linked_runtime: Any) -> None:
    rt = linked_runtime
    queue_url = approval_requests(rt)
    run = submit(rt, PACK)
    wait_for_step(rt, run.runId, "review", "waiting")
    sqs = rt.aws.client("sqs")
    messages = wait_for(lambda: sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages"))

    event = json.loads(messages[0]["Body"])
    assert event["detail-type"] == "ApprovalRequested"
    detail = event["detail"]
    assert detail["consoleUrl"] == f"{BASE}/console/#/runs/{run.runId}/gates/review"
    assert detail["approveUrl"] == f"{BASE}/api/runs/{run.runId}/approve"
    assert (detail["runId"], detail["gateId"], detail["planHash"]) == (run.runId, "review", run.planHash)
    gate = next(g for g in rt.svc.store.list_gates(run.runId) if g.gateId == "review")
    assert gate.taskToken
    assert gate.taskToken not in messages[0]["Body"]
    assert "taskToken" not in detail
