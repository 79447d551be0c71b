"""A secret's value never leaves the step executor: a unique canary is passed as a pack secret, and no byte of
the evidence bundle, the TASKRUNNER_HOME tree (store, logs, artifacts, objects), moto's in-memory AWS or the
process output holds it - only the redacted form (``hmac-sha256:<hex>`` or ``<redacted>``) does."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import io
import json
import os
import re
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PACKS, REPO, submit, wait_for_step
from taskrunner.keys import artifact_key, evidence_key
from taskrunner.local.approvers import approve_locally

BLANK_PACK = """
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: canary-blank, version: 1.0.0}
spec:
  secrets: [{name: token, ref: "env:CANARY_TOKEN"}]
  security: {secretsRedactionPolicy: blank}
  sandbox: {mode: sealed, egressAllowlist: [], cpuSeconds: 60, memoryMiB: 1024}
  steps:
    - id: echo
      run: {uses: noop, with: {token: "{{ secrets.token }}", header: "Bearer {{ secrets.token }}"}}
      outputs: [token]
    - id: receipt
      run: {uses: artifact.write, with: {name: receipt.txt, content: "token={{ secrets.token }}\\n"}}
    - id: shell
      run:
        uses: exec
        with: {argv: [sh, -c, "echo out=$T; echo err=$T >&2"], env: {T: "{{ secrets.token }}"}}
    - id: missing
      continueOnError: true
      run:
        uses: bundle.ingest
        with: {path: "/nonexistent/{{ secrets.token }}.tar", checksumSha256: "%s"}
  outputs: [{name: echoed, type: value, from: steps.echo.outputs}]
""" % ("0" * 64)

NAMED_PACK = """
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: canary-named, version: 1.0.0}
spec:
  secrets: [{name: token, ref: "env:CANARY_TOKEN"}]
  security: {secretsRedactionPolicy: blank}
  sandbox: {mode: sealed, egressAllowlist: []}
  steps:
    - id: receipt
      run: {uses: artifact.write, with: {name: "receipt-{{ secrets.token }}.txt", content: "ok"}}
"""

HMAC = re.compile(r"^hmac-sha256:[0-9a-f]{64}$")


def new_canary() -> str:
    return f"canary{uuid.uuid4().hex}"  # letters and digits: identical in JSON, URLs and file names


# ------------------------------------------------------------------------------------------ where to look
def bundle_places(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Every byte of a bundle: compressed, decompressed, each member's name and content, DSSE payloads."""
    yield "bundle (gzip)", data
    yield "bundle (tar)", gzip.decompress(data)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            yield f"member name {member.name}", member.name.encode()
            content = tar.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            yield member.name, content
            if member.name.endswith(".dsse.json"):
                envelopes = [content]
            elif member.name.endswith(".jsonl"):
                envelopes = content.splitlines()
            else:
                envelopes = []
            for envelope in envelopes:
                yield f"{member.name} payload", base64.b64decode(json.loads(envelope)["payload"])


def home_places(home: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(home.rglob("*")):
        yield f"path {path}", str(path).encode()
        if path.is_file():
            yield str(path), path.read_bytes()


def moto_places(rt: Any) -> Iterator[tuple[str, bytes]]:
    """moto's S3 objects and every Step Functions execution's input, output and history."""
    s3 = rt.aws.client("s3")
    for bucket in s3.list_buckets()["Buckets"]:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket["Name"]):
            for version in page.get("Versions", []):
                key = version["Key"]
                body = s3.get_object(Bucket=bucket["Name"], Key=key, VersionId=version["VersionId"])["Body"]
                yield f"s3://{bucket['Name']}/{key}", key.encode() + body.read()
    sfn = rt.aws.client("stepfunctions")
    for machine in sfn.list_state_machines()["stateMachines"]:
        arn = machine["stateMachineArn"]
        yield arn, sfn.describe_state_machine(stateMachineArn=arn)["definition"].encode()
        for execution in sfn.list_executions(stateMachineArn=arn)["executions"]:
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            history = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
            yield execution["executionArn"], json.dumps([described, history], default=str).encode()


def assert_nowhere(canary: str, places: Iterator[tuple[str, bytes]]) -> None:
    needle = canary.encode()
    assert [where for where, data in places if needle in data] == []


def assert_canary_absent(rt: Any, run: Any, canary: str, capfd: pytest.CaptureFixture[str]) -> bytes:
    with rt.svc.artifacts.open(evidence_key(run.runId)) as stream:
        bundle = stream.read()
    places = list(bundle_places(bundle))
    assert len(places) > 10  # every member was read
    assert_nowhere(canary, iter(places))
    assert_nowhere(canary, home_places(rt.home))
    assert_nowhere(canary, moto_places(rt))
    out, err = capfd.readouterr()
    assert canary not in out + err
    return bundle


def member(bundle: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        return tar.extractfile(name).read()  # type: ignore[union-attr]


def fingerprint(home: Path, value: str) -> str:
    """The hash-policy form, computed here from the local redaction key file."""
    key = (home / "keys" / "redaction.key").read_bytes()
    return "hmac-sha256:" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


# ------------------------------------------------------------------------------------------ tests
def test_airgap_import_with_a_hash_policy_secret_leaks_nothing(
    runtime: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    canary = new_canary()
    monkeypatch.setenv("MIRROR_TOKEN", canary)
    offline = tmp_path / "offline-bundle.tar"
    offline.write_bytes(b"offline bundle contents\n")
    inputs = {"bundlePath": str(offline), "bundleSha256": hashlib.sha256(offline.read_bytes()).hexdigest()}

    run = submit(runtime, PACKS / "airgap-import.yaml", inputs)
    wait_for_step(runtime, run.runId, "review", "waiting")
    approve_locally(
        runtime.svc, runtime.home, tenant_id="local", run_id=run.runId, gate_id="review", approver="ops"
    )
    run = runtime.wait(run.runId, timeout=60)
    assert run.status == "succeeded"
    assert run.step("publish").status == "succeeded"  # the step that used the secret really ran

    bundle = assert_canary_absent(runtime, run, canary, capfd)
    redacted = fingerprint(runtime.home, canary)
    lock = json.loads(member(bundle, "inputs.lock"))
    assert lock["secretsRedactionPolicy"] == "hash"
    assert lock["secrets"]["mirrorToken"] == {"ref": "env:MIRROR_TOKEN", "value": redacted}
    assert HMAC.match(redacted)

    with runtime.svc.artifacts.open(artifact_key(run.runId, "import-receipt")) as stream:
        stored_receipt = stream.read()
    assert json.loads(stored_receipt) == {"bundle": inputs["bundleSha256"], "token": redacted}
    assert member(bundle, "outputs/import-receipt") == stored_receipt

    # A fresh process without the secret exports the very bytes that were sealed.
    env = {k: v for k, v in os.environ.items() if k != "MIRROR_TOKEN"}
    env["TASKRUNNER_HOME"] = str(runtime.home)
    out = tmp_path / "export.tar.gz"
    subprocess.run(
        [str(REPO / ".venv" / "bin" / "taskrunner"), "runs", "export", run.runId, "-o", str(out)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert out.read_bytes() == bundle


def test_blank_policy_secret_is_redacted_in_outputs_artifacts_transcripts_and_errors(
    runtime: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    canary = new_canary()
    monkeypatch.setenv("CANARY_TOKEN", canary)
    run = runtime.wait(submit(runtime, BLANK_PACK).runId, timeout=60)
    assert run.status == "succeeded"

    bundle = assert_canary_absent(runtime, run, canary, capfd)
    lock = json.loads(member(bundle, "inputs.lock"))
    assert lock["secrets"]["token"] == {"ref": "env:CANARY_TOKEN", "value": "<redacted>"}
    assert lock["secretsRedactionPolicy"] == "blank"

    assert run.step("echo").outputs == {"token": "<redacted>", "header": "Bearer <redacted>"}
    assert run.outputs == {"echoed": {"token": "<redacted>", "header": "Bearer <redacted>"}}
    assert run.step("shell").outputs["stdout"] == "out=<redacted>\n"
    assert run.step("missing").status == "failed"
    assert "/nonexistent/<redacted>.tar" in run.step("missing").error.message
    for name, expected in (
        ("receipt.txt", b"token=<redacted>\n"),
        ("shell.stdout", b"out=<redacted>\n"),
        ("shell.stderr", b"err=<redacted>\n"),
    ):
        with runtime.svc.artifacts.open(artifact_key(run.runId, name)) as stream:
            assert stream.read() == expected
        assert member(bundle, f"outputs/{name}") == expected
    transcript = member(bundle, "transcripts/logs.ndjson").decode()
    assert "/nonexistent/<redacted>.tar" in transcript


def test_a_secret_in_an_artifact_name_is_redacted(
    runtime: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    canary = new_canary()
    monkeypatch.setenv("CANARY_TOKEN", canary)
    run = runtime.wait(submit(runtime, NAMED_PACK).runId, timeout=60)
    assert run.status == "succeeded"
    assert run.step("receipt").outputs["name"] == "receipt-<redacted>.txt"
    assert_canary_absent(runtime, run, canary, capfd)


EXCERPT_PACK = """
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: canary-excerpt, version: 1.0.0}
spec:
  secrets: [{name: token, ref: "env:CANARY_TOKEN"}]
  sandbox: {mode: sealed, egressAllowlist: [], cpuSeconds: 60, memoryMiB: 1024}
  steps:
    - id: shell
      run:
        uses: exec
        with: {argv: [sh, -c, "printf '%%%ds' x; printf '%%s' \\"$T\\""], env: {T: "{{ secrets.token }}"}}
"""


def test_a_secret_cut_by_the_exec_output_excerpt_leaves_no_prefix(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = uuid.uuid4().hex + uuid.uuid4().hex  # no fixed prefix: any piece of it is its own
    monkeypatch.setenv("CANARY_TOKEN", secret)
    run = runtime.wait(submit(runtime, EXCERPT_PACK % (4096 - 16)).runId, timeout=60)
    assert run.status == "succeeded"

    stdout = run.step("shell").outputs["stdout"]
    assert stdout.startswith(" " * 100)  # the excerpt really ends 16 bytes into the secret
    assert [n for n in range(6, len(secret) + 1) if secret[:n] in stdout] == []
    # 12+ hex characters: long enough not to occur by chance among the digests and ids in the store
    pieces = [secret[:n].encode() for n in range(12, len(secret) + 1)]
    assert [where for where, data in home_places(runtime.home) if any(p in data for p in pieces)] == []
