"""Map children as templates: how their step ids are rendered at run time and which children share a shape.

The planner expands a ``map`` into one child per item, ``<mapId>[<index>]::<templateId>``, and gives every
descendant of a child the same ``<mapId>[<index>]::`` prefix. Children differ only by that index (and by
their items, which the Lambdas read from the stored plan), so the compiler emits one ItemProcessor per
distinct *shape* and renders step ids from the item index with ``States.Format``. A shape is everything
that changes the ASL: step kinds, ids relative to the child's prefix, retry policies, timeouts,
continue-on-error flags, ``maxParallel`` and the number of items of nested maps.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from taskrunner.errors import TaskRunnerError
from taskrunner.plan.document import (
    ApprovalGateStep,
    MapStep,
    ParallelStep,
    PlanStep,
    PolicyGateStep,
    RunStep,
)


def compile_error(message: str, remediation: str = "") -> TaskRunnerError:
    """The error the compiler raises for a plan it cannot turn into a state machine."""
    return TaskRunnerError(
        message,
        code="CompileError",
        remediation=remediation or "Re-create the plan with `taskrunner plan` and compile it again.",
    )


@dataclass(frozen=True)
class StepIds:
    """How states inside (nested) map templates name the plan step they stand for.

    ``prefix`` is the concrete id prefix of the child compiled as the template (``""`` outside any map);
    ``chunks`` is that prefix as literal pieces with an item-index hole between consecutive pieces, and
    ``fields`` names the state field holding each hole's index.
    """

    prefix: str = ""
    chunks: tuple[str, ...] = ("",)
    fields: tuple[str, ...] = ()

    def enter(self, map_step: MapStep, index: int, field: str) -> StepIds:
        """The ids inside child ``index`` of ``map_step``, whose item index is in state field ``field``."""
        relative = self.relative(map_step.id)
        return StepIds(
            prefix=f"{map_step.id}[{index}]::",
            chunks=(*self.chunks[:-1], self.chunks[-1] + relative + "[", "]::"),
            fields=(*self.fields, field),
        )

    def relative(self, step_id: str) -> str:
        """``step_id`` without the current child prefix."""
        if not step_id.startswith(self.prefix):
            raise compile_error(
                f"Step {step_id!r} is inside map child {self.prefix[:-2]!r} but its id does not start "
                f"with {self.prefix!r}."
            )
        return step_id[len(self.prefix) :]

    def chunks_of(self, step_id: str) -> tuple[str, ...]:
        """Literal pieces of ``step_id`` around the item-index holes."""
        return (*self.chunks[:-1], self.chunks[-1] + self.relative(step_id))

    def generic(self, step_id: str) -> str:
        """``step_id`` with every enclosing item index shown as ``*`` (``scan-all[*]::scan``)."""
        if not self.prefix:
            return step_id
        return "*".join(self.chunks_of(step_id))


def emits_states(step: PlanStep) -> bool:
    """Whether ``step`` compiles to any state (maps without items, and containers of only those, do not)."""
    if isinstance(step, ParallelStep | MapStep):
        return any(emits_states(child) for child in step.steps)
    return True


def check_map_children(step: MapStep) -> None:
    """Raise when the children of ``step`` do not follow ``<mapId>[<index>]::<templateId>``."""
    if len(step.items) != len(step.steps):
        raise compile_error(
            f"Map step {step.id!r} has {len(step.items)} items but {len(step.steps)} children."
        )
    for index, child in enumerate(step.steps):
        expected = f"{step.id}[{index}]::{step.templateId}"
        if child.id != expected:
            raise compile_error(
                f"Child {index} of map step {step.id!r} is {child.id!r}; expected {expected!r}."
            )


def group_by_shape(step: MapStep) -> list[list[int]]:
    """Indices of the children of ``step`` grouped by shape, groups in order of first appearance."""
    check_map_children(step)
    groups: dict[Hashable, list[int]] = {}
    for index, child in enumerate(step.steps):
        groups.setdefault(_shape(child, f"{step.id}[{index}]::"), []).append(index)
    return list(groups.values())


def _shape(step: PlanStep, prefix: str) -> Hashable:
    if not step.id.startswith(prefix):
        raise compile_error(
            f"Step {step.id!r} is inside map child {prefix[:-2]!r} but its id does not start with {prefix!r}."
        )
    relative = step.id[len(prefix) :]
    if isinstance(step, RunStep):
        retries = step.retries
        return (
            "run",
            relative,
            retries.maxAttempts,
            retries.backoffSeconds,
            retries.backoffRate,
            step.continueOnError,
            step.timeoutSeconds,
        )
    if isinstance(step, ParallelStep):
        children = tuple(_shape(child, prefix) for child in step.steps)
        return ("parallel", relative, step.maxParallel, step.continueOnError, children)
    if isinstance(step, MapStep):
        children = tuple(_shape(child, prefix) for child in step.steps)
        return ("map", relative, step.maxParallel, step.templateId, children)
    if isinstance(step, ApprovalGateStep):
        return ("gate.approval", relative, step.expiresAfterSeconds)
    if isinstance(step, PolicyGateStep):
        return ("gate.policy", relative)
    raise compile_error(f"Step {step.id!r} has an unknown kind.")  # pragma: no cover - closed union
