"""The run attestation: an in-toto Statement v1 with the pack-run predicate (DESIGN §8)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from taskrunner.errors import ValidationFailed
from taskrunner.evidence.fields import is_digest, is_timestamp
from taskrunner.evidence.layout import PREDICATE_TYPE, STATEMENT_TYPE
from taskrunner.plan.document import PackRef

RunOutcome = Literal["succeeded", "failed", "cancelled"]
OUTCOMES: tuple[str, ...] = get_args(RunOutcome)
STEP_STATUSES = frozenset(
    {"pending", "running", "succeeded", "failed", "skipped", "cancelled"}
    | {"waiting", "approved", "rejected", "expired"}
)
_PREDICATE_STRINGS = ("runId", "tenantId", "outcome", "requestedAt", "completedAt")
_PREDICATE_DIGESTS = ("planHash", "inputsLockDigest", "inputsDigest", "approvalsLedgerDigest")


@dataclass(frozen=True)
class StepSummary:
    """A step's final status and how many attempts it took (gates count one per decision)."""

    step_id: str
    status: str
    attempts: int

    def to_json(self) -> dict[str, Any]:
        return {"stepId": self.step_id, "status": self.status, "attempts": self.attempts}


def build_statement(
    *,
    run_id: str,
    tenant_id: str,
    pack: PackRef,
    plan_hash: str,
    inputs_lock_digest: str,
    inputs_digest: str,
    output_digests: Mapping[str, str],
    steps: Sequence[StepSummary],
    approvals_ledger_digest: str,
    outcome: RunOutcome,
    requested_at: str,
    started_at: str | None,
    completed_at: str,
) -> dict[str, Any]:
    """The Statement for a finished run; ``output_digests`` maps subject name to ``sha256:<hex>``.

    ``started_at`` is ``None`` for a run cancelled before it started (``startedAt`` is then omitted).

    Raises :class:`ValidationFailed` naming every malformed field.
    """
    problems: list[str] = []
    if outcome not in OUTCOMES:
        problems.append(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    for label, value in (
        ("planHash", plan_hash),
        ("inputsLockDigest", inputs_lock_digest),
        ("inputsDigest", inputs_digest),
        ("approvalsLedgerDigest", approvals_ledger_digest),
        *((f"output {name!r}", digest) for name, digest in output_digests.items()),
    ):
        if not is_digest(value):
            problems.append(f"{label} {value!r} is not a sha256:<64 hex> digest")
    times: dict[str, str | None] = {
        "requestedAt": requested_at,
        "startedAt": started_at,
        "completedAt": completed_at,
    }
    for label, moment in times.items():
        if not is_timestamp(moment) and not (label == "startedAt" and moment is None):
            problems.append(f"{label} {moment!r} is not an ISO-8601 UTC timestamp ending in Z")
    for step in steps:
        if step.status not in STEP_STATUSES:
            problems.append(f"step {step.step_id!r} has unknown status {step.status!r}")
        if step.attempts < 0:
            problems.append(f"step {step.step_id!r} has a negative attempt count")
    if problems:
        raise ValidationFailed(
            "cannot build the run attestation: " + "; ".join(problems),
            problems=[{"message": p} for p in problems],
        )
    names = sorted(output_digests)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {"sha256": output_digests[name].removeprefix("sha256:")}}
            for name in names
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "runId": run_id,
            "tenantId": tenant_id,
            "pack": {"name": pack.name, "version": pack.version, "digest": pack.digest},
            "planHash": plan_hash,
            "inputsLockDigest": inputs_lock_digest,
            "inputsDigest": inputs_digest,
            "outputDigests": {name: output_digests[name] for name in names},
            "steps": [step.to_json() for step in steps],
            "approvalsLedgerDigest": approvals_ledger_digest,
            "outcome": outcome,
            **{name: value for name, value in times.items() if value is not None},
        },
    }


def statement_problems(statement: Any) -> list[str]:
    """Structural problems of a parsed Statement (empty when it has the pack-run shape)."""
    if not isinstance(statement, dict):
        return ["the statement is not a JSON object"]
    problems = []
    if statement.get("_type") != STATEMENT_TYPE:
        problems.append(f"_type is {statement.get('_type')!r}, expected {STATEMENT_TYPE!r}")
    if statement.get("predicateType") != PREDICATE_TYPE:
        problems.append(f"predicateType is {statement.get('predicateType')!r}, expected {PREDICATE_TYPE!r}")
    subject = statement.get("subject")
    if not isinstance(subject, list) or not all(
        isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("digest"), dict)
        for s in subject
    ):
        problems.append("subject is not a list of {name, digest} objects")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        return [*problems, "predicate is not a JSON object"]
    for name in _PREDICATE_STRINGS:
        if not isinstance(predicate.get(name), str):
            problems.append(f"predicate.{name} is missing or not a string")
    for name in _PREDICATE_DIGESTS:
        if not is_digest(predicate.get(name)):
            problems.append(f"predicate.{name} is missing or not a sha256:<64 hex> digest")
    if "startedAt" in predicate and not isinstance(predicate["startedAt"], str):
        problems.append("predicate.startedAt is not a string")
    if predicate.get("outcome") not in OUTCOMES:
        problems.append(f"predicate.outcome {predicate.get('outcome')!r} is not one of {', '.join(OUTCOMES)}")
    if not isinstance(predicate.get("pack"), dict):
        problems.append("predicate.pack is missing")
    if not isinstance(predicate.get("outputDigests"), dict):
        problems.append("predicate.outputDigests is missing")
    if not isinstance(predicate.get("steps"), list):
        problems.append("predicate.steps is missing")
    return problems
