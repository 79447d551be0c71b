"""Every finished run - succeeded, failed or cancelled - carries evidence that verifies offline and agrees
with the store; re-exporting it gives the sealed bytes; the API hands out its digest and a URL."""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from conftest import PACKS, REPO, submit, wait_for_step
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from taskrunner.cli.app import app as cli
from taskrunner.engine.lifecycle import cancel_run
from taskrunner.evidence.signing import public_pem
from taskrunner.evidence.verify import verify_bundle
from taskrunner.keys import evidence_key
from taskrunner.local.approvers import approve_locally
from typer.testing import CliRunner

GATED = """
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: gated, version: 1.0.0}
spec:
  inputs: [{name: label, type: string, default: x}]
  approvals: [{id: ok, grants: [packs.approve], requiredCount: 1, expiresAfter: PT1H}]
  sandbox: {mode: sealed, egressAllowlist: []}
  steps:
    - id: prepare
      run: {uses: noop, with: {label: "{{ inputs.label }}"}}
    - id: review
      gate.approval: {approval: ok, message: "release {{ inputs.label }}"}
    - id: publish
      run: {uses: artifact.write, with: {name: notes.txt, content: "released {{ inputs.label }}"}}
"""

FAILING = """
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: failing, version: 1.0.0}
spec:
  sandbox: {mode: sealed, egressAllowlist: [], cpuSeconds: 60, memoryMiB: 1024}
  failure: {retries: {maxAttempts: 2, backoffSeconds: 1}}
  steps:
    - id: prepare
      run: {uses: artifact.write, with: {name: before.txt, content: "written before the failure"}}
    - id: broken
      run: {uses: exec, with: {argv: ["false"]}}
    - id: never
      run: {uses: noop, with: {reached: true}}
"""


# ------------------------------------------------------------------------------------------ reading evidence
def signing_public_pem(home: Path) -> str:
    """The public half of the local signing key, read from the key file (not from the signer under test)."""
    key = load_pem_private_key((home / "keys" / "signing.pem").read_bytes(), password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return public_pem(key.public_key())


def approver_public_pem(home: Path, name: str) -> str:
    key = load_pem_private_key((home / "keys" / "approvers" / f"{name}.pem").read_bytes(), password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return public_pem(key.public_key())


def stored_bundle(rt: Any, run: Any) -> bytes:
    with rt.svc.artifacts.open(evidence_key(run.runId)) as stream:
        data: bytes = stream.read()
    return data


def members(bundle: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def dsse_payload(envelope: bytes) -> Any:
    return json.loads(base64.b64decode(json.loads(envelope)["payload"]))


def expected_steps(rt: Any, run: Any) -> list[dict[str, Any]]:
    """Step summaries as the store records them: attempts for run steps, decisions for approval gates."""
    gates = {g.gateId: g for g in rt.svc.store.list_gates(run.runId)}
    return [
        {
            "stepId": s.stepId,
            "status": s.status,
            "attempts": len(gates[s.stepId].decisions) if s.stepId in gates else len(s.attempts),
        }
        for s in run.steps
    ]


def assert_evidence(rt: Any, run: Any, tmp_path: Path, *trusted: str) -> dict[str, Any]:
    """The sealed bundle verifies with the signing key (+ ``trusted``) and agrees with the store."""
    data = stored_bundle(rt, run)
    assert run.evidence["sha256"] == hashlib.sha256(data).hexdigest()
    assert run.evidence["size"] == len(data)
    path = tmp_path / f"{run.runId}.tar.gz"
    path.write_bytes(data)

    report = verify_bundle(path, [signing_public_pem(rt.home), *trusted], require_dsse=True)
    assert (report.ok, report.failures) == (True, [])
    assert (report.summary["runId"], report.summary["outcome"]) == (run.runId, run.status)

    files = members(data)
    statement = dsse_payload(files["attestation.dsse.json"])
    predicate = statement["predicate"]
    assert predicate["outcome"] == run.status == run.outcome
    assert (predicate["runId"], predicate["tenantId"], predicate["planHash"]) == (
        run.runId,
        run.tenantId,
        run.planHash,
    )
    assert predicate["steps"] == expected_steps(rt, run)
    assert dsse_payload(files["manifest.dsse.json"]) == json.loads(files["manifest.json"])

    transcript = [json.loads(line) for line in files["transcripts/logs.ndjson"].splitlines()]
    stored_logs = rt.svc.store.read_logs(run.runId)
    assert [(e["sequence"], e["eventType"]) for e in transcript] == [
        (e.sequence, e.eventType) for e in stored_logs
    ]
    assert [e.eventType for e in stored_logs].count("run.completed") == 1
    assert transcript[-1]["eventType"] == "run.completed"
    return predicate


def export(run_id: str, out: Path) -> bytes:
    result = CliRunner().invoke(cli, ["runs", "export", run_id, "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert json.loads(result.stdout)["sha256"] == "sha256:" + hashlib.sha256(data).hexdigest()
    return data


def assert_reexport_is_identical(rt: Any, run: Any, tmp_path: Path) -> None:
    """``runs export`` gives the sealed bytes; without the sealed bundle it rebuilds the very same bytes."""
    sealed = stored_bundle(rt, run)
    assert export(run.runId, tmp_path / "export.tar.gz") == sealed

    stored = Path(unquote(urlparse(run.evidence["location"]).path))
    stored.unlink()
    try:
        assert export(run.runId, tmp_path / "rebuilt.tar.gz") == sealed
    finally:
        stored.write_bytes(sealed)


def api_event(name: str, run_id: str, tenant: str = "local", body: Any = None) -> dict[str, Any]:
    """A sample API Gateway event from ``events/`` aimed at ``run_id`` and ``tenant``."""
    event: dict[str, Any] = copy.deepcopy(json.loads((REPO / "events" / f"{name}.json").read_text()))
    template_id = event["pathParameters"]["runId"]
    event["rawPath"] = event["rawPath"].replace(template_id, run_id)
    event["requestContext"]["http"]["path"] = event["rawPath"]
    event["pathParameters"]["runId"] = run_id
    event["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = tenant
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def call(rt: Any, function: str, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    result = rt.invoke(function, event)
    assert not result.is_error, result.payload
    reply = result.json()
    raw = reply["body"]
    if reply.get("isBase64Encoded"):
        raw = base64.b64decode(raw)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    return int(reply["statusCode"]), json.loads(raw)


# ------------------------------------------------------------------------------------------ tests
def test_succeeded_run_with_an_approval_is_attested_and_reexports_identically(
    runtime: Any, tmp_path: Path
) -> None:
    run = submit(runtime, GATED, {"label": "v1"})
    wait_for_step(runtime, run.runId, "review", "waiting")
    approve_locally(
        runtime.svc, runtime.home, tenant_id="local", run_id=run.runId, gate_id="review", approver="alice"
    )
    run = runtime.wait(run.runId, timeout=60)
    assert run.status == "succeeded"

    predicate = assert_evidence(runtime, run, tmp_path, approver_public_pem(runtime.home, "alice"))
    assert [(s["stepId"], s["status"], s["attempts"]) for s in predicate["steps"]] == [
        ("prepare", "succeeded", 1),
        ("review", "approved", 1),
        ("publish", "succeeded", 1),
    ]
    notes = next(a for a in runtime.svc.store.list_artifacts(run.runId) if a.name == "notes.txt")
    assert predicate["outputDigests"]["outputs/notes.txt"] == f"sha256:{notes.sha256}"
    ledger = members(stored_bundle(runtime, run))["approvals/ledger.jsonl"].splitlines()
    assert len(ledger) == 1
    assert dsse_payload(ledger[0])["gateId"] == "review"

    # the approver's key is needed for the ledger: the signing key alone does not vouch for decisions
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(stored_bundle(runtime, run))
    alone = verify_bundle(path, [signing_public_pem(runtime.home)], require_dsse=True)
    assert not alone.ok
    assert all(f.startswith("approvals/ledger.jsonl") for f in alone.failures)

    assert_reexport_is_identical(runtime, run, tmp_path)


def test_succeeded_control_flow_run_is_attested(runtime: Any, tmp_path: Path) -> None:
    run = runtime.wait(submit(runtime, PACKS / "control-flow.yaml").runId, timeout=60)
    assert run.status == "succeeded"
    predicate = assert_evidence(runtime, run, tmp_path)
    statuses = {s["stepId"]: s["status"] for s in predicate["steps"]}
    assert statuses["audit"] == "skipped"
    assert statuses["fan-out[1]::region"] == "succeeded"
    assert_reexport_is_identical(runtime, run, tmp_path)


def test_failed_run_is_attested_with_every_attempt(runtime: Any, tmp_path: Path) -> None:
    run = runtime.wait(submit(runtime, FAILING).runId, timeout=60)
    assert run.status == "failed"
    assert run.step("broken").error.code == "NonZeroExit"

    predicate = assert_evidence(runtime, run, tmp_path)
    assert [(s["stepId"], s["status"], s["attempts"]) for s in predicate["steps"]] == [
        ("prepare", "succeeded", 1),
        ("broken", "failed", 2),
        ("never", "cancelled", 0),
    ]
    assert "outputs/before.txt" in predicate["outputDigests"]

    # a key that did not sign the run is refused
    stranger = public_pem(ed25519.Ed25519PrivateKey.generate().public_key())
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(stored_bundle(runtime, run))
    assert not verify_bundle(path, [stranger], require_dsse=True).ok

    assert_reexport_is_identical(runtime, run, tmp_path)


def test_run_cancelled_through_the_api_while_a_gate_waits_is_attested(runtime: Any, tmp_path: Path) -> None:
    run = submit(runtime, GATED)
    wait_for_step(runtime, run.runId, "review", "waiting")

    status, body = call(runtime, "cancel_run", api_event("cancel_run", run.runId, body={"reason": "stop"}))
    assert status == 200, body
    assert body["status"] == "cancelled"
    run = runtime.wait(run.runId, timeout=60)
    assert runtime.aws.runner.wait_idle(10)  # the failed gate token has played out in the state machine
    run = runtime.svc.store.get_run(run.runId, None)

    predicate = assert_evidence(runtime, run, tmp_path)
    assert [(s["stepId"], s["status"], s["attempts"]) for s in predicate["steps"]] == [
        ("prepare", "succeeded", 1),
        ("review", "cancelled", 0),
        ("publish", "cancelled", 0),
    ]
    assert [g.status for g in runtime.svc.store.list_gates(run.runId)] == ["cancelled"]
    assert_reexport_is_identical(runtime, run, tmp_path)


def test_evidence_route_returns_the_digest_and_a_url_to_the_same_bytes(runtime: Any) -> None:
    run = runtime.wait(submit(runtime, PACKS / "hello.yaml", {"who": "api"}).runId, timeout=60)

    status, body = call(runtime, "get_run", api_event("get_run-evidence", run.runId))
    assert status == 200, body
    assert body["runId"] == run.runId
    assert (body["sha256"], body["size"], body["location"]) == (
        run.evidence["sha256"],
        run.evidence["size"],
        run.evidence["location"],
    )
    url = urlparse(body["url"])
    assert url.scheme == "file"
    data = Path(unquote(url.path)).read_bytes()
    assert hashlib.sha256(data).hexdigest() == body["sha256"]
    assert len(data) == body["size"]
    assert data == stored_bundle(runtime, run)

    status, problem = call(runtime, "get_run", api_event("get_run-evidence", run.runId, tenant="other"))
    assert status == 404, problem


@pytest.mark.parametrize("missing", ["run", "evidence"])
def test_evidence_route_answers_404_until_there_is_evidence(runtime: Any, missing: str) -> None:
    if missing == "run":
        run_id = "20000101T000000Z-00000000"
    else:
        run = submit(runtime, GATED)
        wait_for_step(runtime, run.runId, "review", "waiting")
        run_id = run.runId
    status, problem = call(runtime, "get_run", api_event("get_run-evidence", run_id))
    assert status == 404, problem
    if missing == "evidence":
        assert "no sealed evidence" in problem["detail"]
        cancel_run(runtime.svc, "local", run_id)
