"""``taskrunner run`` and ``taskrunner runs ...`` end to end: the real console script in a subprocess, each with
its own ``TASKRUNNER_HOME`` (the commands start their own local runtime, as a user's shell would)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from conftest import PACKS, REPO

FIXTURE_PACKS = REPO / "tests" / "fixtures" / "packs"
TASKRUNNER = Path(sys.executable).with_name("taskrunner")
DOCUMENT_KEYS = {"runId", "planHash", "status", "steps", "outputs", "artifacts", "evidence"}
MIRROR_TOKEN = "mirror-token-4b1d-never-stored"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def document(self) -> dict[str, Any]:
        """The one JSON document of ``--json`` output (json.loads refuses anything after it)."""
        document: dict[str, Any] = json.loads(self.stdout)
        return document


def taskrunner(home: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> Result:
    """Run the console script with ``home`` as TASKRUNNER_HOME and no TaskRunner/AWS settings inherited."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TASKRUNNER_", "AWS_", "POWERTOOLS_"))}
    proc = subprocess.run(
        [str(TASKRUNNER), *args],
        cwd=REPO,
        env={**base, "TASKRUNNER_HOME": str(home), **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def stored_file(uri: str) -> Path:
    parsed = urlparse(uri)
    assert parsed.scheme == "file", uri
    return Path(unquote(parsed.path))


def assert_run_document(document: dict[str, Any]) -> None:
    """The shape ``taskrunner run --json`` promises."""
    assert set(document) >= DOCUMENT_KEYS
    assert set(document) - DOCUMENT_KEYS <= {"error"}
    assert document["planHash"].startswith("sha256:")
    assert len(document["planHash"]) == 71
    for step in document["steps"]:
        assert set(step) == {"stepId", "status", "attempts"}
        assert isinstance(step["attempts"], int)
        assert step["attempts"] >= 0
    for artifact in document["artifacts"]:
        assert set(artifact) == {"name", "sha256", "size"}
        assert len(artifact["sha256"]) == 64
        assert artifact["size"] >= 0
    assert isinstance(document["outputs"], dict)


def write_bundle(directory: Path) -> tuple[Path, str]:
    path = directory / "offline-bundle.tar.gz"
    path.write_bytes(os.urandom(64 * 1024))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class CliRun:
    home: Path
    result: Result
    bundle: tuple[Path, str]

    @property
    def document(self) -> dict[str, Any]:
        return self.result.document()


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Runs:
    """``taskrunner run`` results shared by the tests of this module, one per pack, across xdist workers
    (each command starts a whole local runtime, so a pack several tests inspect runs once)."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def get(self, pack: Path) -> CliRun:
        directory = self._root / pack.stem
        directory.mkdir(parents=True, exist_ok=True)
        record = directory / "result.json"
        with exclusive(self._root / f"{pack.stem}.lock"):
            if not record.exists():
                path, sha = write_bundle(directory)
                args, env = example_arguments(pack.stem, (path, sha))
                result = taskrunner(directory / "home", "run", str(pack), "--json", *args, env=env)
                data = {"result": asdict(result), "bundle": str(path), "sha": sha}
                record.write_text(json.dumps(data), encoding="utf-8")
            data = json.loads(record.read_text(encoding="utf-8"))
        return CliRun(directory / "home", Result(**data["result"]), (Path(data["bundle"]), data["sha"]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, worker_id: str, testrun_uid: str) -> Runs:
    base = tmp_path_factory.getbasetemp()
    root = base / "cli-runs" if worker_id == "master" else base.parent / f"cli-runs-{testrun_uid}"
    root.mkdir(parents=True, exist_ok=True)
    return Runs(root)


# ------------------------------------------------------------------------------------------ example packs
def example_arguments(name: str, bundle: tuple[Path, str]) -> tuple[list[str], dict[str, str]]:
    """What each example needs to run unattended: the airgap pack wants a real bundle, its sha and a token."""
    if name == "airgap-import":
        path, sha = bundle
        args = ["-i", f"bundlePath={path}", "-i", f"bundleSha256={sha}", "--approve", "review"]
        return args, {"MIRROR_TOKEN": MIRROR_TOKEN}
    return [], {}


@pytest.mark.parametrize("pack", sorted(PACKS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_pack_runs_to_succeeded(pack: Path, runs: Runs) -> None:
    run = runs.get(pack)

    assert run.result.code == 0, run.result.stderr
    document = run.document
    assert_run_document(document)
    assert set(document) == DOCUMENT_KEYS
    assert document["status"] == "succeeded"
    assert {s["status"] for s in document["steps"]} <= {"succeeded", "skipped", "approved"}
    assert stored_file(document["evidence"]["location"]).is_file()
    if pack.stem == "airgap-import":
        path, sha = run.bundle
        statuses = {s["stepId"]: s["status"] for s in document["steps"]}
        assert statuses["review"] == "approved"
        assert statuses["publish"] == "succeeded"
        names = {a["name"] for a in document["artifacts"]}
        assert {f"bundles/{sha}/{path.name}", "import-receipt"} <= names
        # The secret reached the step, but no stored file (run, logs, artifacts, evidence) holds it.
        leaks = [p for p in run.home.rglob("*") if p.is_file() and MIRROR_TOKEN.encode() in p.read_bytes()]
        assert leaks == []
        assert MIRROR_TOKEN not in run.result.stdout


def test_artifacts_are_listed_with_digests_of_the_stored_bytes(runs: Runs) -> None:
    airgap = runs.get(PACKS / "airgap-import.yaml")
    document, (path, sha) = airgap.document, airgap.bundle

    listed = taskrunner(airgap.home, "runs", "artifacts", document["runId"], "--json")

    assert listed.code == 0, listed.stderr
    items = json.loads(listed.stdout)
    assert sorted(a["name"] for a in items) == sorted(
        [f"bundles/{sha}/{path.name}", f"bundles/{sha}/metadata.json", "import-receipt"]
    )
    for item in items:
        data = stored_file(item["storedPath"]).read_bytes()
        assert item["sha256"] == hashlib.sha256(data).hexdigest(), item["name"]
        assert item["size"] == len(data)
    contents = {a["name"]: stored_file(a["storedPath"]).read_bytes() for a in items}
    assert contents[f"bundles/{sha}/{path.name}"] == path.read_bytes()
    assert json.loads(contents[f"bundles/{sha}/metadata.json"])["sha256"] == sha
    # The receipt is stored redacted; its digest is that of the redacted bytes actually stored.
    receipt = json.loads(contents["import-receipt"])
    assert receipt["bundle"] == sha
    assert receipt["token"].startswith("hmac-sha256:")
    # The run's own report lists the same artifacts with the same digests.
    assert sorted((a["name"], a["sha256"], a["size"]) for a in document["artifacts"]) == sorted(
        (a["name"], a["sha256"], a["size"]) for a in items
    )


def test_logs_are_gapless_with_the_lifecycle_in_order(runs: Runs) -> None:
    hello = runs.get(PACKS / "hello.yaml")
    home, document = hello.home, hello.document

    result = taskrunner(home, "runs", "logs", document["runId"])

    assert result.code == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert {e["runId"] for e in events} == {document["runId"]}
    assert [(e["eventType"], e.get("stepId")) for e in events] == [
        ("run.created", None),
        ("run.started", None),
        ("plan.verified", None),
        ("step.started", "greet"),
        ("step.succeeded", "greet"),
        ("step.started", "report"),
        ("artifact.captured", "report"),
        ("step.succeeded", "report"),
        ("run.completed", None),
    ]
    assert all(isinstance(v, str) for e in events for v in (e.get("metadata") or {}).values())
    assert events[-1]["metadata"]["outcome"] == "succeeded"
    timestamps = [e["timestamp"] for e in events]
    assert timestamps == sorted(timestamps)
    assert all(t.endswith("Z") for t in timestamps)


def test_make_run_equivalent_exports_evidence_that_verifies(runs: Runs, tmp_path: Path) -> None:
    hello = runs.get(PACKS / "hello.yaml")
    home, document = hello.home, hello.document
    listed = taskrunner(home, "runs", "list", "--limit", "1", "--json")
    run_id = json.loads(listed.stdout)[0]["runId"]
    assert run_id == document["runId"]
    bundle, pem = tmp_path / f"evidence-{run_id}.tar.gz", tmp_path / "signing.pub.pem"

    exported = taskrunner(home, "runs", "export", run_id, "-o", str(bundle), "--json")
    public = taskrunner(home, "keys", "export-public")
    pem.write_text(public.stdout)
    verified = taskrunner(home, "verify", str(bundle), "--trust", str(pem), "--require-dsse")

    assert exported.code == 0, exported.stderr
    assert (
        json.loads(exported.stdout)["sha256"] == "sha256:" + hashlib.sha256(bundle.read_bytes()).hexdigest()
    )
    assert public.code == 0
    assert public.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert verified.code == 0, verified.stdout + verified.stderr


# ------------------------------------------------------------------------------------------ exit codes
def test_a_failed_run_exits_1_with_its_error(runs: Runs) -> None:
    result = runs.get(FIXTURE_PACKS / "failing-step.yaml").result

    assert result.code == 1
    document = result.document()
    assert_run_document(document)
    assert document["status"] == "failed"
    assert document["error"]["message"] == (
        "exec: sh exited with status 3 (its address space is limited to 1024 MiB by spec.sandbox.memoryMiB)"
    )
    assert [(s["stepId"], s["status"], s["attempts"]) for s in document["steps"]] == [
        ("prepare", "succeeded", 1),
        ("broken", "failed", 1),
        ("never", "cancelled", 0),
    ]
    assert document["evidence"] is not None
    # The report is the command's output; the workflow engine's internals stay out of it.
    assert "FailureEventException" not in result.stderr


def test_a_gate_nobody_answers_cancels_the_run_with_no_wait_and_exits_1(tmp_path: Path) -> None:
    pack = str(FIXTURE_PACKS / "approval-gate.yaml")
    result = taskrunner(tmp_path / "home", "run", pack, "--json", "--no-wait")

    assert result.code == 1
    document = result.document()
    assert_run_document(document)
    assert document["status"] == "cancelled"
    assert {s["stepId"]: s["status"] for s in document["steps"]} == {
        "prepare": "succeeded",
        "review": "cancelled",
        "ship": "cancelled",
    }
    assert document["artifacts"] == []
    assert document["evidence"] is not None
    # No TTY to ask on: the command names the gate and how to answer it.
    assert "gate(s) review need a decision" in result.stderr
    assert "--approve GATE" in result.stderr
    assert re.search(r"another approver runs: taskrunner approve \S+ review --as NAME", result.stderr)


def test_invalid_inputs_exit_1_before_any_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = taskrunner(home, "run", str(PACKS / "airgap-import.yaml"), "--json")

    assert result.code == 1
    assert "bundlePath" in result.stderr
    assert result.stdout == ""
    assert list((home / "runs").glob("*/run.json")) == []


# ------------------------------------------------------------------------------------------ tampering
def tamper_plan(home: Path, run_id: str) -> None:
    """Change a step parameter in the stored plan, replacing run.json atomically as the store does."""
    path = home / "runs" / run_id / "run.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["plan"]["steps"][0]["with"] == {"label": "original"}  # resolved at plan time
    doc["plan"]["steps"][0]["with"]["label"] = "tampered"
    scratch = path.with_name(".run.json.edit")
    scratch.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(scratch, path)


def test_resuming_a_run_whose_stored_plan_was_tampered_with_fails_with_plan_hash_mismatch(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    first = taskrunner(home, "run", str(FIXTURE_PACKS / "failing-step.yaml"), "--json")
    assert first.code == 1
    run_id = first.document()["runId"]
    tamper_plan(home, run_id)

    result = taskrunner(home, "runs", "resume", run_id, "--json", timeout=60)

    assert result.code == 1
    document = result.document()
    assert_run_document(document)
    assert document["status"] == "failed"
    assert document["error"]["code"] == "PlanHashMismatch"
    assert document["planHash"] in document["error"]["message"]
    # Verification failed before any step: nothing ran again.
    assert {s["stepId"]: s["attempts"] for s in document["steps"]} == {"prepare": 1, "broken": 1, "never": 0}
    logs = [json.loads(line) for line in (home / "runs" / run_id / "logs.ndjson").read_text().splitlines()]
    verdicts = [e["metadata"]["result"] for e in logs if e["eventType"] == "plan.verified"]
    assert verdicts == ["match", "mismatch"]
