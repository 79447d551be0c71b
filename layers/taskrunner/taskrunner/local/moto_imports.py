"""Start-up of the local runtime: moto's AWS Batch backend imported when first used, not at start.

moto's Step Functions interpreter imports ``moto.batch.utils`` (for its Batch service integration); that runs
``moto/batch/__init__.py``, which imports the Batch backend and with it the whole EC2 backend (instance
types, AMIs, regions): ~0.8 s of every ``taskrunner`` start for a service the compiled ASL never calls.

:func:`defer_moto_batch` registers ``moto.batch`` as the package it is — same ``__spec__``, ``__path__`` and
file — whose one export, ``batch_backends``, is imported from ``moto.batch.models`` on first access (PEP 562
module ``__getattr__``), exactly what its ``__init__`` does eagerly. Its submodules import as usual. The seam is
verified against the pinned moto: an ``__init__`` that exports anything else fails loudly.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import types
from pathlib import Path

from taskrunner.errors import ConfigurationError

PACKAGE = "moto.batch"
EXPORTS = {"batch_backends": "moto.batch.models"}


def _exports(init_file: Path) -> dict[str, str]:
    """``{name: module}`` of the ``from .x import name`` lines that make up the package's ``__init__``."""
    exports: dict[str, str] = {}
    for node in ast.parse(init_file.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            exports.update({alias.asname or alias.name: f"{PACKAGE}.{node.module}" for alias in node.names})
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):  # docstring
            raise ConfigurationError(
                f"{init_file} does more than re-export names: cannot defer {PACKAGE}",
                remediation="Re-verify taskrunner/local/moto_imports.py against this moto version.",
            )
    return exports


def defer_moto_batch() -> None:
    """Register ``moto.batch`` with a lazy ``batch_backends`` unless it is imported already."""
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None or spec.submodule_search_locations is None:
        raise ConfigurationError(f"{PACKAGE} is not installed", remediation="Reinstall the pinned moto.")
    found = _exports(Path(spec.origin))
    if found != EXPORTS:
        raise ConfigurationError(
            f"{PACKAGE} exports {found}, expected {EXPORTS}",
            remediation="Re-verify taskrunner/local/moto_imports.py against this moto version.",
        )
    module = types.ModuleType(PACKAGE)
    module.__spec__ = spec
    module.__file__ = spec.origin
    module.__path__ = list(spec.submodule_search_locations)
    module.__package__ = PACKAGE
    module.__loader__ = spec.loader

    def __getattr__(name: str) -> object:  # PEP 562
        if name not in EXPORTS:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(EXPORTS[name]), name)
        setattr(module, name, value)
        return value

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[PACKAGE] = module
    parent = importlib.import_module("moto")
    setattr(parent, "batch", module)  # noqa: B010 - the import system's own binding of a submodule
