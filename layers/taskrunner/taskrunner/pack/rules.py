"""Pack-wide rules the field models cannot see: unique ids, references, and every expression.

The checks walk the raw document defensively, so they report alongside structural problems (all problems
at once) and skip parts whose shape is wrong (the models report those).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from taskrunner.keys import ARTIFACT_NAME
from taskrunner.pack.expressions import (
    ROOTS,
    WHOLE_CONTEXT,
    Expression,
    ExpressionError,
    condition_expression,
    iter_templates,
    parse_template,
)
from taskrunner.pack.models import duration_seconds
from taskrunner.pack.source import child_path

RuleProblem = tuple[str, str, str]  # (json path, message, hint)

# A step attempt runs inside one invocation of the step Lambda, which AWS stops after 900 seconds.
LAMBDA_TIMEOUT_LIMIT_SECONDS = 900

_MAP_ONLY = frozenset({"item", "index"})
_NO_SECRETS = (
    "secrets are resolved only for run.with; conditions, messages, policies and outputs cannot read them"
)


@dataclass
class _Names:
    inputs: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)
    approvals: set[str] = field(default_factory=set)
    policies: set[str] = field(default_factory=set)
    steps: set[str] = field(default_factory=set)


def check_rules(document: Mapping[str, Any]) -> list[RuleProblem]:
    """Every pack-wide problem in ``document`` (a parsed manifest)."""
    spec = document.get("spec")
    if not isinstance(spec, dict):
        return []
    problems: list[RuleProblem] = []
    names = _Names()
    for section, key, bucket in (
        ("inputs", "name", names.inputs),
        ("secrets", "name", names.secrets),
        ("approvals", "id", names.approvals),
        ("policies", "id", names.policies),
        ("outputs", "name", set()),
    ):
        problems += _unique(_entries(spec, section), f"spec.{section}", key, bucket)
    steps = [(path, step) for path, step, _ in _walk_steps(spec.get("steps"), "spec.steps", False)]
    problems += _unique(steps, "", "id", names.steps, what="step id", nested=True)

    checker = _ExpressionChecker(names, problems)
    for path, approval in _entries(spec, "approvals"):
        text = approval.get("reasonTemplate")
        if isinstance(text, str):
            why = "reasonTemplate is rendered at plan time, so it may read inputs only"
            checker.template(child_path(path, "reasonTemplate"), text, frozenset({"inputs"}), why)
    for path, policy in _entries(spec, "policies"):
        if isinstance(policy.get("expression"), str):
            checker.condition(child_path(path, "expression"), policy["expression"], ROOTS - {"secrets"})
    for path, output in _entries(spec, "outputs"):
        if isinstance(output.get("from"), str):
            checker.condition(child_path(path, "from"), output["from"], frozenset({"inputs", "steps", "run"}))
    for path, step, in_map in _walk_steps(spec.get("steps"), "spec.steps", False):
        _check_step(path, step, in_map, names, checker)
    problems += _lambda_time_limits(spec)
    problems += _slo_problems(spec)
    return problems


def _slo_problems(spec: Mapping[str, Any]) -> list[RuleProblem]:
    """``slo.approvalP95Seconds`` needs approvals and must be reachable before the longest one expires."""
    slo = spec.get("slo")
    bound = slo.get("approvalP95Seconds") if isinstance(slo, dict) else None
    if not isinstance(bound, int) or isinstance(bound, bool):
        return []
    where = "spec.slo.approvalP95Seconds"
    expiries = []
    for _, approval in _entries(spec, "approvals"):
        try:
            expiries.append(duration_seconds(str(approval.get("expiresAfter"))))
        except ValueError:
            continue  # the models report a bad duration
    if not _entries(spec, "approvals"):
        return [(where, "the pack declares no approvals to measure", "remove it, or declare spec.approvals")]
    if expiries and bound > max(expiries):
        longest = max(expiries)
        return [
            (
                where,
                f"{bound:,} seconds is longer than any approval can wait ({longest:,} s, the longest"
                " expiresAfter), so it can never be missed",
                f"lower it to at most {longest}, or lengthen expiresAfter",
            )
        ]
    return []


def _lambda_time_limits(spec: Mapping[str, Any]) -> list[RuleProblem]:
    """``sandbox.wallClockSeconds`` and every step ``timeoutSeconds`` must fit one Lambda invocation."""
    limit = LAMBDA_TIMEOUT_LIMIT_SECONDS
    found: list[tuple[str, str, Any]] = []
    sandbox = spec.get("sandbox")
    if isinstance(sandbox, dict):
        found.append(
            ("spec.sandbox.wallClockSeconds", "sandbox.wallClockSeconds", sandbox.get("wallClockSeconds"))
        )
    for path, step, _ in _walk_steps(spec.get("steps"), "spec.steps", False):
        found.append(
            (child_path(path, "timeoutSeconds"), f"step {step.get('id')!r}", step.get("timeoutSeconds"))
        )
    return [
        (
            where,
            f"{what}: {seconds:,} seconds is over the {limit}-second limit of one step Lambda invocation",
            f"lower it to at most {limit}, or split the work into several steps",
        )
        for where, what, seconds in found
        if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > limit
    ]


def _entries(spec: Mapping[str, Any], section: str) -> list[tuple[str, dict[str, Any]]]:
    items = spec.get(section)
    if not isinstance(items, list):
        return []
    return [(f"spec.{section}[{i}]", item) for i, item in enumerate(items) if isinstance(item, dict)]


def _unique(
    entries: list[tuple[str, dict[str, Any]]],
    section: str,
    key: str,
    seen: set[str],
    *,
    what: str = "",
    nested: bool = False,
) -> list[RuleProblem]:
    problems: list[RuleProblem] = []
    first: dict[str, str] = {}
    label = what or f"{section.rsplit('.', 1)[-1]} {key}"
    for path, entry in entries:
        value = entry.get(key)
        if not isinstance(value, str):
            continue
        where = child_path(path, key)
        if value in first:
            scope = "in the pack, including nested steps" if nested else f"in {section}"
            problems.append(
                (
                    where,
                    f'{label} "{value}" is used twice (first at {first[value]})',
                    f"make every id unique {scope}",
                )
            )
        else:
            first[value] = where
            seen.add(value)
    return problems


def _walk_steps(steps: Any, path: str, in_map: bool) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Every step dict in the tree, depth first: ``(json path, step, inside a map template)``."""
    if isinstance(steps, list):
        for i, step in enumerate(steps):
            if isinstance(step, dict):
                yield from _walk_step(step, f"{path}[{i}]", in_map)


def _walk_step(step: dict[str, Any], path: str, in_map: bool) -> Iterator[tuple[str, dict[str, Any], bool]]:
    yield path, step, in_map
    parallel, mapping = step.get("parallel"), step.get("map")
    if isinstance(parallel, dict):
        yield from _walk_steps(parallel.get("steps"), f"{path}.parallel.steps", in_map)
    if isinstance(mapping, dict) and isinstance(mapping.get("step"), dict):
        yield from _walk_step(mapping["step"], f"{path}.map.step", True)


def _check_step(
    path: str, step: dict[str, Any], in_map: bool, names: _Names, checker: _ExpressionChecker
) -> None:
    anywhere = ROOTS if in_map else ROOTS - _MAP_ONLY
    no_secrets = anywhere - {"secrets"}
    if isinstance(step.get("when"), str):
        checker.condition(child_path(path, "when"), step["when"], no_secrets)
    run = step.get("run")
    if isinstance(run, dict) and isinstance(run.get("with"), dict):
        for where, text in iter_templates(run["with"], child_path(path, "run.with")):
            checker.template(where, text, anywhere)
        checker.problems += _artifact_name_problems(
            child_path(path, "run.with"), run.get("uses"), run["with"]
        )
    mapping = step.get("map")
    if isinstance(mapping, dict) and isinstance(mapping.get("items"), str):
        plan_time = frozenset({"inputs"}) | (_MAP_ONLY if in_map else frozenset())
        why = "map.items must resolve at plan time (inputs only)"
        checker.template(child_path(path, "map.items"), mapping["items"], plan_time, why, plan_time_only=True)
    approval = step.get("gate.approval")
    if isinstance(approval, dict):
        ref = approval.get("approval")
        if isinstance(ref, str) and ref not in names.approvals:
            checker.problems.append(
                _unknown(child_path(path, "gate.approval.approval"), ref, "spec.approvals", names.approvals)
            )
        if isinstance(approval.get("message"), str):
            checker.template(child_path(path, "gate.approval.message"), approval["message"], no_secrets)
    policy = step.get("gate.policy")
    if isinstance(policy, dict):
        ref = policy.get("policy")
        if isinstance(ref, str) and ref not in names.policies:
            checker.problems.append(
                _unknown(child_path(path, "gate.policy.policy"), ref, "spec.policies", names.policies)
            )


# Parameters a builtin module turns into an artifact name: (module, parameter, the name it yields).
_ARTIFACT_NAMES: tuple[tuple[str, str, Callable[[str], str]], ...] = (
    ("artifact.write", "name", lambda text: text),
    ("bundle.ingest", "path", lambda text: PurePosixPath(text).name or text),  # bundles/<sha>/<file name>
)


def _artifact_name_problems(path: str, uses: Any, with_: Mapping[str, Any]) -> list[RuleProblem]:
    """Artifact names that cannot be valid: literal ones now, templated ones with every ``{{ }}`` as ``x``.

    A name that is exactly one expression is only known at run time, where it is checked again.
    """
    problems: list[RuleProblem] = []
    for module, param, name_of in _ARTIFACT_NAMES:
        text = with_.get(param)
        if uses != module or not isinstance(text, str):
            continue
        try:
            template = parse_template(text)
        except ExpressionError:
            continue  # reported with the expressions
        if template.single is not None:
            continue
        sample = "".join(p if isinstance(p, str) else "x" for p in template.parts)
        if not ARTIFACT_NAME.matches(name_of(sample)):
            what = "a file name" if param == "path" else "an artifact name"
            problems.append(
                (
                    child_path(path, param),
                    f"{text!r} cannot yield {what} ({ARTIFACT_NAME.pattern})",
                    ARTIFACT_NAME.hint,
                )
            )
    return problems


def _unknown(path: str, ref: str, section: str, known: set[str]) -> RuleProblem:
    listed = ", ".join(sorted(known)[:10]) or "none"
    return (
        path,
        f'names "{ref}", which {section} does not define',
        f"define it in {section} or use one of: {listed}",
    )


@dataclass
class _ExpressionChecker:
    names: _Names
    problems: list[RuleProblem]

    def condition(self, path: str, text: str, allowed: frozenset[str]) -> None:
        try:
            expression = condition_expression(text)
        except ExpressionError as exc:
            self.problems.append((path, exc.message, exc.hint))
            return
        self._references(path, expression, allowed, "", False)

    def template(
        self, path: str, text: str, allowed: frozenset[str], why: str = "", *, plan_time_only: bool = False
    ) -> None:
        try:
            template = parse_template(text)
        except ExpressionError as exc:
            self.problems.append((path, exc.message, exc.hint))
            return
        for expression in template.expressions:
            self._references(path, expression, allowed, why, plan_time_only)

    def _references(
        self, path: str, expression: Expression, allowed: frozenset[str], why: str, plan_time_only: bool
    ) -> None:
        for root, name in sorted(expression.references, key=lambda r: (r[0], r[1] or "")):
            if root == WHOLE_CONTEXT:
                self.problems.append(
                    (
                        path,
                        f"expression {expression.source!r} reads the whole context",
                        "start it with a root, e.g. inputs.",
                    )
                )
            elif root not in allowed:
                if plan_time_only:
                    message = f"{why}, but it reads {root}{'.' + name if name else ''} ({expression.source})"
                    hint = "compute the list from inputs, or pass it in as an input"
                elif root in _MAP_ONLY:
                    message, hint = (
                        f"{root} is only defined inside a map step",
                        "move the expression into map.step",
                    )
                elif root == "secrets":
                    message, hint = "secrets cannot be read here", _NO_SECRETS
                else:
                    message, hint = f"{root} cannot be read here", why or "use " + ", ".join(sorted(allowed))
                self.problems.append((path, message, hint))
            elif name is not None:
                self._name(path, root, name)

    def _name(self, path: str, root: str, name: str) -> None:
        known = {"inputs": self.names.inputs, "secrets": self.names.secrets, "steps": self.names.steps}
        names = known.get(root)
        if names is None or name in names:
            return
        listed = ", ".join(sorted(names)[:10]) or "none"
        if root == "steps":
            message, hint = f"steps.{name} names no step of this pack", f"use a step id (known: {listed})"
        else:
            message = f"{root}.{name} is not declared"
            hint = f"declare it in spec.{root} or fix the name (known: {listed})"
        self.problems.append((path, message, hint))
