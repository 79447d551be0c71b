"""Compiled definitions in moto's Step Functions interpreter (the one the local runtime uses).

Every scenario must pass moto's ASL parser on ``CreateStateMachine``; a set of executions, with the
Lambda functions replaced by an in-process fake, checks what the definitions do: which steps run with
which ids, retries, tolerated failures, sealing on failure, approval and policy gates, DISTRIBUTED maps.
"""

from __future__ import annotations

import importlib.util
import io
import json
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from taskrunner.asl import PLACEHOLDERS, compile_plan, limits, substitute_placeholders
from taskrunner.asl.compiler import CompiledStateMachine


def _load_scenarios() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "unit" / "test_asl_scenarios.py"
    spec = importlib.util.spec_from_file_location("asl_scenarios", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scenarios = _load_scenarios()
SCENARIOS: dict[str, Callable[[], Any]] = scenarios.SCENARIOS
PLAN_HASH: str = scenarios.PLAN_HASH
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/taskrunner-state-machine"
FUNCTIONS = {name: "tr-" + name.removesuffix("FunctionArn") for name in PLACEHOLDERS}
FAKE_ARNS = {
    name: f"arn:aws:lambda:{REGION}:123456789012:function:{function}" for name, function in FUNCTIONS.items()
}


RUN_INPUT = {"runId": "run-1", "tenantId": "tenant-a", "planHash": PLAN_HASH}


def deployable(compiled: CompiledStateMachine) -> str:
    """The definition text as deployed, with fake function ARNs."""
    return substitute_placeholders(compiled.definition_bytes, FAKE_ARNS)


def machine_name(compiled: CompiledStateMachine) -> str:
    return compiled.deployment("test_tr", FAKE_ARNS).name


@pytest.fixture(scope="class")
def client() -> Iterator[Any]:
    """A Step Functions client on moto's ASL interpreter, which parses every definition it is given."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions", region_name=REGION)


class TestMotoParser:
    """Definitions go through moto's ASL parser on CreateStateMachine (one moto session for the class)."""

    @pytest.mark.parametrize("scenario", sorted(SCENARIOS))
    def test_accepts_every_compiled_definition(self, client: Any, scenario: str) -> None:
        compiled = compile_plan(SCENARIOS[scenario]())

        arn = client.create_state_machine(
            name=machine_name(compiled), definition=deployable(compiled), roleArn=ROLE
        )["stateMachineArn"]

        stored = client.describe_state_machine(stateMachineArn=arn)
        assert json.loads(stored["definition"]) == json.loads(deployable(compiled))

    def test_rejects_what_step_functions_rejects(self, client: Any) -> None:
        definition = {
            "StartAt": "A",
            "States": {"A": {"Type": "Task", "Resource": "x", "Bogus": 1, "End": True}},
        }

        with pytest.raises(ClientError, match="ASLParserException"):
            client.create_state_machine(name="broken", definition=json.dumps(definition), roleArn=ROLE)


# -- executions -----------------------------------------------------------------------------------------


@dataclass
class FakeLambdas:
    """Stands in for the TaskRunner Lambda functions: records each call, fails the ones told to."""

    failures: dict[str, str] = field(default_factory=dict)  # step/gate id -> error type to raise
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # gate id -> task token
    lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, function: str, event: dict[str, Any]) -> tuple[str, bool, str]:
        with self.lock:
            self.calls.append((function, event))
            if "taskToken" in event:
                self.tokens[event["gateId"]] = event["taskToken"]
        error = self.failures.get(event.get("stepId", ""))
        if error:
            return json.dumps({"errorType": error, "errorMessage": f"{error} in test"}), True, ""
        return json.dumps({"status": "ok"}), False, ""

    def step_calls(self) -> list[tuple[str, int]]:
        """(stepId, attempt) of every execute-step call, in call order."""
        return [(event["stepId"], event["attempt"]) for name, event in self.calls if name == "tr-ExecuteStep"]

    def seals(self) -> list[dict[str, Any]]:
        return [event for name, event in self.calls if name == "tr-SealEvidence"]


@dataclass
class MotoRun:
    """A moto Step Functions client with the fake Lambdas deployed under ``arns``."""

    client: Any
    lambdas: FakeLambdas
    arns: dict[str, str]

    def run(
        self, compiled: CompiledStateMachine, on_gate: Callable[[Any, FakeLambdas], None] | None = None
    ) -> dict[str, Any]:
        """Create and execute ``compiled``; the finished execution's description and its history."""
        arn = self.client.create_state_machine(
            name=compiled.deployment("test_tr", self.arns).name,
            definition=self.definition(compiled),
            roleArn=ROLE,
        )["stateMachineArn"]
        execution = self.client.start_execution(
            stateMachineArn=arn, name="run-1", input=json.dumps(RUN_INPUT)
        )["executionArn"]
        if on_gate is not None:
            threading.Thread(target=on_gate, args=(self.client, self.lambdas), daemon=True).start()
        deadline = time.monotonic() + 30
        while (described := self.client.describe_execution(executionArn=execution))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution did not finish"
            time.sleep(0.05)
        history = self.client.get_execution_history(executionArn=execution, maxResults=1000)["events"]
        return {**described, "events": history}

    def definition(self, compiled: CompiledStateMachine) -> str:
        return substitute_placeholders(compiled.definition_bytes, self.arns)


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoRun]:
    lambdas = FakeLambdas()

    def fake_invoke(function: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        return lambdas.invoke(
            function.function_name, event if isinstance(event, dict) else json.loads(event or "{}")
        )

    monkeypatch.setattr(LambdaFunction, "_invoke_lambda", fake_invoke)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.writestr("app.py", "def handler(event, context):\n    return event\n")
        role = boto3.client("iam", region_name=REGION).create_role(
            RoleName="fn", AssumeRolePolicyDocument="{}"
        )
        functions = boto3.client("lambda", region_name=REGION)
        arns = {
            placeholder: functions.create_function(
                FunctionName=name,
                Runtime="python3.11",
                Role=role["Role"]["Arn"],
                Handler="app.handler",
                Code={"ZipFile": archive.getvalue()},
            )["FunctionArn"]
            for placeholder, name in FUNCTIONS.items()
        }
        yield MotoRun(boto3.client("stepfunctions", region_name=REGION), lambdas, arns)


def leaf_ids(plan: Any) -> list[str]:
    """Ids of the run steps of a plan, depth first."""
    found: list[str] = []

    def walk(steps: list[Any]) -> None:
        for step in steps:
            if step.kind == "run":
                found.append(step.id)
            walk(getattr(step, "steps", []))

    walk(plan.steps)
    return found


@pytest.mark.parametrize(
    "scenario", ["airgap-import", "parallel-in-map", "map-in-map", "map-in-parallel", "long-ids"]
)
def test_every_step_runs_once_with_its_plan_id(sandbox: MotoRun, scenario: str) -> None:
    plan = SCENARIOS[scenario]()
    compiled = compile_plan(plan)

    def approve(client: Any, lambdas: FakeLambdas) -> None:
        while "review" not in lambdas.tokens:
            time.sleep(0.02)
        client.send_task_success(taskToken=lambdas.tokens["review"], output="{}")

    result = sandbox.run(compiled, approve if scenario == "airgap-import" else None)

    assert result["status"] == "SUCCEEDED", result.get("cause")
    assert sorted(step for step, _ in sandbox.lambdas.step_calls()) == sorted(leaf_ids(plan))
    assert sandbox.lambdas.calls[0] == (
        "tr-VerifyPlan",
        {
            **RUN_INPUT,
            "stateMachine": compiled.deployment("test_tr", sandbox.arns).name,
            "functionArn": sandbox.arns["VerifyPlanFunctionArn"],
        },
    )
    assert sandbox.lambdas.seals() == [{"runId": "run-1", "tenantId": "tenant-a", "outcome": "succeeded"}]
    output = json.loads(result["output"])  # a map's clean-up Pass keeps only the run fields
    assert output == RUN_INPUT or output == {"runId": "run-1", "tenantId": "tenant-a"}
    assert len(result["events"]) <= compiled.limits.history_events


def test_failing_step_is_retried_then_sealed_as_failed(sandbox: MotoRun) -> None:
    plan = SCENARIOS["run-retries"]()
    sandbox.lambdas.failures["quick"] = "StepFailed"  # maxAttempts 2, so one retry after 1 s

    result = sandbox.run(compile_plan(plan))

    assert result["status"] == "FAILED"
    assert result["error"] == "TaskRunner.RunFailed"
    assert sandbox.lambdas.step_calls() == [("fetch", 0), ("once", 0), ("quick", 0), ("quick", 1)]
    (seal,) = sandbox.lambdas.seals()
    assert seal["outcome"] == "failed"
    assert seal["error"]["Error"] == "StepFailed"


def test_continue_on_error_step_lets_the_run_go_on(sandbox: MotoRun) -> None:
    sandbox.lambdas.failures["tolerant"] = "StepFailed"

    result = sandbox.run(compile_plan(SCENARIOS["continue-on-error"]()))

    assert result["status"] == "SUCCEEDED"
    assert [step for step, _ in sandbox.lambdas.step_calls()] == ["first", "tolerant", "last"]
    assert sandbox.lambdas.seals()[0]["outcome"] == "succeeded"


@pytest.mark.parametrize("scenario", ["parallel-continue", "parallel-dispatch-continue"])
def test_parallel_continue_on_error_runs_the_other_children(sandbox: MotoRun, scenario: str) -> None:
    sandbox.lambdas.failures["lint"] = "StepFailed"

    result = sandbox.run(compile_plan(SCENARIOS[scenario]()))

    assert result["status"] == "SUCCEEDED"
    assert sorted(step for step, _ in sandbox.lambdas.step_calls()) == sorted(leaf_ids(SCENARIOS[scenario]()))


def test_failing_child_of_a_strict_parallel_fails_the_run(sandbox: MotoRun) -> None:
    sandbox.lambdas.failures["license"] = "StepFailed"

    result = sandbox.run(compile_plan(SCENARIOS["parallel-dispatch"]()))

    assert result["status"] == "FAILED"
    (seal,) = sandbox.lambdas.seals()
    assert seal["outcome"] == "failed"
    assert "StepFailed" in json.dumps(seal["error"])


def test_denied_policy_halts_the_run(sandbox: MotoRun) -> None:
    sandbox.lambdas.failures["halting"] = "PolicyDenied"

    def approve(client: Any, lambdas: FakeLambdas) -> None:
        while "review" not in lambdas.tokens:
            time.sleep(0.02)
        client.send_task_success(taskToken=lambdas.tokens["review"], output="{}")

    result = sandbox.run(compile_plan(SCENARIOS["gates"]()), approve)

    assert result["status"] == "FAILED"
    assert sandbox.lambdas.seals()[0]["error"]["Error"] == "PolicyDenied"
    assert not any(event.get("stepId") == "lenient" for _, event in sandbox.lambdas.calls)


def test_rejected_approval_seals_the_failure(sandbox: MotoRun) -> None:
    def reject(client: Any, lambdas: FakeLambdas) -> None:
        while "review" not in lambdas.tokens:
            time.sleep(0.02)
        client.send_task_failure(taskToken=lambdas.tokens["review"], error="ApprovalRejected", cause="no")

    result = sandbox.run(compile_plan(SCENARIOS["gates"]()), reject)

    assert result["status"] == "FAILED"
    gate_calls = [event for name, event in sandbox.lambdas.calls if name == "tr-OpenGate"]
    assert [(event["gateId"], event["runId"]) for event in gate_calls] == [("review", "run-1")]
    assert sandbox.lambdas.seals()[0]["error"]["Error"] == "ApprovalRejected"


def test_expired_approval_times_out_into_the_failure_seal(sandbox: MotoRun) -> None:
    expiring = scenarios.plan(scenarios.approval("review", seconds=1), scenarios.run("after"))

    result = sandbox.run(compile_plan(expiring))

    assert result["status"] == "FAILED"
    assert sandbox.lambdas.seals()[0]["error"]["Error"] == "States.Timeout"
    assert sandbox.lambdas.step_calls() == []


def test_distributed_map_runs_each_item_as_a_child_execution(
    sandbox: MotoRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "HISTORY_EVENT_BUDGET", 100)  # a small map crosses it
    plan = SCENARIOS["map-in-map"]()
    compiled = compile_plan(plan)
    assert (
        compiled.definition["States"]["regions"]["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    )

    result = sandbox.run(compiled)

    assert result["status"] == "SUCCEEDED", result.get("cause")
    assert sorted(step for step, _ in sandbox.lambdas.step_calls()) == sorted(leaf_ids(plan))
