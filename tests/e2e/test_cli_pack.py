"""The pack commands of the ``taskrunner`` CLI: output, one JSON document with --json, exit codes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from taskrunner.canonical import canonical_bytes
from taskrunner.cli.main import app
from taskrunner.redaction import fingerprint
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
PACKS = ROOT / "examples" / "packs"
HELLO = str(PACKS / "hello.yaml")
AIRGAP = str(PACKS / "airgap-import.yaml")
CONTROL = str(PACKS / "control-flow.yaml")
TASKRUNNER = Path(sys.executable).parent / "taskrunner"
AIRGAP_INPUTS = ["-i", "bundlePath=/data/b.tar", "-i", f"bundleSha256={'a' * 64}"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TASKRUNNER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner(env=env).invoke(app, list(args))


def test_validate_accepts_a_valid_pack() -> None:
    result = invoke("validate", HELLO)
    assert result.exit_code == 0, result.stderr
    assert "pack hello 1.0.0 is valid" in result.stdout


@pytest.mark.parametrize("path", sorted((PACKS / "invalid").glob("*.yaml")), ids=lambda p: p.name)
def test_validate_refuses_invalid_packs_with_positions_and_no_traceback(path: Path) -> None:
    result = invoke("validate", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"{path}:" in result.stderr
    assert "(hint: " in result.stderr
    assert "Traceback" not in result.stderr


def test_plan_json_is_one_document_with_a_verifiable_hash(home: Path) -> None:
    result = invoke("plan", AIRGAP, *AIRGAP_INPUTS, "-i", 'targets=["x"]', "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"planHash", "rngSeed", "plan", "simulation", "inputsLock"}
    assert document["planHash"] == "sha256:" + hashlib.sha256(canonical_bytes(document["plan"])).hexdigest()
    assert document["rngSeed"] == int(
        hashlib.sha256(b"rng:" + document["planHash"].encode()).hexdigest()[:16], 16
    )
    assert document["plan"]["inputs"]["targets"] == ["x"]
    assert [s["stepId"] for s in document["simulation"]["steps"]][:3] == [
        "ingest",
        "scan-all",
        "scan-all[0]::scan",
    ]
    assert document["inputsLock"]["secrets"]["mirrorToken"] == {
        "ref": "env:MIRROR_TOKEN",
        "value": "<unresolved>",
    }


def test_plan_locks_env_secrets_as_fingerprints_under_the_local_key(home: Path) -> None:
    result = invoke("plan", AIRGAP, *AIRGAP_INPUTS, "--json", env={"MIRROR_TOKEN": "mirror-s3cret"})
    assert result.exit_code == 0, result.stderr
    assert "mirror-s3cret" not in result.stdout
    key = (home / "keys" / "redaction.key").read_bytes()
    lock = json.loads(result.stdout)["inputsLock"]
    assert lock["secrets"]["mirrorToken"]["value"] == fingerprint("mirror-s3cret", key)


def test_input_values_parse_as_json_when_they_can(home: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text("regions: [eu]\nlabel: from-file\nincludeAudit: true\n")
    result = invoke(
        "plan", CONTROL, "--inputs", str(inputs), "-i", "label=cli", "-i", 'regions=["us", "ap"]', "--json"
    )
    assert result.exit_code == 0, result.stderr
    plan_inputs = json.loads(result.stdout)["plan"]["inputs"]
    assert plan_inputs == {"includeAudit": True, "label": "cli", "regions": ["us", "ap"]}
    typed = invoke("plan", CONTROL, "-i", "includeAudit=false", "-i", "label=123", "--json")
    assert typed.exit_code == 1  # 123 parses as a number, and label must be a string
    assert "inputs.label" in typed.stderr


def test_plan_prints_tables_for_people(home: Path) -> None:
    result = invoke("plan", HELLO, "-i", "who=mars")
    assert result.exit_code == 0, result.stderr
    assert "planHash" in result.stdout
    assert "sha256:" in result.stdout
    assert "mars" in result.stdout
    assert "pending" in result.stdout


def test_invalid_inputs_exit_1_with_every_problem() -> None:
    result = invoke("simulate", CONTROL, "-i", "nope=1", "-i", 'regions=["EU"]')
    assert result.exit_code == 1
    assert "inputs.nope: unknown input 'nope'" in result.stderr
    assert "inputs.regions: input 'regions': value \"EU\" at [0] fails schema keyword" in result.stderr
    assert result.stdout == ""


def test_simulate_json_is_the_list_of_steps() -> None:
    result = invoke("simulate", CONTROL, "-i", "includeAudit=true", "--json")
    assert result.exit_code == 0, result.stderr
    steps = json.loads(result.stdout)
    assert steps[0] == {"stepId": "prepare", "kind": "run", "status": "pending"}
    assert {"stepId": "fan-out[1]::check", "kind": "run", "status": "pending"} in steps
    assert {"stepId": "guard", "kind": "gate.policy", "status": "requires-policy"} in steps
    assert all(set(step) == {"stepId", "kind", "status"} for step in steps)


def test_compile_json_holds_definition_and_limits(tmp_path: Path) -> None:
    result = invoke("compile", CONTROL, "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"definition", "limits"}
    assert document["definition"]["StartAt"]
    assert document["limits"]


def test_compile_writes_the_definition_and_shows_limits(tmp_path: Path) -> None:
    out = tmp_path / "definition.asl.json"
    result = invoke("compile", HELLO, "-o", str(out), "--limits")
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == canonical_bytes(json.loads(out.read_bytes()))
    assert f"to {out}" in result.stdout
    digest = hashlib.sha256(out.read_bytes()).hexdigest()[:12]
    assert f"wrote the hello definition (sha256 {digest}," in result.stdout
    assert f"Limits of hello (sha256 {digest})" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["plan"],
        ["plan", HELLO, "-i", "no-equals-sign"],
        ["plan", str(PACKS / "absent.yaml")],
        ["simulate", HELLO, "--inputs", str(PACKS / "absent.json")],
        ["validate", HELLO, "--unknown-flag"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert invoke(*args).exit_code == 2


def test_the_installed_command_prints_one_json_document(tmp_path: Path) -> None:
    env = {"TASKRUNNER_HOME": str(tmp_path / "home"), "PATH": str(TASKRUNNER.parent)}
    ok = subprocess.run([str(TASKRUNNER), "plan", HELLO, "--json"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["plan"]["pack"]["name"] == "hello"
    bad = subprocess.run(
        [str(TASKRUNNER), "plan", str(PACKS / "invalid" / "missing-sandbox.yaml"), "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert (bad.returncode, bad.stdout) == (1, "")
    assert "spec.sandbox: required field is missing" in bad.stderr
    assert "Traceback" not in bad.stderr
    usage = subprocess.run([str(TASKRUNNER), "plan", "-i"], capture_output=True, text=True, env=env)
    assert usage.returncode == 2


def test_an_unreadable_inputs_file_is_an_inputs_error(tmp_path: Path) -> None:
    broken = tmp_path / "inputs.yaml"
    broken.write_text("who: [unclosed\n")
    result = invoke("simulate", HELLO, "--inputs", str(broken))
    assert result.exit_code == 1
    assert f"invalid inputs file {broken}: 1 problem" in result.stderr
    assert f"{broken}:2:1: <document>: YAML error" in result.stderr


def test_an_unusable_taskrunner_home_is_reported_without_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke("plan", HELLO, env={"TASKRUNNER_HOME": str(blocker / "home")})
    assert result.exit_code == 1
    assert "cannot read or create the local redaction key" in result.stderr
    assert "TASKRUNNER_HOME" in result.stderr
