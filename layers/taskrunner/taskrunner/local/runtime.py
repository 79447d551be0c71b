"""The local runtime: the SAM app on one machine — moto runs the compiled ASL, handlers run in-process.

Runs live in the file store under ``TASKRUNNER_HOME``; moto keeps AWS state in memory, so on start every
non-terminal run is resumed (a new execution of the same definition; finished steps are not re-run).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from taskrunner.composition import reset_services, services
from taskrunner.engine.services import Services
from taskrunner.errors import TaskRunnerError
from taskrunner.keyfiles import taskrunner_home
from taskrunner.local.aws import LocalAws
from taskrunner.local.template import find_template
from taskrunner.observability import logger

TENANT = "local"
TERMINAL = {"succeeded", "failed", "cancelled"}


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

    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.aws = LocalAws(
            self._template,
            environment_overrides={
                "TASKRUNNER_HOME": str(self.home),
                "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
            },
        )
        self.aws.start()
        reset_services(None)
        if self._resume:
            self.resumed = resume_active_runs(self.svc)

    def stop(self) -> None:
        if self.aws is not None:
            self.aws.runner.wait_idle(10.0)
            self.aws.stop()
            self.aws = None
        reset_services(None)

    @property
    def svc(self) -> Services:
        return services()

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
        """Poll the store until the run is terminal and sealed; ``on_tick`` sees every snapshot."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.svc.store.get_run(run_id, None)
            if on_tick:
                on_tick(run)
            if run.status in TERMINAL and run.evidence is not None:
                return run
            if deadline is not None and time.monotonic() > deadline:
                raise TaskRunnerError(f"run {run_id} did not finish within {timeout:g}s", code="Timeout")
            time.sleep(interval)


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
