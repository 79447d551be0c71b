"""Every ``events/<function>*.json`` sample, invoked exactly as Lambda would (the handler ``template.yaml`` names,
through the in-process runner) against a runtime in which the run the sample refers to exists."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import PACKS, REPO, submit, wait_for, wait_for_step

EVENTS = REPO / "events"
FIXTURE_PACKS = REPO / "tests" / "fixtures" / "packs"
SAMPLE_RUN_ID = "01JD8Z6Q4V9YB3M7N2K5X8W1TA"
SAMPLE_PLAN_HASH = "sha256:3f1c2a9e7b5d4c6f8a0b1e2d3c4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"
SAMPLE_STATE_MACHINE = (
    "arn:aws:states:us-east-1:123456789012:stateMachine:prod_tr-handler-events-5d41402abc4b"
)
TENANT = "tenant-a"  # the tenant claim of every API sample and the tenantId of every worker sample
TERMINAL = {"succeeded", "failed", "cancelled"}
SAMPLES = sorted(EVENTS.glob("*.json"))
# Handlers flush Powertools metrics on every invocation; the local runtime disables publishing them.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


def function_of(sample: Path) -> str:
    """``execute_step-map-child.json`` -> ``execute_step``."""
    return sample.stem.partition("-")[0]


@dataclass
class Runs:
    waiting: Any  # a run parked on its ``review`` approval gate
    finished: Any  # the same pack, approved, succeeded and sealed


@pytest.fixture(scope="module")
def runs(runtime: Any) -> Iterator[Runs]:
    from taskrunner.local.approvers import approve_locally

    svc = runtime.svc
    # The pack the packRef and schedule samples name (packs/hello.yaml in the artifact store).
    svc.artifacts.put_bytes("packs/hello.yaml", (PACKS / "hello.yaml").read_bytes(), "application/yaml")
    pack = FIXTURE_PACKS / "handler-events.yaml"
    waiting = submit(runtime, pack, tenant=TENANT)
    finished = submit(runtime, pack, tenant=TENANT)
    for run in (waiting, finished):
        wait_for_step(runtime, run.runId, "review", "waiting")
    approve_locally(
        svc, runtime.home, tenant_id=TENANT, run_id=finished.runId, gate_id="review", approver="user-42"
    )
    yield Runs(svc.store.get_run(waiting.runId, None), runtime.wait(finished.runId, timeout=60))

    from taskrunner.engine.lifecycle import cancel_run

    for run in svc.store.list_active_runs():  # leave no execution behind for the runtime's shutdown
        if any(s.status == "waiting" for s in run.steps):
            cancel_run(svc, run.tenantId, run.runId, requested_by="test teardown")
    wait_for(lambda: not svc.store.list_active_runs(), timeout=60)


@pytest.fixture(scope="module")
def response_url() -> Iterator[str]:
    """A URL on 127.0.0.1 that accepts custom resource responses (PUT) as S3 does."""

    class Accept(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/cfn-response"
    server.shutdown()
    server.server_close()


def target_of(sample: Path, runs: Runs) -> Any:
    """Approvals and cancel/resume act on the waiting run; everything else reads or replays the finished one."""
    return runs.waiting if function_of(sample) in ("approve_gate", "cancel_run") else runs.finished


def load_sample(sample: Path, run: Any) -> dict[str, Any]:
    """The sample with its run id (paths, claims, payload), plan hash and state machine rewritten to ``run``'s."""
    text = sample.read_text(encoding="utf-8")
    text = text.replace(SAMPLE_RUN_ID, run.runId).replace(SAMPLE_PLAN_HASH, run.planHash)
    machine = run.stateMachineArn
    text = text.replace(SAMPLE_STATE_MACHINE, machine).replace(_name(SAMPLE_STATE_MACHINE), _name(machine))
    event: dict[str, Any] = json.loads(text)
    return event


def _name(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def content_type(response: dict[str, Any]) -> str:
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return str(headers.get("content-type", ""))


# ------------------------------------------------------------------------------------------ per-sample checks
Check = Callable[[Any, Runs, Any, Any], None]


def check_verify_plan(rt: Any, runs: Runs, run: Any, result: Any) -> None:
    assert result == {"runId": run.runId, "planHash": run.planHash}


def check_retire(rt: Any, runs: Runs, run: Any, result: Any) -> None:
    # Both runs share one machine; it is deleted only once the waiting run's execution ended too.
    assert runs.waiting.stateMachineArn == run.stateMachineArn
    idle = rt.svc.store.get_run(runs.waiting.runId, None).sealed
    assert result == {"stateMachineArn": run.stateMachineArn, "deleted": idle}
    machines = rt.aws.client("stepfunctions").list_state_machines()["stateMachines"]
    assert (run.stateMachineArn in {m["stateMachineArn"] for m in machines}) is not idle


def check_execute_step(step_id: str) -> Check:
    def check(rt: Any, runs: Runs, run: Any, result: Any) -> None:
        assert result == {"stepId": step_id, "status": "succeeded"}
        # Idempotent per (runId, stepId): the finished step is not run again.
        assert len(rt.svc.store.get_run(run.runId, None).step(step_id).attempts) == 1

    return check


def check_open_gate(rt: Any, runs: Runs, run: Any, result: Any) -> None:
    assert result == {"gateId": "review", "status": "approved"}  # a resumed run passes an approved gate


def check_evaluate_policy(rt: Any, runs: Runs, run: Any, result: Any) -> None:
    assert result == {"stepId": "policy", "status": "succeeded"}


def check_seal(rt: Any, runs: Runs, run: Any, result: Any) -> None:
    assert result == {"runId": run.runId, "outcome": "succeeded"}  # sealing a sealed run changes nothing
    assert rt.svc.store.get_run(run.runId, None).evidence == run.evidence


def check_submitted_run(status: int) -> Check:
    def check(rt: Any, runs: Runs, run: Any, response: Any) -> None:
        assert response["statusCode"] == status
        body = body_of(response)
        final = rt.wait(body["runId"], timeout=60)
        assert final.tenantId == TENANT
        assert final.packName == "hello"
        assert final.planHash == body["planHash"]
        assert final.status == "succeeded"
        assert final.step("greet").outputs == {"greeting": "hello ops"}

    return check


def check_create_plan(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    from taskrunner.engine.submit import plan_pack

    assert response["statusCode"] == 200
    body = body_of(response)
    expected = plan_pack((PACKS / "hello.yaml").read_text(encoding="utf-8"), {"who": "ops"})
    assert body["planHash"] == expected.plan_hash
    assert body["pack"]["name"] == "hello"


def check_migrate_db(rt: Any, runs: Runs, run: Any, result: Any) -> None:
    # The local runtime keeps runs in the file store: nothing to migrate, and CloudFormation is answered.
    assert (result["Status"], result["Delivered"]) == ("SUCCESS", True)
    assert result["PhysicalResourceId"] == "taskrunner-mongo-schema"


def check_schedule(rt: Any, runs: Runs, run: Any, result: Any) -> None:
    assert set(result) == {"runId", "planHash", "status"}
    assert rt.wait(result["runId"], timeout=60).status == "succeeded"


def check_get_run(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 200
    body = body_of(response)
    assert body["runId"] == run.runId
    assert body["status"] == "succeeded"
    steps = {s["stepId"]: s["status"] for s in body["steps"]}
    assert steps["review"] == "approved"
    assert steps["scan-all[0]::scan"] == "succeeded"


def check_list_runs(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 200
    listed = {item["runId"] for item in body_of(response)["items"]}
    assert {runs.waiting.runId, runs.finished.runId} <= listed


def check_artifacts(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 200
    assert body_of(response)["items"] == []  # noop steps capture nothing


def check_evidence(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 200
    body = body_of(response)
    assert body["runId"] == run.runId
    assert body["sha256"] == run.evidence["sha256"]


def check_logs_ndjson(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 200
    assert content_type(response).startswith("application/x-ndjson")
    events = [json.loads(line) for line in response["body"].splitlines() if line]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    types = [e["eventType"] for e in events]
    assert types[0] == "run.created"
    assert types.index("run.completed") > types.index("gate.approved") > types.index("gate.pending")


def check_logs_sse(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 200
    assert content_type(response).startswith("text/event-stream")
    ids = [int(line[4:]) for line in response["body"].splitlines() if line.startswith("id: ")]
    total = len(rt.svc.store.read_logs(run.runId))
    assert ids == list(range(13, total + 1))  # resumes after the sample's Last-Event-ID: 12


def check_openapi(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 200
    assert body_of(response)["openapi"].startswith("3.1")


def check_refused(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    # Refused (the sample is no valid decision signed by a key trusted for the tenant); nothing is decided.
    assert 400 <= response["statusCode"] < 500
    assert rt.svc.store.get_gate(run.runId, "review").decisions == []


def check_cancel(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 200
    assert body_of(response) == {"runId": run.runId, "status": "cancelled"}
    assert rt.wait(run.runId, timeout=60).status == "cancelled"


def check_resume(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    # The waiting run is still executing (or, once cancelled, final): either way a conflict.
    assert response["statusCode"] == 409


ISSUER = "https://f6g7h8i9j0.execute-api.us-east-1.amazonaws.com"  # the domain of the issuer samples


def check_jwks(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 200
    assert response["headers"]["Cache-Control"] == "public, max-age=300"
    [key] = body_of(response)["keys"]
    assert {k: key[k] for k in ("kty", "crv", "use", "alg")} == {
        "kty": "EC",
        "crv": "P-256",
        "use": "sig",
        "alg": "ES256",
    }


def check_discovery(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 200
    document = body_of(response)
    assert (document["issuer"], document["jwks_uri"]) == (ISSUER, ISSUER + "/.well-known/jwks.json")


def check_approval_token(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    import jwt

    assert response["statusCode"] == 200
    body = body_of(response)
    jwks = body_of(
        rt.invoke("approval_issuer", load_sample(EVENTS / "approval_issuer-jwks.json", run)).json()
    )
    [key] = [
        jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(body["token"])["kid"]
    ]
    claims = jwt.decode(body["token"], key.key, algorithms=["ES256"], audience="taskrunner-approvals")
    # the exchange runs on the TaskRunner API here, so without the template's setting the issuer is its domain
    assert claims["iss"] == "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
    assert (claims["sub"], claims["tenant_id"], claims["scope"]) == ("user-42", TENANT, "packs.approve")
    assert (claims["pack_run_id"], claims["pack_gate_id"], claims["pack_plan_hash"]) == (
        run.runId,
        "review",
        run.planHash,
    )
    assert body["planHash"] == run.planHash
    assert body["expiresIn"] == claims["exp"] - claims["iat"] <= 300


def check_enrolled(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    # a local deployment without a policy enrols keys itself; the same key again answers its record
    assert response["statusCode"] in (200, 201)
    assert {k: body_of(response)[k] for k in ("approver", "tenantId", "status")} == {
        "approver": "user-42",
        "tenantId": "tenant-a",
        "status": "active",
    }


def check_key_list(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 200
    assert all(item["approver"] == "user-42" for item in body_of(response)["items"])


def check_no_such_key(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 404
    assert content_type(response) == "application/problem+json"


def check_no_packs(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 200, response
    assert body_of(response) == {"items": []}


def check_publish_refused(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 422, response
    assert body_of(response)["code"] == "PackRejected"
    assert "bundle is missing" in body_of(response)["detail"]


def check_unsigned_revocations_refused(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 422, response
    assert body_of(response)["code"] == "PackRejected"
    assert "does not verify" in body_of(response)["detail"]


def check_approvals(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 200, response
    items = body_of(response)["items"]
    # the waiting run's gate, unless the cancel sample ran first
    waiting = rt.svc.store.get_gate(runs.waiting.runId, "review").status == "waiting"
    expected = [(runs.waiting.runId, "review", runs.waiting.planHash)] if waiting else []
    assert [(i["runId"], i["gateId"], i["planHash"]) for i in items] == expected


def check_gate(rt: Any, runs: Runs, run: Any, response: Any) -> None:
    assert response["statusCode"] == 200, response
    gate = body_of(response)
    assert (gate["runId"], gate["gateId"], gate["status"]) == (run.runId, "review", "approved")
    assert [d["approver"] for d in gate["decisions"]] == ["user-42"]
    assert gate["canDecide"] is False


def check_console(media_type: str) -> Check:
    def check(rt: Any, runs: Runs, run: Any, response: Any) -> None:
        assert response["statusCode"] == 200, response
        assert content_type(response).startswith(media_type)
        assert "default-src 'self'" in response["headers"]["Content-Security-Policy"]

    return check


CHECKS: dict[str, Check] = {
    "approval_issuer-jwks.json": check_jwks,
    "approval_issuer-openid-configuration.json": check_discovery,
    "approve_gate-approval-token.json": check_approval_token,
    "approver_keys.json": check_enrolled,
    "approver_keys-confirm.json": check_no_such_key,
    "approver_keys-list.json": check_key_list,
    "approver_keys-revoke.json": check_no_such_key,
    "approve_gate-reject.json": check_refused,
    "approve_gate.json": check_refused,
    "cancel_run-resume.json": check_resume,
    "cancel_run.json": check_cancel,
    "evaluate_policy.json": check_evaluate_policy,
    "execute_step-map-child.json": check_execute_step("scan-all[0]::scan"),
    "execute_step.json": check_execute_step("greet"),
    "console.json": check_console("text/html"),
    "console-file.json": check_console("text/javascript"),
    "get_run-approvals.json": check_approvals,
    "get_run-gate.json": check_gate,
    "get_run-artifacts.json": check_artifacts,
    "get_run-evidence.json": check_evidence,
    "get_run-list-runs.json": check_list_runs,
    "get_run-logs-ndjson.json": check_logs_ndjson,
    "get_run-logs-sse.json": check_logs_sse,
    "get_run-openapi.json": check_openapi,
    "get_run.json": check_get_run,
    "migrate_db-create.json": check_migrate_db,
    "open_gate.json": check_open_gate,
    "packs.json": check_no_packs,
    "packs-versions.json": check_no_such_key,
    "packs-version.json": check_no_such_key,
    "packs-publish.json": check_publish_refused,
    "packs-promote.json": check_no_such_key,
    "packs-revocations.json": check_no_such_key,  # the sample tenant has no revocation list
    "packs-revocations-put.json": check_unsigned_revocations_refused,
    "retire_state_machine.json": check_retire,
    "seal_evidence-cancelled.json": check_seal,
    "seal_evidence-failed.json": check_seal,
    "seal_evidence.json": check_seal,
    "submit_run-create-plan.json": check_create_plan,
    "submit_run-create-run-pack-ref.json": check_submitted_run(202),
    "submit_run-create-run.json": check_submitted_run(202),
    "submit_run-schedule.json": check_schedule,
    "verify_plan.json": check_verify_plan,
}
XFAIL: dict[str, str] = {}


def test_every_function_has_samples_and_every_sample_a_function(runtime: Any) -> None:
    assert runtime.aws is not None
    functions = {fn.name for fn in runtime.aws.template.functions.values()}
    assert {function_of(s) for s in SAMPLES} == functions
    assert set(CHECKS) == {s.name for s in SAMPLES}


@pytest.mark.parametrize(
    "sample",
    [
        pytest.param(s, id=s.name, marks=[pytest.mark.xfail(reason=XFAIL[s.name], strict=True)])
        if s.name in XFAIL
        else pytest.param(s, id=s.name)
        for s in SAMPLES
    ],
)
def test_sample_event_is_answered_well_formed(
    runtime: Any, runs: Runs, response_url: str, sample: Path
) -> None:
    run = target_of(sample, runs)
    event = load_sample(sample, run)
    assert SAMPLE_RUN_ID not in json.dumps(event)
    if "ResponseURL" in event:  # a custom resource request: CloudFormation's presigned URL, here local
        event["ResponseURL"] = response_url

    result = runtime.invoke(function_of(sample), event)
    answer = result.json()

    assert not result.is_error, answer
    assert isinstance(answer, dict)
    if "statusCode" in answer:  # an HTTP API function: API Gateway payload v2 response
        status = answer["statusCode"]
        assert 200 <= status < 500, answer
        if status >= 400:
            assert content_type(answer).startswith("application/problem+json")
            problem = body_of(answer)
            assert problem["status"] == status
            assert problem["code"]
            assert problem["remediation"]
            assert problem["detail"]
    CHECKS[sample.name](runtime, runs, run, answer)


@pytest.mark.parametrize("name", ["approve_gate.json", "approve_gate-reject.json"])
def test_approve_samples_are_valid_requests(name: str) -> None:
    from taskrunner.api.models import ApproveRequest

    body = json.loads((EVENTS / name).read_text(encoding="utf-8"))["body"]
    ApproveRequest.model_validate_json(body)
