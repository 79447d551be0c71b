"""``taskrunner keys generate|export-public`` and ``taskrunner verify`` through the CLI."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
import typer
from taskrunner.cli.keys import app as keys_app
from taskrunner.cli.verify import verify
from taskrunner.evidence.attestation import StepSummary
from taskrunner.evidence.bundle import ArtifactSource, BundleInput, write_bundle
from taskrunner.evidence.signing import file_signer
from taskrunner.plan.document import Plan
from taskrunner.plan.hashing import plan_hash
from typer.testing import CliRunner

app = typer.Typer()
app.add_typer(keys_app, name="keys")
app.command("verify")(verify)
runner = CliRunner()
STAMP = "2026-02-03T04:05:06.000Z"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TASKRUNNER_HOME", str(tmp_path / "home"))
    for name in ("TASKRUNNER_SIGNING__KEY", "TASKRUNNER_CONFIG_FILE", "TASKRUNNER_STORAGE__MODE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def bundle_signed_by(key: Path, out: Path) -> Path:
    plan = Plan.model_validate(
        {
            "pack": {"name": "hello", "version": "0.1.0", "digest": "sha256:" + "d" * 64},
            "inputs": {"name": "world"},
            "sandbox": {"mode": "restricted", "egressAllowlist": ["example.com"]},
            "steps": [{"kind": "run", "id": "greet", "uses": "noop"}],
        }
    )
    spec = BundleInput(
        run_id="run-cli",
        tenant_id="tenant-cli",
        environment="local",
        plan=plan,
        plan_hash=plan_hash(plan),
        inputs_lock={"inputs": {"name": "world"}, "secrets": {}},
        outcome="failed",
        requested_at=STAMP,
        started_at=STAMP,
        completed_at=STAMP,
        created=STAMP,
        steps=[StepSummary("greet", "failed", 3)],
        signers=[file_signer(key)],
        outputs={},
        artifacts=[ArtifactSource("greeting.txt", io.BytesIO(b"hello world\n"))],
        logs=[{"sequence": 1, "eventType": "step.failed", "message": "boom"}],
    )
    with out.open("wb") as stream:
        write_bundle(spec, stream)
    return out


def export_public(tmp_path: Path, *key_args: str) -> Path:
    result = invoke("keys", "export-public", *key_args)
    assert result.exit_code == 0, result.output
    path = tmp_path / "signing.pub.pem"
    path.write_text(result.stdout)
    return path


# --- keys ---------------------------------------------------------------------------------------


def test_generate_creates_a_private_key_under_taskrunner_home(home: Path) -> None:
    result = invoke("keys", "generate")
    assert result.exit_code == 0, result.output
    key = home / "keys" / "signing.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    assert f"keyid: {file_signer(key).keyid}" in result.stdout
    assert "taskrunner keys export-public" in result.stdout


def test_generate_never_silently_replaces_a_key(home: Path) -> None:
    invoke("keys", "generate")
    key = home / "keys" / "signing.pem"
    before = key.read_bytes()
    again = invoke("keys", "generate")
    assert again.exit_code == 1
    assert f"error: signing key file {key} already exists" in again.stderr
    assert "hint: " in again.stderr
    assert "Traceback" not in again.output
    assert key.read_bytes() == before
    assert invoke("keys", "generate", "--force").exit_code == 0
    assert key.read_bytes() != before


def test_generate_out_prints_how_to_use_the_key(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "k.pem"
    result = invoke("keys", "generate", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"export TASKRUNNER_SIGNING__KEY={out.resolve().as_uri()}" in result.stdout
    assert not (home / "keys" / "signing.pem").exists()


def test_export_public_prints_the_pem_of_the_configured_key(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("keys", "generate")
    local = file_signer(home / "keys" / "signing.pem")
    assert invoke("keys", "export-public").stdout == local.public_key_pem
    other = tmp_path / "other.pem"
    invoke("keys", "generate", "--out", str(other))
    assert (
        invoke("keys", "export-public", "--key", other.as_uri()).stdout == file_signer(other).public_key_pem
    )
    monkeypatch.setenv("TASKRUNNER_SIGNING__KEY", other.as_uri())
    assert invoke("keys", "export-public").stdout == file_signer(other).public_key_pem
    assert invoke("keys", "export-public").stdout.startswith("-----BEGIN PUBLIC KEY-----\n")


@pytest.mark.parametrize(
    ("key", "message"),
    [(None, "does not exist"), ("s3://bucket/key", "unsupported signing key URI")],
)
def test_export_public_explains_a_missing_or_bad_key(home: Path, key: str | None, message: str) -> None:
    result = invoke("keys", "export-public", *(["--key", key] if key else []))
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""


# --- verify -------------------------------------------------------------------------------------


@pytest.fixture
def signed(home: Path, tmp_path: Path) -> tuple[Path, Path]:
    invoke("keys", "generate")
    bundle = bundle_signed_by(home / "keys" / "signing.pem", tmp_path / "run-cli.tar.gz")
    return bundle, export_public(tmp_path)


def test_verify_accepts_a_good_bundle(signed: tuple[Path, Path]) -> None:
    bundle, pub = signed
    result = invoke("verify", str(bundle), "--trust", str(pub), "--require-dsse")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"OK {bundle}: run run-cli (failed), planHash sha256:")
    assert "signed manifest" in result.stdout


def test_verify_json_report(signed: tuple[Path, Path]) -> None:
    bundle, pub = signed
    result = invoke("verify", str(bundle), "--trust", str(pub), "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0
    assert (report["ok"], report["failures"]) == (True, [])
    assert report["summary"]["runId"] == "run-cli"
    assert report["summary"]["verifier"].startswith("taskrunner ")


def test_verify_lists_every_failure_and_exits_1(signed: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, pub = signed
    files = _members(bundle)
    files["transcripts/logs.ndjson"] += b'{"sequence":2}\n'
    files["outputs/greeting.txt"] = b"goodbye\n"
    tampered = _repack(files, tmp_path / "tampered.tar.gz")
    result = invoke("verify", str(tampered), "--trust", str(pub))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"FAILED {tampered}: 5 problem(s)"
    size = len(files["transcripts/logs.ndjson"])
    assert (
        sorted(line.split(":")[0] for line in lines[1:])
        == ["  - outputs/greeting.txt"] * 3 + ["  - transcripts/logs.ndjson"] * 2
    )
    assert f"  - transcripts/logs.ndjson: size {size} does not match the manifest ({size - 15})" in lines
    assert "  - outputs/greeting.txt: size 8 does not match the manifest (12)" in lines
    assert any(line.startswith("  - outputs/greeting.txt: digest sha256:") for line in lines)
    as_json = json.loads(invoke("verify", str(tampered), "--trust", str(pub), "--json").stdout)
    assert as_json["ok"] is False
    assert as_json["failures"] == [line.removeprefix("  - ") for line in lines[1:]]


def test_verify_with_an_untrusted_key_fails(signed: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, _ = signed
    stranger = tmp_path / "stranger.pem"
    invoke("keys", "generate", "--out", str(stranger))
    result = invoke(
        "verify", str(bundle), "--trust", str(export_public(tmp_path, "--key", stranger.as_uri()))
    )
    assert result.exit_code == 1
    assert "manifest.dsse.json: no signature verifies against the trusted keys" in result.stderr


def test_require_dsse_decides_about_an_unsigned_manifest(signed: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, pub = signed
    files = _members(bundle)
    del files["manifest.dsse.json"]
    unsigned = _repack(files, tmp_path / "unsigned.tar.gz")
    lenient = invoke("verify", str(unsigned), "--trust", str(pub))
    assert lenient.exit_code == 0
    assert "UNSIGNED manifest" in lenient.stdout
    assert "warning: the manifest is not signed" in lenient.stderr
    strict = invoke("verify", str(unsigned), "--trust", str(pub), "--require-dsse")
    assert strict.exit_code == 1
    assert "manifest.dsse.json: missing: --require-dsse needs a signed manifest" in strict.stderr


def test_verify_rejects_unusable_trust_files(signed: tuple[Path, Path], home: Path, tmp_path: Path) -> None:
    bundle, _ = signed
    missing = invoke("verify", str(bundle), "--trust", str(tmp_path / "nope.pem"))
    assert missing.exit_code == 2
    assert f"error: cannot read trusted key {tmp_path / 'nope.pem'}" in missing.stderr
    private = invoke("verify", str(bundle), "--trust", str(home / "keys" / "signing.pem"))
    assert private.exit_code == 2
    assert "is a private key" in private.stderr
    assert "export-public" in private.stderr
    assert invoke("verify", str(bundle)).exit_code == 2  # --trust is required


def test_verify_of_a_missing_bundle_is_a_failure(signed: tuple[Path, Path], tmp_path: Path) -> None:
    _, pub = signed
    result = invoke("verify", str(tmp_path / "absent.tar.gz"), "--trust", str(pub))
    assert result.exit_code == 1
    assert "cannot open bundle" in result.stderr


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]


def _repack(files: dict[str, bytes], out: Path) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    out.write_bytes(gzip.compress(raw.getvalue()))
    return out
