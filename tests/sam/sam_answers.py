"""The ``events/`` samples, the function each belongs to, and what counts as an answer.

An invocation answers when the handler ran: an HTTP response below 500 (a 404 problem for a run that does not
exist is an answer), a worker result, or a TaskRunner domain error (``NotFound`` ...). It fails when the
function could not start or configure itself - an import error, invalid settings, any other exception.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from functools import cache
from pathlib import Path
from typing import Any

import taskrunner
from taskrunner.errors import ConfigurationError, TaskRunnerError
from taskrunner.local.template import load_template

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"
SAMPLES = sorted(EVENTS.glob("*.json"))


def function_of(sample: Path) -> str:
    """``execute_step-map-child.json`` -> ``ExecuteStepFunction`` (the logical id of functions/execute_step)."""
    return _source_template().function(sample.stem.partition("-")[0]).logical_id


@cache
def _source_template() -> Any:
    return load_template(REPO / "template.yaml")


@cache
def domain_errors() -> frozenset[str]:
    """Names of the TaskRunner errors a handler may raise by design (every one but ConfigurationError)."""
    for module in pkgutil.walk_packages(taskrunner.__path__, "taskrunner."):
        if not module.name.startswith(("taskrunner.cli", "taskrunner.local")):
            importlib.import_module(module.name)
    found: set[str] = set()
    pending: list[type[BaseException]] = [TaskRunnerError]
    while pending:
        cls = pending.pop()
        found.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return frozenset(found - {ConfigurationError.__name__})


def failure(answer: Any) -> str | None:
    """Why ``answer`` is no answer of a running handler, or None when it is one."""
    if not isinstance(answer, dict):
        return f"not a JSON object: {answer!r}"
    if "errorType" in answer:
        if answer["errorType"] in domain_errors():
            return None
        return f"{answer['errorType']}: {answer.get('errorMessage')}"
    if "statusCode" in answer and int(answer["statusCode"]) >= 500:
        return f"HTTP {answer['statusCode']}: {answer.get('body')}"
    return None


def answers_of(stdout: str, prefix: str = "ANSWER ") -> list[Any]:
    """The answers ``lambda_invoke.py`` printed, in order."""
    return [json.loads(line[len(prefix) :]) for line in stdout.splitlines() if line.startswith(prefix)]


def logged_errors(log: str) -> list[str]:
    """The last line of every exception in the handler's JSON log records (what caused a 500)."""
    found = []
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("exception"):
            found.append(str(record["exception"]).strip().splitlines()[-1])
    return found
