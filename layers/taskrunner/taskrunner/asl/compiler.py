"""Compile a plan into an Amazon States Language definition (JSONPath only, byte-stable).

Shape (DESIGN.md §4): ``VerifyPlan`` -> compiled steps -> ``SealEvidence`` -> ``Succeed``; any uncaught
error -> ``SealFailure`` -> ``Fail``. The envelope comes from ``envelope.asl.json``.

Decisions where the design is silent:

* State. The execution input ``{runId, tenantId, planHash}`` is the whole state (VerifyPlan reads the
  planHash; a Map's clean-up Pass keeps ``runId`` and ``tenantId``). Tasks and containers discard
  their results (``ResultPath: null``); a caught error is kept at ``$.error`` only on the way to
  SealFailure. Inside a Map item the state is ``{runId, tenantId, index[, index1...]}``: one index field
  per enclosing Map (``index`` outermost, then ``index1``, ``index2``...), copied in by ``ItemSelector``
  from ``$$.Map.Item.Value``.
* Map items. A Pass state before each Map writes the indices ``0..n-1`` (from the definition, never the
  input) to ``$.mapItems``; the Map reads them with ``ItemsPath`` and a Pass after it rebuilds the state
  without them. Items themselves stay in the stored plan, where the step Lambda reads them.
* Map templates. One ItemProcessor chain per distinct child shape (see ``templates``); step and gate ids
  are rendered with ``States.Format('scan-all[{}]::scan', $.index)``. Children of several shapes are
  dispatched by a Choice on the index (contiguous index ranges per shape; the largest shape, the last
  of equals, is the Default). The same Map + Choice compiles a ``parallel`` whose ``maxParallel`` is
  below its number of children, one Choice branch per child.
* Errors. In the main chain every fallible state catches ``States.ALL`` to SealFailure. Branch and item
  states cannot reach outer states, so inside them errors propagate to the enclosing Parallel/Map, which
  catches them. ``continueOnError`` on a run step catches ``States.ALL`` with ``ResultPath: null`` and
  goes to the next step (or to a Succeed ending the branch). ``continueOnError`` on a parallel catches
  every error of each child inside its own branch (a Succeed per branch, one per dispatching Map), so one
  child failing neither stops nor fails the others.
* Retries. ``StepFailed`` uses the step's (effective) retry policy, omitted when it allows a single
  attempt; Lambda service errors are retried 3 times (1 s, doubling) on every Lambda task.
* Step ``retries``/``continueOnError``/``timeoutSeconds`` in the plan are taken as already effective
  (pack defaults applied by the planner). ``when`` never changes the ASL. Steps that compile to nothing
  (maps without items, containers of only those) are left out.
* What is compiled in. Only what the pack's structure decides: no planHash and no values, so inputs
  that change only values compile to the same bytes and share a state machine. Map item counts are
  structure (the item-list Pass, the INLINE/DISTRIBUTED choice and the history budget depend on them),
  so inputs that change a count give another definition; unused machines are deleted, which keeps the
  number alive bounded by the runs in flight.
* Names. State names derive from step ids (map template steps from the id with the index hole, e.g.
  ``scan-all_scan``; helper states add ``_items``, ``_dispatch``, ``_done``, ``_continue``, ``_empty``),
  limited to ``[A-Za-z0-9_-]`` and 80 characters and made unique deterministically (``names``).
* Bytes. ``definition_bytes`` is RFC 8785 canonical JSON. When the definition holds no fractional
  number (only a non-whole ``backoffRate`` introduces one), the standard library's sorted compact
  encoding gives the same bytes for it (ASCII keys, integers and strings only) several times faster,
  so it is used; otherwise ``canonical_bytes``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from taskrunner.asl.envelope import FAILURE_STATE, load_envelope
from taskrunner.asl.limits import EventModel, LimitsReport
from taskrunner.asl.names import StateNames, state_machine_name
from taskrunner.asl.placeholders import PLACEHOLDERS, substitute_placeholders
from taskrunner.asl.states import (
    ALL_ERRORS,
    APPROVAL_ENDED_ERRORS,
    ITEMS_FIELD,
    POLICY_DENIED,
    catcher,
    clear_pass,
    context_selector,
    format_step_id,
    index_field,
    items_pass,
    lambda_task,
    step_failed_retrier,
)
from taskrunner.asl.templates import StepIds, compile_error, emits_states
from taskrunner.asl.validator import validate_definition
from taskrunner.canonical import canonical_bytes, sha256_hex
from taskrunner.plan.document import (
    ApprovalGateStep,
    MapStep,
    ParallelStep,
    Plan,
    PlanStep,
    PolicyGateStep,
    RunStep,
)

__all__ = ["PLACEHOLDERS", "CompiledStateMachine", "Deployment", "compile_plan", "substitute_placeholders"]

_SHOWN_PROBLEMS = 20
_MAX_TIMEOUT_SECONDS = 99_999_999
_COMMENT_UNSAFE = re.compile(r"[${}\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Deployment:
    """A compiled definition as one stack deploys it: function ARNs filled in, stack-scoped name."""

    name: str  # <prefix>-<pack>-<sha256(definition)[:12]>
    definition: str


@dataclass(frozen=True)
class CompiledStateMachine:
    """A plan compiled to ASL, with its limits report. Inputs that only change values (not the shape of
    the step tree) compile to the same bytes, so runs of one pack share one state machine."""

    pack: str
    definition: dict[str, Any]  # ASL with ${Placeholders} for function ARNs
    definition_bytes: bytes  # canonical JSON of definition
    limits: LimitsReport

    @property
    def digest(self) -> str:
        """sha256 hex of ``definition_bytes``."""
        return sha256_hex(self.definition_bytes)

    def deployment(self, prefix: str, function_arns: Mapping[str, str]) -> Deployment:
        """The definition with ``function_arns`` filled in, named for the stack's ``prefix``."""
        text = substitute_placeholders(self.definition_bytes, function_arns)
        return Deployment(state_machine_name(prefix, self.pack, text), text)


def compile_plan(plan: Plan) -> CompiledStateMachine:
    """Compile ``plan`` to a validated state machine definition.

    Nothing only the inputs decide is compiled in: no planHash, no values. The execution input carries the
    planHash and VerifyPlan checks it and the definition against the stored plan.
    """
    model = EventModel(plan)
    comment = _COMMENT_UNSAFE.sub("_", f"TaskRunner pack {plan.pack.name}")
    envelope = load_envelope(comment=comment)
    compiler = _Compiler(model, StateNames(envelope.states))
    main = _Scope(envelope.states, _Target(FAILURE_STATE), StepIds(), ())
    envelope.splice(compiler.chain(plan.steps, main, envelope.continuation))
    definition = envelope.definition

    problems = validate_definition(definition)
    if problems:
        shown = "; ".join(problems[:_SHOWN_PROBLEMS])
        more = f"; and {len(problems) - _SHOWN_PROBLEMS} more" if len(problems) > _SHOWN_PROBLEMS else ""
        raise compile_error(
            f"The state machine compiled for pack {plan.pack.name!r} is invalid: {shown}{more}.",
            "This is a defect in the compiler; report it with the plan that triggers it.",
        )
    data = _encode(definition, fractional=compiler.fractional)
    return CompiledStateMachine(
        pack=plan.pack.name, definition=definition, definition_bytes=data, limits=model.report(data)
    )


def _encode(definition: dict[str, Any], *, fractional: bool) -> bytes:
    if fractional:
        return canonical_bytes(definition)
    text = json.dumps(definition, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


@dataclass
class _Target:
    """A state catchers may go to; with ``names`` set it is a Succeed created on first use."""

    raw_name: str
    suffix: str = ""
    names: StateNames | None = None
    states: dict[str, Any] | None = None
    _name: str | None = field(default=None, init=False)

    def use(self) -> str:
        if self.names is None:
            return self.raw_name
        if self._name is None:
            assert self.states is not None
            self._name = self.names.claim(self.raw_name, self.suffix)
            self.states[self._name] = {"Type": "Succeed"}
        return self._name


@dataclass(frozen=True)
class _Scope:
    """Where a chain of steps is compiled: its state table, error target, id rendering, index fields."""

    states: dict[str, Any]
    on_error: _Target | None  # None: errors propagate to the enclosing Parallel/Map
    ids: StepIds
    index_fields: tuple[str, ...]


@dataclass
class _Fragment:
    """The states of one step: its entry, the states that continue with whatever follows it, and the
    catchers that do (``continueOnError``)."""

    entry: str
    exits: list[dict[str, Any]]
    continues: list[dict[str, Any]] = field(default_factory=list)


class _Compiler:
    def __init__(self, model: EventModel, names: StateNames) -> None:
        self.model = model
        self.names = names
        self.fractional = False

    # -- chains --------------------------------------------------------------------------------------

    def chain(self, steps: list[PlanStep], scope: _Scope, follow: str | None) -> str | None:
        """Compile ``steps`` in order, continuing with ``follow`` (None: end of a branch). Entry or None."""
        fragments = [fragment for step in steps if (fragment := self.step(step, scope)) is not None]
        for position, fragment in enumerate(fragments):
            after = fragments[position + 1].entry if position + 1 < len(fragments) else follow
            for state in fragment.exits:
                if after is None:
                    state["End"] = True
                else:
                    state["Next"] = after
            if fragment.continues:
                target = after or _Target(fragment.entry, "_continue", self.names, scope.states).use()
                for caught in fragment.continues:
                    caught["Next"] = target
        return fragments[0].entry if fragments else None

    def step(self, step: PlanStep, scope: _Scope) -> _Fragment | None:
        if isinstance(step, RunStep):
            return self.run(step, scope)
        if isinstance(step, ApprovalGateStep):
            return self.approval(step, scope)
        if isinstance(step, PolicyGateStep):
            return self.policy(step, scope)
        if not emits_states(step):
            return None
        if isinstance(step, MapStep):
            return self.map(step, scope)
        dispatched = self.model.dispatched(step)
        return self.dispatch(step, dispatched, scope) if dispatched else self.parallel(step, scope)

    # -- tasks ---------------------------------------------------------------------------------------

    def run(self, step: RunStep, scope: _Scope) -> _Fragment:
        retrier = step_failed_retrier(step.retries)
        if retrier is not None and isinstance(retrier["BackoffRate"], float):
            self.fractional = True
        payload = {**_run_context(), **self.step_id("stepId", step.id, scope)}
        payload["attempt.$"] = "$$.State.RetryCount"
        state = lambda_task("ExecuteStepFunctionArn", payload, retry=[retrier] if retrier else [])
        if step.timeoutSeconds:
            state["TimeoutSeconds"] = _timeout(step.id, "timeoutSeconds", step.timeoutSeconds)
        continues: list[dict[str, Any]] = []
        if step.continueOnError:
            continues.append({"ErrorEquals": [ALL_ERRORS], "ResultPath": None})
            state["Catch"] = continues
        elif scope.on_error is not None:
            state["Catch"] = [catcher([ALL_ERRORS], scope.on_error.use())]
        return self.add(step.id, state, scope, continues)

    def approval(self, step: ApprovalGateStep, scope: _Scope) -> _Fragment:
        payload = {**_run_context(), **self.step_id("gateId", step.id, scope), "taskToken.$": "$$.Task.Token"}
        state = lambda_task("OpenGateFunctionArn", payload, wait_for_token=True)
        state["TimeoutSeconds"] = _timeout(step.id, "expiresAfter", step.expiresAfterSeconds)
        self.catch(state, scope, list(APPROVAL_ENDED_ERRORS))
        return self.add(step.id, state, scope)

    def policy(self, step: PolicyGateStep, scope: _Scope) -> _Fragment:
        payload = {**_run_context(), **self.step_id("stepId", step.id, scope)}
        state = lambda_task("EvaluatePolicyFunctionArn", payload)
        self.catch(state, scope, [POLICY_DENIED])
        return self.add(step.id, state, scope)

    # -- containers ----------------------------------------------------------------------------------

    def parallel(self, step: ParallelStep, scope: _Scope) -> _Fragment:
        name = self.claim(step.id, scope)
        branches = []
        for child in step.steps:
            if not emits_states(child):
                continue
            states: dict[str, Any] = {}
            on_error = self.tolerate(child.id, scope, states) if step.continueOnError else None
            entry = self.chain([child], _Scope(states, on_error, scope.ids, scope.index_fields), None)
            branches.append({"StartAt": entry, "States": states})
        state: dict[str, Any] = {"Type": "Parallel", "Branches": branches, "ResultPath": None}
        self.catch(state, scope)
        scope.states[name] = state
        return _Fragment(name, [state])

    def dispatch(self, step: ParallelStep, children: list[PlanStep], scope: _Scope) -> _Fragment:
        """A parallel limited by ``maxParallel``: a Map over child indices, each dispatched by a Choice."""
        names = self.map_names(step.id, scope, choice=True)
        fields = (*scope.index_fields, index_field(len(scope.index_fields)))
        states: dict[str, Any] = {}
        on_error = self.tolerate(step.id, scope, states) if step.continueOnError else None
        inner = _Scope(states, on_error, scope.ids, fields)
        entries = [self.chain([child], inner, None) or "" for child in children]
        states[names.choice] = _choice(fields[-1], [[index] for index in range(len(children))], entries)
        return self.map_fragment(step, names, len(children), fields, names.choice, states, scope)

    def map(self, step: MapStep, scope: _Scope) -> _Fragment:
        groups = self.model.groups(step)
        names = self.map_names(step.id, scope, choice=len(groups) > 1)
        fields = (*scope.index_fields, index_field(len(scope.index_fields)))
        states: dict[str, Any] = {}
        entries = []
        for indices in groups:
            ids = scope.ids.enter(step, indices[0], fields[-1])
            inner = _Scope(states, None, ids, fields)
            entry = self.chain([step.steps[indices[0]]], inner, None)
            if entry is None:  # this shape has nothing to run (e.g. a nested map without items)
                entry = _Target(ids.generic(step.steps[indices[0]].id), "_empty", self.names, states).use()
            entries.append(entry)
        start = entries[0]
        if names.choice:
            start = names.choice
            states[start] = _choice(fields[-1], groups, entries)
        return self.map_fragment(step, names, len(step.steps), fields, start, states, scope)

    def map_fragment(
        self,
        step: MapStep | ParallelStep,
        names: _MapNames,
        count: int,
        fields: tuple[str, ...],
        start: str,
        processor_states: dict[str, Any],
        scope: _Scope,
    ) -> _Fragment:
        """Item-list Pass -> Map -> clean-up Pass around an item processor."""
        distributed = step.id in self.model.distributed
        config = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"} if distributed else {"Mode": "INLINE"}
        map_state: dict[str, Any] = {
            "Type": "Map",
            "ItemsPath": f"$.{ITEMS_FIELD}",
            "ItemSelector": {**context_selector(scope.index_fields), f"{fields[-1]}.$": "$$.Map.Item.Value"},
            "MaxConcurrency": step.maxParallel,
            "ItemProcessor": {"ProcessorConfig": config, "StartAt": start, "States": processor_states},
            "ResultPath": None,
            "Next": names.done,
        }
        self.catch(map_state, scope)
        scope.states[names.items] = {**items_pass(count), "Next": names.map}
        scope.states[names.map] = map_state
        done = clear_pass(scope.index_fields)
        scope.states[names.done] = done
        return _Fragment(names.items, [done])

    # -- helpers -------------------------------------------------------------------------------------

    def claim(self, step_id: str, scope: _Scope, suffix: str = "") -> str:
        return self.names.claim(scope.ids.generic(step_id), suffix)

    def map_names(self, step_id: str, scope: _Scope, *, choice: bool) -> _MapNames:
        return _MapNames(
            map=self.claim(step_id, scope),
            items=self.claim(step_id, scope, "_items"),
            choice=self.claim(step_id, scope, "_dispatch") if choice else "",
            done=self.claim(step_id, scope, "_done"),
        )

    def tolerate(self, step_id: str, scope: _Scope, states: dict[str, Any]) -> _Target:
        """A Succeed (created on first use) where tolerated failures of a branch end."""
        return _Target(scope.ids.generic(step_id), "_continue", self.names, states)

    def add(
        self,
        step_id: str,
        state: dict[str, Any],
        scope: _Scope,
        continues: list[dict[str, Any]] | None = None,
    ) -> _Fragment:
        name = self.claim(step_id, scope)
        scope.states[name] = state
        return _Fragment(name, [state], continues or [])

    @staticmethod
    def catch(state: dict[str, Any], scope: _Scope, specific: list[str] | None = None) -> None:
        """Send errors of ``state`` to the scope's error target (named ones first); none inside branches."""
        if scope.on_error is None:
            return
        target = scope.on_error.use()
        state["Catch"] = [*([catcher(specific, target)] if specific else []), catcher([ALL_ERRORS], target)]

    @staticmethod
    def step_id(key: str, step_id: str, scope: _Scope) -> dict[str, str]:
        """Payload field ``key`` naming ``step_id``: a literal, or rendered from the Map indices."""
        if not scope.ids.fields:
            return {key: step_id}
        return {f"{key}.$": format_step_id(scope.ids.chunks_of(step_id), scope.ids.fields)}


@dataclass(frozen=True)
class _MapNames:
    map: str
    items: str
    choice: str  # "" when the processor does not start with a dispatching Choice
    done: str


def _timeout(step_id: str, field_name: str, seconds: int) -> int:
    """``seconds`` as a Task ``TimeoutSeconds``, which Step Functions caps at 99,999,999."""
    if seconds > _MAX_TIMEOUT_SECONDS:
        raise compile_error(
            f"Step {step_id!r}: {field_name} of {seconds:,} seconds exceeds the Step Functions maximum of "
            f"{_MAX_TIMEOUT_SECONDS:,} seconds.",
            f"Lower {field_name} of {step_id!r} in the pack.",
        )
    return seconds


def _run_context() -> dict[str, str]:
    return context_selector(())


def _choice(field_name: str, groups: list[list[int]], entries: list[str]) -> dict[str, Any]:
    """A Choice sending item index ``$.<field_name>`` in ``groups[i]`` to ``entries[i]``.

    The largest group (the last of equals) is the Default; every other group is one rule, an ``Or`` of
    its contiguous index ranges when it has several.
    """
    default = max(range(len(groups)), key=lambda position: (len(groups[position]), position))
    variable = f"$.{field_name}"
    choices = []
    for position, indices in enumerate(groups):
        if position == default:
            continue
        conditions = [
            {"Variable": variable, "NumericEquals": first}
            if first == last
            else {
                "And": [
                    {"Variable": variable, "NumericGreaterThanEquals": first},
                    {"Variable": variable, "NumericLessThanEquals": last},
                ]
            }
            for first, last in _ranges(indices)
        ]
        rule = conditions[0] if len(conditions) == 1 else {"Or": conditions}
        choices.append({**rule, "Next": entries[position]})
    return {"Type": "Choice", "Choices": choices, "Default": entries[default]}


def _ranges(indices: list[int]) -> Iterator[tuple[int, int]]:
    """Contiguous runs of the ascending ``indices`` as (first, last) pairs."""
    first = last = indices[0]
    for index in indices[1:]:
        if index != last + 1:
            yield first, last
            first = index
        last = index
    yield first, last
