"""Evidence bundles: deterministic bytes, layout, schema, redaction, and the verifier's tamper matrix."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from taskrunner.canonical import canonical_bytes, sha256_digest
from taskrunner.errors import ConfigurationError, TaskRunnerError, ValidationFailed
from taskrunner.evidence import layout
from taskrunner.evidence.approvals import ApprovalDecision
from taskrunner.evidence.attestation import StepSummary
from taskrunner.evidence.bundle import ArtifactSource, BundleInput, write_bundle
from taskrunner.evidence.dsse import envelope_bytes, sign_envelope
from taskrunner.evidence.gzipstream import DeterministicGzipWriter
from taskrunner.evidence.hashing import CHUNK_SIZE
from taskrunner.evidence.manifest import SCHEMA_RESOURCE, schema_problems
from taskrunner.evidence.signing import file_signer, generate_ed25519_keyfile
from taskrunner.evidence.verify import VerificationReport, verify_bundle
from taskrunner.plan.document import Plan
from taskrunner.plan.hashing import plan_hash, rng_seed
from taskrunner.plan.inputs_lock import build_inputs_lock, inputs_lock_bytes
from taskrunner.redaction import fingerprint

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_SCHEMA = ROOT / "layers/taskrunner/taskrunner/evidence" / SCHEMA_RESOURCE
REPO_SCHEMA = ROOT / "schemas/packs-offline-bundle.schema.json"
SECRET = "hunter2-registry-token"
KEY = b"r" * 32
ARTIFACT = bytes(range(256)) * 1024 + b"tail"  # 256 KiB + 4 bytes
T0, T1, T2, T3 = (f"2026-03-04T05:06:0{i}.000Z" for i in range(4))
ENTRIES = [
    "approvals/ledger.jsonl",
    "attestation.dsse.json",
    "inputs.lock",
    "manifest.dsse.json",
    "manifest.json",
    "outputs/outputs.json",
    "outputs/reports/scan.bin",
    "plan.json",
    "transcripts/logs.ndjson",
]


def make_plan(policy: str = "hash") -> Plan:
    return Plan.model_validate(
        {
            "pack": {"name": "air-gap-import", "version": "1.2.0", "digest": "sha256:" + "ab" * 32},
            "inputs": {"bundlePath": "/data/bundle.tgz", "targets": ["a", "b"]},
            "secrets": [{"name": "registryToken", "ref": "env:REGISTRY_TOKEN"}],
            "approvals": [
                {
                    "id": "security-review",
                    "grants": ["packs.approve"],
                    "expiresAfter": "PT4H",
                    "expiresAfterSeconds": 14400,
                }
            ],
            "sandbox": {"mode": "sealed", "egressAllowlist": [], "cpuSeconds": 120},
            "slo": {"runP95Seconds": 900, "maxQueueDepth": 50},
            "security": {"secretsRedactionPolicy": policy},
            "failure": {"retries": {"maxAttempts": 3, "backoffSeconds": 5, "backoffRate": 2.0}},
            "steps": [
                {
                    "kind": "run",
                    "id": "ingest",
                    "uses": "bundle.ingest",
                    "with": {"path": "/data/bundle.tgz"},
                },
                {
                    "kind": "gate.approval",
                    "id": "review",
                    "approval": "security-review",
                    "expiresAfterSeconds": 14400,
                },
            ],
        }
    )


@pytest.fixture
def signer(tmp_path: Path) -> Any:
    return generate_ed25519_keyfile(tmp_path / "keys" / "signing.pem")


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "scan.bin"
    path.write_bytes(ARTIFACT)
    return path


def make_input(signer: Any, artifact: Path, **overrides: Any) -> BundleInput:
    plan = overrides.pop("plan", None) or make_plan()
    run_id = overrides.get("run_id", "run-1")
    decision = ApprovalDecision(
        run_id,
        "review",
        plan_hash(plan),
        "tenant-a",
        "approve",
        "checked",
        "alice",
        "2026-03-04T05:06:01.500Z",
    )
    fields: dict[str, Any] = {
        "run_id": run_id,
        "tenant_id": "tenant-a",
        "environment": "local",
        "plan": plan,
        "plan_hash": plan_hash(plan),
        "inputs_lock": {"inputs": dict(plan.inputs), "secrets": {"registryToken": SECRET}},
        "outcome": "succeeded",
        "requested_at": T0,
        "started_at": T1,
        "completed_at": T2,
        "created": T3,
        "steps": [StepSummary("ingest", "succeeded", 1), StepSummary("review", "approved", 1)],
        "signers": [signer],
        "outputs": {"report": "outputs/reports/scan.bin", "note": f"token was {SECRET}"},
        "artifacts": [ArtifactSource("reports/scan.bin", artifact)],
        "logs": [
            {"sequence": 1, "eventType": "run.started", "message": "started"},
            {"sequence": 2, "eventType": "step.started", "message": f"auth with {SECRET}"},
        ],
        "approvals": [decision],
        "secret_values": [SECRET],
        "redaction_key": KEY,
    }
    fields.update(overrides)
    return BundleInput(**fields)


def build(spec: BundleInput) -> bytes:
    out = io.BytesIO()
    digest = write_bundle(spec, out)
    data = out.getvalue()
    assert digest == sha256_digest(data)
    return data


def verify(data: bytes, tmp_path: Path, pems: list[str], require_dsse: bool = True) -> VerificationReport:
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(data)
    return verify_bundle(path, pems, require_dsse=require_dsse)


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}  # type: ignore[union-attr]


def repack(files: dict[str, bytes], extra: Callable[[tarfile.TarFile], None] | None = None) -> bytes:
    """A plain tar.gz of ``files`` (the verifier must not depend on the writer's exact encoding)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        if extra:
            extra(tar)
    return gzip.compress(raw.getvalue())


def resign_manifest(files: dict[str, bytes], signer: Any, mutate: Callable[[dict[str, Any]], None]) -> None:
    """Edit manifest.json and sign it again with the trusted key (a signed but wrong manifest)."""
    manifest = json.loads(files[layout.MANIFEST])
    mutate(manifest)
    files[layout.MANIFEST] = canonical_bytes(manifest)
    files[layout.MANIFEST_DSSE] = envelope_bytes(
        sign_envelope(files[layout.MANIFEST], layout.BUNDLE_PAYLOAD_TYPE, [signer])
    )


def flip_middle_byte(content: bytes) -> bytes:
    middle = len(content) // 2
    return content[:middle] + bytes([content[middle] ^ 0x01]) + content[middle + 1 :]


# --- a good bundle ------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "cancelled"])
def test_bundle_of_every_outcome_verifies(signer: Any, artifact: Path, tmp_path: Path, outcome: str) -> None:
    data = build(make_input(signer, artifact, outcome=outcome))
    report = verify(data, tmp_path, [signer.public_key_pem])
    assert (report.ok, report.failures) == (True, [])
    assert report.summary["outcome"] == outcome
    assert report.summary["runId"] == "run-1"
    assert report.summary["signedBy"] == {
        "manifest.dsse.json": [signer.keyid],
        "attestation.dsse.json": [signer.keyid],
        "approvals/ledger.jsonl line 1": [signer.keyid],
    }
    statement = json.loads(_payload(members(data)[layout.ATTESTATION]))
    assert statement["predicate"]["outcome"] == outcome


def test_same_inputs_give_the_same_bytes(signer: Any, artifact: Path, tmp_path: Path) -> None:
    first = build(make_input(signer, artifact))
    reloaded = file_signer(tmp_path / "keys" / "signing.pem")
    assert build(make_input(reloaded, artifact)) == first


@pytest.mark.parametrize(
    "source",
    ["seekable stream", "one-shot stream", "recorded digest", "recorded digest with prefix"],
)
def test_artifact_sources_give_the_same_bytes_as_a_path(signer: Any, artifact: Path, source: str) -> None:
    reference = build(make_input(signer, artifact))
    digest = hashlib.sha256(ARTIFACT).hexdigest()
    stream: Any
    if source == "seekable stream":
        stream = io.BytesIO(b"skipped" + ARTIFACT)
        stream.seek(len(b"skipped"))
        item = ArtifactSource("reports/scan.bin", stream)
    elif source == "one-shot stream":
        item = ArtifactSource("reports/scan.bin", _OneShot(ARTIFACT))
    elif source == "recorded digest":
        item = ArtifactSource("reports/scan.bin", _OneShot(ARTIFACT), sha256=digest, size=len(ARTIFACT))
    else:
        item = ArtifactSource("reports/scan.bin", artifact, sha256="sha256:" + digest, size=len(ARTIFACT))
    assert build(make_input(signer, artifact, artifacts=[item])) == reference


def test_any_change_of_input_changes_the_bytes(signer: Any, artifact: Path) -> None:
    reference = build(make_input(signer, artifact))
    assert build(make_input(signer, artifact, completed_at="2026-03-04T05:06:02.001Z")) != reference
    assert build(make_input(signer, artifact, run_id="run-2")) != reference


def test_long_and_non_ascii_artifact_names_round_trip(signer: Any, artifact: Path, tmp_path: Path) -> None:
    names = ["résumé/über.txt", "deep/" + "x" * 150 + ".bin"]
    spec = make_input(signer, artifact, artifacts=[ArtifactSource(name, artifact) for name in names])
    data = build(spec)
    assert build(spec) == data
    assert {f"outputs/{name}" for name in names} <= set(members(data))
    assert verify(data, tmp_path, [signer.public_key_pem]).failures == []


def test_archive_layout_is_sorted_and_owner_time_mode_neutral(signer: Any, artifact: Path) -> None:
    data = build(make_input(signer, artifact))
    assert data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, OS unknown
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        infos = tar.getmembers()
    assert [m.name for m in infos] == ENTRIES
    assert {(m.type, m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in infos} == {
        (tarfile.REGTYPE, 0, 0, 0, "", "", 0o644)
    }


def test_manifest_lists_every_other_file_and_matches_the_schema(signer: Any, artifact: Path) -> None:
    files = members(build(make_input(signer, artifact)))
    manifest = json.loads(files["manifest.json"])
    Draft202012Validator(json.loads(REPO_SCHEMA.read_text())).validate(manifest)
    assert manifest["hashes"] == [
        {"path": name, "sha256": hashlib.sha256(files[name]).hexdigest(), "size": len(files[name])}
        for name in ENTRIES
        if name not in ("manifest.json", "manifest.dsse.json")
    ]
    assert manifest["schemaVersion"] == "stellaops.pack.offline-bundle.v1"
    assert manifest["plan"] == {
        "hashAlgorithm": "sha256",
        "hash": sha256_digest(files["plan.json"]),
        "canonicalPlanPath": "plan.json",
        "inputsLock": "inputs.lock",
        "rngSeed": str(rng_seed(sha256_digest(files["plan.json"]))),
        "timestampSource": "utc-system-clock",
    }
    assert manifest["slo"] == {"runP95Seconds": 900, "maxQueueDepth": 50}
    assert manifest["security"]["sandbox"] == {"mode": "sealed", "egressAllowlist": [], "cpuSeconds": 120}
    assert (manifest["tenant"], manifest["environment"], manifest["created"]) == ("tenant-a", "local", T3)
    assert json.loads(_payload(files["manifest.dsse.json"])) == manifest


def test_repository_schema_is_the_one_the_package_ships() -> None:
    assert REPO_SCHEMA.read_bytes() == PACKAGE_SCHEMA.read_bytes()
    Draft202012Validator.check_schema(json.loads(REPO_SCHEMA.read_text()))


def test_schema_problems_name_the_path_of_each_violation(signer: Any, artifact: Path) -> None:
    manifest = json.loads(members(build(make_input(signer, artifact)))["manifest.json"])
    manifest["plan"]["rngSeed"] = 12
    manifest["hashes"][0]["sha256"] = "XYZ"
    del manifest["tenant"]
    manifest["surprise"] = True
    assert schema_problems(manifest) == [
        "$.hashes[0].sha256: 'XYZ' does not match '^[0-9a-f]{64}$'",
        "$.plan.rngSeed: 12 is not of type 'string'",
        "$: 'tenant' is a required property",
        "$: Additional properties are not allowed ('surprise' was unexpected)",
    ]


def test_attestation_binds_outputs_inputs_and_ledger(signer: Any, artifact: Path) -> None:
    files = members(build(make_input(signer, artifact)))
    statement = json.loads(_payload(files["attestation.dsse.json"]))
    assert statement["subject"] == [
        {"name": name, "digest": {"sha256": hashlib.sha256(files[name]).hexdigest()}}
        for name in ("outputs/outputs.json", "outputs/reports/scan.bin")
    ]
    predicate = statement["predicate"]
    assert predicate["inputsLockDigest"] == sha256_digest(files["inputs.lock"])
    assert predicate["approvalsLedgerDigest"] == sha256_digest(files["approvals/ledger.jsonl"])
    assert predicate["inputsDigest"] == sha256_digest(
        canonical_bytes(json.loads(files["plan.json"])["inputs"])
    )
    assert predicate["planHash"] == sha256_digest(files["plan.json"])


# --- redaction ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "form"), [("hash", fingerprint(SECRET, KEY)), ("blank", "<redacted>")])
def test_secrets_never_reach_the_bundle(signer: Any, artifact: Path, policy: str, form: str) -> None:
    files = members(build(make_input(signer, artifact, plan=make_plan(policy))))
    everything = b"".join(files.values())
    assert SECRET.encode() not in everything
    assert json.loads(files["inputs.lock"])["secrets"] == {"registryToken": form}
    assert form in json.loads(files["outputs/outputs.json"])["note"]
    assert form.encode() in files["transcripts/logs.ndjson"]


def test_the_planners_inputs_lock_is_stored_byte_for_byte(
    signer: Any, artifact: Path, tmp_path: Path
) -> None:
    lock = build_inputs_lock(make_plan(), redaction_key=KEY, secret_values={"registryToken": SECRET})
    data = build(make_input(signer, artifact, inputs_lock=lock))
    assert members(data)["inputs.lock"] == inputs_lock_bytes(lock)
    assert verify(data, tmp_path, [signer.public_key_pem]).failures == []


def test_an_unredacted_lock_is_refused_without_the_redaction_key(signer: Any, artifact: Path) -> None:
    with pytest.raises(
        ValidationFailed, match=r"inputs\.lock would carry secret material: secret 'registryToken'"
    ):
        build(make_input(signer, artifact, redaction_key=None, secret_values=[]))


def test_secret_values_need_a_key_under_the_hash_policy(signer: Any, artifact: Path) -> None:
    with pytest.raises(ConfigurationError, match="no redaction key"):
        build(make_input(signer, artifact, redaction_key=None))


# --- builder input checks -----------------------------------------------------------------------


def test_builder_rejects_inconsistent_input(signer: Any, artifact: Path) -> None:
    foreign = ApprovalDecision("run-9", "review", "sha256:" + "0" * 64, "tenant-a", "approve", "", "bob", T1)
    spec = make_input(
        signer,
        artifact,
        plan_hash="sha256:" + "0" * 64,
        artifacts=[
            ArtifactSource("../escape", artifact),
            ArtifactSource("outputs.json", artifact),
            ArtifactSource("a//b", artifact),
            ArtifactSource("x", artifact),
            ArtifactSource("x", artifact),
            ArtifactSource("y", artifact, sha256="zz", size=3),
            ArtifactSource("z", artifact, size=3),
        ],
        approvals=[foreign],
    )
    with pytest.raises(ValidationFailed) as info:
        build(spec)
    assert [p["message"] for p in info.value.problems] == [
        f"planHash 'sha256:{'0' * 64}' does not match the plan, which hashes to '{plan_hash(make_plan())}'",
        "artifact name '../escape' must not contain empty, '.' or '..' segments",
        "artifact name 'outputs.json' is reserved for the run outputs (outputs/outputs.json)",
        "artifact name 'a//b' must not contain empty, '.' or '..' segments",
        "artifact name 'x' is used twice",
        "artifact 'y': sha256 'zz' is not 64 hex characters",
        "artifact 'z': give both sha256 and size, or neither",
        "approval #1 (gate 'review') belongs to another run, plan or tenant",
    ]


def test_builder_needs_a_signer(signer: Any, artifact: Path) -> None:
    with pytest.raises(ConfigurationError, match="no signer"):
        build(make_input(signer, artifact, signers=[]))


@pytest.mark.parametrize(
    ("recorded", "content"),
    [("wrong digest", ARTIFACT), ("short content", ARTIFACT[:-1]), ("long content", ARTIFACT + b"!")],
)
def test_an_artifact_that_differs_from_its_digest_aborts_the_bundle(
    signer: Any, artifact: Path, recorded: str, content: bytes
) -> None:
    digest = "0" * 64 if recorded == "wrong digest" else hashlib.sha256(ARTIFACT).hexdigest()
    item = ArtifactSource("reports/scan.bin", io.BytesIO(content), sha256=digest, size=len(ARTIFACT))
    with pytest.raises(
        TaskRunnerError, match=r"'reports/scan\.bin' changed while the bundle was written"
    ) as info:
        build(make_input(signer, artifact, artifacts=[item]))
    assert info.value.code == "ArtifactChanged"


def test_a_failing_destination_is_reported(signer: Any, artifact: Path) -> None:
    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(TaskRunnerError, match=r"cannot write the bundle: .*No space left") as info:
        write_bundle(make_input(signer, artifact), Full())  # type: ignore[arg-type]
    assert info.value.code == "BundleWriteFailed"


def test_a_bundle_that_would_not_leave_the_temporary_reserve_free_is_refused_before_it_fills_up(
    signer: Any, artifact: Path
) -> None:
    import shutil
    import tempfile

    from taskrunner.engine.spool import SpaceCheckedWriter, SpoolTooLarge

    with tempfile.TemporaryFile() as spool:
        room = 2_000  # bytes the spool may take; the bundle is larger
        reserve = shutil.disk_usage(tempfile.gettempdir()).free - room
        writer = SpaceCheckedWriter(spool, "the evidence bundle of run r-1", reserve=reserve)
        with pytest.raises(SpoolTooLarge) as info:
            write_bundle(make_input(signer, artifact), writer)  # type: ignore[arg-type]
        assert spool.tell() <= room + 64 * 1024  # stopped at the budget (another process may write meanwhile)
    assert "the evidence bundle of run r-1 does not fit" in info.value.message
    assert "EphemeralStorage" in info.value.remediation


def test_a_bundle_within_the_temporary_space_is_written_whole(signer: Any, artifact: Path) -> None:
    from taskrunner.engine.spool import SpaceCheckedWriter

    plain, checked = io.BytesIO(), io.BytesIO()
    write_bundle(make_input(signer, artifact), plain)
    writer = SpaceCheckedWriter(checked, "the evidence bundle of run r-1", reserve=0)  # type: ignore[arg-type]
    write_bundle(make_input(signer, artifact), writer)  # type: ignore[arg-type]

    assert writer.written == len(checked.getvalue()) > 0
    assert len(checked.getvalue()) == len(plain.getvalue())


def test_memory_does_not_grow_with_artifact_size(signer: Any, tmp_path: Path) -> None:
    def peaks(mib: int) -> tuple[int, int]:
        big = tmp_path / f"big-{mib}.bin"
        with big.open("wb") as out:
            for index in range(mib):
                out.write(hashlib.sha256(bytes([index])).digest() * (CHUNK_SIZE // 32))
        spec = make_input(signer, big, artifacts=[ArtifactSource("big.bin", big)])
        bundle = tmp_path / f"big-{mib}.tar.gz"
        tracemalloc.start()
        try:
            with bundle.open("wb") as out:
                write_bundle(spec, out)
            build_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            report = verify_bundle(bundle, [signer.public_key_pem], require_dsse=True)
            verify_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert report.ok, report.failures
        return build_peak, verify_peak

    small, large = peaks(4), peaks(32)  # past the first chunks, the peak must not depend on the size
    assert large[0] < small[0] + CHUNK_SIZE // 2, (small, large)
    assert large[1] < small[1] + CHUNK_SIZE // 2, (small, large)
    assert max(large) < 8 * CHUNK_SIZE, large


# --- tamper matrix ------------------------------------------------------------------------------

TAMPER_EXPECTED = {
    "approvals/ledger.jsonl": ["approvals/ledger.jsonl: sha256 ", "predicate.approvalsLedgerDigest"],
    "attestation.dsse.json": ["attestation.dsse.json: sha256 "],
    "inputs.lock": ["inputs.lock: sha256 ", "predicate.inputsLockDigest"],
    "manifest.dsse.json": ["manifest.dsse.json: "],
    "manifest.json": ["manifest.json: differs from the manifest signed in manifest.dsse.json"],
    "outputs/outputs.json": ["outputs/outputs.json: sha256 ", "outputs/outputs.json: digest sha256:"],
    "outputs/reports/scan.bin": [
        "outputs/reports/scan.bin: sha256 ",
        "outputs/reports/scan.bin: digest sha256:",
    ],
    "plan.json": ["plan.json: sha256 ", "plan.json: planHash sha256:"],
    "transcripts/logs.ndjson": ["transcripts/logs.ndjson: sha256 "],
}


@pytest.fixture
def good(signer: Any, artifact: Path) -> dict[str, bytes]:
    return members(build(make_input(signer, artifact)))


@pytest.mark.parametrize("name", ENTRIES)
def test_flipping_a_byte_in_any_file_is_detected(
    good: dict[str, bytes], signer: Any, tmp_path: Path, name: str
) -> None:
    tampered = dict(good)
    tampered[name] = flip_middle_byte(good[name])
    report = verify(repack(tampered), tmp_path, [signer.public_key_pem])
    assert not report.ok
    for expected in TAMPER_EXPECTED[name]:
        assert any(f.startswith(expected) or expected in f for f in report.failures), (
            expected,
            report.failures,
        )
    related = (name, "attestation.dsse.json", "approvals/ledger.jsonl line")
    assert all(f.startswith(related) for f in report.failures), report.failures


def test_a_flipped_transcript_byte_is_reported_exactly(
    good: dict[str, bytes], signer: Any, tmp_path: Path
) -> None:
    tampered = dict(good)
    tampered["transcripts/logs.ndjson"] = flip_middle_byte(good["transcripts/logs.ndjson"])
    report = verify(repack(tampered), tmp_path, [signer.public_key_pem])
    manifest = json.loads(good["manifest.json"])
    recorded = next(h["sha256"] for h in manifest["hashes"] if h["path"] == "transcripts/logs.ndjson")
    actual = hashlib.sha256(tampered["transcripts/logs.ndjson"]).hexdigest()
    assert report.failures == [
        f"transcripts/logs.ndjson: sha256 {actual} does not match the manifest ({recorded})"
    ]


def test_the_unchanged_repack_still_verifies(good: dict[str, bytes], signer: Any, tmp_path: Path) -> None:
    assert verify(repack(good), tmp_path, [signer.public_key_pem]).failures == []


@pytest.mark.parametrize("name", ENTRIES)
def test_dropping_any_file_is_detected(
    good: dict[str, bytes], signer: Any, tmp_path: Path, name: str
) -> None:
    tampered = {k: v for k, v in good.items() if k != name}
    report = verify(repack(tampered), tmp_path, [signer.public_key_pem])
    expected = {
        "manifest.dsse.json": "manifest.dsse.json: missing: --require-dsse needs a signed manifest",
        "outputs/reports/scan.bin": "outputs/reports/scan.bin: listed in the manifest but missing from the bundle",
    }.get(name, f"{name}: missing from the bundle")
    assert expected in report.failures
    if name == "outputs/reports/scan.bin":
        assert (
            "attestation.dsse.json: subject outputs/reports/scan.bin is not in the bundle" in report.failures
        )


def test_an_unsigned_manifest_passes_only_without_require_dsse(
    good: dict[str, bytes], signer: Any, tmp_path: Path
) -> None:
    unsigned = repack({k: v for k, v in good.items() if k != "manifest.dsse.json"})
    lenient = verify(unsigned, tmp_path, [signer.public_key_pem], require_dsse=False)
    assert (lenient.ok, lenient.summary["manifestSigned"]) == (True, False)
    assert lenient.summary["warnings"] == ["the manifest is not signed (no manifest.dsse.json)"]
    assert not verify(unsigned, tmp_path, [signer.public_key_pem], require_dsse=True).ok


@pytest.mark.parametrize("name", ["notes.txt", "outputs/extra.bin"])
def test_adding_a_file_is_detected(good: dict[str, bytes], signer: Any, tmp_path: Path, name: str) -> None:
    report = verify(repack({**good, name: b"extra"}), tmp_path, [signer.public_key_pem])
    assert f"{name}: is not listed in the manifest" in report.failures
    if name.startswith("outputs/"):
        assert f"{name}: is not a subject of the attestation" in report.failures


def test_a_swapped_signature_is_detected(good: dict[str, bytes], signer: Any, tmp_path: Path) -> None:
    manifest_envelope = json.loads(good["manifest.dsse.json"])
    attestation_envelope = json.loads(good["attestation.dsse.json"])
    manifest_envelope["signatures"][0]["sig"] = attestation_envelope["signatures"][0]["sig"]
    tampered = {**good, "manifest.dsse.json": json.dumps(manifest_envelope).encode()}
    report = verify(repack(tampered), tmp_path, [signer.public_key_pem])
    assert report.failures == [
        "manifest.dsse.json: no signature verifies against the trusted keys (1 signature(s), 1 trusted key(s))"
    ]


def test_swapped_envelopes_are_rejected_by_payload_type(
    good: dict[str, bytes], signer: Any, tmp_path: Path
) -> None:
    tampered = {
        **good,
        "manifest.dsse.json": good["attestation.dsse.json"],
        "attestation.dsse.json": good["manifest.dsse.json"],
    }
    report = verify(repack(tampered), tmp_path, [signer.public_key_pem])
    assert (
        "manifest.dsse.json: payloadType is 'application/vnd.stellaops.pack-run+json', "
        "expected 'application/vnd.stellaops.pack-offline-bundle+json'"
    ) in report.failures
    assert (
        "attestation.dsse.json: payloadType is 'application/vnd.stellaops.pack-offline-bundle+json', "
        "expected 'application/vnd.stellaops.pack-run+json'"
    ) in report.failures


def test_the_wrong_key_fails_every_signature(good: dict[str, bytes], tmp_path: Path) -> None:
    stranger = generate_ed25519_keyfile(tmp_path / "stranger.pem")
    report = verify(repack(good), tmp_path, [stranger.public_key_pem])
    reason = "no signature verifies against the trusted keys (1 signature(s), 1 trusted key(s))"
    assert report.failures == [
        f"manifest.dsse.json: {reason}",
        f"attestation.dsse.json: {reason}",
        f"approvals/ledger.jsonl line 1: {reason}",
    ]


def test_no_trusted_keys_means_nothing_verifies(good: dict[str, bytes], tmp_path: Path) -> None:
    report = verify(repack(good), tmp_path, [])
    assert report.failures == [
        "manifest.dsse.json: no trusted keys to verify the signature against",
        "attestation.dsse.json: no trusted keys to verify the signature against",
        "approvals/ledger.jsonl line 1: no trusted keys to verify the signature against",
    ]


def test_a_manifest_signed_with_the_wrong_payload_type_is_rejected(
    good: dict[str, bytes], signer: Any, tmp_path: Path
) -> None:
    wrong = sign_envelope(good["manifest.json"], "application/json", [signer])
    report = verify(
        repack({**good, "manifest.dsse.json": envelope_bytes(wrong)}), tmp_path, [signer.public_key_pem]
    )
    assert report.failures == [
        "manifest.dsse.json: payloadType is 'application/json', "
        "expected 'application/vnd.stellaops.pack-offline-bundle+json'"
    ]


def test_a_ledger_entry_with_the_wrong_payload_type_or_run_is_rejected(
    signer: Any, artifact: Path, tmp_path: Path
) -> None:
    plan = make_plan()
    decision = ApprovalDecision("run-1", "review", plan_hash(plan), "tenant-a", "approve", "", "alice", T1)
    other_run = replace(decision, run_id="run-other")
    entries = [
        sign_envelope(canonical_bytes(decision.to_payload()), layout.RUN_PAYLOAD_TYPE, [signer]),
        sign_envelope(canonical_bytes(other_run.to_payload()), layout.APPROVAL_PAYLOAD_TYPE, [signer]),
    ]
    report = verify(build(make_input(signer, artifact, approvals=entries)), tmp_path, [signer.public_key_pem])
    assert report.failures == [
        "approvals/ledger.jsonl line 1: payloadType is 'application/vnd.stellaops.pack-run+json', "
        "expected 'application/vnd.stellaops.pack-approval+json'",
        "approvals/ledger.jsonl line 2: runId 'run-other' does not match the bundle's 'run-1'",
    ]


def test_a_signed_manifest_with_wrong_content_is_reported(
    good: dict[str, bytes], signer: Any, tmp_path: Path
) -> None:
    def mutate(manifest: dict[str, Any]) -> None:
        manifest["hashes"].append(dict(manifest["hashes"][0]))
        manifest["hashes"].append({"path": "manifest.json", "sha256": "0" * 64, "size": 1})
        manifest["plan"]["rngSeed"] = "7"
        manifest["evidence"]["approvals"] = 3
        manifest["evidence"]["runId"] = "run-x"

    tampered = dict(good)
    resign_manifest(tampered, signer, mutate)
    report = verify(repack(tampered), tmp_path, [signer.public_key_pem])
    seed = rng_seed(json.loads(good["manifest.json"])["plan"]["hash"])
    assert report.failures == [
        "manifest.json: hashes lists approvals/ledger.jsonl more than once",
        "manifest.json: hashes must not list manifest.json",
        f"manifest.json: plan.rngSeed 7 is not derived from planHash (expected {seed})",
        "attestation.dsse.json: predicate.runId 'run-1' does not match the manifest ('run-x')",
        "approvals/ledger.jsonl line 1: runId 'run-1' does not match the bundle's 'run-x'",
        "manifest.json: evidence.approvals is 3 but the ledger holds 1 entries",
    ]


def test_a_signed_manifest_that_breaks_the_schema_is_reported(
    good: dict[str, bytes], signer: Any, tmp_path: Path
) -> None:
    tampered = dict(good)
    resign_manifest(tampered, signer, lambda m: m.update(schemaVersion="v0"))
    report = verify(repack(tampered), tmp_path, [signer.public_key_pem])
    assert "manifest.json: schema: $.schemaVersion: 'stellaops.pack.offline-bundle.v1' was expected" in (
        report.failures
    )


def test_a_non_canonical_plan_is_reported(good: dict[str, bytes], signer: Any, tmp_path: Path) -> None:
    tampered = dict(good)
    tampered["plan.json"] = json.dumps(json.loads(good["plan.json"]), indent=1).encode()
    new_hash = sha256_digest(tampered["plan.json"])

    def mutate(manifest: dict[str, Any]) -> None:
        manifest["plan"].update(hash=new_hash, rngSeed=str(rng_seed(new_hash)))
        for entry in manifest["hashes"]:
            if entry["path"] == "plan.json":
                entry.update(sha256=new_hash.removeprefix("sha256:"), size=len(tampered["plan.json"]))

    resign_manifest(tampered, signer, mutate)
    report = verify(repack(tampered), tmp_path, [signer.public_key_pem])
    assert "plan.json: is not RFC 8785 canonical JSON, so its hash is not the planHash" in report.failures
    assert any(f.startswith("attestation.dsse.json: predicate.planHash") for f in report.failures)


def test_a_secret_in_the_lock_is_reported(good: dict[str, bytes], signer: Any, tmp_path: Path) -> None:
    tampered = {**good, "inputs.lock": canonical_bytes({"secrets": {"registryToken": SECRET}})}
    report = verify(repack(tampered), tmp_path, [signer.public_key_pem])
    assert (
        "inputs.lock: secret 'registryToken' is not redacted: its value must be "
        "'hmac-sha256:<64 hex>', '<redacted>' or '<unresolved>'"
    ) in report.failures


# --- archive-level damage -----------------------------------------------------------------------


def test_a_truncated_bundle_is_reported(signer: Any, artifact: Path, tmp_path: Path) -> None:
    data = build(make_input(signer, artifact))
    report = verify(data[: len(data) // 2], tmp_path, [signer.public_key_pem])
    assert (
        "bundle is not a readable tar.gz: the gzip stream ends before its end-of-stream marker (truncated bundle)"
        in report.failures
    )


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda d: b"not a gzip file", "bundle is not a readable tar.gz: "),
        (lambda d: d[:-8] + bytes([d[-8] ^ 1]) + d[-7:], "bundle is not a readable tar.gz: "),  # CRC
        (lambda d: d + b"junk after", "bundle is not a readable tar.gz: "),
    ],
)
def test_a_damaged_gzip_stream_is_reported(
    signer: Any, artifact: Path, tmp_path: Path, damage: Any, expected: str
) -> None:
    report = verify(damage(build(make_input(signer, artifact))), tmp_path, [signer.public_key_pem])
    assert any(f.startswith(expected) for f in report.failures), report.failures


def test_a_missing_bundle_file_is_reported(signer: Any, tmp_path: Path) -> None:
    report = verify_bundle(tmp_path / "nope.tar.gz", [signer.public_key_pem])
    assert report.failures[0].startswith("cannot open bundle")
    assert not report.ok


def test_trailing_tar_data_links_and_duplicates_are_reported(
    good: dict[str, bytes], signer: Any, tmp_path: Path
) -> None:
    def extra(tar: tarfile.TarFile) -> None:
        link = tarfile.TarInfo("outputs/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        again = tarfile.TarInfo("plan.json")
        again.size = 2
        tar.addfile(again, io.BytesIO(b"{}"))
        evil = tarfile.TarInfo("../evil")
        evil.size = 1
        tar.addfile(evil, io.BytesIO(b"x"))

    raw = gzip.decompress(repack(good, extra)) + b"\x01" * 512
    report = verify(gzip.compress(raw), tmp_path, [signer.public_key_pem])
    assert report.failures == [
        "outputs/link: is a symbolic link; a bundle holds regular files only",
        "plan.json: appears more than once in the bundle",
        "entry '../evil' is not a plain relative path",
        "bundle has data after the end of the tar archive",
    ]


def test_a_multi_member_gzip_bundle_is_read_whole(
    good: dict[str, bytes], signer: Any, tmp_path: Path
) -> None:
    raw = gzip.decompress(repack(good))
    split = len(raw) // 3
    data = gzip.compress(raw[:split]) + gzip.compress(raw[split:])
    assert verify(data, tmp_path, [signer.public_key_pem]).failures == []


# --- deterministic gzip -------------------------------------------------------------------------


def test_gzip_writer_output_depends_only_on_the_bytes_written() -> None:
    text = b"".join(b'{"event":"step.started","sequence":%d}\n' % i for i in range(40000))
    noise = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(40000))
    data = text[:300000] + noise + text + noise[:999]
    outputs = set()
    for write_size in (1, 4097, 65536, len(data)):
        sample = data if write_size > 1 else data[:20000]
        out = io.BytesIO()
        writer = DeterministicGzipWriter(out, chunk_size=64 * 1024)
        for offset in range(0, len(sample), write_size):
            writer.write(sample[offset : offset + write_size])
        writer.close()
        assert gzip.decompress(out.getvalue()) == sample
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        assert inflater.decompress(out.getvalue()) == sample
        assert inflater.eof
        assert not inflater.unused_data
        if write_size > 1:
            outputs.add(out.getvalue())
    assert len(outputs) == 1
    compressed = outputs.pop()
    assert len(compressed) < len(data) * 0.7  # text compressed, random data stored


def test_gzip_writer_handles_empty_input_and_refuses_writes_after_close() -> None:
    out = io.BytesIO()
    writer = DeterministicGzipWriter(out)
    writer.close()
    writer.close()
    assert gzip.decompress(out.getvalue()) == b""
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"x")


class _OneShot:
    """A stream that can only be read once, front to back (like a network body)."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self._inner.read(size)


def _payload(envelope: bytes) -> bytes:
    return base64.b64decode(json.loads(envelope)["payload"])
