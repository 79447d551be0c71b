"""Resolving the inputs supplied for a run against the pack's declarations."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from taskrunner.pack.errors import InputsError, Problem, problem
from taskrunner.pack.limits import depth_message, too_deep
from taskrunner.pack.models import PackManifest, schema_violation
from taskrunner.pack.source import json_problems

INPUTS_SOURCE = "<inputs>"


def resolve_inputs(
    manifest: PackManifest, supplied: Mapping[str, Any] | None, *, source_name: str = INPUTS_SOURCE
) -> dict[str, Any]:
    """Supplied values plus defaults, checked against ``type`` and ``schema``; unknown names are refused.

    Raises :class:`InputsError` listing every problem. Secrets are never inputs: they are declared by
    reference in ``spec.secrets`` and resolved only by the step executor.
    """
    supplied = {} if supplied is None else supplied
    if not isinstance(supplied, Mapping):
        raise InputsError(
            [problem(source_name, "inputs", "inputs must be an object of name: value", "pass a mapping")],
            source=f"for pack {manifest.metadata.name}",
        )
    declared = {item.name: item for item in manifest.spec.inputs}
    secret_names = {secret.name for secret in manifest.spec.secrets}
    problems: list[Problem] = []
    resolved: dict[str, Any] = {}
    for name, value in supplied.items():
        path = f"inputs.{name}"
        if name not in declared:
            if name in secret_names:
                hint = "secrets are declared by reference in spec.secrets and never passed as inputs"
            else:
                hint = "declared inputs: " + (", ".join(sorted(declared)) or "none")
            problems.append(problem(source_name, path, f"unknown input {name!r}", hint))
            continue
        deep = too_deep(value)
        if deep is not None:
            where = path + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in deep)
            problems.append(problem(source_name, where, depth_message(), "flatten the value"))
            continue
        bad = [problem(source_name, p, m, h) for p, m, h in json_problems(value, path)]
        if bad:
            problems += bad
            continue
        resolved[name] = json.loads(json.dumps(value))  # a private copy of plain JSON data
    for name, item in declared.items():
        path = f"inputs.{name}"
        if name not in resolved:
            if name in supplied:
                continue  # already reported
            if item.required:
                problems.append(
                    problem(
                        source_name,
                        path,
                        "required input is missing",
                        f"supply a {item.type} value for {name}",
                    )
                )
                continue
            if not item.has_default:
                continue
            resolved[name] = json.loads(json.dumps(item.default))
            continue
        violation = schema_violation(resolved[name], item.type, item.schema_)
        if violation:
            problems.append(
                problem(
                    source_name,
                    path,
                    f"input {name!r}: value {violation}",
                    f"supply a value matching {json.dumps(item.json_schema())}",
                )
            )
    if problems:
        raise InputsError(problems, source=f"for pack {manifest.metadata.name}")
    return {name: resolved[name] for name in sorted(resolved)}
