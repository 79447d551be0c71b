"""The planner: a valid pack + inputs -> the plan document (resolved, expanded, hashable).

It resolves every expression that reads inputs alone (and, inside a map child, ``item``/``index``),
expands ``map`` items into children ``<mapId>[<index>]::<templateId>``, evaluates plan-time ``when``
conditions and merges the failure policy (defaults, then ``spec.failure``, then the step, per field).
Expressions that read steps, run or secrets are kept as written for the executor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskrunner.pack.contracts import resolved_param_problems, with_path
from taskrunner.pack.errors import ManifestError, PlanTooLarge, Problem
from taskrunner.pack.expressions import (
    ExpressionError,
    as_text,
    condition_expression,
    parse_template,
    resolve_static,
    truthy,
)
from taskrunner.pack.limits import MAX_NESTING_DEPTH, MAX_PLANNED_STEPS
from taskrunner.pack.loader import LoadedPack, load_pack
from taskrunner.pack.models import Retries, Step
from taskrunner.pack.source import Source, gc_paused
from taskrunner.plan.document import Plan, RetryPolicy
from taskrunner.plan.hashing import canonical_plan_bytes, document_digest, plan_hash_of_bytes, rng_seed
from taskrunner.plan.inputs import resolve_inputs
from taskrunner.plan.simulate import Simulation, simulate

if TYPE_CHECKING:
    from taskrunner.asl.compiler import CompiledStateMachine

LIMITS_HINT = (
    "split the pack into smaller packs, or run repeated work as one map step over a list of items "
    "(large maps run as DISTRIBUTED child executions, each with its own history); "
    "see `taskrunner compile --limits`"
)
_INPUTS_ONLY = frozenset({"inputs"})
_IN_MAP = frozenset({"inputs", "item", "index"})
_RETRY_DEFAULTS: dict[str, Any] = RetryPolicy().model_dump()
_UNSET: Any = object()


@dataclass(frozen=True)
class PlanResult:
    """Everything ``plan`` produces: the model, its canonical bytes (``plan.json``), hash, seed, preview."""

    pack: LoadedPack
    plan: Plan
    plan_bytes: bytes
    plan_hash: str
    rng_seed: int
    simulation: Simulation
    compiled: CompiledStateMachine


def build_plan(
    source: Source | LoadedPack,
    inputs: Mapping[str, Any] | None = None,
    *,
    source_name: str | None = None,
    inputs_name: str = "<inputs>",
) -> PlanResult:
    """Load (unless already loaded), validate, resolve inputs, plan, hash and compile: the whole pre-flight
    every path runs. A pack Step Functions would refuse (definition size, worst-case history) is refused.

    Raises :class:`~taskrunner.pack.errors.ManifestError` (:class:`PlanTooLarge` over a limit) or
    :class:`~taskrunner.pack.errors.InputsError` listing every problem.
    """
    from taskrunner.asl.compiler import compile_plan  # the compiler loads on demand
    from taskrunner.asl.limits import pack_floors

    with gc_paused():
        pack = source if isinstance(source, LoadedPack) else load_pack(source, source_name=source_name)
        spec = pack.manifest.spec
        _refuse_over_limits(pack, pack_floors(spec.steps, spec.maxParallel).problems(), "")
        plan = plan_pack(pack, inputs, inputs_name=inputs_name)
        compiled = compile_plan(plan)
        _refuse_over_limits(pack, list(compiled.limits.problems), _figures(compiled))
        data = canonical_plan_bytes(plan)
        digest = plan_hash_of_bytes(data)
        return PlanResult(pack, plan, data, digest, rng_seed(digest), simulate(plan), compiled)


def _refuse_over_limits(pack: LoadedPack, problems: list[str], figures: str) -> None:
    if problems:
        found = [pack.problem("spec.steps", f"{text}{figures}", LIMITS_HINT) for text in problems]
        raise PlanTooLarge(found, source=pack.file)


def _figures(compiled: CompiledStateMachine) -> str:
    report = compiled.limits
    return (
        f" [limits report: worst-case history {report.history_events:,} events "
        f"(largest child execution {report.max_child_history_events:,}), budget {report.history_event_budget:,}; "
        f"definition {report.deployed_definition_bytes:,} of {report.definition_bytes_limit:,} bytes; "
        f"state payload {report.payload_bytes:,} of {report.payload_bytes_limit:,} bytes]"
    )


def plan_pack(
    pack: LoadedPack, inputs: Mapping[str, Any] | None = None, *, inputs_name: str = "<inputs>"
) -> Plan:
    """The plan document of a loaded pack for ``inputs``."""
    resolved = resolve_inputs(pack.manifest, inputs, source_name=inputs_name)
    return _Planner(pack, resolved).plan()


@dataclass(frozen=True)
class _Scope:
    """What is known at plan time where a step sits: the context, its roots, the id prefix."""

    context: dict[str, Any]
    available: frozenset[str]
    prefix: str = ""
    index: int | None = None  # the innermost enclosing map child's index and item
    item: Any = None
    resolved: dict[str, Any] = field(default_factory=dict)  # template string -> its immutable result


@dataclass
class _Planner:
    pack: LoadedPack
    inputs: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    retries: dict[str, Any] = field(default_factory=lambda: dict(_RETRY_DEFAULTS))
    continue_on_error: bool = False

    def plan(self) -> Plan:
        manifest = self.pack.manifest
        spec = manifest.spec
        failure = spec.failure
        self.retries = _merge_retries(_RETRY_DEFAULTS, failure.retries)
        self.continue_on_error = bool(failure.continueOnError)
        scope = _Scope({"inputs": self.inputs}, _INPUTS_ONLY)
        self._check_expansion(spec.steps, scope)
        steps = [self._step(step, f"spec.steps[{i}]", scope) for i, step in enumerate(spec.steps)]
        approvals = [
            {
                "id": a.id,
                "grants": list(a.grants),
                "requiredCount": a.requiredCount,
                "expiresAfter": a.expiresAfter,
                "expiresAfterSeconds": a.expires_after_seconds,
                "reason": self._text(a.reasonTemplate, f"spec.approvals[{i}].reasonTemplate", scope),
            }
            for i, a in enumerate(spec.approvals)
        ]
        if self.problems:
            raise ManifestError(self.problems, source=self.pack.file)
        document = {
            "pack": {
                "name": manifest.metadata.name,
                "version": manifest.metadata.version,
                "digest": document_digest(self.pack.document),
            },
            "inputs": self.inputs,
            "secrets": [{"name": s.name, "ref": s.ref} for s in spec.secrets],
            "approvals": approvals,
            "policies": [{"id": p.id, "expression": p.expression} for p in spec.policies],
            "sandbox": spec.sandbox.model_dump(exclude_none=True),
            "slo": spec.slo.model_dump(exclude_none=True) if spec.slo else None,
            "security": spec.security.model_dump(),
            "failure": {"retries": self.retries, "continueOnError": self.continue_on_error},
            "maxParallel": spec.maxParallel,
            "steps": steps,
            "outputs": [{"name": o.name, "type": o.type, "from": o.from_} for o in spec.outputs],
        }
        return Plan.model_validate(document)

    # -- steps -------------------------------------------------------------------------------------

    def _step(self, step: Step, path: str, scope: _Scope) -> dict[str, Any]:
        planned: dict[str, Any] = {"id": scope.prefix + step.id}
        if step.when is not None:
            planned["when"] = step.when
            planned["whenResolved"] = self._condition(step.when, f"{path}.when", scope)
        if scope.index is not None:  # map children and their descendants carry index and item
            planned["index"] = scope.index
            planned["item"] = scope.item
        if step.run is not None:
            planned.update(
                kind="run",
                uses=step.run.uses,
                outputs=list(step.outputs or ()),
                retries=_merge_retries(self.retries, step.retries),
                continueOnError=self._continue(step.continueOnError),
            )
            planned["with"] = self._resolve(step.run.with_, f"{path}.run.with", scope)
            if planned["with"] != step.run.with_:  # literal values were checked when the pack was loaded
                for where, message, hint in resolved_param_problems(step.run.uses, planned["with"]):
                    self.problems.append(self.pack_problem(with_path(path, where), message, hint, scope))
            if step.timeoutSeconds is not None:
                planned["timeoutSeconds"] = step.timeoutSeconds
        elif step.parallel is not None:
            block = step.parallel
            planned.update(
                kind="parallel",
                maxParallel=block.maxParallel or self.pack.manifest.spec.maxParallel,
                continueOnError=self._continue(block.continueOnError),
                steps=[
                    self._step(s, f"{path}.parallel.steps[{i}]", scope) for i, s in enumerate(block.steps)
                ],
            )
        elif step.map is not None:
            planned.update(self._map(step, path, scope, planned["id"]))
        elif step.gate_approval is not None:
            gate = step.gate_approval
            approval = next(a for a in self.pack.manifest.spec.approvals if a.id == gate.approval)
            planned.update(
                kind="gate.approval",
                approval=gate.approval,
                requiredCount=approval.requiredCount,
                grants=list(approval.grants),
                expiresAfterSeconds=approval.expires_after_seconds,
            )
            if gate.message is not None:
                planned["message"] = self._resolve(gate.message, f"{path}.gate.approval.message", scope)
        elif step.gate_policy is not None:
            gate_policy = step.gate_policy
            policy = next(p for p in self.pack.manifest.spec.policies if p.id == gate_policy.policy)
            planned.update(
                kind="gate.policy",
                policy=policy.id,
                expression=policy.expression,
                failAction=gate_policy.failAction,
            )
        return planned

    def _map(self, step: Step, path: str, scope: _Scope, map_id: str) -> dict[str, Any]:
        assert step.map is not None
        block = step.map
        items = self._items(step, path, scope, report=True)
        template, template_path = block.step, f"{path}.map.step"
        children = []
        for index, item in enumerate(items):
            child_scope = _map_scope(scope, index, item, f"{map_id}[{index}]::")
            children.append(self._step(template, template_path, child_scope))
        return {
            "kind": "map",
            "maxParallel": block.maxParallel or self.pack.manifest.spec.maxParallel,
            "templateId": template.id,
            "items": items,
            "steps": children,
        }

    def _items(self, step: Step, path: str, scope: _Scope, *, report: bool) -> list[Any]:
        """The items of map ``step`` in ``scope`` ([] when they cannot be computed; reported once)."""
        assert step.map is not None
        items = step.map.items
        if not isinstance(items, str):
            return list(items)
        problems = len(self.problems)
        value = self._evaluate(items.strip(), f"{path}.map.items", scope)
        if value is not None and not isinstance(value, list):
            self.problems.append(
                self.pack_problem(
                    f"{path}.map.items",
                    f"map.items must yield a list, got {type(value).__name__}",
                    "make the input an array (type: array)",
                )
            )
        if not report:
            del self.problems[problems:]
        return value if isinstance(value, list) else []

    # -- bounds, checked before anything is expanded -----------------------------------------------

    def _check_expansion(self, steps: list[Step], scope: _Scope) -> None:
        """Refuse a plan nested or expanding beyond the limits, counting without expanding."""
        deep = _too_deep(steps, "spec.steps", 0)
        if deep is not None:
            path, depth = deep
            self.problems.append(
                self.pack.problem(
                    path,
                    f"map and parallel steps are nested {depth} deep, over the limit of {MAX_NESTING_DEPTH}",
                    "flatten the pack: move inner steps up a level or split the pack into several packs",
                )
            )
            raise PlanTooLarge(self.problems, source=self.pack.file)
        try:
            self._expanded([(f"spec.steps[{i}]", step) for i, step in enumerate(steps)], scope)
        except _OverLimit as over:
            message = f"the plan would hold more than {MAX_PLANNED_STEPS:,} steps (the limit){over.when}"
            self.problems.append(
                self.pack.problem(over.path, message, "split the work over several packs or runs")
            )
            raise PlanTooLarge(self.problems, source=self.pack.file) from None

    def _expanded(self, steps: list[tuple[str, Step]], scope: _Scope, before: int = 0) -> int:
        """How many steps ``steps`` (path, step) plan to, ``before`` being counted already; a map counts
        its items times its template, item by item only when a map inside reads ``item``/``index``."""
        total = 0
        for path, step in steps:
            total += 1
            if step.parallel is not None:
                children = step.parallel.steps
                nested = [(f"{path}.parallel.steps[{i}]", child) for i, child in enumerate(children)]
                total += self._expanded(nested, scope, before + total)
            elif step.map is not None:
                total += self._expanded_map(path, step, scope, before + total)
            if before + total > MAX_PLANNED_STEPS:
                raise _OverLimit(path, "")
        return total

    def _expanded_map(self, path: str, step: Step, scope: _Scope, before: int) -> int:
        assert step.map is not None
        items = self._items(step, path, scope, report=False)
        template = [(f"{path}.map.step", step.map.step)]
        over = _OverLimit(f"{path}.map.items", f" once this map expands its {len(items):,} items")
        if not items:
            return 0
        if not _reads_item(step.map.step):
            total = len(items) * self._expanded(template, _map_scope(scope, 0, items[0], ""), before)
            if before + total > MAX_PLANNED_STEPS:
                raise over
            return total
        total = 0
        for index, item in enumerate(items):
            total += self._expanded(template, _map_scope(scope, index, item, ""), before + total)
            if before + total > MAX_PLANNED_STEPS:
                raise over
        return total

    # -- expressions -------------------------------------------------------------------------------

    def _condition(self, text: str, path: str, scope: _Scope) -> bool | None:
        expression = condition_expression(text)
        if not expression.reads_only(scope.available):
            return None
        try:
            return truthy(expression.evaluate(scope.context))
        except ExpressionError as exc:
            self.problems.append(self.pack_problem(path, exc.message, exc.hint, scope))
            return None

    def _resolve(self, value: Any, path: str, scope: _Scope) -> Any:
        if isinstance(value, str):  # strings repeat across steps: resolve each once per scope
            found = scope.resolved.get(value, _UNSET)
            if found is _UNSET:
                found = self._resolve_value(value, path, scope)
                if found is None or isinstance(found, str | int | float | bool):
                    scope.resolved[value] = found
            return found
        if isinstance(value, dict):
            return {k: self._resolve(v, f"{path}.{k}", scope) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v, f"{path}[{i}]", scope) for i, v in enumerate(value)]
        return value

    def _resolve_value(self, value: str, path: str, scope: _Scope) -> Any:
        try:
            return resolve_static(value, scope.context, scope.available)
        except ExpressionError as exc:
            self.problems.append(self.pack_problem(path, exc.message, exc.hint, scope))
            return value

    def _evaluate(self, text: str, path: str, scope: _Scope) -> Any:
        try:
            return parse_template(text).render(scope.context)
        except ExpressionError as exc:
            self.problems.append(self.pack_problem(path, exc.message, exc.hint, scope))
            return None

    def _text(self, text: str | None, path: str, scope: _Scope) -> str | None:
        if text is None:
            return None
        value = self._evaluate(text, path, scope)
        return as_text(value) if value is not None else ""

    def _continue(self, value: bool | None) -> bool:
        return self.continue_on_error if value is None else value

    def pack_problem(self, path: str, message: str, hint: str, scope: _Scope | None = None) -> Problem:
        if scope is not None and scope.index is not None:
            message = f"{message} (map item {scope.index}, in {scope.prefix.rstrip(':')})"
        return self.pack.problem(path, message, hint)


class _OverLimit(Exception):
    def __init__(self, path: str, when: str) -> None:
        self.path, self.when = path, when


def _map_scope(scope: _Scope, index: int, item: Any, prefix: str) -> _Scope:
    return _Scope({**scope.context, "item": item, "index": index}, _IN_MAP, prefix, index, item)


def _too_deep(steps: list[Step], path: str, depth: int) -> tuple[str, int] | None:
    """The path and depth of the first map/parallel nested deeper than the limit, else None."""
    for position, step in enumerate(steps):
        here = f"{path}[{position}]"
        if step.parallel is None and step.map is None:
            continue
        if depth + 1 > MAX_NESTING_DEPTH:
            return here, depth + 1
        found = (
            _too_deep(step.parallel.steps, f"{here}.parallel.steps", depth + 1)
            if step.parallel is not None
            else _too_deep_template(step, here, depth + 1)
        )
        if found is not None:
            return found
    return None


def _too_deep_template(step: Step, path: str, depth: int) -> tuple[str, int] | None:
    assert step.map is not None
    found = _too_deep([step.map.step], f"{path}.map.step", depth)
    return None if found is None else (found[0].replace(".map.step[0]", ".map.step"), found[1])


def _reads_item(step: Step) -> bool:
    """Whether ``step`` or a map inside it takes its items from ``item`` or ``index`` (counts may vary)."""
    if step.map is not None and isinstance(step.map.items, str):
        try:
            roots = parse_template(step.map.items.strip()).roots
        except ExpressionError:
            roots = frozenset()
        if roots & {"item", "index"}:
            return True
    return any(_reads_item(child) for child in step.children())


def _merge_retries(base: dict[str, Any], override: Retries | None) -> dict[str, Any]:
    if override is None:
        return base
    return {**base, **override.model_dump(exclude_none=True)}
