"""The plan document: the resolved, hashable form of a pack that every later stage consumes.

Field names are camelCase on the wire. A plan holds no timestamps, run ids or tenant, so the same
manifest and inputs always give byte-identical canonical JSON (see ``taskrunner.plan.hashing``).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

PLAN_API_VERSION: Final = "stellaops.io/plan.v1"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class RetryPolicy(_Doc):
    """Effective retry policy of a run step (defaults: 1 attempt, no backoff)."""

    maxAttempts: int = Field(1, ge=1)
    backoffSeconds: float = Field(0, ge=0)
    backoffRate: float = Field(2.0, ge=1.0)


class FailurePolicy(_Doc):
    retries: RetryPolicy = RetryPolicy()
    continueOnError: bool = False


class PackRef(_Doc):
    name: str
    version: str
    digest: str  # sha256:<hex> of the canonical JSON of the parsed manifest


class SecretRef(_Doc):
    name: str
    ref: str


class PlannedApproval(_Doc):
    id: str
    grants: list[str]
    requiredCount: int = Field(1, ge=1)
    expiresAfter: str  # ISO-8601 duration as written, e.g. PT4H
    expiresAfterSeconds: int = Field(ge=1)
    reason: str | None = None  # reasonTemplate rendered over inputs


class PlannedPolicy(_Doc):
    id: str
    expression: str


class Sandbox(_Doc):
    mode: Literal["sealed", "restricted"]
    egressAllowlist: list[str]
    cpuSeconds: int | None = None
    memoryMiB: int | None = None
    wallClockSeconds: int | None = None


class Slo(_Doc):
    runP95Seconds: int | None = None
    approvalP95Seconds: int | None = None
    maxQueueDepth: int | None = None


class Security(_Doc):
    secretsRedactionPolicy: Literal["hash", "blank"] = "hash"


class PlannedOutput(_Doc):
    name: str
    type: str
    from_: str = Field(alias="from")


class _StepBase(_Doc):
    id: str  # unique in the plan; map children are ``stepId[index]::templateId``
    when: str | None = None  # the JMESPath condition as written (kept for audit)
    whenResolved: bool | None = None  # plan-time value; None -> evaluated by the executor at run time
    index: int | None = None  # set on map children (and their descendants): the item's position
    item: Any = None  # set on map children: the item itself, for templates resolved at run time


class RunStep(_StepBase):
    kind: Literal["run"] = "run"
    uses: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")  # input-only templates resolved
    outputs: list[str] = Field(default_factory=list)
    retries: RetryPolicy = RetryPolicy()
    continueOnError: bool = False
    timeoutSeconds: int | None = None


class ParallelStep(_StepBase):
    kind: Literal["parallel"] = "parallel"
    maxParallel: int = Field(ge=1)
    continueOnError: bool = False
    steps: list[PlanStep]


class MapStep(_StepBase):
    kind: Literal["map"] = "map"
    maxParallel: int = Field(ge=1)
    templateId: str
    items: list[Any]
    steps: list[PlanStep]  # one expanded child per item, id ``<mapId>[<index>]::<templateId>``


class ApprovalGateStep(_StepBase):
    kind: Literal["gate.approval"] = "gate.approval"
    approval: str
    message: str | None = None
    requiredCount: int = Field(1, ge=1)
    grants: list[str] = Field(default_factory=list)
    expiresAfterSeconds: int = Field(ge=1)


class PolicyGateStep(_StepBase):
    kind: Literal["gate.policy"] = "gate.policy"
    policy: str
    expression: str
    failAction: Literal["halt", "continue"] = "halt"


PlanStep = Annotated[
    RunStep | ParallelStep | MapStep | ApprovalGateStep | PolicyGateStep,
    Field(discriminator="kind"),
]


class Plan(_Doc):
    apiVersion: Literal["stellaops.io/plan.v1"] = PLAN_API_VERSION
    pack: PackRef
    inputs: dict[str, Any]
    secrets: list[SecretRef] = Field(default_factory=list)
    approvals: list[PlannedApproval] = Field(default_factory=list)
    policies: list[PlannedPolicy] = Field(default_factory=list)
    sandbox: Sandbox
    slo: Slo | None = None
    security: Security = Security()
    failure: FailurePolicy = FailurePolicy()
    maxParallel: int = Field(4, ge=1)
    steps: list[PlanStep]
    outputs: list[PlannedOutput] = Field(default_factory=list)

    def to_document(self) -> dict[str, Any]:
        """The JSON document that is hashed and stored as ``plan.json``."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


ParallelStep.model_rebuild()
MapStep.model_rebuild()


def iter_steps(steps: list[PlanStep]) -> Any:
    """Yield every step of a step tree, depth first, parents before children."""
    for step in steps:
        yield step
        if isinstance(step, ParallelStep | MapStep):
            yield from iter_steps(step.steps)
