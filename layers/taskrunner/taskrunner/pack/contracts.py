"""Steps checked against their modules' contracts: ``uses``, every ``with`` key, declared ``outputs`` and every
``steps.<id>.outputs.<name>`` reference (in templates, ``when``, gate messages, policies and pack outputs).

A ``with`` value holding a ``{{ }}`` template is judged once it is resolved: by the planner when it reads
inputs only (:func:`resolved_param_problems`), else by the module at run time (the same message).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from taskrunner.modules.contracts import ParamProblem, did_you_mean, param_problems
from taskrunner.modules.registry import Module, find_module, unknown_module_hint
from taskrunner.pack.expressions import (
    Expression,
    ExpressionError,
    condition_expression,
    context_paths,
    iter_templates,
    parse_template,
    roots_of,
)
from taskrunner.pack.models import MODULE_PATTERN
from taskrunner.pack.rules import RuleProblem, _entries, _walk_steps
from taskrunner.pack.source import child_path


def check_contracts(document: Mapping[str, Any]) -> list[RuleProblem]:
    """Every contract problem of the run steps in ``document`` (a parsed manifest)."""
    spec = document.get("spec")
    if not isinstance(spec, dict):
        return []
    problems: list[RuleProblem] = []
    outputs: dict[str, tuple[str, frozenset[str]]] = {}  # step id -> (module, its outputs), when known
    expressions: list[tuple[str, Expression]] = []
    quotas: dict[str, list[str]] = {}  # sandbox quota -> the steps whose module needs it
    for path, step, _ in _walk_steps(spec.get("steps"), "spec.steps", False):
        run = step.get("run")
        if isinstance(step.get("when"), str):
            expressions += _conditions(child_path(path, "when"), step["when"])
        approval = step.get("gate.approval")
        if isinstance(approval, dict) and isinstance(approval.get("message"), str):
            expressions += _templates(child_path(path, "gate.approval.message"), approval["message"])
        if not isinstance(run, dict) or not isinstance(run.get("uses"), str):
            continue
        if not re.fullmatch(MODULE_PATTERN, run["uses"]):
            continue  # the models report it
        with_: dict[str, Any] = run["with"] if isinstance(run.get("with"), dict) else {}
        expressions += _templates(child_path(path, "run.with"), with_)
        module = find_module(run["uses"])
        if module is None:
            problems.append(
                (
                    child_path(path, "run.uses"),
                    f"unknown step module {run['uses']!r}",
                    unknown_module_hint(run["uses"]),
                )
            )
            continue
        problems += _step_problems(path, step, module, with_, outputs)
        for quota in module.contract.quotas if module.contract else ():
            quotas.setdefault(quota, []).append(f"{step.get('id')} ({module.name})")
    problems += _quota_problems(spec, quotas)
    for path, policy in _entries(spec, "policies"):
        if isinstance(policy.get("expression"), str):
            expressions += _conditions(child_path(path, "expression"), policy["expression"])
    for path, output in _entries(spec, "outputs"):
        if isinstance(output.get("from"), str):
            expressions += _conditions(child_path(path, "from"), output["from"])
    for path, expression in expressions:
        problems += _output_references(path, expression, outputs)
    return problems


def _quota_problems(spec: Mapping[str, Any], quotas: Mapping[str, list[str]]) -> list[RuleProblem]:
    """Fail-closed quotas: a module that needs ``spec.sandbox.<quota>`` runs only under a declared one."""
    sandbox = spec.get("sandbox")
    if not isinstance(sandbox, dict):
        return []  # the models report a missing sandbox
    return [
        (
            "spec.sandbox",
            f"sandbox.{quota} is not declared, and step(s) {', '.join(steps)} run only under that quota",
            f"declare it, e.g. sandbox: {{{quota}: {_QUOTA_EXAMPLES.get(quota, 60)}, ...}}",
        )
        for quota, steps in sorted(quotas.items())
        if sandbox.get(quota) is None
    ]


_QUOTA_EXAMPLES = {"cpuSeconds": 60, "memoryMiB": 512, "wallClockSeconds": 300}


def unchecked_modules(document: Mapping[str, Any]) -> list[str]:
    """The plugin modules the pack uses that declare no contract (their ``with`` and outputs go unchecked)."""
    spec = document.get("spec")
    steps = spec.get("steps") if isinstance(spec, dict) else None
    found = set()
    for _, step, _ in _walk_steps(steps, "spec.steps", False):
        run = step.get("run")
        module = (
            find_module(run["uses"]) if isinstance(run, dict) and isinstance(run.get("uses"), str) else None
        )
        if module is not None and module.contract is None:
            found.add(module.name)
    return sorted(found)


def used_modules(document: Mapping[str, Any]) -> list[str]:
    """Every step module the pack's steps use (``run.uses``), sorted."""
    spec = document.get("spec")
    steps = spec.get("steps") if isinstance(spec, dict) else None
    found = set()
    for _, step, _ in _walk_steps(steps, "spec.steps", False):
        run = step.get("run")
        if isinstance(run, dict) and isinstance(run.get("uses"), str):
            found.add(run["uses"])
    return sorted(found)


def resolved_param_problems(uses: str, with_: Mapping[str, Any]) -> list[ParamProblem]:
    """Problems of ``with_`` after plan-time templating; values still holding a template wait for run time."""
    module = find_module(uses)
    if module is None or module.contract is None:
        return []
    return param_problems(uses, module.contract.params, with_, _templated(with_))


def with_path(step_path: str, where: str) -> str:
    """The JSON path of parameter ``where`` (empty: the whole ``with``) of the step at ``step_path``."""
    return f"{step_path}.run.with" + (f".{where}" if where else "")


def _step_problems(
    path: str,
    step: Mapping[str, Any],
    module: Module,
    with_: Mapping[str, Any],
    outputs: dict[str, tuple[str, frozenset[str]]],
) -> list[RuleProblem]:
    contract = module.contract
    if contract is None:
        return []
    problems: list[RuleProblem] = [
        (with_path(path, where), message, hint)
        for where, message, hint in param_problems(module.name, contract.params, with_, _templated(with_))
    ]
    declared = contract.output_names(with_)
    if isinstance(step.get("id"), str):
        outputs[step["id"]] = (module.name, declared)
    listed = step.get("outputs")
    for i, name in enumerate(listed if isinstance(listed, list) else []):
        if isinstance(name, str) and name not in declared:
            problems.append(
                (
                    f"{path}.outputs[{i}]",
                    f"{module.name} does not produce an output {name!r}",
                    _outputs_hint(name, module.name, declared),
                )
            )
    return problems


def _templated(with_: Mapping[str, Any]) -> set[str]:
    """The ``with`` keys whose values read anything through a template (known only once resolved)."""
    found = set()
    for key, value in with_.items():
        try:
            if roots_of(value):
                found.add(str(key))
        except ExpressionError:
            found.add(str(key))  # reported with the expressions
    return found


def _output_references(
    path: str, expression: Expression, outputs: Mapping[str, tuple[str, frozenset[str]]]
) -> list[RuleProblem]:
    problems: list[RuleProblem] = []
    for read in sorted(context_paths(expression)):
        if len(read) < 4 or read[0] != "steps" or read[2] != "outputs" or read[1] not in outputs:
            continue
        module, declared = outputs[read[1]]
        if read[3] not in declared:
            problems.append(
                (
                    path,
                    f"steps.{read[1]}.outputs.{read[3]}: step {read[1]!r} ({module}) has no output {read[3]!r}",
                    _outputs_hint(read[3], module, declared),
                )
            )
    return problems


def _outputs_hint(name: str, module: str, declared: frozenset[str]) -> str:
    listed = ", ".join(sorted(declared)) or "none"
    return f"{did_you_mean(name, declared)}outputs of {module}: {listed}"


def _templates(path: str, value: Any) -> Iterator[tuple[str, Expression]]:
    for where, text in iter_templates(value, path):
        try:
            template = parse_template(text)
        except ExpressionError:
            continue  # reported with the expressions
        yield from ((where, expression) for expression in template.expressions)


def _conditions(path: str, text: str) -> list[tuple[str, Expression]]:
    try:
        return [(path, condition_expression(text))]
    except ExpressionError:
        return []  # reported with the expressions
