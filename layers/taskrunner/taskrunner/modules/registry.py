"""Resolves ``run.uses`` to a step module: builtins first, then ``taskrunner.modules`` entry points."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from taskrunner.errors import TaskRunnerError
from taskrunner.modules.base import StepModule
from taskrunner.modules.builtins import artifact_write, bundle_ingest, noop, sleep
from taskrunner.modules.http import http_request
from taskrunner.modules.process import exec_module

BUILTINS: dict[str, StepModule] = {
    "noop": noop,
    "sleep": sleep,
    "artifact.write": artifact_write,
    "bundle.ingest": bundle_ingest,
    "exec": exec_module,
    "http.request": http_request,
}
ENTRY_POINT_GROUP = "taskrunner.modules"


@cache
def _plugins() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def resolve_module(name: str) -> StepModule:
    """The module registered as ``name``, or an error listing what is available."""
    if name in BUILTINS:
        return BUILTINS[name]
    plugin = _plugins().get(name)
    if plugin is None:
        known = ", ".join(sorted({*BUILTINS, *_plugins()}))
        raise TaskRunnerError(
            f"unknown step module '{name}'",
            code="UnknownModule",
            remediation=f"use one of: {known}; or install a package that registers it under '{ENTRY_POINT_GROUP}'",
        )
    module: StepModule = plugin.load()  # type: ignore[attr-defined]
    return module
