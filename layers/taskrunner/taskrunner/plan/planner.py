"""The planner: a valid pack + inputs -> the plan document (resolved, expanded, hashable).

It resolves every expression that reads inputs alone (and, inside a map child, ``item``/``index``),
expands ``map`` items into children ``<mapId>[<index>]::<templateId>``, evaluates plan-time ``when``
conditions and merges the failure policy (defaults, then ``spec.failure``, then the step, per field).
Expressions that read steps, run or secrets are kept as written for the executor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from taskrunner.pack.contracts import resolved_param_problems, with_path
from taskrunner.pack.errors import ManifestError, Problem
from taskrunner.pack.expressions import (
    ExpressionError,
    as_text,
    condition_expression,
    parse_template,
    resolve_static,
    truthy,
)
from taskrunner.pack.limits import MAX_PLANNED_STEPS
from taskrunner.pack.loader import LoadedPack, load_pack
from taskrunner.pack.models import Retries, Step
from taskrunner.pack.source import Source, gc_paused
from taskrunner.plan.document import Plan, RetryPolicy
from taskrunner.plan.hashing import canonical_plan_bytes, document_digest, plan_hash_of_bytes, rng_seed
from taskrunner.plan.inputs import resolve_inputs
from taskrunner.plan.simulate import Simulation, simulate

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


def build_plan(
    source: Source | LoadedPack,
    inputs: Mapping[str, Any] | None = None,
    *,
    source_name: str | None = None,
    inputs_name: str = "<inputs>",
) -> PlanResult:
    """Load (unless already loaded), validate, resolve inputs and plan; hash the canonical plan.

    Raises :class:`~taskrunner.pack.errors.ManifestError` or :class:`~taskrunner.pack.errors.InputsError`
    listing every problem.
    """
    with gc_paused():
        pack = source if isinstance(source, LoadedPack) else load_pack(source, source_name=source_name)
        plan = plan_pack(pack, inputs, inputs_name=inputs_name)
        data = canonical_plan_bytes(plan)
        digest = plan_hash_of_bytes(data)
        return PlanResult(pack, plan, data, digest, rng_seed(digest), simulate(plan))


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
    planned_steps: int = 0
    over_limit: bool = False

    def plan(self) -> Plan:
        manifest = self.pack.manifest
        spec = manifest.spec
        failure = spec.failure
        self.retries = _merge_retries(_RETRY_DEFAULTS, failure.retries)
        self.continue_on_error = bool(failure.continueOnError)
        scope = _Scope({"inputs": self.inputs}, _INPUTS_ONLY)
        if _count_steps(spec.steps) > MAX_PLANNED_STEPS:
            self._too_many_steps("spec.steps", "as written")
            raise ManifestError(self.problems, source=self.pack.file)
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
        self.planned_steps += 1
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
        items = block.items
        if isinstance(items, str):
            items = self._evaluate(items.strip(), f"{path}.map.items", scope)
            if items is not None and not isinstance(items, list):
                self.problems.append(
                    self.pack_problem(
                        f"{path}.map.items",
                        f"map.items must yield a list, got {type(items).__name__}",
                        "make the input an array (type: array)",
                    )
                )
                items = []
        items = list(items or [])
        template, template_path = block.step, f"{path}.map.step"
        children = []
        for index, item in enumerate(items):
            if self.planned_steps >= MAX_PLANNED_STEPS:
                self._too_many_steps(f"{path}.map.items", f"once this map expands its {len(items):,} items")
                break
            child_scope = _Scope(
                {**scope.context, "item": item, "index": index}, _IN_MAP, f"{map_id}[{index}]::", index, item
            )
            children.append(self._step(template, template_path, child_scope))
        return {
            "kind": "map",
            "maxParallel": block.maxParallel or self.pack.manifest.spec.maxParallel,
            "templateId": template.id,
            "items": items,
            "steps": children,
        }

    def _too_many_steps(self, path: str, when: str) -> None:
        if not self.over_limit:
            self.over_limit = True
            message = f"the plan holds more than {MAX_PLANNED_STEPS:,} steps (the limit) {when}"
            self.problems.append(
                self.pack_problem(path, message, "split the work over several packs or runs")
            )

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


def _count_steps(steps: list[Step]) -> int:
    """Steps as written, nested ones included (maps count their template once)."""
    return sum(1 + _count_steps(step.children()) for step in steps)


def _merge_retries(base: dict[str, Any], override: Retries | None) -> dict[str, Any]:
    if override is None:
        return base
    return {**base, **override.model_dump(exclude_none=True)}
