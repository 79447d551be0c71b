"""The local runtime's AWS seam, proven with the fixture app in tests/fixtures/local_app.

moto (pinned) executes real ASL; the in-process runner executes the fixture handlers named in the fixture
template. Tests marked "moto behaviour" pin down what moto does where it differs from AWS, so a moto upgrade
that changes it fails here loudly and the design-arounds in DESIGN.md §9 get re-checked.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import clock
from taskrunner.errors import ConfigurationError
from taskrunner.local.aws import LocalAws
from taskrunner.local.lambda_runner import (
    MOTO_VERSION,
    InProcessLambdaRunner,
    LocalFunction,
    process_environment,
    shared_environment,
    verify_moto_seam,
)

pytestmark = pytest.mark.xdist_group("local_seam")  # one moto runtime per process

APP = Path(__file__).resolve().parents[1] / "fixtures" / "local_app"
TEMPLATE = APP / "template.yaml"
SEAM_ASL = APP / "statemachine" / "seam.asl.json"


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def local() -> Iterator[LocalAws]:
    with LocalAws(TEMPLATE, stack_name="seam", parameters={"Greeting": "hi"}) as aws:
        yield aws


def _name() -> str:
    return f"e-{uuid.uuid4().hex[:12]}"


def _machine(local: LocalAws, definition: dict[str, Any] | str) -> str:
    text = definition if isinstance(definition, str) else json.dumps(definition)
    for name, arn in local.function_arns.items():
        text = text.replace(f"${{{name.capitalize()}FunctionArn}}", arn)
    sfn = local.client("stepfunctions")
    return str(
        sfn.create_state_machine(
            name=f"taskrunner-{_name()}", definition=text, roleArn=local.state_machine_role_arn
        )["stateMachineArn"]
    )


def _start(local: LocalAws, machine: str, payload: dict[str, Any]) -> str:
    sfn = local.client("stepfunctions")
    return str(
        sfn.start_execution(stateMachineArn=machine, name=_name(), input=json.dumps(payload))["executionArn"]
    )


def _until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


def _finished(local: LocalAws, execution: str, timeout: float = 10.0) -> dict[str, Any]:
    sfn = local.client("stepfunctions")

    def done() -> dict[str, Any] | None:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution)
        return None if described["status"] == "RUNNING" else described

    return _until(done, timeout)


def _history(local: LocalAws, execution: str) -> list[dict[str, Any]]:
    return local.client("stepfunctions").get_execution_history(executionArn=execution)["events"]


def _parked_token(local: LocalAws, run_id: str, gate_id: str) -> str:
    s3 = local.client("s3")
    key = f"tokens/{run_id}/{gate_id}"

    def parked() -> str | None:
        listed = s3.list_objects_v2(Bucket=local.artifacts_bucket, Prefix=key)
        if not listed.get("KeyCount"):
            return None
        return str(
            json.loads(s3.get_object(Bucket=local.artifacts_bucket, Key=key)["Body"].read())["taskToken"]
        )

    return _until(parked)


def _gate_machine(timeout_seconds: int | None = None) -> dict[str, Any]:
    gate: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {
            "FunctionName": "${GateFunctionArn}",
            "Payload": {"runId.$": "$.runId", "gateId": "review", "taskToken.$": "$$.Task.Token"},
        },
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.gateError", "Next": "SealFailure"}],
        "ResultPath": "$.decision",
        "Next": "After",
    }
    if timeout_seconds:
        gate["TimeoutSeconds"] = timeout_seconds
    return {
        "StartAt": "Review",
        "States": {
            "Review": gate,
            "After": {"Type": "Pass", "Result": "ran", "ResultPath": "$.after", "End": True},
            "SealFailure": {"Type": "Pass", "Result": "sealed", "ResultPath": "$.sealed", "End": True},
        },
    }


def _entered_states(history: list[dict[str, Any]]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]


# ------------------------------------------------------------------------------------------ lifecycle
# These two run before anything uses the module's runtime: only one runtime can be active per process.
def test_local_aws_sets_and_restores_the_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from moto.awslambda.models import LambdaFunction
    from taskrunner.local import lambda_runner

    original_seam = LambdaFunction.__dict__["_invoke_lambda"]
    monkeypatch.setenv("FIXTURE_GREETING", "outer")
    monkeypatch.setenv("TASKRUNNER_SIGNING__KEY", "file:///outer.pem")
    monkeypatch.setenv("AWS_PROFILE", "someone-real")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEY")
    overrides = {"FIXTURE_AUDIENCE": "overridden", "FIXTURE_EXTRA": "added"}
    with LocalAws(TEMPLATE, stack_name="life", region="eu-west-1", environment_overrides=overrides) as aws:
        assert os.environ["FIXTURE_GREETING"] == "hello from life in eu-west-1"
        assert (os.environ["FIXTURE_AUDIENCE"], os.environ["FIXTURE_EXTRA"]) == ("overridden", "added")
        assert os.environ["TASKRUNNER_STORAGE__MODE"] == "file"
        assert "TASKRUNNER_SIGNING__KEY" not in os.environ  # local default: the Ed25519 key file
        assert "AWS_PROFILE" not in os.environ
        assert os.environ["AWS_ACCESS_KEY_ID"] != "AKIAREALKEY"
        assert LambdaFunction.__dict__["_invoke_lambda"] is not original_seam
        assert (
            aws.client("s3").get_bucket_location(Bucket=aws.artifacts_bucket)["LocationConstraint"]
            == "eu-west-1"
        )
        body = json.loads(aws.client("lambda").invoke(FunctionName="work", Payload=b"{}")["Payload"].read())
        assert body["functionArn"] == "arn:aws:lambda:eu-west-1:123456789012:function:work"
    assert os.environ["FIXTURE_GREETING"] == "outer"
    assert os.environ["TASKRUNNER_SIGNING__KEY"] == "file:///outer.pem"
    assert (os.environ["AWS_PROFILE"], os.environ["AWS_ACCESS_KEY_ID"]) == ("someone-real", "AKIAREALKEY")
    assert "FIXTURE_EXTRA" not in os.environ
    assert LambdaFunction.__dict__["_invoke_lambda"] is original_seam
    assert lambda_runner._active is None


def test_a_failed_start_leaves_nothing_behind(tmp_path: Path) -> None:
    import os

    from taskrunner.local import lambda_runner

    (tmp_path / "fn").mkdir()
    (tmp_path / "template.yaml").write_text(
        "Resources:\n"
        "  Fn:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties:\n"
        "      CodeUri: fn/\n"
        "      Handler: app.handler\n"
        "      Environment: {Variables: {NEEDS: !GetAtt Elsewhere.Arn}}\n"
    )
    before = dict(os.environ)
    with pytest.raises(ConfigurationError, match=r"Elsewhere\.Arn"):
        LocalAws(tmp_path / "template.yaml").start()
    assert dict(os.environ) == before
    assert lambda_runner._active is None


def test_the_project_template_provisions_locally_without_parameters() -> None:
    with LocalAws(APP.parents[2] / "template.yaml") as aws:
        assert set(aws.function_arns) == {
            "submit_run", "get_run", "approve_gate", "approver_keys", "packs", "cancel_run", "approval_issuer", "console",
            "verify_plan", "execute_step", "open_gate", "evaluate_policy", "seal_evidence", "migrate_db",
            "retire_state_machine",
        }  # fmt: skip
        env = aws.environment
        assert env["TASKRUNNER_AWS__EXECUTE_STEP_FUNCTION_ARN"] == aws.function_arns["execute_step"]
        assert env["TASKRUNNER_AWS__STATE_MACHINE_ROLE_ARN"] == aws.state_machine_role_arn
        assert env["TASKRUNNER_AWS__EVENT_BUS_NAME"] == "taskrunner-local-taskrunner"
        assert env["TASKRUNNER_AWS__STATE_MACHINE_PREFIX"] == "taskrunner-local_tr"
        assert env["TASKRUNNER_AWS__STATE_MACHINE_LOG_GROUP_ARN"] == (
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/vendedlogs/states/taskrunner-local-taskrunner:*"
        )
        assert env["TASKRUNNER_STORAGE__MODE"] == "file"
        assert env["TASKRUNNER_SANDBOX__SEALED"] == "true"
        assert "TASKRUNNER_API__PUBLIC_URL" not in env
        assert aws.client("s3").head_bucket(Bucket=aws.artifacts_bucket)
        listed = aws.client("lambda").list_functions()["Functions"]
        assert {fn["FunctionName"]: fn["Timeout"] for fn in listed}["execute_step"] == 900


# ------------------------------------------------------------------------------------------ the seam itself
def test_moto_is_the_pinned_version_and_the_seam_has_the_expected_shape() -> None:
    import moto
    from moto.awslambda.models import LambdaFunction

    assert moto.__version__ == MOTO_VERSION
    seam = LambdaFunction.__dict__["_invoke_lambda"]
    assert list(inspect.signature(seam).parameters) == ["self", "event"]
    # moto's invoke() parses the request body and hands it to the seam, whose (body, errored, logs) it returns
    assert "self._invoke_lambda(event=body)" in inspect.getsource(LambdaFunction.invoke)
    verify_moto_seam()


def test_lambda_invoke_runs_the_handler_in_process_with_template_environment_and_context(
    local: LocalAws,
) -> None:
    response = local.client("lambda").invoke(FunctionName="work", Payload=json.dumps({"n": 1}))
    assert "FunctionError" not in response
    body = json.loads(response["Payload"].read())
    assert body["event"] == {"n": 1}
    assert body["bucket"] == local.artifacts_bucket
    assert body["greeting"] == "hi from seam in us-east-1"
    assert body["functionName"] == "work"
    assert body["functionArn"] == local.function_arns["work"]
    assert body["memory"] == 256
    assert 0 < body["remainingMs"] <= 10_000
    uuid.UUID(body["requestId"])


def test_a_handler_exception_is_a_lambda_function_error_payload(local: LocalAws) -> None:
    response = local.client("lambda").invoke(
        FunctionName="work", Payload=json.dumps({"mode": "deny", "policy": "p1"})
    )
    assert response["FunctionError"]
    body = json.loads(response["Payload"].read())
    assert body["errorType"] == "PolicyDenied"
    assert body["errorMessage"] == "policy p1 denied the run"
    assert any("functions/work/app.py" in frame for frame in body["stackTrace"])


def test_a_missing_handler_fails_like_lambda(local: LocalAws) -> None:
    response = local.client("lambda").invoke(FunctionName="broken", Payload=b"")
    body = json.loads(response["Payload"].read())
    assert response["FunctionError"]
    assert body["errorType"] == "Runtime.HandlerNotFound"
    assert "missing" in body["errorMessage"]


def test_handler_modules_are_isolated_per_function(local: LocalAws) -> None:
    import sys

    local.client("lambda").invoke(FunctionName="work", Payload=b"{}")
    local.client("lambda").invoke(
        FunctionName="gate", Payload=json.dumps({"runId": "iso", "gateId": "g", "taskToken": "t"})
    )
    work = sys.modules["taskrunner_local_functions.work.app"]
    gate = sys.modules["taskrunner_local_functions.gate.app"]
    assert work is not gate
    assert Path(work.__file__ or "").parent.name == "work"
    assert "app" not in sys.modules or sys.modules["app"] not in (work, gate)


def test_runner_reports_timeouts_unmarshallable_results_and_unknown_functions(tmp_path: Path) -> None:
    handler = tmp_path / "app.py"
    handler.write_text("def handler(event, context):\n    return event.get('value', {1, 2})\n")

    def fn(name: str, timeout: int) -> LocalFunction:
        return LocalFunction(
            name, f"arn:aws:lambda:us-east-1:123456789012:function:{name}", handler, "handler", timeout, 128
        )

    runner = InProcessLambdaRunner([fn("slow", 0), fn("ok", 30)])
    timed_out = runner.invoke("slow", {"value": 1}).json()
    assert timed_out["errorType"] == "Sandbox.Timedout"
    assert runner.invoke("ok", {"value": [1]}).json() == [1]
    marshal = runner.invoke("ok", {})
    assert marshal.is_error
    assert marshal.json()["errorType"] == "Runtime.MarshalError"
    assert runner.invoke("nope", {}).json()["errorType"] == "ResourceNotFoundException"
    assert runner.wait_idle(0.1)


def test_only_one_runner_can_be_installed(local: LocalAws) -> None:
    with pytest.raises(ConfigurationError, match="already installed"), InProcessLambdaRunner([]).installed():
        pass


def test_process_environment_holds_only_variables_every_function_agrees_on() -> None:
    shared = shared_environment({"a": {"X": "1", "Y": "2", "C": "a"}, "b": {"X": "1", "Z": "3", "C": "b"}})
    assert shared == {"X": "1", "Y": "2", "Z": "3"}  # C differs: each function sees its own value only


def test_process_environment_restores_previous_values(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("TR_SEAM_KEEP", "before")
    monkeypatch.delenv("TR_SEAM_NEW", raising=False)
    with process_environment({"TR_SEAM_KEEP": None, "TR_SEAM_NEW": "during"}):
        assert "TR_SEAM_KEEP" not in os.environ
        assert os.environ["TR_SEAM_NEW"] == "during"
    assert os.environ["TR_SEAM_KEEP"] == "before"
    assert "TR_SEAM_NEW" not in os.environ


# ------------------------------------------------------------------------------------------ provisioning
def test_template_resources_are_provisioned_and_environment_resolved(local: LocalAws) -> None:
    env = local.environment
    assert env["FIXTURE_WHERE"] == "on-this-machine"
    assert env["FIXTURE_AUDIENCE"] == "a+b"
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert env["TASKRUNNER_AWS__WORK_FUNCTION_ARN"] == local.function_arns["work"]
    assert local.client("s3").get_bucket_versioning(Bucket=local.artifacts_bucket)["Status"] == "Enabled"
    assert (
        local.client("events").describe_event_bus(Name=env["TASKRUNNER_AWS__EVENT_BUS_NAME"])["Name"]
        == "seam-bus"
    )
    # signing and redaction use local key files by default; the KMS key and secret still exist for adapters
    assert "TASKRUNNER_SIGNING__KEY" not in env
    assert "TASKRUNNER_REDACTION__KEY_SECRET_ARN" not in env
    template_env = local.resolver.environment(local.template.function("work"))
    assert template_env["TASKRUNNER_SIGNING__KEY"] == f"awskms:///{local.ref('KeyAlias')}"
    key = local.client("kms").describe_key(KeyId=local.ref("KeyAlias"))["KeyMetadata"]
    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    secret_arn = template_env["TASKRUNNER_REDACTION__KEY_SECRET_ARN"]
    secret = local.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    assert len(secret["SecretString"]) == 48
    assert (
        local.client("iam").get_role(RoleName="seam-statesrole")["Role"]["Arn"]
        == local.state_machine_role_arn
    )
    configured = local.client("lambda").get_function_configuration(FunctionName="gate")
    assert (
        configured["Environment"]["Variables"]["TASKRUNNER_AWS__WORK_FUNCTION_ARN"]
        == local.function_arns["work"]
    )
    assert "TASKRUNNER_AWS__WORK_FUNCTION_ARN" not in local.function_environments["work"]


def test_environment_overrides_and_parameter_validation() -> None:
    with pytest.raises(ConfigurationError, match="not one of local, cloud"):
        LocalAws(TEMPLATE, parameters={"Where": "moon"})
    with pytest.raises(ConfigurationError, match="unknown template parameters: Nope"):
        LocalAws(TEMPLATE, parameters={"Nope": "x"})


# ------------------------------------------------------------------------------------------ ASL in moto
def test_compiled_style_machine_runs_retry_catch_parallel_map_and_format(local: LocalAws) -> None:
    machine = _machine(local, SEAM_ASL.read_text())
    started = time.monotonic()
    with clock.fast_clock(0.01):
        execution = _start(local, machine, {"runId": "r1", "tenantId": "t1", "items": list(range(6))})
        result = _finished(local, execution)
    elapsed = time.monotonic() - started
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output["greet"] == {
        "message": "run r1 for tenant t1",
        "functionName": "work",
        "bucket": local.artifacts_bucket,
    }
    assert output["flaky"] == {"attempt": 1}  # first attempt raised StepFailed, Retry ran it again
    assert output["branches"] == [{"branch": "a"}, {"branch": "b"}]
    assert [entry["item"] for entry in output["fan"]] == list(range(6))
    assert max(entry["peak"] for entry in output["fan"]) == 2  # concurrent, and never above MaxConcurrency
    assert output["denied"]["Error"] == "PolicyDenied"
    assert json.loads(output["denied"]["Cause"])["errorMessage"] == "policy no-critical denied the run"
    history = _history(local, execution)
    failures = [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]
    assert failures == ["StepFailed", "PolicyDenied"]
    assert elapsed < 5  # unscaled: 2 s retry interval + 5 s Wait


def test_fast_clock_is_off_by_default_and_restores_moto() -> None:
    import time as real_time

    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import Timeout
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    originals = (WaitFunction._wait_interval, Timeout._eval_body)
    assert retrier_decl.time is real_time
    with clock.fast_clock(0.5, timeouts=True):
        assert retrier_decl.time is not real_time
        assert (WaitFunction._wait_interval, Timeout._eval_body) != originals
        with pytest.raises(ConfigurationError, match="already active"), clock.fast_clock():
            pass
    assert retrier_decl.time is real_time
    assert (WaitFunction._wait_interval, Timeout._eval_body) == originals
    with pytest.raises(ConfigurationError, match="not in"), clock.fast_clock(2):
        pass


def test_wait_for_task_token_answered_by_send_task_success_from_another_thread(local: LocalAws) -> None:
    machine = _machine(local, _gate_machine())
    execution = _start(local, machine, {"runId": "ok"})
    token = _parked_token(local, "ok", "review")
    sfn = local.client("stepfunctions")
    answer = threading.Thread(
        target=sfn.send_task_success, kwargs={"taskToken": token, "output": '{"approved": true}'}
    )
    answer.start()
    answer.join()
    result = _finished(local, execution)
    assert result["status"] == "SUCCEEDED"
    output = json.loads(result["output"])
    assert output["decision"] == {"approved": True}
    assert output["after"] == "ran"


def test_wait_for_task_token_failed_by_send_task_failure_is_caught(local: LocalAws) -> None:
    """moto behaviour: the error reaches Catch, but SendTaskFailure's ``cause`` is dropped (AWS keeps it);
    so reasons (e.g. a rejection's) must live in the run store, never only in the Cause."""
    machine = _machine(local, _gate_machine())
    execution = _start(local, machine, {"runId": "rejected"})
    token = _parked_token(local, "rejected", "review")
    sfn = local.client("stepfunctions")
    answer = threading.Thread(
        target=sfn.send_task_failure, kwargs={"taskToken": token, "error": "ApprovalRejected", "cause": "no"}
    )
    answer.start()
    answer.join()
    result = _finished(local, execution)
    output = json.loads(result["output"])
    assert result["status"] == "SUCCEEDED"
    assert output["gateError"] == {"Error": "ApprovalRejected", "Cause": None}
    assert output["sealed"] == "sealed"


def test_moto_behaviour_stop_execution_does_not_abort_a_task_waiting_on_its_token(local: LocalAws) -> None:
    """AWS: ABORTED at once. moto: RUNNING until the token is answered, then no Catch runs, and
    SendTaskFailure ends it FAILED with that error (SendTaskSuccess: ABORTED). Design-around: cancel stops
    the execution, then fails the waiting tokens with RunCancelled, and treats the store as authoritative."""
    sfn = local.client("stepfunctions")
    machine = _machine(local, _gate_machine())
    failed = _start(local, machine, {"runId": "stop-fail"})
    succeeded = _start(local, machine, {"runId": "stop-ok"})
    tokens = {run: _parked_token(local, run, "review") for run in ("stop-fail", "stop-ok")}
    for execution in (failed, succeeded):
        sfn.stop_execution(executionArn=execution, error="RunCancelled", cause="cancelled by user")
    time.sleep(0.3)
    assert sfn.describe_execution(executionArn=failed)["status"] == "RUNNING"
    sfn.send_task_failure(taskToken=tokens["stop-fail"], error="RunCancelled", cause="cancelled by user")
    sfn.send_task_success(taskToken=tokens["stop-ok"], output="{}")
    after_failure, after_success = _finished(local, failed), _finished(local, succeeded)
    assert (after_failure["status"], after_failure.get("error")) == ("FAILED", "RunCancelled")
    assert after_success["status"] == "ABORTED"
    for execution in (failed, succeeded):
        assert _entered_states(_history(local, execution)) == ["Review"]  # neither Catch nor Next ran


def test_moto_behaviour_token_task_timeout_seconds_is_enforced(local: LocalAws) -> None:
    """TimeoutSeconds on a token task raises States.Timeout (catchable). A late answer gets InvalidToken
    (AWS answers TaskTimedOut)."""
    machine = _machine(local, _gate_machine(timeout_seconds=30))
    with clock.fast_clock(0.01, timeouts=True):
        execution = _start(local, machine, {"runId": "expired"})
        token = _parked_token(local, "expired", "review")
        result = _finished(local, execution)
    output = json.loads(result["output"])
    assert result["status"] == "SUCCEEDED"
    assert output["gateError"]["Error"] == "States.Timeout"
    sfn = local.client("stepfunctions")
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.send_task_success(taskToken=token, output="{}")


def test_moto_behaviour_distributed_map_over_inline_items_runs_with_max_concurrency(local: LocalAws) -> None:
    definition = json.loads(SEAM_ASL.read_text())
    fan = definition["States"]["Fan"]
    fan["ItemProcessor"]["ProcessorConfig"] = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    fan["End"] = True
    fan.pop("Next")
    machine = _machine(local, {"StartAt": "Fan", "States": {"Fan": fan}})
    execution = _start(local, machine, {"items": list(range(5))})
    result = _finished(local, execution)
    assert result["status"] == "SUCCEEDED"
    fanned = json.loads(result["output"])["fan"]
    assert [entry["item"] for entry in fanned] == list(range(5))
    assert max(entry["peak"] for entry in fanned) == 2
    sfn = local.client("stepfunctions")
    assert len(sfn.list_map_runs(executionArn=execution)["mapRuns"]) == 1
    assert "MapRunStarted" in {e["type"] for e in _history(local, execution)}


def test_moto_behaviour_start_execution_without_name_is_named_none(local: LocalAws) -> None:
    """AWS generates a unique name; moto names it "None", so a second unnamed start collides."""
    sfn = local.client("stepfunctions")
    machine = _machine(local, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    first = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    assert first.endswith(":None")
    _finished(local, first)
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=machine, input='{"again": true}')
