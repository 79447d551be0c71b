"""Evidence of a finished run: the signed, byte-deterministic bundle built from the store and artifact store."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, cast
from urllib.parse import unquote, urlparse

from taskrunner.engine.approver_keys import enrolment_envelopes
from taskrunner.engine.registry import release_files
from taskrunner.engine.services import Services
from taskrunner.engine.spool import SpaceCheckedWriter
from taskrunner.errors import Conflict, NotFound
from taskrunner.evidence.attestation import RunOutcome, StepSummary
from taskrunner.evidence.bundle import ArtifactSource, BundleInput, PackRelease, write_bundle
from taskrunner.evidence.dsse import envelope_keyids
from taskrunner.evidence.signing import (
    EvidenceSigner,
    ensure_ed25519_keyfile,
    signer_from_uri,
)
from taskrunner.keys import artifact_key, evidence_key
from taskrunner.plan.document import Plan
from taskrunner.plan.inputs_lock import build_inputs_lock
from taskrunner.store.records import TERMINAL_RUN_STATUSES, GateRecord, RunRecord
from taskrunner.streams import HashingReader, iter_chunks
from taskrunner.timeutil import iso

EVIDENCE_MEDIA_TYPE = "application/gzip"


def run_signer(svc: Services) -> EvidenceSigner:
    """The deployment's evidence signer; the local file key is created on first use.

    A key file stands in for KMS locally: ``svc.guard_signer`` authorizes it as the KMS calls it replaces.
    """
    uri = svc.signing_key_uri
    parsed = urlparse(uri)
    if parsed.scheme == "awskms":
        return signer_from_uri(uri)
    if parsed.scheme == "file" and not Path(unquote(parsed.path)).exists():
        return svc.guard_signer(ensure_ed25519_keyfile(Path(unquote(parsed.path))))
    return svc.guard_signer(signer_from_uri(uri))


def _steps(run: RunRecord, gates: Mapping[str, GateRecord]) -> list[StepSummary]:
    return [
        StepSummary(
            s.stepId, s.status, len(gates[s.stepId].decisions) if s.stepId in gates else len(s.attempts)
        )
        for s in run.steps
    ]


def bundle_input(svc: Services, run: RunRecord, stack: contextlib.ExitStack) -> BundleInput:
    """Everything the bundle holds, read from the stores. Timestamps come from the run, so a rebuild is identical.

    The artifact streams are opened on ``stack``, which closes them.
    """
    if run.status not in TERMINAL_RUN_STATUSES or run.completedAt is None:
        raise Conflict(
            f"run {run.runId} is {run.status}; its evidence is built once it has finished",
            remediation="wait for the run to finish",
        )
    outcome = cast(RunOutcome, run.status)
    plan = Plan.model_validate(run.plan)
    secrets = svc.secret_values(plan.secrets, strict=False)  # unresolved -> <unresolved> in the lock
    gates = {g.gateId: g for g in svc.store.list_gates(run.runId)}
    ledger = sorted((d for g in gates.values() for d in g.decisions), key=lambda d: (d.decidedAt, d.approver))
    completed = iso(run.completedAt)
    return BundleInput(
        run_id=run.runId,
        tenant_id=run.tenantId,
        environment=svc.environment,
        plan=plan,
        plan_hash=run.planHash,
        inputs_lock=build_inputs_lock(plan, redaction_key=svc.redaction_key, secret_values=secrets),
        outcome=outcome,
        requested_at=iso(run.requestedAt),
        started_at=iso(run.startedAt) if run.startedAt else None,
        completed_at=completed,
        created=completed,
        steps=_steps(run, gates),
        signers=[run_signer(svc)],
        outputs=run.outputs or {},
        artifacts=[
            ArtifactSource(
                a.name,
                stack.enter_context(svc.artifacts.open(artifact_key(run.runId, a.name))),
                a.sha256,
                a.size,
            )
            for a in svc.store.list_artifacts(run.runId)
            if a.sha256
        ],
        logs=(e.model_dump(mode="json", exclude_none=True) for e in svc.store.read_logs(run.runId)),
        approvals=[d.envelope for d in ledger],
        approver_keys=enrolment_envelopes(
            svc, run.tenantId, ((d.approver, k) for d in ledger for k in envelope_keyids(d.envelope))
        ),
        secret_values=list(secrets.values()),
        redaction_key=svc.redaction_key,
        pack_release=_pack_release(svc, run),
    )


def _pack_release(svc: Services, run: RunRecord) -> PackRelease | None:
    """The registry version the run ran, as recorded at submit, with its stored envelope and SBOM."""
    release = run.packRelease
    if release is None:
        return None
    envelope, sbom = release_files(svc, run.tenantId, release["name"], release["version"])
    return PackRelease(release["digest"], release["keyIds"], envelope, sbom)


def build_bundle(svc: Services, run: RunRecord, out: BinaryIO) -> str:
    """Build the run's evidence bundle from the stores into ``out``; returns ``sha256:<hex>``."""
    with contextlib.ExitStack() as stack:
        return write_bundle(bundle_input(svc, run, stack), out)


def _sealed_bundle_intact(svc: Services, run: RunRecord) -> bool:
    """True when the sealed bundle is stored and still has the digest and size recorded on the run."""
    evidence = run.evidence or {}
    if not evidence.get("sha256"):
        return False
    try:
        with svc.artifacts.open(evidence_key(run.runId)) as stored:
            reader = HashingReader(stored)
            for _ in iter_chunks(reader):
                pass
    except NotFound:
        return False
    return reader.hexdigest() == evidence["sha256"] and reader.size == evidence.get("size")


def export_bundle(svc: Services, run: RunRecord, out: BinaryIO) -> str:
    """Write the run's evidence bundle to ``out``; returns ``sha256:<hex>``.

    The sealed bundle is exported as stored, byte for byte: a rebuild cannot always reproduce it (ECDSA
    signatures differ per signing, and a secret that rotated or no longer resolves changes inputs.lock).
    Only when the sealed bundle is missing or altered is it rebuilt from the stores.
    """
    if not _sealed_bundle_intact(svc, run):
        return build_bundle(svc, run, out)
    with svc.artifacts.open(evidence_key(run.runId)) as stored:
        for chunk in iter_chunks(stored):
            out.write(chunk)
    return "sha256:" + str((run.evidence or {})["sha256"])


def seal_evidence_bundle(svc: Services, run: RunRecord) -> dict[str, str | int]:
    """Build the bundle, store it at ``evidence/<runId>.tar.gz`` and record where it is on the run."""
    with tempfile.TemporaryFile() as spool:
        build_bundle(
            svc, run, cast(BinaryIO, SpaceCheckedWriter(spool, f"the evidence bundle of run {run.runId}"))
        )
        spool.seek(0)
        stored = svc.artifacts.put_stream(evidence_key(run.runId), spool, EVIDENCE_MEDIA_TYPE)
    evidence: dict[str, str | int] = {
        "location": svc.artifacts.location(stored.key),
        "sha256": stored.sha256,
        "size": stored.size,
    }
    svc.store.update_run(run.runId, expected_status=None, changes={"evidence": evidence})
    return evidence
