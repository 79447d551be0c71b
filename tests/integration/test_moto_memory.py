"""A long-running local runtime keeps no ended execution or deleted state machine in moto's memory."""

from __future__ import annotations

import gc
import inspect
import json
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import PACKS, submit
from moto.core.common_models import BaseModel
from moto.stepfunctions.models import StateMachine, StateMachineInstance
from moto.stepfunctions.parser.utils import TMP_THREADS
from moto.stepfunctions.responses import get_backend
from taskrunner.local.aws import LocalAws
from taskrunner.local.moto_memory import ExecutionList, release_executions, verify_moto_memory_seam
from taskrunner.local.runtime import LocalRuntime

pytestmark = pytest.mark.xdist_group("local_seam")  # one moto runtime per process

PASS = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
WAIT = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 30, "End": True}}}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    with LocalRuntime(tmp_path_factory.mktemp("home"), resume=False) as rt:
        yield rt


@pytest.fixture
def local(runtime: LocalRuntime) -> LocalAws:
    assert runtime.aws is not None
    return runtime.aws


def _until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


def _machine(aws: LocalAws, definition: dict[str, Any], prefix: str = "outside") -> str:
    sfn = aws.client("stepfunctions")
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    created = sfn.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=aws.state_machine_role_arn
    )
    return str(created["stateMachineArn"])


def _ended(aws: LocalAws, machine: str, payload: dict[str, Any]) -> str:
    sfn = aws.client("stepfunctions")
    started = sfn.start_execution(stateMachineArn=machine, name=uuid.uuid4().hex, input=json.dumps(payload))
    arn = str(started["executionArn"])
    _until(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING")
    return arn


def _gone(aws: LocalAws, execution_arn: str) -> bool:
    try:
        aws.client("stepfunctions").describe_execution(executionArn=execution_arn)
    except ClientError as exc:
        return exc.response["Error"]["Code"] == "ExecutionDoesNotExist"
    return False


def test_the_seam_has_the_shape_it_was_built_for() -> None:
    assert "instances_tracked.append" in inspect.getsource(BaseModel.__dict__["__new__"])
    assert "self.executions" in inspect.getsource(StateMachineInstance.__init__)
    verify_moto_memory_seam()


def test_ended_executions_are_released_and_freed_running_and_unreleasable_ones_stay(local: LocalAws) -> None:
    machine = _machine(local, PASS)
    sealed, kept = _ended(local, machine, {"runId": "sealed"}), _ended(local, machine, {"runId": "open"})
    sfn = local.client("stepfunctions")
    waiting = _machine(local, WAIT)
    running = str(sfn.start_execution(stateMachineArn=waiting, name="running", input="{}")["executionArn"])
    backend = get_backend(local.account_id, local.region)
    (moto_machine,) = [m for m in backend.state_machines if m.arn == machine]
    assert isinstance(moto_machine.executions, ExecutionList)
    (execution,) = [e for e in moto_machine.executions if e.execution_arn == sealed]
    freed = weakref.ref(execution)
    del execution

    released = release_executions(
        local.account_id, local.region, {sealed, kept, running}, lambda given: given.get("runId") != "open"
    )

    assert released == [sealed]
    assert _gone(local, sealed)  # as for an execution of a deleted state machine
    listed = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]}
    assert listed == {kept}
    assert sfn.describe_execution(executionArn=running)["status"] == "RUNNING"
    _until(lambda: gc.collect() >= 0 and freed() is None)  # its worker threads end, then nothing holds it
    finished = threading.Thread(target=lambda: None)  # as moto lists every thread its engine starts
    finished.start()
    finished.join()
    TMP_THREADS.append(finished)
    release_executions(local.account_id, local.region, set(), lambda given: True)
    assert finished not in TMP_THREADS
    sfn.stop_execution(executionArn=running)


def test_moto_tracks_no_model_instances_so_a_deleted_machine_is_freed(local: LocalAws) -> None:
    tracked = len(StateMachine.instances_tracked)  # type: ignore[attr-defined]
    machine = _machine(local, PASS)
    _ended(local, machine, {})
    backend = get_backend(local.account_id, local.region)
    freed = weakref.ref(next(m for m in backend.state_machines if m.arn == machine))
    local.client("stepfunctions").delete_state_machine(stateMachineArn=machine)
    assert len(StateMachine.instances_tracked) == tracked  # type: ignore[attr-defined]
    _until(lambda: gc.collect() >= 0 and freed() is None)


def test_the_runtime_releases_ended_executions_of_sealed_runs_only(runtime: LocalRuntime) -> None:
    rt = runtime
    if rt.aws is not None:
        run = rt.wait(submit(rt, PACKS / "hello.yaml", {"who": "memory"}).runId, timeout=60)
        assert run.sealed
        _until(lambda: _gone(rt.aws, run.executionArn))  # its machine retired, or the execution released
        # executions of a machine retire_state_machine never deletes leave only once their run is sealed
        machine = _machine(rt.aws, PASS)
        of_sealed_run = _ended(rt.aws, machine, {"runId": run.runId})
        of_no_run = _ended(rt.aws, machine, {"runId": "no-such-run"})
        _until(lambda: _gone(rt.aws, of_sealed_run), timeout=15)
        time.sleep(1.5)  # another relay pass
        assert not _gone(rt.aws, of_no_run)
        relay = rt._relay
        assert relay is not None
        assert of_sealed_run not in relay._announced  # the relay forgets what left moto
        assert of_no_run in relay._announced  # announced once, kept while it is in moto
