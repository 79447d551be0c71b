"""StepFunctionsEngine against moto: create-or-adopt by name, logging/tracing settings, retiring idle machines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from taskrunner.aws.stepfunctions import StepFunctionsEngine
from taskrunner.errors import Conflict

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/prod-states"
LOG_GROUP = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/vendedlogs/states/prod-taskrunner:*"


def definition(result: str) -> str:
    return json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": result, "End": True}}})


def waiting_definition() -> str:
    return json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}})


@pytest.fixture
def sfn() -> Iterator[Any]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions", region_name=REGION)


def test_created_machines_log_errors_without_data_and_are_traced(sfn: Any) -> None:
    arn = StepFunctionsEngine(sfn, ROLE, LOG_GROUP).ensure_state_machine(
        "prod_tr-p-aaaaaaaaaaaa", definition("a")
    )

    described = sfn.describe_state_machine(stateMachineArn=arn)
    assert described["loggingConfiguration"] == {
        "level": "ERROR",
        "includeExecutionData": False,
        "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": LOG_GROUP}}],
    }
    assert described["tracingConfiguration"] == {"enabled": True}
    assert described["roleArn"] == ROLE


def test_an_existing_machine_with_another_definition_is_refused_not_reused(sfn: Any) -> None:
    sfn.create_state_machine(name="prod_tr-p-bbbbbbbbbbbb", definition=definition("other"), roleArn=ROLE)

    with pytest.raises(Conflict) as error:
        StepFunctionsEngine(sfn, ROLE, LOG_GROUP).ensure_state_machine(
            "prod_tr-p-bbbbbbbbbbbb", definition("a")
        )

    assert "prod_tr-p-bbbbbbbbbbbb" in error.value.message
    assert "delete" in error.value.remediation


def test_an_existing_machine_with_another_role_is_updated_to_this_role(sfn: Any) -> None:
    old = sfn.create_state_machine(
        name="prod_tr-p-cccccccccccc",
        definition=definition("a"),
        roleArn="arn:aws:iam::123456789012:role/old",
    )["stateMachineArn"]

    arn = StepFunctionsEngine(sfn, ROLE, LOG_GROUP).ensure_state_machine(
        "prod_tr-p-cccccccccccc", definition("a")
    )

    assert arn == old
    described = sfn.describe_state_machine(stateMachineArn=arn)
    assert described["roleArn"] == ROLE
    assert described["loggingConfiguration"]["level"] == "ERROR"


def test_an_idle_machine_is_deleted_and_created_again_on_next_use(sfn: Any) -> None:
    engine = StepFunctionsEngine(sfn, ROLE, LOG_GROUP)
    arn = engine.ensure_state_machine("prod_tr-p-dddddddddddd", definition("a"))
    ended = engine.start_execution(arn, "run-1", {"runId": "run-1"})

    assert engine.delete_state_machine_if_idle(arn, ended) is True
    assert sfn.list_state_machines()["stateMachines"] == []
    assert engine.ensure_state_machine("prod_tr-p-dddddddddddd", definition("a")) == arn
    assert len(sfn.list_state_machines()["stateMachines"]) == 1


def test_a_machine_another_execution_runs_is_kept(sfn: Any) -> None:
    engine = StepFunctionsEngine(sfn, ROLE, LOG_GROUP)
    arn = engine.ensure_state_machine("prod_tr-p-eeeeeeeeeeee", waiting_definition())
    first = engine.start_execution(arn, "run-1", {"runId": "run-1"})
    second = engine.start_execution(arn, "run-2", {"runId": "run-2"})

    assert engine.delete_state_machine_if_idle(arn, first) is False
    assert engine.execution_status(second) == "RUNNING"
    deadline = time.monotonic() + 10
    while engine.execution_status(second) == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert engine.delete_state_machine_if_idle(arn, first) is True


def test_retiring_a_machine_that_is_already_gone_is_not_an_error(sfn: Any) -> None:
    engine = StepFunctionsEngine(sfn, ROLE, LOG_GROUP)
    gone = "arn:aws:states:us-east-1:123456789012:stateMachine:prod_tr-p-ffffffffffff"

    assert engine.delete_state_machine_if_idle(gone, gone.replace("stateMachine", "execution") + ":r") is True


def test_a_machine_retired_by_another_process_is_reported_gone_then_created_again(sfn: Any) -> None:
    from taskrunner.engine.errors import StateMachineGone

    submitter, retirer = StepFunctionsEngine(sfn, ROLE, LOG_GROUP), StepFunctionsEngine(sfn, ROLE, LOG_GROUP)
    arn = submitter.ensure_state_machine("prod_tr-p-000000000000", definition("a"))
    ended = submitter.start_execution(arn, "run-1", {"runId": "run-1"})
    assert retirer.delete_state_machine_if_idle(arn, ended) is True

    with pytest.raises(StateMachineGone):
        submitter.start_execution(arn, "run-2", {"runId": "run-2"})
    again = submitter.ensure_state_machine("prod_tr-p-000000000000", definition("a"))
    assert submitter.start_execution(again, "run-2", {"runId": "run-2"}).endswith(":run-2")
