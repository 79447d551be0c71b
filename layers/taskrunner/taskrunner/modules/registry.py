"""Resolves ``run.uses`` to a step module and its contract: builtins first, then ``taskrunner.modules`` plugins.

A plugin's entry point names its callable; the callable's ``contract`` attribute (a
:class:`~taskrunner.modules.contracts.Contract`), when present, lets ``validate``/``plan`` check its steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from taskrunner.errors import TaskRunnerError
from taskrunner.modules.base import StepModule
from taskrunner.modules.builtins import (
    ARTIFACT_WRITE,
    BUNDLE_INGEST,
    NOOP,
    SLEEP,
    artifact_write,
    bundle_ingest,
    noop,
    sleep,
)
from taskrunner.modules.contracts import Contract, did_you_mean
from taskrunner.modules.http import HTTP_REQUEST, http_request
from taskrunner.modules.process import EXEC, exec_module

ENTRY_POINT_GROUP = "taskrunner.modules"


@dataclass(frozen=True)
class Module:
    """A registered module: its callable and its contract (None: a plugin that declares none)."""

    name: str
    run: StepModule
    contract: Contract | None


BUILTINS: dict[str, Module] = {
    module.name: module
    for module in (
        Module("noop", noop, NOOP),
        Module("sleep", sleep, SLEEP),
        Module("artifact.write", artifact_write, ARTIFACT_WRITE),
        Module("bundle.ingest", bundle_ingest, BUNDLE_INGEST),
        Module("exec", exec_module, EXEC),
        Module("http.request", http_request, HTTP_REQUEST),
    )
}


@cache
def _plugins() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BUILTINS}


@cache
def _load_plugin(name: str) -> Module:
    run: StepModule = _plugins()[name].load()
    contract = getattr(run, "contract", None)
    return Module(name, run, contract if isinstance(contract, Contract) else None)


def module_names() -> list[str]:
    """Every module name available here, builtins and installed plugins."""
    return sorted({*BUILTINS, *_plugins()})


def find_module(name: str) -> Module | None:
    """The module registered as ``name``, or None."""
    if name in BUILTINS:
        return BUILTINS[name]
    return _load_plugin(name) if name in _plugins() else None


def unknown_module_hint(name: str) -> str:
    """How to fix a ``uses`` that names no module: the closest name and every available one."""
    return (
        f"{did_you_mean(name, module_names())}use one of: {', '.join(module_names())}; "
        f"or install a package that registers it under '{ENTRY_POINT_GROUP}'"
    )


def resolve_module(name: str) -> StepModule:
    """The module registered as ``name``, or an error listing what is available."""
    found = find_module(name)
    if found is None:
        raise TaskRunnerError(
            f"unknown step module '{name}'", code="UnknownModule", remediation=unknown_module_hint(name)
        )
    return found.run
