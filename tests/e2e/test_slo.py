"""SLOs end to end: maxQueueDepth refuses submits (in-process and over HTTP), RunDuration and ApprovalLatency
are emitted per pack, and ``taskrunner runs slo`` reports each pack's p95s from real runs."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from conftest import submit, wait_for_step
from taskrunner.engine.seal import seal_run
from taskrunner.engine.slo import approval_waits, p95, working_seconds
from taskrunner.engine.steptree import initial_steps
from taskrunner.engine.submit import new_run_id, plan_pack, submit_run
from taskrunner.errors import TooManyRequests
from taskrunner.local.api_routes import api_routes
from taskrunner.local.approvers import approve_locally
from taskrunner.local.http_server import serve
from taskrunner.store.records import RunRecord
from test_http_api import Api, approve_http, submit_http, user_token, wait_waiting
from test_run_cli import taskrunner

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

GATE = "review"


def slo_pack(name: str, *, depth: int = 1, run_p95: int = 600, approval_p95: int = 3600) -> str:
    """A pack that waits on the approval gate ``review`` between two noop steps, with an SLO."""
    return f"""\
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {{name: {name}, version: 1.0.0}}
spec:
  approvals:
    - {{id: sign-off, grants: [packs.approve], expiresAfter: PT1H}}
  sandbox: {{mode: sealed, egressAllowlist: []}}
  slo: {{runP95Seconds: {run_p95}, approvalP95Seconds: {approval_p95}, maxQueueDepth: {depth}}}
  steps:
    - {{id: before, run: {{uses: noop}}}}
    - id: {GATE}
      gate.approval: {{approval: sign-off}}
    - {{id: after, run: {{uses: noop}}}}
"""


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def emitted(output: str, name: str) -> list[dict[str, Any]]:
    """The EMF documents of metric ``name`` printed to stdout."""
    found = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            if name in document:
                found.append(document)
    return found


def approve(runtime: Any, tenant: str, run_id: str) -> RunRecord:
    wait_for_step(runtime, run_id, GATE, "waiting")
    approve_locally(
        runtime.svc, runtime.home, tenant_id=tenant, run_id=run_id, gate_id=GATE, approver="alice"
    )
    finished: RunRecord = runtime.wait(run_id, timeout=60)
    assert finished.status == "succeeded"
    return finished


@pytest.fixture
def metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """EMF printed by code running in the test's own thread (the local functions keep metrics off)."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "taskrunner")


@pytest.fixture(scope="module")
def api(runtime: Any) -> Iterator[Api]:
    server = serve(api_routes(runtime), port=0, poll_interval=0.05).start()
    try:
        yield Api(server.url)
    finally:
        server.shutdown()


def test_max_queue_depth_refuses_in_process_and_frees_up(
    runtime: Any, metrics_on: None, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant, pack = new_tenant(), slo_pack("slo-queue")
    first = submit(runtime, pack, tenant=tenant, idempotency_key="first")
    wait_for_step(runtime, first.runId, GATE, "waiting")

    with pytest.raises(TooManyRequests) as refused:
        submit(runtime, pack, tenant=tenant)
    assert refused.value.code == "QueueDepthExceeded"
    assert refused.value.status == 429
    assert refused.value.retry_after_seconds == 300  # runP95Seconds 600, at most 300
    assert "1 unfinished runs" in refused.value.message
    assert "maxQueueDepth" in refused.value.remediation
    assert [r.runId for r in runtime.svc.store.list_runs(tenant)[0]] == [first.runId]  # nothing stored

    retried = submit_run(runtime.svc, tenant_id=tenant, manifest=pack, inputs={}, idempotency_key="first")
    assert (retried.run.runId, retried.created) == (first.runId, False)  # a retry is never refused
    other = submit(runtime, pack, tenant=new_tenant())  # the depth is per tenant
    assert other.status in ("pending", "running")

    capsys.readouterr()
    approve(runtime, tenant, first.runId)
    output = capsys.readouterr().out
    [latency] = emitted(output, "ApprovalLatency")
    [missed] = emitted(output, "ApprovalSloMissed")
    assert (missed["pack"], missed["ApprovalSloMissed"]) == ("slo-queue", [0.0])  # within 3600 s
    assert latency["pack"] == "slo-queue"
    assert latency["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["pack", "service"]]
    assert latency["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "TaskRunner"
    gate = runtime.svc.store.get_gate(first.runId, GATE)
    assert latency["ApprovalLatency"] == [pytest.approx(approval_waits([gate])[0])]

    second = submit(runtime, pack, tenant=tenant)  # the first finished: room again
    approve(runtime, tenant, second.runId)
    approve(runtime, other.tenantId, other.runId)


def test_run_duration_is_emitted_per_pack_at_seal(
    runtime: Any, metrics_on: None, capsys: pytest.CaptureFixture[str]
) -> None:
    planned = plan_pack(slo_pack("slo-sealed", run_p95=5), {})
    now = runtime.svc.clock()
    plan = planned.plan.to_document()
    record = RunRecord(
        runId=new_run_id(runtime.svc),
        tenantId=new_tenant(),
        planHash=planned.plan_hash,
        plan=plan,
        failurePolicy=plan["failure"],
        status="running",
        requestedAt=now - timedelta(seconds=8),
        startedAt=now - timedelta(seconds=7),
        steps=initial_steps(planned.plan),
        packName="slo-sealed",
        packVersion="1.0.0",
    )
    runtime.svc.store.create_run(record)
    capsys.readouterr()
    seal_run(runtime.svc, record.runId, record.tenantId, "succeeded")
    output = capsys.readouterr().out
    [duration] = emitted(output, "RunDuration")
    assert duration["pack"] == "slo-sealed"
    assert duration["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "RunDuration", "Unit": "Seconds"}]
    [seconds] = duration["RunDuration"]
    assert 7 <= seconds < 60  # from startedAt, not requestedAt
    [missed] = emitted(output, "RunSloMissed")  # over runP95Seconds: 5, a miss the burn-rate alarms count
    assert (missed["pack"], missed["RunSloMissed"]) == ("slo-sealed", [1.0])


def test_max_queue_depth_is_a_429_problem_over_http(api: Api, runtime: Any) -> None:
    tenant, pack = new_tenant(), slo_pack("slo-http", run_p95=30)
    token = user_token(tenant)
    first = submit_http(api, token, pack)
    assert first.status == 202, first.body
    run = first.json()
    wait_waiting(api, token, run["runId"])

    refused = submit_http(api, token, pack)
    assert refused.status == 429, refused.body
    assert refused.content_type == "application/problem+json"
    assert refused.headers["Retry-After"] == "60"  # runP95Seconds 30, at least 60
    body = refused.json()
    assert body["code"] == "QueueDepthExceeded"
    assert body["type"] == "https://stellaops.io/problems/QueueDepthExceeded"
    assert body["retryAfterSeconds"] == 60
    assert "maxQueueDepth" in body["remediation"]
    listed = api.get("/api/runs", token).json()["items"]
    assert [r["runId"] for r in listed] == [run["runId"]]

    assert approve_http(api, runtime, tenant, "alice", run).status == 200
    runtime.wait(run["runId"], timeout=60)
    assert submit_http(api, token, pack).status == 202
    again = wait_waiting(api, token, api.get("/api/runs", token).json()["items"][0]["runId"])
    assert approve_http(api, runtime, tenant, "alice", again).status == 200
    runtime.wait(again["runId"], timeout=60)


def test_openapi_documents_the_429(api: Api) -> None:
    document = api.get("/.well-known/openapi").json()
    assert "429" in document["paths"]["/api/runs"]["post"]["responses"]


def test_runs_slo_reports_p95s_from_real_runs(runtime: Any) -> None:
    tenant = new_tenant()
    fast, slow = slo_pack("slo-met", depth=5), slo_pack("slo-missed", depth=5, approval_p95=1)
    runs = [submit(runtime, fast, tenant=tenant) for _ in range(2)]
    runs = [approve(runtime, tenant, r.runId) for r in runs]
    missed = submit(runtime, slow, tenant=tenant)
    wait_for_step(runtime, missed.runId, GATE, "waiting")
    time.sleep(1.2)  # the approval waits longer than approvalP95Seconds: 1
    approve(runtime, tenant, missed.runId)

    result = taskrunner(runtime.home, "runs", "slo", "--tenant", tenant, "--json")
    assert result.code == 1, result.stderr  # one pack missed its SLO
    report = {row["pack"]: row for row in result.document()}
    assert set(report) == {"slo-met", "slo-missed"}
    met = report["slo-met"]
    store = runtime.svc.store
    durations = [working_seconds(r, store.list_gates(r.runId), r.completedAt) for r in runs]
    waits = [w for r in runs for w in approval_waits(store.list_gates(r.runId))]
    assert (met["runs"], met["approvals"], met["met"]) == (2, 2, True)
    assert met["runP95Seconds"] == pytest.approx(p95(durations))
    assert met["approvalP95Seconds"] == pytest.approx(p95(waits))
    assert (met["runSlo"], met["approvalSlo"]) == (600, 3600)
    assert report["slo-missed"]["approvalP95Seconds"] > 1
    assert report["slo-missed"]["met"] is False

    one = taskrunner(runtime.home, "runs", "slo", "slo-met", "--tenant", tenant)
    assert one.code == 0, one.stderr
    assert one.stdout.startswith("slo-met  run p95 ")
    assert "(2 runs)" in one.stdout
    assert "met" in one.stdout
    assert "slo-missed" not in one.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("runs", "slo", "no-such-pack"), "has no runs of pack no-such-pack"),
        (("runs", "slo", "Bad_Name"), "pack name 'Bad_Name' in the PACK argument is not valid"),
        (("runs", "slo", "--tenant", "../x"), "--tenant is not valid"),
    ],
)
def test_runs_slo_refuses_bad_arguments_clearly(runtime: Any, args: tuple[str, ...], message: str) -> None:
    result = taskrunner(runtime.home, *args)
    assert result.code == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
