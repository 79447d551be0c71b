"""Decide gates and cancel runs of the local runtimes from a process that runs none.

``taskrunner approve``, ``approvals import`` and ``runs cancel`` only record a change in the shared store:
they get the services a local runtime's functions get (the same store, objects under the home, the
local keys, the same settings), except that Step Functions is the runtimes themselves. Answering a task
token or stopping an execution wakes them (:class:`~taskrunner.local.wakeups.WakingWorkflow` without an
engine), and the runtime holding the execution acts on the stored change; a run no runtime holds continues
when one next starts. Nothing here starts moto, so such a command takes a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from taskrunner.composition import PLACEHOLDER_SETTINGS, build_services
from taskrunner.config import env_name, load_settings
from taskrunner.engine.services import Services
from taskrunner.keyfiles import taskrunner_home
from taskrunner.local.aws import LOCAL_RUNTIME_DEFAULTS
from taskrunner.local.lambda_runner import process_environment
from taskrunner.local.runtime import local_environment
from taskrunner.local.storage import local_settings
from taskrunner.local.wakeups import WakingWorkflow


@dataclass(frozen=True)
class LocalDecisions:
    """The home whose runtimes are told, and the services that record the decisions."""

    home: Path
    svc: Services


@contextmanager
def local_decisions(home: Path | None = None) -> Iterator[LocalDecisions]:
    """Services with the local runtime's settings for the duration of the block (its environment is set)."""
    root = (home or taskrunner_home()).resolve()
    settings = local_settings()
    no_functions = {env_name("aws", field): None for field in PLACEHOLDER_SETTINGS.values()}  # seal here
    with process_environment({**LOCAL_RUNTIME_DEFAULTS, **no_functions, **local_environment(root, settings)}):
        yield LocalDecisions(root, build_services(load_settings(), workflow=WakingWorkflow(root)))
