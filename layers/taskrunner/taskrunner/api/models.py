"""Request and response bodies of the HTTP API (DESIGN §7). Field names are camelCase on the wire.

Requests reject unknown fields (a typo fails loudly); responses ignore extra attributes and read
attributes, so a handler builds them straight from the richer store records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from taskrunner.store.records import (
    ArtifactRecord,
    AttemptStatus,
    GateRecord,
    LogLevel,
    RunRecord,
    RunStatus,
    StepKind,
    StepStatus,
)
from taskrunner.timeutil import iso

RunOutcome = Literal["succeeded", "failed", "cancelled"]
SimulationStatus = Literal["pending", "skipped", "requires-approval", "requires-policy"]
Decision = Literal["approve", "reject"]

PLAN_HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"
PlanHash = Annotated[
    str, Field(pattern=PLAN_HASH_PATTERN, description="`sha256:<hex>` of the canonical plan (RFC 8785).")
]
# Timestamps are UTC ISO-8601 with a `Z` suffix, e.g. `2026-01-02T03:04:05.678Z`.
RunId = Annotated[str, Field(description="Run identifier.")]


def _iso_text(value: object) -> object:
    return iso(value) if isinstance(value, datetime) else value


IsoTime = Annotated[str, BeforeValidator(_iso_text)]  # a record's datetime, as its UTC `Z` text


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, from_attributes=True)


# --- plans and runs -------------------------------------------------------------------------


class PlanRequest(_Request):
    """A pack and its inputs to plan; give exactly one of `manifest` and `packRef`."""

    manifest: str | dict[str, Any] | None = Field(
        None, description="The pack manifest: its YAML/JSON text or the parsed object."
    )
    packRef: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="Reference to a registered pack: `name`, `name@version` or `name@sha256:<hex>`.",
    )
    inputs: dict[str, Any] = Field(default_factory=dict, description="Input values by input name.")

    @model_validator(mode="after")
    def _one_source(self) -> PlanRequest:
        has_manifest = self.manifest is not None and self.manifest not in ("", {})
        if has_manifest == (self.packRef is not None):
            raise ValueError("give exactly one of 'manifest' (the pack text or object) and 'packRef'")
        return self


class SubmitRunRequest(PlanRequest):
    """A run to start; a repeated `idempotencyKey` returns the run it first created."""

    idempotencyKey: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Client key making the submission idempotent per tenant (letters, digits, `._:-`).",
    )


class PackInfo(_Response):
    """The planned pack."""

    name: str = Field(description="Pack name.")
    version: str = Field(description="Pack version.")
    digest: str = Field(description="`sha256:<hex>` of the canonical manifest.")


class SimulatedStep(_Response):
    """How one step would behave, decided at plan time."""

    stepId: str = Field(description="Step id; map children are `stepId[index]::templateId`.")
    kind: StepKind = Field(description="Step kind.")
    status: SimulationStatus = Field(description="Planned status.")
    parentId: str | None = Field(None, description="Enclosing parallel or map step, if any.")
    reason: str | None = Field(None, description="Why the step is skipped or gated.")


class SimulatedOutput(_Response):
    """A pack output the run would produce."""

    name: str = Field(description="Output name.")
    type: str = Field(description="Output type.")
    from_: str = Field(alias="from", description="Where the value comes from.")


class Simulation(_Response):
    """Dry run of the plan: every step's planned status and the outputs."""

    steps: list[SimulatedStep] = Field(description="Every step, depth first.")
    outputs: list[SimulatedOutput] = Field(default_factory=list, description="Declared pack outputs.")


class PlanResponse(_Response):
    """The plan of a pack with its inputs; nothing is started."""

    planHash: PlanHash
    pack: PackInfo
    plan: dict[str, Any] = Field(description="The plan document (`stellaops.io/plan.v1`).")
    simulation: Simulation


class SubmitRunResponse(_Response):
    """The accepted run."""

    runId: RunId
    planHash: PlanHash
    status: RunStatus = Field(description="Run status right after submission.")


class RunSummary(_Response):
    """One run in a listing."""

    runId: RunId
    packName: str = Field(description="Pack name.")
    packVersion: str = Field(description="Pack version.")
    planHash: PlanHash
    status: RunStatus = Field(description="Current run status.")
    outcome: RunOutcome | None = Field(None, description="Final outcome once the run is over.")
    requestedAt: IsoTime = Field(description="When the run was submitted (UTC, `Z`).")
    startedAt: IsoTime | None = Field(None, description="When execution started (UTC, `Z`).")
    completedAt: IsoTime | None = Field(None, description="When the run finished (UTC, `Z`).")
    updatedAt: IsoTime = Field(description="Last change (UTC, `Z`).")


class RunList(_Response):
    """A page of the tenant's runs, newest first."""

    items: list[RunSummary] = Field(description="Runs of this page.")
    nextCursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; absent at the end."
    )


class ErrorInfo(_Response):
    """Why an attempt failed."""

    code: str = Field(description="Error code, e.g. `StepFailed`, `States.Timeout`.")
    message: str = Field(description="What went wrong (secrets redacted).")


class AttemptOut(_Response):
    """One attempt of a run step."""

    number: int = Field(ge=1, description="Attempt number, from 1.")
    status: AttemptStatus = Field(description="Attempt status.")
    startedAt: IsoTime = Field(description="When the attempt started (UTC, `Z`).")
    completedAt: IsoTime | None = Field(None, description="When the attempt ended (UTC, `Z`).")
    error: ErrorInfo | None = Field(None, description="Failure of this attempt.")
    nextAttemptAt: IsoTime | None = Field(None, description="When the retry is scheduled (UTC, `Z`).")


class StepOut(_Response):
    """A step or gate of the run with its status and attempts."""

    stepId: str = Field(description="Step id from the pack; map children are `stepId[index]::templateId`.")
    kind: StepKind = Field(description="Step kind.")
    status: StepStatus = Field(description="Current status; an open approval gate is `waiting`.")
    parentId: str | None = Field(None, description="Enclosing parallel or map step, if any.")
    attempts: list[AttemptOut] = Field(default_factory=list, description="Attempts, oldest first.")
    outputs: dict[str, Any] | None = Field(None, description="Recorded outputs once succeeded.")


class PendingGateOut(_Response):
    """An approval gate waiting for decisions."""

    gateId: str = Field(description="Gate step id.")
    approvalId: str = Field(description="Approval id from `spec.approvals`.")
    requiredCount: int = Field(ge=1, description="Approvals needed to pass.")
    approvals: int = Field(ge=0, description="Approvals recorded so far.")
    expiresAt: IsoTime | None = Field(None, description="When the gate expires and the run fails (UTC, `Z`).")
    reason: str | None = Field(None, description="Why approval is requested.")

    @classmethod
    def of(cls, gate: GateRecord) -> PendingGateOut:
        return cls(
            gateId=gate.gateId,
            approvalId=gate.approvalId,
            requiredCount=gate.requiredCount,
            approvals=_approvals(gate),
            expiresAt=gate.expiresAt,
            reason=gate.reason,
        )


class RunDetail(_Response):
    """A run: status, every step with its attempts, and pending gates."""

    runId: RunId
    tenantId: str = Field(description="Owning tenant.")
    pack: PackInfo
    planHash: PlanHash
    status: RunStatus = Field(description="Current run status.")
    outcome: RunOutcome | None = Field(None, description="Final outcome once the run is over.")
    requestedAt: IsoTime = Field(description="When the run was submitted (UTC, `Z`).")
    startedAt: IsoTime | None = Field(None, description="When execution started (UTC, `Z`).")
    completedAt: IsoTime | None = Field(None, description="When the run finished (UTC, `Z`).")
    updatedAt: IsoTime = Field(description="Last change (UTC, `Z`).")
    error: ErrorInfo | None = Field(None, description="Why the run failed, once it did.")
    steps: list[StepOut] = Field(description="Every step and gate, depth first.")
    pendingGates: list[PendingGateOut] = Field(
        default_factory=list, description="Gates waiting for decisions."
    )

    @classmethod
    def of(cls, run: RunRecord, statuses: Mapping[str, str], gates: Sequence[GateRecord]) -> RunDetail:
        """``run`` with its steps' ``statuses`` where given (containers of a live run) and its waiting ``gates``."""
        summary = RunSummary.model_validate(run)
        return cls(
            **dict(summary),
            tenantId=run.tenantId,
            pack=PackInfo(name=run.packName, version=run.packVersion, digest=run.plan["pack"]["digest"]),
            error=ErrorInfo.model_validate(run.error) if run.error else None,
            steps=[
                StepOut.model_validate(s).model_copy(update={"status": statuses.get(s.stepId, s.status)})
                for s in run.steps
            ],
            pendingGates=[PendingGateOut.of(g) for g in gates],
        )


# --- logs, artifacts, evidence --------------------------------------------------------------


class LogEventOut(_Response):
    """One run log event; `sequence` is the SSE event id. Missing sequences arrive as one `log.gap` event
    (level `warn`, `sequence` = the last missing one, metadata `firstSequence`, `lastSequence` and `cause`:
    `unwritten` = reserved by a writer that stopped, `lost` = written, then deleted or expired)."""

    runId: RunId
    sequence: int = Field(
        ge=0, description="Position in the run's log, increasing; a `log.gap` event covers missing ones."
    )
    timestamp: IsoTime = Field(description="When the event happened (UTC, `Z`).")
    eventType: str = Field(description="Event type, e.g. `step.started`, `run.completed`.")
    level: LogLevel = Field(description="Severity.")
    message: str = Field(description="Human-readable message (secrets redacted).")
    stepId: str | None = Field(None, description="Step the event is about.")
    metadata: dict[str, str] = Field(default_factory=dict, description="Extra fields, all values strings.")


class LogPage(_Response):
    """A page of log events in sequence order."""

    items: list[LogEventOut] = Field(description="Events of this page.")
    nextCursor: str | None = Field(
        None, description="Sequence to pass as `after` for the next page; absent when nothing follows yet."
    )
    complete: bool = Field(description="The run is over and every event has been returned.")


class ArtifactOut(_Response):
    """A captured artifact."""

    name: str = Field(description="Artifact name, unique in the run.")
    type: str = Field(description="Artifact type, e.g. `file`, `bundle`, `evidence`.")
    sha256: str = Field(description="Hex SHA-256 of the content.")
    size: int = Field(ge=0, description="Size in bytes.")
    storedPath: str = Field(description="Where it is stored (S3 key or local path).")
    status: str = Field(description="Capture status, e.g. `captured`.")
    url: str | None = Field(None, description="Presigned download URL, when available.")

    @classmethod
    def of(cls, artifact: ArtifactRecord, url: str | None) -> ArtifactOut:
        return cls.model_validate(artifact).model_copy(update={"url": url})


class ArtifactList(_Response):
    """Artifacts of a run."""

    items: list[ArtifactOut] = Field(description="Artifacts, by name.")


class EvidenceVerification(_Response):
    """The bundle checked against the deployment's signing key (as `taskrunner verify --require-dsse`)."""

    verified: bool = Field(description="The signed manifest, every digest and every signature check out.")
    summary: str = Field(description="One line saying what was found.")
    failures: list[str] = Field(default_factory=list, description="What did not check out (at most 50).")


class EvidenceOut(_Response):
    """The sealed evidence bundle of a run."""

    runId: RunId
    location: str = Field(description="Where the bundle is stored (S3 URI or local path).")
    sha256: str = Field(description="Hex SHA-256 of the bundle.")
    size: int = Field(ge=0, description="Size in bytes.")
    url: str | None = Field(None, description="Presigned download URL, when available.")
    verification: EvidenceVerification | None = Field(None, description="The bundle verified on the server.")


# --- approvals, cancel, resume ----------------------------------------------------------------


class DsseSignature(BaseModel):
    """A DSSE signature."""

    model_config = ConfigDict(extra="forbid")

    keyid: str = Field("", description="Key identifier (may be empty).")
    sig: str = Field(min_length=1, description="Base64 signature over the PAE of the payload.")


class DsseEnvelope(BaseModel):
    """A DSSE v1 envelope."""

    model_config = ConfigDict(extra="forbid")

    payloadType: str = Field(min_length=1, description="Media type of the payload.")
    payload: str = Field(min_length=1, description="Base64 payload.")
    signatures: list[DsseSignature] = Field(
        description="Signatures; a decision without one from a trusted key is refused (403)."
    )


class ApproveRequest(_Request):
    """A decision on an approval gate, bound to the plan and signed."""

    gateId: str = Field(min_length=1, max_length=256, description="Gate step id.")
    decision: Decision = Field(description="`approve` or `reject`.")
    reason: str | None = Field(None, max_length=4000, description="Why; recorded in the approvals ledger.")
    planHash: PlanHash
    envelope: DsseEnvelope = Field(description="DSSE envelope signing the decision.")


class GateOut(_Response):
    """An approval gate after a decision."""

    runId: RunId
    gateId: str = Field(description="Gate step id.")
    status: Literal["waiting", "approved", "rejected", "expired"] = Field(description="Gate status.")
    decision: Decision = Field(description="The decision just recorded.")
    requiredCount: int = Field(ge=1, description="Approvals needed to pass.")
    approvals: int = Field(ge=0, description="Approvals recorded so far.")

    @classmethod
    def of(cls, gate: GateRecord, decision: Decision) -> GateOut:
        return cls.model_validate(
            {
                "runId": gate.runId,
                "gateId": gate.gateId,
                "status": gate.status,  # never cancelled right after a decision
                "decision": decision,
                "requiredCount": gate.requiredCount,
                "approvals": _approvals(gate),
            }
        )


class ApprovalTokenRequest(_Request):
    """No fields: the run and gate are in the path, the caller is the identity token's subject."""


class ApprovalTokenOut(_Response):
    """An approval token for one run, gate and plan (send it to `POST /api/runs/{runId}/approve`)."""

    token: str = Field(
        description="ES256 JWT (`aud` taskrunner-approvals); verify it with the issuer's JWKS."
    )
    tokenType: Literal["Bearer"] = Field("Bearer", description="Send as `Authorization: Bearer <token>`.")
    expiresAt: IsoTime = Field(description="When the token expires (UTC, `Z`); never after the gate does.")
    expiresIn: int = Field(ge=0, description="Seconds until `expiresAt`.")
    runId: RunId
    gateId: str = Field(description="Gate step id (`pack_gate_id`).")
    tenantId: str = Field(description="The caller's tenant (`tenant_id`).")
    planHash: PlanHash
    approval: str = Field(description="The gate's approval id.")
    grants: list[str] = Field(description="Grants of the approval, carried in the token's `scope`.")


class JsonWebKey(_Response):
    """An EC P-256 public key (RFC 7517)."""

    kty: Literal["EC"]
    crv: Literal["P-256"]
    x: str
    y: str
    kid: str = Field(description="Key id: hex SHA-256 of the DER SubjectPublicKeyInfo.")
    use: Literal["sig"]
    alg: Literal["ES256"]


class JwksOut(_Response):
    """The keys approval tokens are signed with."""

    keys: list[JsonWebKey]


class OpenIdConfigurationOut(_Response):
    """Discovery document of the approval-token issuer (the subset API Gateway's JWT authorizer reads)."""

    issuer: str = Field(description="The `iss` of approval tokens.")
    jwks_uri: str = Field(description="Where the signing keys are published.")
    id_token_signing_alg_values_supported: list[str]
    token_endpoint_auth_methods_supported: list[str] = Field(default_factory=lambda: ["none"])
    scopes_supported: list[str]
    claims_supported: list[str]
    response_types_supported: list[str] = Field(default_factory=lambda: ["token"])
    subject_types_supported: list[str] = Field(default_factory=lambda: ["public"])


def _approvals(gate: GateRecord) -> int:
    return sum(1 for d in gate.decisions if d.decision == "approve")


class CancelResponse(_Response):
    """A run after a cancel request."""

    runId: RunId
    status: RunStatus = Field(description="Run status after the request.")


class ResumeResponse(_Response):
    """A run after a resume request."""

    runId: RunId
    status: RunStatus = Field(description="Run status after the request.")
    executionName: str | None = Field(None, description="Name of the new state machine execution.")


# --- approver keys --------------------------------------------------------------------------

KeyStatus = Literal["active", "pending", "revoked"]


class EnrolKeyRequest(_Request):
    """A public key for the caller to sign gate decisions with."""

    publicKeyPem: str = Field(
        min_length=1, max_length=4096, description="SPKI PEM of an ECDSA P-256 or Ed25519 public key."
    )
    label: str = Field(
        min_length=1, max_length=64, description="What holds the key (1-64 printable characters)."
    )


class ApproverKeyOut(_Response):
    """An enrolled approver key."""

    keyId: str = Field(
        description="Hex SHA-256 of the DER public key: the keyid of the approver's DSSE signatures."
    )
    approver: str = Field(description="The approver (the enrolling token's `sub`).")
    tenantId: str
    label: str
    status: KeyStatus = Field(description="`active` keys sign decisions; `pending` awaits an administrator.")
    enrolledAt: str
    confirmedBy: str | None = None
    confirmedAt: str | None = None
    revokedAt: str | None = None


class ApproverKeysOut(_Response):
    """The caller's enrolled keys."""

    items: list[ApproverKeyOut]


# --- the approvals inbox and the gate page -------------------------------------------------------


class DecisionOut(_Response):
    """One approver's recorded decision."""

    approver: str = Field(description="Who decided (the token's `sub`).")
    decision: Decision = Field(description="`approve` or `reject`.")
    reason: str | None = Field(None, description="Why, as the approver wrote it.")
    decidedAt: IsoTime = Field(description="When (UTC, `Z`).")


class ApprovalOut(_Response):
    """A gate waiting for decisions, as the approvals inbox lists it."""

    runId: RunId
    gateId: str = Field(description="Gate step id.")
    packName: str = Field(description="Pack name.")
    packVersion: str = Field(description="Pack version.")
    planHash: PlanHash
    approvalId: str = Field(description="Approval id from `spec.approvals`.")
    reason: str | None = Field(None, description="Why approval is requested.")
    message: str | None = Field(None, description="The gate's message.")
    requiredCount: int = Field(ge=1, description="Approvals needed to pass.")
    decisions: list[DecisionOut] = Field(description="Decisions so far, oldest first.")
    grants: list[str] = Field(description="Scopes an approver must hold.")
    openedAt: IsoTime = Field(description="When the gate opened (UTC, `Z`).")
    expiresAt: IsoTime | None = Field(None, description="When the gate expires and the run fails (UTC, `Z`).")
    canDecide: bool = Field(description="The caller holds every grant and has not decided yet.")

    @classmethod
    def of(cls, run: RunRecord, gate: GateRecord, scopes: frozenset[str], subject: str) -> ApprovalOut:
        decided = any(d.approver == subject for d in gate.decisions)
        return cls.model_validate(
            {
                **gate.model_dump(exclude={"taskToken", "decisions"}),
                "packName": run.packName,
                "packVersion": run.packVersion,
                "decisions": [DecisionOut.model_validate(d) for d in gate.decisions],
                "canDecide": gate.status == "waiting"
                and not decided
                and "packs.approve" in scopes
                and set(gate.grants) <= scopes,
            }
        )


class ApprovalList(_Response):
    """The tenant's gates waiting for decisions, newest first."""

    items: list[ApprovalOut] = Field(description="Waiting gates.")


class RemainingStep(_Response):
    """A step that runs once the gate passes."""

    stepId: str = Field(description="Step id.")
    kind: StepKind = Field(description="Step kind.")
    parentId: str | None = Field(None, description="Enclosing parallel or map step, if any.")


class GateDetail(ApprovalOut):
    """Everything an approver decides on: the pack, the plan, the inputs, what runs next, the time left."""

    tenantId: str = Field(description="Owning tenant.")
    status: Literal["waiting", "approved", "rejected", "expired", "cancelled"] = Field(
        description="Gate status."
    )
    pack: PackInfo
    inputs: dict[str, Any] = Field(description="The run's inputs; secrets only as their reference.")
    remainingSteps: list[RemainingStep] = Field(description="Steps still to run after the gate.")
    secondsLeft: int | None = Field(None, description="Seconds until the gate expires (0 once expired).")
    closedAt: IsoTime | None = Field(None, description="When the gate closed (UTC, `Z`).")


# ---------------------------------------------------------------- pack registry
class PublishPackRequest(_Request):
    """A pack version to publish: the files ``taskrunner packs build`` and ``packs sign`` write."""

    bundle: str | None = Field(None, max_length=8_000_000, description="bundle.tar.gz, base64.")
    envelope: dict[str, Any] | None = Field(None, description="bundle.dsse.json: the DSSE envelope.")
    sbom: str | None = Field(
        None, max_length=4_000_000, description="sbom.cdx.json, base64 (its exact bytes)."
    )


class PromotePackRequest(_Request):
    """Point a channel at a published version."""

    version: str = Field(min_length=1, max_length=128, description="The version, e.g. 1.2.0.")
    channel: Literal["stable", "edge", "beta"]


class PackVersionOut(_Response):
    """A verified registry version."""

    name: str
    version: str
    digest: str = Field(description="sha256 of bundle.tar.gz.")
    publisherKeyIds: list[str]
    sbom: str = Field(description="Where the SBOM is stored.")
    bundle: str | None = Field(None, description="Where the bundle is stored.")
    manifest: str | None = Field(None, description="The pack manifest (pack.yaml).")
    envelope: dict[str, Any] | None = Field(None, description="The DSSE envelope over the bundle statement.")


class PackOut(_Response):
    """A published pack: its versions, tags and channels."""

    name: str
    versions: list[str]
    tags: list[str]
    channels: dict[str, str]


class PackList(_Response):
    items: list[PackOut]


class PackChannelsOut(_Response):
    name: str
    channels: dict[str, str]


class RevocationListOut(_Response):
    """A tenant's revocation list as stored: the envelope and the document it signs."""

    envelope: DsseEnvelope = Field(
        description="The signed list (payloadType application/vnd.taskrunner.pack-revocations+json)."
    )
    tenant: str = Field(description="The tenant it belongs to.")
    versions: list[dict[str, str]] = Field(description="Revoked versions: pack, version, reason.")
    keys: list[dict[str, str]] = Field(description="Revoked publisher keys: keyid, reason.")
