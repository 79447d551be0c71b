"""What moto would keep for the life of the process, let go: its model registry, ended executions and threads.

moto (pinned, :data:`taskrunner.local.lambda_runner.MOTO_VERSION`) appends every model object it ever creates
to its class's ``instances_tracked`` list (for the moto server's dashboard), so a deleted state machine stays
alive with every execution it ran. While :func:`moto_memory_bounded` is active nothing is tracked there, and
each state machine keeps its executions in an :class:`ExecutionList`, from which :func:`release_executions`
removes ended ones: a released execution is gone from moto (``DescribeExecution`` answers
``ExecutionDoesNotExist``, as for an execution of a deleted state machine); the run record stays the record.
The Step Functions engine also appends every worker thread it starts to ``TMP_THREADS``, which nothing reads;
:func:`release_executions` drops the finished ones from it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from taskrunner.errors import ConfigurationError

MODEL_MODULE = "moto.core.common_models"
MACHINE_MODULE = "moto.stepfunctions.models"
THREADS_MODULE = "moto.stepfunctions.parser.utils"


class ExecutionList(list[Any]):
    """A state machine's executions. Iterating walks a snapshot, so an execution released by another thread
    never makes a lookup in progress skip the one after it; append and remove are single list operations."""

    def __iter__(self) -> Iterator[Any]:
        return iter(self.copy())


def _untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    """``BaseModel.__new__`` without appending the instance to ``cls.instances_tracked``."""
    base = importlib.import_module(MODEL_MODULE).BaseModel
    return super(base, cls).__new__(cls)


def _with_execution_list(init: Callable[..., None]) -> Callable[..., None]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.executions = ExecutionList(self.executions)

    return __init__


def verify_moto_memory_seam() -> None:
    """Fail loudly unless moto still tracks models in ``BaseModel.__new__`` and machines hold ``executions``."""
    import inspect

    from taskrunner.local.lambda_runner import MOTO_VERSION

    remediation = f"Re-verify tests/integration/test_moto_memory.py against this moto and update MOTO_VERSION ({MOTO_VERSION})."
    base = importlib.import_module(MODEL_MODULE).BaseModel
    machine = importlib.import_module(MACHINE_MODULE).StateMachineInstance
    new = base.__dict__.get("__new__")
    if new is None or "instances_tracked.append" not in inspect.getsource(new):
        raise ConfigurationError("moto BaseModel.__new__ no longer tracks instances", remediation=remediation)
    if "self.executions" not in inspect.getsource(machine.__init__):
        raise ConfigurationError(
            "moto StateMachineInstance no longer keeps executions", remediation=remediation
        )
    if not isinstance(getattr(importlib.import_module(THREADS_MODULE), "TMP_THREADS", None), list):
        raise ConfigurationError("moto no longer lists its threads in TMP_THREADS", remediation=remediation)


@contextmanager
def moto_memory_bounded() -> Iterator[None]:
    """In this block moto tracks no model instances and state machines hold releasable executions."""
    verify_moto_memory_seam()
    base = importlib.import_module(MODEL_MODULE).BaseModel
    machine = importlib.import_module(MACHINE_MODULE).StateMachineInstance
    original_new, original_init = base.__dict__["__new__"], machine.__dict__["__init__"]
    base.__new__ = staticmethod(_untracked_new)
    machine.__init__ = _with_execution_list(original_init)
    try:
        yield
    finally:
        base.__new__ = original_new
        machine.__init__ = original_init


def release_executions(
    account_id: str,
    region: str,
    execution_arns: Collection[str],
    releasable: Callable[[Mapping[str, Any]], bool],
) -> list[str]:
    """Remove from moto the named executions that ended and whose input is ``releasable``; the ARNs released.
    Finished threads leave ``TMP_THREADS`` too."""
    from moto.stepfunctions.responses import get_backend

    released = []
    for machine in list(get_backend(account_id, region).state_machines):
        executions = machine.executions
        if not isinstance(executions, ExecutionList):
            continue  # created outside moto_memory_bounded: left as moto keeps it
        for execution in executions:
            status = getattr(execution, "exec_status", None)  # None until the execution started
            if execution.execution_arn not in execution_arns or status is None or status.value == "RUNNING":
                continue
            if releasable(execution.input_data if isinstance(execution.input_data, dict) else {}):
                executions.remove(execution)
                released.append(execution.execution_arn)
    threads: list[threading.Thread] = importlib.import_module(THREADS_MODULE).TMP_THREADS
    # a thread appended while this runs may be dropped: harmless, nothing reads the list
    threads[:] = [thread for thread in threads if thread.is_alive()]
    return released
