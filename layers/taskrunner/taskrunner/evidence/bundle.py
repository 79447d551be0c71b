"""The evidence bundle writer: a byte-deterministic ``tar.gz`` of a finished run (DESIGN §8).

Entries are sorted, owned by 0:0, mode 0644, mtime 0; the gzip stream has mtime 0 and no name.
Every timestamp comes from the caller, so the same input always gives the same bytes (with Ed25519
keys, whose signatures are deterministic; ECDSA/KMS signatures differ per signing).
Artifacts are streamed from a path or a binary stream in fixed-size chunks and never held in memory.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from taskrunner.canonical import canonical_bytes, digest_of
from taskrunner.errors import ConfigurationError, TaskRunnerError, ValidationFailed
from taskrunner.evidence import layout
from taskrunner.evidence.approvals import ApprovalDecision, sign_approval
from taskrunner.evidence.attestation import RunOutcome, StepSummary, build_statement
from taskrunner.evidence.dsse import envelope_bytes, sign_envelope
from taskrunner.evidence.fields import is_hex_sha256
from taskrunner.evidence.gzipstream import DeterministicGzipWriter
from taskrunner.evidence.hashing import (
    CHUNK_SIZE,
    FileDigest,
    HashingReader,
    Readable,
    hash_bytes,
    hash_file,
    hash_stream,
)
from taskrunner.evidence.lock_redaction import lock_problems, redact_lock
from taskrunner.evidence.manifest import build_manifest, schema_problems
from taskrunner.evidence.signing import EvidenceSigner
from taskrunner.plan.document import Plan
from taskrunner.plan.hashing import canonical_plan_bytes, plan_hash
from taskrunner.redaction import Redactor

_SPOOL_IN_MEMORY = 8 * 1024 * 1024
_RESERVED_OUTPUT = layout.RUN_OUTPUTS.removeprefix(layout.OUTPUTS_DIR)


@dataclass(frozen=True)
class ArtifactSource:
    """A captured artifact, stored in the bundle as ``outputs/<name>``.

    ``source`` is a path or a binary stream with ``read`` (read from its current position). When the
    recorded ``sha256`` (hex or ``sha256:<hex>``) and ``size`` are given, the content is read once and
    checked against them; otherwise it is hashed first (a seekable stream is rewound, another stream
    is spooled to a temporary file).
    """

    name: str
    source: Path | Readable
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class PackRelease:
    """The registry version a run ran: its bundle digest, signing key ids, DSSE envelope and SBOM."""

    digest: str
    key_ids: Sequence[str]
    envelope: bytes
    sbom: bytes


@dataclass(frozen=True)
class BundleInput:
    """Everything the bundle of one finished run holds. Timestamps are ISO-8601 UTC with ``Z``.

    ``approvals`` are decisions to sign now or DSSE envelopes signed when they were recorded, in
    ledger order. ``secret_values`` are replaced in logs and outputs per the plan's redaction policy
    (``redaction_key`` keys the ``hash`` policy); secret values still present in ``inputs_lock`` are
    redacted the same way, and without a key such a lock is refused.
    """

    run_id: str
    tenant_id: str
    environment: str
    plan: Plan
    plan_hash: str
    inputs_lock: Mapping[str, Any]
    outcome: RunOutcome
    requested_at: str
    started_at: str | None
    completed_at: str
    created: str
    steps: Sequence[StepSummary]
    signers: Sequence[EvidenceSigner]
    outputs: Mapping[str, Any] = field(default_factory=dict)
    artifacts: Sequence[ArtifactSource] = ()
    logs: Iterable[Mapping[str, Any]] = ()
    approvals: Sequence[ApprovalDecision | Mapping[str, Any]] = ()
    approver_keys: Sequence[
        Mapping[str, Any]
    ] = ()  # deployment-signed enrolment records (approvals/keys.jsonl)
    secret_values: Sequence[str] = ()
    redaction_key: bytes | None = None
    timestamp_source: str = "utc-system-clock"
    pack_release: PackRelease | None = None


Opener = Callable[[], contextlib.AbstractContextManager[Readable]]


@dataclass(frozen=True)
class _Entry:
    digest: FileDigest
    open: Opener
    artifact: str | None = None  # set for artifacts: their content is checked while it is copied


def write_bundle(bundle: BundleInput, out: BinaryIO) -> str:
    """Write the bundle of ``bundle`` to ``out``; returns ``sha256:<hex>`` of the bytes written.

    Raises :class:`ValidationFailed` for invalid input before anything is written, and
    :class:`TaskRunnerError` (code ``ArtifactChanged``) if an artifact's content differs from its
    digest while it is copied; ``out`` then holds an incomplete bundle and must be discarded.
    """
    _check_input(bundle)
    redactor = _redactor(bundle)
    with contextlib.ExitStack() as stack:
        entries: dict[str, _Entry] = {}

        def add(path: str, data: bytes) -> None:
            entries[path] = _Entry(hash_bytes(data), lambda: contextlib.nullcontext(io.BytesIO(data)))

        add(layout.PLAN, canonical_plan_bytes(bundle.plan))
        add(layout.INPUTS_LOCK, _canonical(_redacted_lock(bundle), "inputs.lock"))
        add(layout.RUN_OUTPUTS, _canonical(redactor.value(dict(bundle.outputs)), "run outputs"))
        add(layout.APPROVALS_LEDGER, _ledger(bundle))
        if bundle.approver_keys:
            add(layout.APPROVER_KEYS, _jsonl(bundle.approver_keys, "approver key enrolment"))
        if bundle.pack_release is not None:
            add(layout.PACK_ENVELOPE, bundle.pack_release.envelope)
            add(layout.PACK_SBOM, bundle.pack_release.sbom)
        entries[layout.TRANSCRIPT] = _spool(stack, _transcript(bundle.logs, redactor))
        for artifact in bundle.artifacts:
            entries[layout.OUTPUTS_DIR + artifact.name] = _artifact_entry(stack, artifact)

        output_digests = {p: e.digest.digest for p, e in entries.items() if p.startswith(layout.OUTPUTS_DIR)}
        statement = build_statement(
            run_id=bundle.run_id,
            tenant_id=bundle.tenant_id,
            pack=bundle.plan.pack,
            plan_hash=bundle.plan_hash,
            inputs_lock_digest=entries[layout.INPUTS_LOCK].digest.digest,
            inputs_digest=digest_of(bundle.plan.inputs),
            output_digests=output_digests,
            steps=bundle.steps,
            approvals_ledger_digest=entries[layout.APPROVALS_LEDGER].digest.digest,
            outcome=bundle.outcome,
            requested_at=bundle.requested_at,
            started_at=bundle.started_at,
            completed_at=bundle.completed_at,
        )
        add(
            layout.ATTESTATION,
            envelope_bytes(
                sign_envelope(canonical_bytes(statement), layout.RUN_PAYLOAD_TYPE, bundle.signers)
            ),
        )
        manifest = build_manifest(
            plan=bundle.plan,
            plan_hash=bundle.plan_hash,
            run_id=bundle.run_id,
            tenant_id=bundle.tenant_id,
            environment=bundle.environment,
            outcome=bundle.outcome,
            approvals=len(bundle.approvals),
            requested_at=bundle.requested_at,
            started_at=bundle.started_at,
            completed_at=bundle.completed_at,
            created=bundle.created,
            timestamp_source=bundle.timestamp_source,
            key_ids=[signer.keyid for signer in bundle.signers],
            hashes={path: entry.digest for path, entry in entries.items()},
            pack_release=(
                (bundle.pack_release.digest, bundle.pack_release.key_ids) if bundle.pack_release else None
            ),
        )
        if problems := schema_problems(manifest):
            raise ValidationFailed(
                "the bundle manifest would not match its schema: " + "; ".join(problems),
                problems=[{"message": p} for p in problems],
            )
        manifest_bytes = canonical_bytes(manifest)
        add(layout.MANIFEST, manifest_bytes)
        add(
            layout.MANIFEST_DSSE,
            envelope_bytes(sign_envelope(manifest_bytes, layout.BUNDLE_PAYLOAD_TYPE, bundle.signers)),
        )
        return _write_archive(entries, out)


def _write_archive(entries: Mapping[str, _Entry], out: BinaryIO) -> str:
    gz = DeterministicGzipWriter(out)
    try:
        with tarfile.TarFile(
            fileobj=gz,  # type: ignore[arg-type]
            mode="w",
            format=tarfile.PAX_FORMAT,
            encoding="utf-8",
            copybufsize=CHUNK_SIZE,
        ) as tar:
            for path in sorted(entries):
                _add_entry(tar, path, entries[path])
        gz.close()
    finally:
        gz.abort()  # no-op after close; stops the writer thread when an error interrupted the stream
    return "sha256:" + gz.sha256


def _add_entry(tar: tarfile.TarFile, path: str, entry: _Entry) -> None:
    info = tarfile.TarInfo(path)
    info.size = entry.digest.size
    info.mtime = layout.TAR_MTIME
    info.mode = layout.TAR_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    try:
        with entry.open() as stream:
            reader = HashingReader(stream)
            tar.addfile(info, reader)  # tarfile only calls read()
            unchanged = reader.at_end() and FileDigest(reader.hexdigest(), reader.size) == entry.digest
    except OSError:  # the file vanished, or tarfile's "unexpected end of data"
        unchanged = False
    if not unchanged:
        raise TaskRunnerError(
            f"artifact {entry.artifact or path!r} changed while the bundle was written: expected "
            f"sha256 {entry.digest.sha256} and {entry.digest.size} bytes",
            code="ArtifactChanged",
            remediation="discard this bundle; make sure nothing writes the artifact, and that its "
            "recorded sha256/size are correct, then seal again",
        )


def _check_input(bundle: BundleInput) -> None:
    problems = []
    if not bundle.signers:
        raise ConfigurationError(
            "evidence must be signed but no signer was given",
            remediation="set TASKRUNNER_SIGNING__KEY (file:///path or awskms:///alias/name) or run "
            "'taskrunner keys generate'",
        )
    computed = plan_hash(bundle.plan)
    if computed != bundle.plan_hash:
        problems.append(
            f"planHash {bundle.plan_hash!r} does not match the plan, which hashes to {computed!r}"
        )
    names: set[str] = set()
    for artifact in bundle.artifacts:
        if problem := _name_problem(artifact.name):
            problems.append(f"artifact name {artifact.name!r} {problem}")
        elif artifact.name in names:
            problems.append(f"artifact name {artifact.name!r} is used twice")
        names.add(artifact.name)
        if (artifact.sha256 is None) != (artifact.size is None):
            problems.append(f"artifact {artifact.name!r}: give both sha256 and size, or neither")
        if artifact.sha256 is not None and not is_hex_sha256(artifact.sha256.removeprefix("sha256:")):
            problems.append(
                f"artifact {artifact.name!r}: sha256 {artifact.sha256!r} is not 64 hex characters"
            )
    for index, approval in enumerate(bundle.approvals, start=1):
        if isinstance(approval, ApprovalDecision):
            bound = (approval.run_id, approval.plan_hash, approval.tenant_id)
            if bound != (bundle.run_id, bundle.plan_hash, bundle.tenant_id):
                problems.append(
                    f"approval #{index} (gate {approval.gate_id!r}) belongs to another run, plan or tenant"
                )
    if problems:
        raise ValidationFailed(
            "cannot build the evidence bundle: " + "; ".join(problems),
            problems=[{"message": p} for p in problems],
        )


def _name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an entry under ``outputs/`` (None when it can)."""
    if not name:
        return "is empty"
    if name.startswith("/") or "\\" in name or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "must be a relative path without backslashes or control characters"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "must not contain empty, '.' or '..' segments"
    if name == _RESERVED_OUTPUT:
        return f"is reserved for the run outputs ({layout.RUN_OUTPUTS})"
    return None


def _redactor(bundle: BundleInput) -> Redactor:
    policy = bundle.plan.security.secretsRedactionPolicy
    if bundle.secret_values and policy == "hash" and bundle.redaction_key is None:
        raise ConfigurationError(
            "secret values were given for redaction but no redaction key",
            remediation="pass the deployment redaction key (the 'hash' policy fingerprints secrets with it)",
        )
    return Redactor(bundle.secret_values, policy, bundle.redaction_key or b"")


def _redacted_lock(bundle: BundleInput) -> dict[str, Any]:
    lock = dict(bundle.inputs_lock)
    if bundle.redaction_key is not None or bundle.plan.security.secretsRedactionPolicy == "blank":
        lock = redact_lock(lock, bundle.plan.security.secretsRedactionPolicy, bundle.redaction_key or b"")
    if problems := lock_problems(lock):
        raise ValidationFailed(
            "inputs.lock would carry secret material: " + "; ".join(problems),
            problems=[{"message": p} for p in problems],
            remediation="pass the redaction key so secrets are fingerprinted, or redact the lock first",
        )
    return lock


def _canonical(document: Any, what: str) -> bytes:
    try:
        return canonical_bytes(document)
    except (TypeError, ValueError) as exc:  # rfc8785.CanonicalizationError is a ValueError
        raise ValidationFailed(f"{what} cannot be written as canonical JSON: {exc}") from exc


def _ledger(bundle: BundleInput) -> bytes:
    lines = []
    for index, approval in enumerate(bundle.approvals, start=1):
        envelope = (
            sign_approval(approval, bundle.signers) if isinstance(approval, ApprovalDecision) else approval
        )
        lines.append(_canonical(dict(envelope), f"approval #{index}") + b"\n")
    return b"".join(lines)


def _jsonl(documents: Iterable[Mapping[str, Any]], what: str) -> bytes:
    return b"".join(_canonical(dict(d), f"{what} #{i}") + b"\n" for i, d in enumerate(documents, start=1))


def _transcript(logs: Iterable[Mapping[str, Any]], redactor: Redactor) -> Iterator[bytes]:
    for index, event in enumerate(logs, start=1):
        yield _canonical(redactor.value(dict(event)), f"log event #{index}") + b"\n"


def _spool(stack: contextlib.ExitStack, lines: Iterable[bytes]) -> _Entry:
    """Write ``lines`` to a temporary spool (in memory up to 8 MiB), hashing as it goes."""
    spool = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY))  # noqa: SIM115
    for line in lines:
        spool.write(line)
    spool.seek(0)
    digest = hash_stream(spool)
    return _Entry(digest, _rewinding(spool))


def _rewinding(stream: IO[bytes]) -> Opener:
    def opener() -> contextlib.AbstractContextManager[IO[bytes]]:
        stream.seek(0)
        return contextlib.nullcontext(stream)

    return opener


def _artifact_entry(stack: contextlib.ExitStack, artifact: ArtifactSource) -> _Entry:
    known = (
        FileDigest(artifact.sha256.removeprefix("sha256:"), artifact.size)
        if artifact.sha256 is not None and artifact.size is not None
        else None
    )
    source = artifact.source
    if isinstance(source, Path):
        path = source
        try:
            digest = known or hash_file(path)
        except OSError as exc:
            raise ValidationFailed(f"artifact {artifact.name!r}: cannot read {path}: {exc.strerror}") from exc
        return _Entry(digest, lambda: path.open("rb"), artifact.name)
    if known is not None:
        return _Entry(known, lambda: contextlib.nullcontext(source), artifact.name)
    if isinstance(source, io.IOBase) and source.seekable():
        start = source.tell()
        digest = hash_stream(source)
        source.seek(start)
        return _Entry(digest, lambda: contextlib.nullcontext(source), artifact.name)
    spool = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115  # closed by the ExitStack
    reader = HashingReader(source)
    while chunk := reader.read(CHUNK_SIZE):
        spool.write(chunk)
    return _Entry(FileDigest(reader.hexdigest(), reader.size), _rewinding(spool), artifact.name)
