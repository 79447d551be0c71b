"""Every command answers bad input through the real console script with a clear error, exit 1 or 2 and no
traceback: garbage approval files, files that are not UTF-8, endless files, missing output directories and
bundles with deeply nested JSON."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from taskrunner.cli.app import app
from taskrunner.pack.limits import MAX_MANIFEST_BYTES
from typer.testing import CliRunner

TASKRUNNER = Path(sys.executable).with_name("taskrunner")
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
HELLO = Path(__file__).resolve().parents[2] / "examples" / "packs" / "hello.yaml"


@dataclass
class Result:
    code: int
    output: str


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in [k for k in os.environ if k.startswith("TASKRUNNER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TASKRUNNER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return dict(os.environ)


def taskrunner(env: dict[str, str], *args: str | Path) -> Result:
    """The console script's app, in process (an escaping exception would be a traceback)."""
    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(result.exception))
        raise AssertionError(f"Traceback (the command raised):\n{trace}")
    return Result(result.exit_code, result.output)


def assert_refused(result: Result, fragment: str) -> None:
    assert result.code in (1, 2), result.output
    assert "Traceback" not in result.output, result.output
    assert any(word in result.output.lower() for word in ("error", "failed")), result.output
    assert fragment.lower() in result.output.lower(), result.output


GARBAGE: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "empty": (lambda _: b"", "is empty"),
    "not-json": (lambda _: b"approve: yes\n", "not valid JSON"),
    "json-array": (lambda _: b'["kind"]', "must be a JSON object"),
    "wrong-fields": (lambda _: json.dumps({"kind": "nope", "runId": 1}).encode(), "is not an approval"),
    "huge": (lambda _: b" " * (MAX_MANIFEST_BYTES + 10), "limit"),
    "binary": (lambda _: b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not UTF-8"),
    "deep": (lambda _: DEEP_JSON, "nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_approvals_import_refuses_garbage(env: dict[str, str], tmp_path: Path, case: str) -> None:
    content, fragment = GARBAGE[case]
    path = tmp_path / f"{case}.json"
    path.write_bytes(content(tmp_path))
    assert_refused(taskrunner(env, "approvals", "import", path), fragment)


def test_approvals_import_names_missing_fields(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "response.json"
    path.write_text(json.dumps({"kind": "stellaops.io/approval-response.v1", "runId": "r"}))
    assert_refused(taskrunner(env, "approvals", "import", path), "missing field")


@pytest.mark.parametrize("case", ["empty", "json-array", "binary", "deep"])
def test_approvals_sign_refuses_garbage(env: dict[str, str], tmp_path: Path, case: str) -> None:
    content, fragment = GARBAGE[case]
    request, key = tmp_path / "request.json", tmp_path / "key.pem"
    request.write_bytes(content(tmp_path))
    key.write_bytes(b"not a key")
    assert_refused(
        taskrunner(env, "approvals", "sign", request, "--key", key, "-o", tmp_path / "r.json"), fragment
    )


def test_approvals_sign_refuses_a_bad_key(env: dict[str, str], tmp_path: Path) -> None:
    request, key = tmp_path / "request.json", tmp_path / "key.pem"
    fields = ("runId", "gateId", "tenantId", "planHash")
    request.write_text(json.dumps({"kind": "stellaops.io/approval-request.v1", **{f: "x" for f in fields}}))
    key.write_bytes(b"\x00garbage")
    assert_refused(
        taskrunner(env, "approvals", "sign", request, "--key", key, "-o", tmp_path / "r.json"), "key"
    )


@pytest.mark.parametrize("command", ["run", "validate", "plan", "simulate", "compile"])
def test_pack_commands_refuse_a_file_that_is_not_utf8(
    env: dict[str, str], tmp_path: Path, command: str
) -> None:
    pack = tmp_path / "pack.yaml"
    pack.write_bytes(b"apiVersion: stellaops.io/pack.v1\nkind: \xff\xfe\n")
    assert_refused(taskrunner(env, command, pack), "not UTF-8")


@pytest.mark.parametrize("command", ["run", "validate"])
def test_pack_commands_read_an_endless_file_only_up_to_the_limit(env: dict[str, str], command: str) -> None:
    """A real process: it must neither read until MemoryError nor print a traceback."""
    child = subprocess.run(
        [str(TASKRUNNER), command, "/dev/zero"], env=env, capture_output=True, text=True, timeout=60
    )
    assert_refused(Result(child.returncode, child.stdout + child.stderr), f"{MAX_MANIFEST_BYTES:,}")


def test_an_endless_inputs_file_is_refused(env: dict[str, str]) -> None:
    assert_refused(taskrunner(env, "plan", HELLO, "--inputs", "/dev/zero"), "limit")


@pytest.mark.parametrize(
    "args",
    [
        ("runs", "export", "01JD8Z6Q4V9YB3M7N2K5X8W1TA", "-o"),
        ("approvals", "export", "01JD8Z6Q4V9YB3M7N2K5X8W1TA", "review", "-o"),
    ],
    ids=["runs-export", "approvals-export"],
)
def test_writing_into_a_missing_directory_is_refused(
    env: dict[str, str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    assert_refused(taskrunner(env, *args, tmp_path / "missing" / "out.file"), "does not exist")


def test_compile_into_a_missing_directory_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    assert_refused(taskrunner(env, "compile", HELLO, "-o", tmp_path / "missing" / "x.json"), "does not exist")


def test_verify_reports_a_bundle_with_deeply_nested_json(env: dict[str, str], tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in ("manifest.json", "attestation.intoto.json"):
            info = tarfile.TarInfo(name)
            info.size = len(DEEP_JSON)
            tar.addfile(info, io.BytesIO(DEEP_JSON))
    bundle = tmp_path / "deep.tar.gz"
    bundle.write_bytes(gzip.compress(raw.getvalue()))
    trust = tmp_path / "trust.pem"
    trust.write_text(
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"
    )
    result = taskrunner(env, "verify", bundle, "--trust", trust)
    assert_refused(result, "nested too deeply")


@pytest.mark.parametrize(
    "args",
    [
        ("approvals", "trust", "bob", "/dev/zero"),
        ("verify", "/dev/zero", "--trust", "/dev/zero"),
        ("approvals", "import", "/dev/zero"),
        ("simulate", "/dev/zero"),
        ("compile", "/dev/zero"),
    ],
    ids=["trust", "verify-trust", "import", "simulate", "compile"],
)
def test_endless_files_are_read_only_up_to_a_limit(env: dict[str, str], args: tuple[str, ...]) -> None:
    assert_refused(taskrunner(env, *args), "larger than")


def test_signing_with_an_endless_key_file_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    fields = ("runId", "gateId", "tenantId", "planHash")
    request.write_text(json.dumps({"kind": "stellaops.io/approval-request.v1", **{f: "x" for f in fields}}))
    result = taskrunner(env, "approvals", "sign", request, "--key", "/dev/zero", "-o", tmp_path / "r.json")
    assert_refused(result, "larger than any key file")
