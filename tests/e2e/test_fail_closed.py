"""Fail-closed gates: missing evidence, expired or unverifiable decision and bundle envelopes, sandbox quotas.

Each refusal has its own code, leaves a ``gate.refused`` event with a ``remediation`` in the run's log, and
(where an API call is refused) the same code and remediation in the problem+json payload; nothing else changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from taskrunner.errors import TaskRunnerError
from taskrunner.evidence.dsse import sign_envelope
from taskrunner.evidence.signing import generate_ed25519_keyfile
from taskrunner.local.api_routes import api_routes
from taskrunner.local.approvers import decide_signed, ensure_approver, signed_envelope
from taskrunner.local.http_server import serve
from taskrunner.modules.bundle_envelope import IN_TOTO_PAYLOAD_TYPE
from taskrunner.timeutil import iso, utc_now
from test_http_api import (
    GATE,
    READ,
    Api,
    approval_token,
    decision_body,
    gated_pack,
    log_events,
    new_tenant,
    run_detail,
    started,
    step_of,
    submit_http,
    user_token,
    wait_waiting,
)
from test_run_semantics import HEAD, run_pack, statuses

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def refusals(rt: Any, run_id: str) -> list[tuple[str | None, str, str]]:
    """(stepId, code, remediation) of every ``gate.refused`` event of the run."""
    return [
        (e.stepId, e.metadata["code"], e.metadata["remediation"])
        for e in rt.svc.store.read_logs(run_id)
        if e.eventType == "gate.refused"
    ]


# ------------------------------------------------------------------------------------------ missing evidence
def policy_over(reads: str, fail_action: str, extra: str = "") -> str:
    return (
        HEAD
        + f"""\
  inputs: [{{name: go, type: boolean, default: false}}]
  policies:
    - {{id: checked, expression: "{reads}"}}
  steps:
    - id: scan
      when: "inputs.go"
      run: {{uses: noop, with: {{n: 1}}}}
      outputs: [n]
{extra}    - id: guard
      gate.policy: {{policy: checked, failAction: {fail_action}}}
    - id: after
      run: {{uses: noop, with: {{reached: true}}}}
"""
    )


@pytest.mark.parametrize("fail_action", ["halt", "continue"])
def test_a_policy_over_a_skipped_step_refuses_whatever_its_fail_action(
    runtime: Any, fail_action: str
) -> None:
    # `!(steps.scan.outputs.n)` would be true over the missing output: the gate must not decide over it
    run = run_pack(runtime, policy_over("!(steps.scan.outputs.n)", fail_action))

    assert run.status == "failed"
    assert run.error is not None
    assert run.error.code == "EvidenceMissing"
    assert "steps.scan is skipped" in run.error.message
    assert statuses(run) == {"scan": "skipped", "guard": "failed", "after": "cancelled"}
    guard = run.step("guard")
    assert guard.error is not None
    assert guard.error.code == "EvidenceMissing"
    [(step, code, remediation)] = refusals(runtime, run.runId)
    assert (step, code) == ("guard", "EvidenceMissing")
    assert "make the steps the gate reads succeed" in remediation
    assert not any(e.eventType == "policy.evaluated" for e in runtime.svc.store.read_logs(run.runId))


def test_a_policy_over_a_failed_step_refuses(runtime: Any) -> None:
    broken = """\
    - id: fetch
      run: {uses: bundle.ingest, with: {path: /nonexistent/b.tgz, checksumSha256: "%s"}}
      continueOnError: true
""" % ("0" * 64)
    run = run_pack(runtime, policy_over("steps.fetch.outputs.size > `0`", "continue", broken))

    assert run.status == "failed"
    assert run.error is not None
    assert run.error.code == "EvidenceMissing"
    assert "steps.fetch is failed" in run.error.message
    assert [(s, c) for s, c, _ in refusals(runtime, run.runId)] == [("guard", "EvidenceMissing")]


def test_a_policy_over_evidence_that_is_there_still_decides(runtime: Any) -> None:
    run = run_pack(runtime, policy_over("steps.scan.outputs.n == `1`", "halt"), {"go": True})

    assert run.status == "succeeded"
    assert refusals(runtime, run.runId) == []


def test_an_approval_gate_whose_message_reads_a_skipped_step_refuses_and_opens_nothing(runtime: Any) -> None:
    manifest = (
        HEAD
        + """\
  inputs: [{name: go, type: boolean, default: false}]
  approvals: [{id: sign-off, grants: [packs.approve], expiresAfter: PT1H}]
  steps:
    - {id: scan, when: "inputs.go", run: {uses: noop, with: {n: 1}}, outputs: [n]}
    - id: review
      gate.approval: {approval: sign-off, message: "ship {{ steps.scan.outputs.n }} findings?"}
    - {id: after, run: {uses: noop, with: {reached: true}}}
"""
    )
    run = run_pack(runtime, manifest)

    assert run.status == "failed"
    assert run.error is not None
    assert run.error.code == "EvidenceMissing"
    assert statuses(run) == {"scan": "skipped", "review": "failed", "after": "cancelled"}
    assert runtime.svc.store.list_gates(run.runId) == []
    assert [(s, c) for s, c, _ in refusals(runtime, run.runId)] == [("review", "EvidenceMissing")]


# ------------------------------------------------------------------------------------------ decision envelopes
@pytest.fixture(scope="module")
def api(runtime: Any) -> Iterator[Api]:
    server = serve(api_routes(runtime), port=0, poll_interval=0.05).start()
    try:
        yield Api(server.url)
    finally:
        server.shutdown()


def test_a_missing_evidence_refusal_shows_in_the_run_and_its_log_over_http(api: Api) -> None:
    tenant = new_tenant()
    run = started(api, user_token(tenant), policy_over("steps.scan.outputs.n == `1`", "continue"))
    reader = user_token(tenant, READ)

    detail = wait_for(
        lambda: (d := run_detail(api, reader, run["runId"]))["status"] == "failed" and d, timeout=30
    )

    assert detail["error"]["code"] == "EvidenceMissing"
    assert "steps.scan is skipped" in detail["error"]["message"]
    assert step_of(detail, "guard")["status"] == "failed"
    [refused] = [e for e in log_events(api, reader, run["runId"]) if e["eventType"] == "gate.refused"]
    assert refused["stepId"] == "guard"
    assert refused["level"] == "error"
    assert refused["metadata"]["code"] == "EvidenceMissing"
    assert "make the steps the gate reads succeed" in refused["metadata"]["remediation"]


def parked(api: Api) -> tuple[str, dict[str, Any]]:
    tenant = new_tenant()
    run = started(api, user_token(tenant), gated_pack())
    wait_waiting(api, user_token(tenant), run["runId"])
    return tenant, run


def dated(rt: Any, tenant: str, run: dict[str, Any], approver: str, decided_at: str) -> dict[str, Any]:
    body = decision_body(rt, tenant, approver, run["runId"], run["planHash"])
    signer = ensure_approver(rt.svc, rt.home, tenant, approver)
    body["envelope"] = signed_envelope(
        signer,
        run_id=run["runId"],
        gate_id=GATE,
        plan_hash=run["planHash"],
        tenant_id=tenant,
        decision="approve",
        reason=body["reason"],
        approver=approver,
        decided_at=decided_at,
    )
    return body


def assert_still_waiting(api: Api, rt: Any, tenant: str, run_id: str) -> None:
    detail = run_detail(api, user_token(tenant, READ), run_id)
    assert step_of(detail, GATE)["status"] == "waiting"
    assert rt.svc.store.get_gate(run_id, GATE).decisions == []


@pytest.mark.parametrize(
    ("shift", "code"),
    [
        (timedelta(hours=-1), "ApprovalEnvelopeExpired"),  # signed before the gate opened: a stale envelope
        (timedelta(hours=2), "ApprovalEnvelopeNotYetValid"),  # dated ahead: pre-signed for later
    ],
)
def test_an_expired_decision_envelope_is_403_with_a_remediation_in_the_problem_and_the_log(
    api: Api, runtime: Any, shift: timedelta, code: str
) -> None:
    tenant, run = parked(api)
    gate = runtime.svc.store.get_gate(run["runId"], GATE)
    body = dated(runtime, tenant, run, "grace", iso(gate.openedAt + shift))
    token = approval_token(api, tenant, "grace", run["runId"])

    reply = api.post(f"/api/runs/{run['runId']}/approve", token, body)

    assert reply.status == 403, reply.body
    assert reply.content_type.startswith("application/problem+json")
    problem = reply.json()
    assert problem["code"] == code
    assert "sign a fresh decision now" in problem["remediation"]
    assert_still_waiting(api, runtime, tenant, run["runId"])
    [logged] = [
        e for e in log_events(api, user_token(tenant, READ), run["runId"]) if e["eventType"] == "gate.refused"
    ]
    assert logged["stepId"] == GATE
    assert logged["metadata"] == {"code": code, "remediation": problem["remediation"]}
    # a fresh decision passes the same gate
    fresh = decision_body(runtime, tenant, "grace", run["runId"], run["planHash"])
    assert api.post(f"/api/runs/{run['runId']}/approve", token, fresh).status == 200


def test_an_unverifiable_decision_envelope_is_403_and_logged_with_its_remediation(
    api: Api, runtime: Any
) -> None:
    tenant, run = parked(api)
    body = decision_body(runtime, tenant, "grace", run["runId"], run["planHash"])
    body["envelope"]["signatures"][0]["sig"] = "AAAA" + body["envelope"]["signatures"][0]["sig"][4:]
    token = approval_token(api, tenant, "grace", run["runId"])

    reply = api.post(f"/api/runs/{run['runId']}/approve", token, body)

    assert reply.status == 403, reply.body
    problem = reply.json()
    assert problem["code"] == "InvalidApprovalSignature"
    assert_still_waiting(api, runtime, tenant, run["runId"])
    assert [(s, c, r) for s, c, r in refusals(runtime, run["runId"])] == [
        (GATE, "InvalidApprovalSignature", problem["remediation"])
    ]


def test_an_expired_envelope_is_refused_in_process_too(api: Api, runtime: Any) -> None:
    tenant, run = parked(api)
    record = runtime.svc.store.get_run(run["runId"], tenant)
    signer = ensure_approver(runtime.svc, runtime.home, tenant, "heidi")
    stale = iso(utc_now() - timedelta(days=1))
    envelope = signed_envelope(
        signer,
        run_id=run["runId"],
        gate_id=GATE,
        plan_hash=run["planHash"],
        tenant_id=tenant,
        decision="approve",
        reason="ok",
        approver="heidi",
        decided_at=stale,
    )

    with pytest.raises(TaskRunnerError) as refused:
        decide_signed(
            runtime.svc,
            record,
            gate_id=GATE,
            approver="heidi",
            decision="approve",
            reason="ok",
            plan_hash=run["planHash"],
            envelope=envelope,
        )

    assert refused.value.code == "ApprovalEnvelopeExpired"
    assert stale in refused.value.message
    assert_still_waiting(api, runtime, tenant, run["runId"])
    assert [c for _, c, _ in refusals(runtime, run["runId"])] == ["ApprovalEnvelopeExpired"]


# ------------------------------------------------------------------------------------------ sandbox quotas
def test_a_pack_running_exec_without_quotas_is_refused_at_submit_and_nothing_is_created(api: Api) -> None:
    tenant = new_tenant()
    token = user_token(tenant)
    manifest = (
        HEAD.replace(", cpuSeconds: 60, memoryMiB: 1024", "")
        + """\
  steps:
    - {id: build, run: {uses: exec, with: {argv: ["true"]}}}
"""
    )

    reply = submit_http(api, token, manifest)

    assert reply.status == 422, reply.body
    assert reply.content_type.startswith("application/problem+json")
    problem = reply.json()
    assert problem["code"] == "InvalidPack"
    assert problem["remediation"]
    located = {(e["path"], e["line"]) for e in problem["errors"]}
    assert located == {("spec.sandbox", 5)}
    assert {e["message"].split(" is not declared")[0] for e in problem["errors"]} == {
        "sandbox.cpuSeconds",
        "sandbox.memoryMiB",
    }
    assert api.get("/api/runs", token).json()["items"] == []


# ------------------------------------------------------------------------------------------ bundle envelopes
INGEST = (
    HEAD
    + """\
  inputs:
    - {name: path, type: string, required: true}
    - {name: sha, type: string, required: true}
    - {name: envelope, type: string, required: true}
    - {name: key, type: string, required: true}
  steps:
    - id: ingest
      run:
        uses: bundle.ingest
        with: {path: "{{ inputs.path }}", checksumSha256: "{{ inputs.sha }}",
               envelope: "{{ inputs.envelope }}", publicKey: "{{ inputs.key }}"}
"""
)


def signed_bundle(
    tmp_path: Any, *, expires: timedelta, subject: str | None = None, signer_name: str = "pub"
) -> dict[str, str]:
    """A bundle, the publisher's public key, and a DSSE envelope over a statement naming the bundle."""
    bundle = tmp_path / "offline.tar.gz"
    bundle.write_bytes(b"bundle bytes" * 1000)
    sha = hashlib.sha256(bundle.read_bytes()).hexdigest()
    publisher = generate_ed25519_keyfile(tmp_path / "pub.key")
    signer = publisher if signer_name == "pub" else generate_ed25519_keyfile(tmp_path / f"{signer_name}.key")
    key = tmp_path / "publisher.pub.pem"
    key.write_text(publisher.public_key_pem, encoding="utf-8")
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": bundle.name, "digest": {"sha256": subject or sha}}],
        "predicateType": "https://stellaops.io/attestations/bundle/v1",
        "predicate": {"expiresAt": iso(utc_now() + expires)},
    }
    envelope = sign_envelope(json.dumps(statement).encode(), IN_TOTO_PAYLOAD_TYPE, [signer])
    path = tmp_path / "offline.tar.gz.dsse.json"
    path.write_text(json.dumps(envelope), encoding="utf-8")
    return {"path": str(bundle), "sha": sha, "envelope": str(path), "key": str(key)}


def test_a_bundle_with_a_valid_envelope_is_staged(runtime: Any, tmp_path: Any) -> None:
    run = run_pack(runtime, INGEST, signed_bundle(tmp_path, expires=timedelta(days=1)))

    assert run.status == "succeeded"
    assert run.step("ingest").outputs["stagedPath"].endswith("/offline.tar.gz")


@pytest.mark.parametrize(
    ("how", "code", "says"),
    [
        ("expired", "BundleEnvelopeExpired", "expired at"),
        ("other-signer", "BundleEnvelopeInvalid", "does not verify"),
        ("other-bundle", "BundleEnvelopeInvalid", "does not name the bundle's sha256"),
        ("no-envelope", "BundleEnvelopeMissing", "cannot be read"),
    ],
)
def test_a_bundle_whose_envelope_is_expired_unverifiable_or_missing_is_not_staged(
    runtime: Any, tmp_path: Any, how: str, code: str, says: str
) -> None:
    inputs = signed_bundle(
        tmp_path,
        expires=timedelta(seconds=-1) if how == "expired" else timedelta(days=1),
        subject="ab" * 32 if how == "other-bundle" else None,
        signer_name="intruder" if how == "other-signer" else "pub",
    )
    if how == "no-envelope":
        Path(inputs["envelope"]).unlink()

    run = run_pack(runtime, INGEST, inputs)

    assert run.status == "failed"
    step = run.step("ingest")
    assert step.error is not None
    assert step.error.code == code
    assert says in step.error.message
    [failed] = [e for e in runtime.svc.store.read_logs(run.runId) if e.eventType == "step.failed"]
    assert failed.metadata["code"] == code
    assert failed.metadata["remediation"]
    assert runtime.svc.store.list_artifacts(run.runId) == []
