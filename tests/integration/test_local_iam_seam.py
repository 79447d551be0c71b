"""IAM and the Lambda environment in the local runtime, proven with the fixture app (tests/fixtures/local_app).

The fixture's functions have no S3 permissions except GateFunction's ``tokens/*``; its state machine role may
invoke WorkFunction and GateFunction only.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from taskrunner.local.aws import LocalAws
from taskrunner.local.lambda_runner import InProcessLambdaRunner, LocalFunction

pytestmark = pytest.mark.xdist_group("local_seam")  # one moto runtime per process

TEMPLATE = Path(__file__).resolve().parents[1] / "fixtures" / "local_app" / "template.yaml"
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def local() -> Iterator[LocalAws]:
    with LocalAws(TEMPLATE, stack_name="iam", parameters={"Greeting": "hi"}) as aws:
        yield aws


def invoke(local: LocalAws, function: str, event: dict[str, Any]) -> Any:
    response = local.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event))
    return json.loads(response["Payload"].read())


def run_task(local: LocalAws, function: str) -> dict[str, Any]:
    """Run a one-Task state machine invoking ``function``; the execution's description and history."""
    sfn = local.client("stepfunctions")
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": local.function_arns[function], "Payload": {"mode": "echo"}},
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(
        name=f"taskrunner-iam-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn=local.state_machine_role_arn,
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine)["executionArn"]
    deadline = time.monotonic() + 20
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution did not finish"
        time.sleep(0.05)
    return dict(described)


def test_a_handler_call_its_role_does_not_allow_gets_the_error_aws_raises(local: LocalAws) -> None:
    answer = invoke(local, "work", {"mode": "s3get", "bucket": local.artifacts_bucket, "key": "runs/x"})
    assert answer["status"] == 403
    assert answer["error"]["Code"] == "AccessDenied"
    assert answer["error"]["Message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/iam-WorkFunctionRole/work is not authorized to perform: "
        f's3:GetObject on resource: "arn:aws:s3:::{local.artifacts_bucket}/runs/x" '
        "because no identity-based policy allows the s3:GetObject action"
    )


def test_a_handler_call_its_role_allows_goes_through(local: LocalAws) -> None:
    run_id = uuid.uuid4().hex
    assert invoke(local, "gate", {"runId": run_id, "gateId": "g", "taskToken": "t"}) == {"parked": "g"}
    stored = local.client("s3").get_object(Bucket=local.artifacts_bucket, Key=f"tokens/{run_id}/g")
    assert json.loads(stored["Body"].read())["taskToken"] == "t"


def test_step_functions_invokes_lambda_as_the_state_machine_role(local: LocalAws) -> None:
    assert run_task(local, "work")["status"] == "SUCCEEDED"
    denied = run_task(local, "broken")  # the role grants lambda:InvokeFunction on work and gate only
    assert denied["status"] == "FAILED"
    assert denied["error"] == "Lambda.AccessDeniedException"
    assert "Status Code: 403; Error Code: AccessDeniedException" in denied["cause"]
    role = local.state_machine_role_arn.rpartition("/")[2]
    assert (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role}/states is not authorized to perform: "
        f"lambda:InvokeFunction on resource: {local.function_arns['broken']}"
    ) in denied["cause"]


def test_each_function_sees_its_own_lambda_environment(local: LocalAws) -> None:
    names = ["AWS_LAMBDA_FUNCTION_NAME", "TASKRUNNER_AWS__WORK_FUNCTION_ARN", "NOT_SET"]
    work = invoke(local, "work", {"mode": "environ", "names": names})
    again = invoke(local, "work", {"mode": "environ", "names": names})
    env = work["environ"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "work"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == local.region
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["_HANDLER"] == "app.handler"
    assert env["LAMBDA_TASK_ROOT"] == str(TEMPLATE.parent / "functions" / "work")
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/work"
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert env["_X_AMZN_TRACE_ID"] != again["environ"]["_X_AMZN_TRACE_ID"]  # fresh per invocation
    assert "AWS_XRAY_DAEMON_ADDRESS" not in env  # the fixture has no Tracing: Active
    # GateFunction's own variable is not visible to WorkFunction, through any accessor
    assert "TASKRUNNER_AWS__WORK_FUNCTION_ARN" not in env
    assert work["getenv"] == {
        "AWS_LAMBDA_FUNCTION_NAME": "work",
        "TASKRUNNER_AWS__WORK_FUNCTION_ARN": None,
        "NOT_SET": None,
    }


def test_the_runner_enforces_the_timeout(tmp_path: Path) -> None:
    handler = tmp_path / "app.py"
    handler.write_text(
        "import time\n\ndef handler(event, context):\n    time.sleep(event['s'])\n    return 'done'\n"
    )
    fn = LocalFunction(
        "slow", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:slow", handler, "handler", 1, 128
    )
    runner = InProcessLambdaRunner([fn])
    started = time.monotonic()
    timed_out = runner.invoke("slow", {"s": 3}).json()
    assert time.monotonic() - started < 2  # answered when the timeout passed, not when the handler returned
    assert timed_out["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in timed_out["errorMessage"]
    assert runner.invoke("slow", {"s": 0}).json() == "done"
