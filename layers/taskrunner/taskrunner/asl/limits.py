"""Step Functions limits of a compiled plan: history events, definition size, state payload.

History-event model (worst case: every Task uses every retry it is allowed; both the success and the
failure tail of the envelope are counted):

* execution: 2 (``ExecutionStarted`` + ``ExecutionSucceeded|Failed``); the same for every child
  execution of a DISTRIBUTED Map;
* every state: 2 (``<Type>StateEntered`` + ``<Type>StateExited``);
* Task attempt: 3 (``TaskScheduled``, ``TaskStarted``, ``TaskSucceeded|Failed|TimedOut``), 4 for
  ``.waitForTaskToken`` (+ ``TaskSubmitted``); attempts = ``maxAttempts`` + 3 Lambda-service retries;
* a ``run`` step with ``continueOnError``: +2 for the Succeed a tolerated failure may end in;
* Parallel: +2 (``ParallelStateStarted`` + ``Succeeded|Failed``) plus its branches; with
  ``continueOnError`` +2 per branch (the branch's tolerated-failure Succeed);
* inline Map: the item-list Pass before and the clean-up Pass after it (2 + 2), +2 (``MapStateStarted``
  + ``Succeeded|Failed``), and per item +2 (``MapIterationStarted`` + ``Succeeded|Failed``), +2 for the
  dispatching Choice when the item processor starts with one, plus the item's own events;
* DISTRIBUTED Map: the two Passes, +2, +2 (``MapRunStarted`` + ``MapRunSucceeded|Failed``) in the
  parent; every item runs as a child execution with its own history, checked against the same budget.

A ``parallel`` whose ``maxParallel`` is below its number of children compiles to a Map dispatching each
child index through a Choice, and is counted (and may be switched to DISTRIBUTED) like a map.

The budget is 80 % of the 25,000-event cap, a margin for events the model does not name. When an
execution's estimate exceeds it, the outermost maps of that execution (those not inside another Map;
inside a Parallel is fine) switch to DISTRIBUTED, largest saving first, until the estimate fits; then
each child execution is analysed the same way. Map children of one shape share one decision.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from taskrunner.asl.states import LAMBDA_SERVICE_RETRY_ATTEMPTS
from taskrunner.asl.templates import emits_states, group_by_shape
from taskrunner.pack.models import Step
from taskrunner.plan.document import (
    ApprovalGateStep,
    MapStep,
    ParallelStep,
    Plan,
    PlanStep,
    PolicyGateStep,
    RunStep,
)

HISTORY_EVENT_LIMIT = 25_000
HISTORY_SAFETY_MARGIN = 0.8
HISTORY_EVENT_BUDGET = int(HISTORY_EVENT_LIMIT * HISTORY_SAFETY_MARGIN)
DEFINITION_BYTES_LIMIT = 1_048_576
PAYLOAD_BYTES_LIMIT = 262_144

EXECUTION_EVENTS = 2
STATE_EVENTS = 2
TASK_ATTEMPT_EVENTS = 3
CALLBACK_ATTEMPT_EVENTS = 4
CONTAINER_EVENTS = 2
ITERATION_EVENTS = 2
MAP_RUN_EVENTS = 2
LAMBDA_TASK_EVENTS = STATE_EVENTS + TASK_ATTEMPT_EVENTS * (1 + LAMBDA_SERVICE_RETRY_ATTEMPTS)
# VerifyPlan, SealEvidence + Succeed, SealFailure + Fail.
ENVELOPE_EVENTS = EXECUTION_EVENTS + 3 * LAMBDA_TASK_EVENTS + 2 * STATE_EVENTS
MAP_STATE_EVENTS = 3 * STATE_EVENTS + CONTAINER_EVENTS  # items Pass, Map, clean-up Pass
DISTRIBUTED_MAP_EVENTS = MAP_STATE_EVENTS + MAP_RUN_EVENTS

# Payload bound: the state holds the run fields (run and tenant ids are at most 256 bytes each), the
# enclosing item indices, at most one item list, and on the failure path the caught error
# (``Error`` up to 256 and ``Cause`` up to 32,768 characters, JSON-escaped).
STATE_BASE_BYTES = 1_024
ERROR_BYTES = 256 + 32_768 + 512
# A deployed definition holds function ARNs instead of ``${...}`` placeholders (unqualified ARN,
# longest partition and region, 64-character function name).
FUNCTION_ARN_MAX_BYTES = 140

_INDEX = re.compile(r"\[\d+\]::")

MapMode = Literal["INLINE", "DISTRIBUTED"]


@dataclass(frozen=True)
class MapLimits:
    """One Map state of the definition (a plan ``map``, or a ``parallel`` dispatched by index)."""

    step_id: str  # map children's enclosing indices shown as ``*``
    kind: Literal["map", "parallel"]
    items: int
    mode: MapMode
    inline_events: int  # what the Map would add to its execution's history inline
    child_history_events: int | None  # worst child execution when DISTRIBUTED

    def to_dict(self) -> dict[str, Any]:
        return {
            "stepId": self.step_id,
            "kind": self.kind,
            "items": self.items,
            "mode": self.mode,
            "inlineEvents": self.inline_events,
            "childHistoryEvents": self.child_history_events,
        }


@dataclass(frozen=True)
class LimitsReport:
    """Worst-case use of the Step Functions quotas by one compiled plan; ``ok`` when all fit."""

    history_events: int
    max_child_history_events: int
    definition_bytes: int
    deployed_definition_bytes: int
    payload_bytes: int
    maps: tuple[MapLimits, ...]
    problems: tuple[str, ...]
    history_event_limit: int = HISTORY_EVENT_LIMIT
    history_event_budget: int = HISTORY_EVENT_BUDGET
    definition_bytes_limit: int = DEFINITION_BYTES_LIMIT
    payload_bytes_limit: int = PAYLOAD_BYTES_LIMIT

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "historyEvents": {
                "worstCase": self.history_events,
                "maxChildExecution": self.max_child_history_events,
                "budget": self.history_event_budget,
                "limit": self.history_event_limit,
            },
            "definitionBytes": {
                "compiled": self.definition_bytes,
                "deployedBound": self.deployed_definition_bytes,
                "limit": self.definition_bytes_limit,
            },
            "payloadBytes": {"bound": self.payload_bytes, "limit": self.payload_bytes_limit},
            "maps": [entry.to_dict() for entry in self.maps],
            "problems": list(self.problems),
        }


def analyse_limits(plan: Plan, definition_bytes: bytes) -> LimitsReport:
    """The limits report of ``plan`` compiled to ``definition_bytes``."""
    return EventModel(plan).report(definition_bytes)


@dataclass
class _MapRecord:
    kind: Literal["map", "parallel"]
    items: int
    mode: MapMode
    inline_events: int
    child_history_events: int | None


@dataclass
class EventModel:
    """History-event estimates of a plan and the Map modes they call for (see the module docstring)."""

    plan: Plan
    distributed: set[str] = field(default_factory=set, init=False)  # map-like steps compiled DISTRIBUTED
    history_events: int = field(default=0, init=False)
    max_child_history_events: int = field(default=0, init=False)
    max_items: int = field(default=0, init=False)
    _groups: dict[str, list[list[int]]] = field(default_factory=dict, init=False)
    _inline: dict[str, int] = field(default_factory=dict, init=False)
    _maps: dict[str, _MapRecord] = field(default_factory=dict, init=False)
    _problems: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.history_events = self._execution(self.plan.steps, ENVELOPE_EVENTS, "the run")

    # -- structure shared with the compiler ---------------------------------------------------------

    def groups(self, step: MapStep) -> list[list[int]]:
        """Children of ``step`` grouped by shape (cached)."""
        cached = self._groups.get(step.id)
        if cached is None:
            cached = self._groups[step.id] = group_by_shape(step)
        return cached

    @staticmethod
    def dispatched(step: ParallelStep) -> list[PlanStep]:
        """Children of a parallel that emit states when it runs as an index-dispatching Map, else []."""
        children = [child for child in step.steps if emits_states(child)]
        return children if step.maxParallel < len(children) else []

    # -- events --------------------------------------------------------------------------------------

    def inline_events(self, step: PlanStep) -> int:
        """Events ``step`` adds to its execution's history with every map inside it inline."""
        cached = self._inline.get(step.id)
        if cached is None:
            cached = self._inline[step.id] = self._inline_events(step)
        return cached

    def _inline_events(self, step: PlanStep) -> int:
        if isinstance(step, RunStep):
            attempts = step.retries.maxAttempts + LAMBDA_SERVICE_RETRY_ATTEMPTS
            return (
                STATE_EVENTS + TASK_ATTEMPT_EVENTS * attempts + (STATE_EVENTS if step.continueOnError else 0)
            )
        if isinstance(step, ApprovalGateStep):
            return STATE_EVENTS + CALLBACK_ATTEMPT_EVENTS * (1 + LAMBDA_SERVICE_RETRY_ATTEMPTS)
        if isinstance(step, PolicyGateStep):
            return LAMBDA_TASK_EVENTS
        if not emits_states(step):
            return 0
        if isinstance(step, MapStep):
            return MAP_STATE_EVENTS + sum(
                len(indices) * (ITERATION_EVENTS + self._iteration_events(step, indices))
                for indices in self.groups(step)
            )
        tolerated = STATE_EVENTS if step.continueOnError else 0
        dispatched = self.dispatched(step)
        if dispatched:
            return MAP_STATE_EVENTS + sum(
                ITERATION_EVENTS + STATE_EVENTS + self.inline_events(child) + tolerated
                for child in dispatched
            )
        return (
            STATE_EVENTS
            + CONTAINER_EVENTS
            + sum(self.inline_events(child) + tolerated for child in step.steps if emits_states(child))
        )

    def _iteration_events(self, step: MapStep, indices: list[int]) -> int:
        """Events of one item with children ``indices`` besides the iteration's own (+ dispatching Choice)."""
        choice = STATE_EVENTS if len(self.groups(step)) > 1 else 0
        return choice + self.inline_events(step.steps[indices[0]])

    def _events(self, step: PlanStep) -> int:
        """Events ``step`` adds to its execution's history with the decisions made so far."""
        if step.id in self.distributed:
            return DISTRIBUTED_MAP_EVENTS
        if isinstance(step, ParallelStep) and not self.dispatched(step) and emits_states(step):
            tolerated = STATE_EVENTS if step.continueOnError else 0
            return (
                STATE_EVENTS
                + CONTAINER_EVENTS
                + sum(self._events(child) + tolerated for child in step.steps if emits_states(child))
            )
        return self.inline_events(step)

    # -- decisions -----------------------------------------------------------------------------------

    def _map_like(self, step: PlanStep) -> bool:
        if isinstance(step, MapStep):
            return emits_states(step)
        return isinstance(step, ParallelStep) and bool(self.dispatched(step))

    def _candidates(self, steps: list[PlanStep], found: list[PlanStep]) -> list[PlanStep]:
        """Maps of one execution not nested in another Map (a Parallel in between is fine)."""
        for step in steps:
            if self._map_like(step):
                found.append(step)
            elif isinstance(step, ParallelStep):
                self._candidates(step.steps, found)
        return found

    def _execution(self, steps: list[PlanStep], base: int, where: str) -> int:
        """Decide the maps of one execution running ``steps``; its worst-case history events."""
        total = base + sum(self._events(step) for step in steps)
        candidates = self._candidates(steps, [])
        if total > HISTORY_EVENT_BUDGET:
            by_saving = sorted(candidates, key=lambda step: DISTRIBUTED_MAP_EVENTS - self.inline_events(step))
            for step in by_saving:
                saving = self.inline_events(step) - DISTRIBUTED_MAP_EVENTS
                if total <= HISTORY_EVENT_BUDGET or saving <= 0:
                    break
                self.distributed.add(step.id)
                total -= saving
        if total > HISTORY_EVENT_BUDGET:
            switched = " even with its maps in DISTRIBUTED mode" if candidates else ""
            self._problems.append(
                f"{where} may record {total:,} history events{switched}, over the budget of "
                f"{HISTORY_EVENT_BUDGET:,} ({HISTORY_SAFETY_MARGIN:.0%} of the {HISTORY_EVENT_LIMIT:,}-event cap); "
                "split the pack or use fewer steps or retries per execution"
            )
        for step in candidates:
            self._record(step)
        return total

    def _record(self, step: PlanStep) -> None:
        """Report a map-like step; analyse its child executions when DISTRIBUTED, its inner maps if not."""
        assert isinstance(step, MapStep | ParallelStep)
        distributed = step.id in self.distributed
        if isinstance(step, MapStep):
            groups = self.groups(step)
            children = [step.steps[indices[0]] for indices in groups]
            overhead = STATE_EVENTS if len(groups) > 1 else 0
            items = len(step.steps)
        else:
            children = self.dispatched(step)
            overhead = STATE_EVENTS + (STATE_EVENTS if step.continueOnError else 0)
            items = len(children)
        self.max_items = max(self.max_items, items)
        child_events: int | None = None
        if distributed:
            child_events = 0
            for child in children:
                events = self._execution(
                    [child], EXECUTION_EVENTS + overhead, f"a child execution of {step.id!r}"
                )
                child_events = max(child_events, events)
            self.max_child_history_events = max(self.max_child_history_events, child_events)
        else:
            for child in children:
                self._record_inline(child)
        generic = _INDEX.sub("[*]::", step.id)
        previous = self._maps.get(generic)
        self._maps[generic] = _MapRecord(
            kind="map" if isinstance(step, MapStep) else "parallel",
            items=max(items, previous.items if previous else 0),
            mode="DISTRIBUTED" if distributed else "INLINE",
            inline_events=max(self.inline_events(step), previous.inline_events if previous else 0),
            child_history_events=_max_optional(
                child_events, previous.child_history_events if previous else None
            ),
        )

    def _record_inline(self, step: PlanStep) -> None:
        if self._map_like(step):
            self._record(step)
        elif isinstance(step, ParallelStep):
            for child in step.steps:
                self._record_inline(child)

    # -- report --------------------------------------------------------------------------------------

    def report(self, definition_bytes: bytes) -> LimitsReport:
        """The limits report for the definition compiled with this model's decisions."""
        size = len(definition_bytes)
        deployed = size + sum(
            FUNCTION_ARN_MAX_BYTES - len(use) for use in _PLACEHOLDER_USES.findall(definition_bytes)
        )
        payload = STATE_BASE_BYTES + ERROR_BYTES + (_items_bytes(self.max_items) if self.max_items else 0)
        problems = list(self._problems)
        if deployed > DEFINITION_BYTES_LIMIT:
            problems.append(
                f"the definition may reach {deployed:,} bytes once function ARNs are filled in, over the "
                f"{DEFINITION_BYTES_LIMIT:,}-byte limit; split the pack into smaller packs"
            )
        if payload > PAYLOAD_BYTES_LIMIT:
            problems.append(
                f"the state may reach {payload:,} bytes (a map of {self.max_items:,} items), over the "
                f"{PAYLOAD_BYTES_LIMIT:,}-byte payload limit; split the items over several maps"
            )
        maps = tuple(
            MapLimits(step_id=step_id, **vars(record)) for step_id, record in sorted(self._maps.items())
        )
        return LimitsReport(
            history_events=self.history_events,
            max_child_history_events=self.max_child_history_events,
            definition_bytes=size,
            deployed_definition_bytes=deployed,
            payload_bytes=payload,
            maps=maps,
            problems=tuple(problems),
        )


_PLACEHOLDER_USES = re.compile(rb"\$\{[A-Za-z]+\}")


def _items_bytes(count: int) -> int:
    """Bytes of ``"mapItems":[0,1,...,count-1]`` in the state."""
    return len(json.dumps({"mapItems": list(range(count))}, separators=(",", ":"))) - 2


def _max_optional(first: int | None, second: int | None) -> int | None:
    values = [value for value in (first, second) if value is not None]
    return max(values) if values else None


# -- floors: what a pack needs at least, known from its step tree before it is planned ----------------

# Every Task state of a compiled definition encodes to at least this many bytes (tested).
MIN_TASK_STATE_BYTES = 400


@dataclass(frozen=True)
class Floors:
    """Lower bounds of a pack's use of the quotas, from its steps as written (maps not expanded)."""

    history_events: int  # of the main execution: tasks outside every map and index-dispatched parallel
    definition_bytes: int  # task states outside every map, each at least MIN_TASK_STATE_BYTES

    def problems(self) -> list[str]:
        problems = []
        if self.history_events > HISTORY_EVENT_BUDGET:
            problems.append(
                f"the run would record at least {self.history_events:,} history events, over the budget of "
                f"{HISTORY_EVENT_BUDGET:,} ({HISTORY_SAFETY_MARGIN:.0%} of the {HISTORY_EVENT_LIMIT:,}-event cap)"
            )
        if self.definition_bytes > DEFINITION_BYTES_LIMIT:
            problems.append(
                f"the definition would hold at least {self.definition_bytes:,} bytes, over the "
                f"{DEFINITION_BYTES_LIMIT:,}-byte limit"
            )
        return problems


def pack_floors(steps: list[Step], max_parallel: int) -> Floors:
    """The floors of a pack whose top-level ``steps`` run with the pack's default ``max_parallel``."""
    events = tasks = 0
    stack: list[tuple[Step, bool]] = [(step, True) for step in steps]  # (step, in the main execution)
    while stack:
        step, main = stack.pop()
        if step.map is not None:
            continue  # a map may have no items, and its items may run as child executions
        if step.parallel is not None:
            children = step.parallel.steps
            inline = main and (step.parallel.maxParallel or max_parallel) >= len(children)
            stack.extend((child, inline) for child in children)
            continue
        tasks += 1
        events += LAMBDA_TASK_EVENTS if main else 0
    return Floors(ENVELOPE_EVENTS + events, tasks * MIN_TASK_STATE_BYTES)
