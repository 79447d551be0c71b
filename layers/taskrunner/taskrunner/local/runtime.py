"""The local runtime: the SAM app on one machine — moto runs the compiled ASL, handlers run in-process.

Runs live in the configured store (the file store under ``TASKRUNNER_HOME`` by default, MongoDB when
configured: see ``taskrunner.local.storage``); moto keeps AWS state in memory, so on start every
non-terminal run is resumed (a new execution of the same definition; finished steps are not re-run).
For the same reason a gate closed by another process (``approvals import``, ``approve``, ``runs cancel``,
which run no runtime: see ``decisions``) cannot answer this process's task token itself: a relay thread
answers it from the stored gate. The deciding process wakes every runtime through its wake-up socket (see
``wakeups``) once the store holds the decision, so it reaches the parked execution at once; the relay's
periodic poll covers a missed one.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from taskrunner.composition import reset_services, services
from taskrunner.config import Settings
from taskrunner.engine.services import Services
from taskrunner.errors import NotFound, TaskRunnerError
from taskrunner.keyfiles import taskrunner_home
from taskrunner.local.aws import LocalAws
from taskrunner.local.moto_memory import release_executions
from taskrunner.local.storage import local_settings, storage_environment
from taskrunner.local.template import find_template
from taskrunner.local.wakeups import WakeupSocket, WakingWorkflow
from taskrunner.observability import logger
from taskrunner.recent import RecentKeys

TENANT = "local"
USER_SETTINGS = (
    "TASKRUNNER_SANDBOX__SEALED",
    "TASKRUNNER_API__PUBLIC_URL",
    "TASKRUNNER_SIGNING__KEY",
    "TASKRUNNER_APPROVAL_TOKENS__ISSUER",
    "TASKRUNNER_APPROVAL_TOKENS__KEY",
    "TASKRUNNER_APPROVAL_TOKENS__TTL_SECONDS",
    "TASKRUNNER_CONSOLE__DEV_SIGN_IN",
    "TASKRUNNER_PACKS__REQUIRE_SIGNED",
)
# the cyclic collector, tuned for a long-running process: young collections every 50,000 net allocations
# (default 700) and start-up's objects (modules, moto, the template) frozen out of every collection
GC_THRESHOLD = (50_000, 20, 100)
GATE_RELAY_SECONDS = (
    1.0  # without a wake-up, cross-process decisions reach a parked execution within a second
)
# task tokens the gate relay remembers answering; one answered again is a no-op (its task already moved on)
ANSWERED_TOKENS = 4096


def local_environment(home: Path, settings: Settings) -> dict[str, str | None]:
    """What the local runtime sets for every function on top of the local defaults (``LOCAL_RUNTIME_DEFAULTS``):
    the home, the user's storage settings (see ``taskrunner.local.storage``) and the settings below."""
    return {
        "TASKRUNNER_HOME": str(home),
        **storage_environment(settings),
        "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
        # deployment settings a local user may change (the template's defaults apply otherwise)
        **{name: os.environ[name] for name in USER_SETTINGS if name in os.environ},
    }


class LocalRuntime:
    """Context manager: the whole app in this process. ``resume`` picks up runs a previous process left."""

    def __init__(
        self, home: Path | None = None, *, template: Path | None = None, resume: bool = True
    ) -> None:
        self.home = (home or taskrunner_home()).resolve()
        self._template = template or find_template()
        self._resume = resume
        self.aws: LocalAws | None = None
        self.resumed: list[str] = []
        self._relay: GateRelay | None = None
        self._gc_threshold: tuple[int, int, int] | None = None

    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        settings = local_settings()  # a store that cannot serve fails here, before anything runs
        self.home.mkdir(parents=True, exist_ok=True)
        self._gc_threshold = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLD)
        self.aws = LocalAws(
            self._template,
            environment_overrides=local_environment(self.home, settings),
            cache_dir=self.home / "cache",
        )
        self.aws.start()
        reset_services(None)
        if self._resume:
            self.resumed = resume_active_runs(self.svc)
        self._relay = GateRelay(self.aws, self.home, GATE_RELAY_SECONDS)
        self._relay.start()
        gc.collect()  # start-up's garbage goes now; what survives is frozen out of every later collection
        gc.freeze()

    def stop(self) -> None:
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        if self.aws is not None:
            self.aws.runner.wait_idle(10.0)
            self.aws.stop()
            self.aws = None
        reset_services(None)
        if self._gc_threshold is not None:
            gc.unfreeze()
            gc.set_threshold(*self._gc_threshold)
            self._gc_threshold = None

    @property
    def svc(self) -> Services:
        """This process's services; decisions and cancellations through them wake the other runtimes."""
        built = services()
        return dataclasses.replace(built, workflow=WakingWorkflow(self.home, built.workflow))

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Invoke a template function in-process exactly as Lambda would (used by ``serve``)."""
        assert self.aws is not None, "runtime not started"
        return self.aws.runner.invoke(function, event)

    def wait(
        self,
        run_id: str,
        *,
        timeout: float | None = None,
        on_tick: Callable[[Any], None] | None = None,
        interval: float = 0.1,
    ) -> Any:
        """Poll the store until the run is terminal and sealed; ``on_tick`` sees every snapshot. Polls start
        10 ms apart and stretch to ``interval``: a short run is seen sealed at once, a long one costs little."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(0.01, interval)
        while True:
            run = self.svc.store.get_run(run_id, None)
            if on_tick:
                on_tick(run)
            if run.sealed:
                return run
            if deadline is not None and time.monotonic() > deadline:
                raise TaskRunnerError(f"run {run_id} did not finish within {timeout:g}s", code="Timeout")
            time.sleep(delay)
            delay = min(delay * 1.5, interval)


def resume_active_runs(svc: Services) -> list[str]:
    """Resume every pending or running run left by a previous process."""
    from taskrunner.engine.lifecycle import resume_run

    resumed = []
    for run in svc.store.list_active_runs():
        try:
            resume_run(svc, run.tenantId, run.runId, force=True)
            resumed.append(run.runId)
        except TaskRunnerError as exc:
            logger.warning("could not resume run", extra={"runId": run.runId, "error": exc.message})
    return resumed


class GateRelay:
    """Answers the task tokens of this process's parked gates once the stored gate is closed, and stops the
    executions of runs cancelled in the store.

    A gate decided (or a run cancelled) in another process is recorded in the shared store, but its
    ``SendTaskSuccess``/``SendTaskFailure``/``StopExecution`` cannot reach this process's moto; the execution
    here would wait forever (or run on). Each closed gate's token is answered once; answering a token that was
    already answered (the decision came through this process) is a no-op. It also stands in for the
    EventBridge rule that tells retire_state_machine about ended executions.
    """

    def __init__(self, aws: LocalAws, home: Path, interval: float = GATE_RELAY_SECONDS) -> None:
        self._aws = aws
        self._interval = interval
        self._answered = RecentKeys(ANSWERED_TOKENS)
        self._announced: set[str] = set()
        self._stopping = threading.Event()
        self._wakeup: WakeupSocket | None = None
        try:
            self._wakeup = WakeupSocket(home)
        except OSError as exc:  # e.g. a home path too long for a socket: poll only
            logger.warning("no gate relay wake-up socket", extra={"error": repr(exc)})
        self._thread = threading.Thread(target=self._loop, name="taskrunner-gate-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._wakeup is not None:
            self._wakeup.wake()
        self._thread.join(timeout=5)
        if self._wakeup is not None:
            self._wakeup.close()

    def _sleep(self) -> bool:
        """Until another process wakes this one (True), or the poll interval passes."""
        if self._wakeup is not None:
            return self._wakeup.wait(self._interval)
        self._stopping.wait(self._interval)
        return False

    def _loop(self) -> None:
        announced = time.monotonic()
        while True:
            woken = self._sleep()
            if self._stopping.is_set():
                return
            try:
                self.relay_once()
                # on a wake-up the execution just answered runs on: ended executions wait for the next tick
                if not woken or time.monotonic() - announced >= self._interval:
                    self.announce_ended_executions()
                    announced = time.monotonic()
            except Exception as exc:  # keep relaying: a failed poll is retried on the next tick
                logger.warning("gate relay poll failed", extra={"error": repr(exc)})

    def _parked_runs(self) -> dict[str, str]:
        """This process's running executions by run id (their names start with the run id)."""
        from taskrunner.engine.lifecycle import execution_run_id

        sfn = self._aws.client("stepfunctions")
        return {
            execution_run_id(execution["name"]): execution["executionArn"]
            for machine in sfn.list_state_machines()["stateMachines"]
            for execution in sfn.list_executions(
                stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING"
            )["executions"]
        }

    def announce_ended_executions(self) -> int:
        """EventBridge's execution status change, locally: every ended execution is announced once to the
        function the template subscribes to it (retire_state_machine), with the event AWS would send.
        Announced executions of sealed runs are then released from moto (see ``moto_memory``)."""
        sfn = self._aws.client("stepfunctions")
        announced = 0
        listed: set[str] = set()
        for machine in sfn.list_state_machines()["stateMachines"]:
            pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=machine["stateMachineArn"])
            for execution in [e for page in pages for e in page["executions"]]:
                if self._stopping.is_set():  # the runtime is shutting down: moto goes away
                    return announced
                listed.add(execution["executionArn"])
                if execution["status"] == "RUNNING" or execution["executionArn"] in self._announced:
                    continue
                self._announced.add(execution["executionArn"])
                detail = {
                    key: execution[key] for key in ("executionArn", "stateMachineArn", "name", "status")
                }
                event = {
                    "source": "aws.states",
                    "detail-type": "Step Functions Execution Status Change",
                    "resources": [execution["executionArn"]],
                    "detail": detail,
                }
                self._aws.runner.invoke("retire_state_machine", event)
                announced += 1
        self._announced &= listed  # the rest left moto with their retired state machine
        self._announced -= set(self._release_sealed(self._announced))
        return announced

    def _release_sealed(self, ended: set[str]) -> list[str]:
        """Release from moto the ended executions whose run is sealed; the run record answers for them."""
        store = services().store

        def sealed(execution_input: Mapping[str, Any]) -> bool:
            try:
                return store.get_run(str(execution_input.get("runId", "")), None).sealed
            except TaskRunnerError:  # not a run's execution, or its record is gone
                return False

        return release_executions(self._aws.account_id, self._aws.region, ended, sealed)

    def relay_once(self) -> int:
        """Answer every not yet answered token of a closed gate of a running execution, then end the
        executions of runs cancelled elsewhere (as ``cancel_run`` does); returns how many tokens were answered."""
        from taskrunner.engine.gates import CLOSED_FAILURES

        svc = services()
        parked = self._parked_runs()
        answered = 0
        for run_id in sorted(parked):  # decisions first: they are what a wake-up is usually for
            for gate in svc.store.list_gates(run_id):
                token = gate.taskToken
                if not token or gate.status == "waiting" or token in self._answered:
                    continue
                self._answered.add(token)
                if gate.status == "approved":
                    svc.workflow.send_task_success(token, {"gateId": gate.gateId, "status": "approved"})
                elif gate.status in CLOSED_FAILURES:
                    failure = CLOSED_FAILURES[gate.status]
                    svc.workflow.send_task_failure(token, failure, f"gate {gate.gateId} {gate.status}")
                answered += 1
        for run_id, execution_arn in parked.items():
            answered += self._end_cancelled(svc, run_id, execution_arn)
        return answered

    def _end_cancelled(self, svc: Services, run_id: str, execution_arn: str) -> int:
        """Stop the execution of a run cancelled in the store and fail its waiting gates' tokens with
        RunCancelled: the other process's calls reached its own moto only. Returns the tokens answered."""
        try:
            if svc.store.get_run(run_id, None).status != "cancelled":
                return 0
        except NotFound:  # not a run of this home
            return 0
        cause = f"run {run_id} was cancelled"
        svc.workflow.stop_execution(execution_arn, "RunCancelled", cause)
        answered = 0
        for gate in svc.store.list_gates(run_id):
            if gate.status == "waiting" and gate.taskToken and gate.taskToken not in self._answered:
                self._answered.add(gate.taskToken)
                svc.workflow.send_task_failure(gate.taskToken, "RunCancelled", cause)
                answered += 1
        return answered
