"""Execution semantics of packs on the local runtime: concurrency limits, retries, continueOnError, ``when``,
policy gates, ``bundle.ingest`` and plan tampering - each observed from the stored run, its attempts and logs."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, submit, wait_for

FIXTURE_PACKS = REPO / "tests" / "fixtures" / "packs"
# Handlers flush Powertools metrics on every invocation; the local runtime disables publishing them.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
HEAD = """\
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: semantics, version: 1.0.0}
spec:
  sandbox: {mode: sealed, egressAllowlist: [], cpuSeconds: 60, memoryMiB: 1024}
"""


def run_pack(rt: Any, manifest: str | Path, inputs: dict[str, Any] | None = None) -> Any:
    """Submit, wait until the run is finished and sealed, and check its log is gapless."""
    run = rt.wait(submit(rt, manifest, inputs).runId, timeout=60)
    events = rt.svc.store.read_logs(run.runId)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[0].eventType == "run.created"
    assert events[-1].eventType == "run.completed"
    assert events[-1].metadata["outcome"] == run.status
    return run


def event_types(rt: Any, run_id: str, step_id: str | None = None) -> list[str]:
    return [e.eventType for e in rt.svc.store.read_logs(run_id) if step_id is None or e.stepId == step_id]


def max_overlap(attempts: list[Any]) -> int:
    """Most attempts running at one instant (an attempt ending when another starts does not overlap it)."""
    edges = sorted(
        [(a.startedAt, 1) for a in attempts] + [(a.completedAt, -1) for a in attempts],
        key=lambda edge: (edge[0], edge[1]),
    )
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    return peak


def statuses(run: Any) -> dict[str, str]:
    return {s.stepId: s.status for s in run.steps}


# ------------------------------------------------------------------------------------------ concurrency
@pytest.mark.parametrize(
    ("pack", "container", "children"),
    [("map-concurrency.yaml", "fan-out", 6), ("parallel-concurrency.yaml", "block", 4)],
)
def test_concurrency_never_exceeds_max_parallel(
    runtime: Any, pack: str, container: str, children: int
) -> None:
    run = run_pack(runtime, FIXTURE_PACKS / pack)

    assert run.status == "succeeded"
    leaves = [s for s in run.steps if s.kind == "run"]
    assert len(leaves) == children
    assert all(s.status == "succeeded" and len(s.attempts) == 1 for s in leaves)
    assert run.step(container).status == "succeeded"
    attempts = [a for s in leaves for a in s.attempts]
    assert all(a.completedAt - a.startedAt >= timedelta(milliseconds=250) for a in attempts)
    # The limit is reached (children really run side by side) and never exceeded.
    assert max_overlap(attempts) == 2


# ------------------------------------------------------------------------------------------ retries
def test_failing_attempts_are_retried_with_backoff_until_success(runtime: Any, tmp_path: Path) -> None:
    counter = tmp_path / "attempts"
    run = run_pack(runtime, FIXTURE_PACKS / "flaky-retry.yaml", {"counter": str(counter), "succeedOn": 3})

    assert run.status == "succeeded"
    assert counter.read_text().strip() == "3"
    flaky = run.step("flaky")
    assert flaky.status == "succeeded"
    assert [(a.number, a.status) for a in flaky.attempts] == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    first, second, third = flaky.attempts
    assert first.error is not None
    assert first.error.code == "NonZeroExit"
    # Backoff 1s x 2.0: the next attempt is due 1s, then 2s after a failure; the success schedules none.
    assert first.nextAttemptAt - first.completedAt == timedelta(seconds=1)
    assert second.nextAttemptAt - second.completedAt == timedelta(seconds=2)
    assert third.nextAttemptAt is None
    assert third.error is None
    assert second.startedAt >= first.completedAt
    assert third.startedAt >= second.completedAt
    assert flaky.outputs["stdout"] == "attempt 3\n"
    assert run.step("after").status == "succeeded"

    events = [e for e in runtime.svc.store.read_logs(run.runId) if e.stepId == "flaky"]
    lifecycle = [e.eventType for e in events if e.eventType != "artifact.captured"]
    assert lifecycle == [
        "step.started",
        "step.failed",
        "step.retry_scheduled",
        "step.started",
        "step.failed",
        "step.retry_scheduled",
        "step.started",
        "step.succeeded",
    ]
    scheduled = [e for e in events if e.eventType == "step.retry_scheduled"]
    assert [e.metadata["attempt"] for e in scheduled] == ["2", "3"]
    assert [e.metadata["nextAttemptAt"] for e in scheduled] == [
        first.nextAttemptAt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        second.nextAttemptAt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    ]
    assert [e.metadata["final"] for e in events if e.eventType == "step.failed"] == ["false", "false"]


def test_retries_exhausted_fail_the_run(runtime: Any, tmp_path: Path) -> None:
    counter = tmp_path / "attempts"
    run = run_pack(runtime, FIXTURE_PACKS / "flaky-retry.yaml", {"counter": str(counter), "succeedOn": 99})

    assert run.status == "failed"
    assert counter.read_text().strip() == "4"
    flaky = run.step("flaky")
    assert flaky.status == "failed"
    assert [a.status for a in flaky.attempts] == ["failed"] * 4
    assert [a.nextAttemptAt is not None for a in flaky.attempts] == [True, True, True, False]
    assert [a.nextAttemptAt - a.completedAt for a in flaky.attempts[:3]] == [
        timedelta(seconds=1),
        timedelta(seconds=2),
        timedelta(seconds=4),
    ]
    assert run.step("after").status == "cancelled"
    assert run.error is not None
    assert "exited with status 1" in run.error.message
    types = event_types(runtime, run.runId, "flaky")
    assert types.count("step.retry_scheduled") == 3
    assert types.count("step.failed") == 4


# ------------------------------------------------------------------------------------------ continueOnError
def continue_on_error_pack(flag: bool) -> str:
    return (
        HEAD
        + f"""\
  steps:
    - id: first
      run: {{uses: noop, with: {{n: 1}}}}
    - id: broken
      continueOnError: {str(flag).lower()}
      run: {{uses: exec, with: {{argv: ["sh", "-c", "exit 7"]}}}}
    - id: after
      run: {{uses: noop, with: {{n: 2}}}}
    - id: last
      run: {{uses: artifact.write, with: {{name: last, content: done}}}}
"""
    )


def test_continue_on_error_lets_the_run_go_on_and_succeed(runtime: Any) -> None:
    run = run_pack(runtime, continue_on_error_pack(True))

    assert run.status == "succeeded"
    assert run.error is None
    assert statuses(run) == {
        "first": "succeeded",
        "broken": "failed",
        "after": "succeeded",
        "last": "succeeded",
    }
    assert run.step("broken").error.code == "NonZeroExit"
    assert "exited with status 7" in run.step("broken").error.message
    assert "last" in {a.name for a in runtime.svc.store.list_artifacts(run.runId)}


def test_without_continue_on_error_the_run_fails_at_the_step(runtime: Any) -> None:
    run = run_pack(runtime, continue_on_error_pack(False))

    assert run.status == "failed"
    assert statuses(run) == {
        "first": "succeeded",
        "broken": "failed",
        "after": "cancelled",
        "last": "cancelled",
    }
    assert run.error is not None
    assert "exited with status 7" in run.error.message
    assert run.step("after").attempts == []
    assert run.step("last").attempts == []
    assert "last" not in {a.name for a in runtime.svc.store.list_artifacts(run.runId)}
    assert "after" not in {e.stepId for e in runtime.svc.store.read_logs(run.runId)}


# ------------------------------------------------------------------------------------------ when
WHEN_PACK = (
    HEAD
    + """\
  inputs:
    - {name: includeExtra, type: boolean, default: false}
  steps:
    - id: extra
      when: "inputs.includeExtra"
      run: {uses: noop, with: {extra: true}}
    - id: probe
      run: {uses: noop, with: {deploy: false, notify: true}}
      outputs: [deploy, notify]
    - id: deploy
      when: "steps.probe.outputs.deploy"
      run: {uses: artifact.write, with: {name: deployed, content: deployed}}
    - id: notify
      when: "steps.probe.outputs.notify"
      run: {uses: noop, with: {notified: true}}
"""
)


def test_when_skips_at_plan_time_and_at_run_time(runtime: Any) -> None:
    run = run_pack(runtime, WHEN_PACK)

    assert run.status == "succeeded"
    assert statuses(run) == {
        "extra": "skipped",
        "probe": "succeeded",
        "deploy": "skipped",
        "notify": "succeeded",
    }
    assert run.step("extra").attempts == []
    assert run.step("deploy").attempts == []
    assert run.step("notify").outputs == {"notified": True}
    assert runtime.svc.store.list_artifacts(run.runId) == []
    skipped = {
        e.stepId: e.message for e in runtime.svc.store.read_logs(run.runId) if e.eventType == "step.skipped"
    }
    assert set(skipped) == {"extra", "deploy"}
    assert "plan time" in skipped["extra"]
    assert "plan time" not in skipped["deploy"]


def test_when_true_at_plan_time_runs_the_step(runtime: Any) -> None:
    run = run_pack(runtime, WHEN_PACK, {"includeExtra": True})

    assert run.status == "succeeded"
    assert run.step("extra").status == "succeeded"
    assert run.step("extra").outputs == {"extra": True}
    assert run.step("deploy").status == "skipped"


# ------------------------------------------------------------------------------------------ policy gates
def policy_pack(fail_action: str) -> str:
    return (
        HEAD
        + f"""\
  policies:
    - {{id: small-batch, expression: "steps.count.outputs.n <= `5`"}}
  steps:
    - id: count
      run: {{uses: noop, with: {{n: 9}}}}
      outputs: [n]
    - id: guard
      gate.policy: {{policy: small-batch, failAction: {fail_action}}}
    - id: after
      run: {{uses: noop, with: {{reached: true}}}}
"""
    )


def test_denied_policy_with_halt_fails_the_run_with_the_policy_error(runtime: Any) -> None:
    run = run_pack(runtime, policy_pack("halt"))

    assert run.status == "failed"
    assert run.error is not None
    assert run.error.code == "PolicyDenied"
    assert "small-batch" in run.error.message
    assert statuses(run) == {"count": "succeeded", "guard": "failed", "after": "cancelled"}
    evaluated = [e for e in runtime.svc.store.read_logs(run.runId) if e.eventType == "policy.evaluated"]
    assert [(e.stepId, e.metadata["allowed"], e.metadata["failAction"]) for e in evaluated] == [
        ("guard", "false", "halt")
    ]


def test_denied_policy_with_continue_lets_the_run_succeed(runtime: Any) -> None:
    run = run_pack(runtime, policy_pack("continue"))

    assert run.status == "succeeded"
    assert run.error is None
    assert run.step("after").status == "succeeded"
    assert run.step("guard").outputs == {"allowed": False, "policy": "small-batch", "failAction": "continue"}
    assert "policy.evaluated" in event_types(runtime, run.runId, "guard")


def test_allowed_policy_passes(runtime: Any) -> None:
    run = run_pack(runtime, policy_pack("halt").replace("n: 9", "n: 2"))

    assert run.status == "succeeded"
    assert run.step("guard").status == "succeeded"
    assert run.step("guard").outputs == {"allowed": True, "policy": "small-batch", "failAction": "halt"}
    assert run.step("after").status == "succeeded"


# ------------------------------------------------------------------------------------------ bundle.ingest
@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "offline-bundle.tar.gz"
    path.write_bytes(bytes(range(256)) * 4096 + b"tail")  # ~1 MiB, more than one read chunk
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def stored_bytes(rt: Any, run_id: str, name: str) -> bytes:
    with rt.svc.artifacts.open(f"runs/{run_id}/artifacts/{name}") as stream:
        data: bytes = stream.read()
    return data


def test_bundle_ingest_stages_the_verified_bundle_and_its_metadata(
    runtime: Any, bundle: tuple[Path, str]
) -> None:
    path, sha = bundle
    run = run_pack(
        runtime, FIXTURE_PACKS / "bundle-ingest.yaml", {"bundlePath": str(path), "bundleSha256": sha}
    )

    assert run.status == "succeeded"
    outputs = run.step("ingest").outputs
    assert outputs["filename"] == path.name
    assert outputs["sha256"] == sha
    assert outputs["size"] == path.stat().st_size
    assert outputs["sourcePath"] == str(path)
    assert outputs["stagedPath"].endswith(f"/bundles/{sha}/{path.name}")
    assert outputs["metadataPath"].endswith(f"/bundles/{sha}/metadata.json")
    assert run.outputs == {"bundle": outputs}
    assert run.step("receipt").outputs == {"staged": sha}

    artifacts = {a.name: a for a in runtime.svc.store.list_artifacts(run.runId)}
    staged, meta = f"bundles/{sha}/{path.name}", f"bundles/{sha}/metadata.json"
    assert set(artifacts) == {staged, meta}
    assert stored_bytes(runtime, run.runId, staged) == path.read_bytes()
    assert artifacts[staged].sha256 == sha
    assert artifacts[staged].size == path.stat().st_size
    metadata = json.loads(stored_bytes(runtime, run.runId, meta))
    assert metadata == {
        "filename": path.name,
        "sha256": sha,
        "size": path.stat().st_size,
        "sourcePath": str(path),
        "stagedPath": outputs["stagedPath"],
    }
    assert artifacts[meta].sha256 == hashlib.sha256(stored_bytes(runtime, run.runId, meta)).hexdigest()


def test_bundle_ingest_fails_cleanly_on_a_missing_file(runtime: Any, bundle: tuple[Path, str]) -> None:
    path, sha = bundle
    missing = path.with_name("not-there.tar.gz")
    run = run_pack(
        runtime, FIXTURE_PACKS / "bundle-ingest.yaml", {"bundlePath": str(missing), "bundleSha256": sha}
    )

    assert run.status == "failed"
    step = run.step("ingest")
    assert step.status == "failed"
    assert step.error.code == "BundleNotFound"
    assert step.error.message == f"bundle.ingest: bundle file not found: {missing}"
    assert run.error is not None
    assert run.error.message == step.error.message
    assert run.step("receipt").status == "cancelled"
    assert runtime.svc.store.list_artifacts(run.runId) == []


def test_bundle_ingest_refuses_a_checksum_mismatch_and_stages_nothing(
    runtime: Any, bundle: tuple[Path, str]
) -> None:
    path, sha = bundle
    wrong = hashlib.sha256(b"another bundle").hexdigest()
    run = run_pack(
        runtime, FIXTURE_PACKS / "bundle-ingest.yaml", {"bundlePath": str(path), "bundleSha256": wrong}
    )

    assert run.status == "failed"
    step = run.step("ingest")
    assert step.error.code == "ChecksumMismatch"
    assert step.error.message == (
        f"bundle.ingest: checksum mismatch for {path.name}: expected {wrong}, got {sha}"
    )
    assert len(step.attempts) == 1  # not retryable
    assert run.error is not None
    assert run.error.code == "StepAborted"
    assert run.error.message == step.error.message
    # Nothing lands under the content-addressed path of a checksum the bytes do not have.
    assert runtime.svc.store.list_artifacts(run.runId) == []


def test_every_kind_of_artifact_is_recorded_with_the_digest_of_its_stored_bytes(
    runtime: Any, bundle: tuple[Path, str]
) -> None:
    path, sha = bundle
    run = run_pack(runtime, FIXTURE_PACKS / "artifacts.yaml", {"bundlePath": str(path), "bundleSha256": sha})

    assert run.status == "succeeded"
    records = {a.name: a for a in runtime.svc.store.list_artifacts(run.runId)}
    expected = {
        "notes.txt": b"plain text notes\n",
        "listing.stdout": b"out line\n",
        "listing.stderr": b"err line\n",
        f"bundles/{sha}/{path.name}": path.read_bytes(),
    }
    assert set(records) == {*expected, "report", f"bundles/{sha}/metadata.json"}
    for name, record in records.items():
        data = stored_bytes(runtime, run.runId, name)
        assert record.sha256 == hashlib.sha256(data).hexdigest(), name
        assert record.size == len(data), name
        if name in expected:
            assert data == expected[name], name
    assert json.loads(stored_bytes(runtime, run.runId, "report")) == {"ok": True, "items": [1, 2, 3]}
    assert records["notes.txt"].mediaType == "text/plain"
    assert records["report"].mediaType == "application/json"
    assert run.step("listing").outputs["stdoutSha256"] == records["listing.stdout"].sha256
    captured = [e for e in runtime.svc.store.read_logs(run.runId) if e.eventType == "artifact.captured"]
    assert {e.metadata["name"]: e.metadata["sha256"] for e in captured} == {
        n: r.sha256 for n, r in records.items()
    }


# ------------------------------------------------------------------------------------------ plan tampering


def submit_tampered(rt: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Submit failing-step.yaml with the stored plan changed between planning and the start of execution."""
    store = rt.svc.store
    original = store.create_run

    def create_tampered(record: Any) -> Any:
        plan = json.loads(json.dumps(record.plan))
        plan["steps"][0]["with"]["label"] = "tampered"
        return original(record.model_copy(update={"plan": plan}))

    monkeypatch.setattr(store, "create_run", create_tampered)
    try:
        run_id: str = submit(rt, FIXTURE_PACKS / "failing-step.yaml").runId
    finally:
        monkeypatch.undo()
    return run_id


def execution_over(rt: Any, run_id: str) -> Any:
    """The run once its Step Functions execution is no longer running."""
    run = rt.svc.store.get_run(run_id, None)
    return rt.svc.workflow.execution_status(run.executionArn) != "RUNNING" and rt.svc.store.get_run(
        run_id, None
    )


def test_a_plan_tampered_after_submit_fails_verification(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = submit_tampered(runtime, monkeypatch)
    run = wait_for(lambda: execution_over(runtime, run_id), timeout=60)

    assert run.plan["steps"][0]["with"]["label"] == "tampered"
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.code == "PlanHashMismatch"
    assert run.planHash in run.error.message
    assert all(s.attempts == [] for s in run.steps)
    assert {s.status for s in run.steps} == {"cancelled"}
    events = runtime.svc.store.read_logs(run_id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert [e.eventType for e in events] == ["run.created", "plan.verified", "run.completed"]
    assert events[1].level == "error"
    assert events[1].metadata["result"] == "mismatch"
    assert events[1].metadata["expected"] == run.planHash
    assert events[2].metadata == {"outcome": "failed", "error": "PlanHashMismatch"}


def test_a_run_failed_by_a_tampered_plan_is_still_sealed(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = submit_tampered(runtime, monkeypatch)
    run = wait_for(lambda: execution_over(runtime, run_id), timeout=60)

    # the execution failed; once it ended its idle machine may already be retired (then its status is DELETED)
    assert runtime.svc.workflow.execution_status(run.executionArn) in ("FAILED", "DELETED")
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.code == "PlanHashMismatch"
    assert run.evidence is not None


EGRESS_PACK = """
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: egress, version: 1.0.0}
spec:
  sandbox: {mode: sealed, egressAllowlist: ["127.0.0.1"]}
  failure: {retries: {maxAttempts: 3}}
  steps:
    - {id: call, run: {uses: http.request, with: {url: "http://127.0.0.1:9/never"}}}
"""


def test_a_sealed_deployment_refuses_egress_even_to_an_allowlisted_host(runtime: Any) -> None:
    run = runtime.wait(submit(runtime, EGRESS_PACK).runId, timeout=60)

    assert run.status == "failed"
    call = run.step("call")
    assert call.status == "failed"
    assert len(call.attempts) == 1  # refused, not retried
    assert call.error is not None
    assert call.error.code == "EgressDenied"
    assert "sealed" in call.error.message


MISSING_SECRET_PACK = """
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: missing-secret, version: 1.0.0}
spec:
  sandbox: {mode: sealed, egressAllowlist: []}
  secrets: [{name: token, ref: "env:TASKRUNNER_TEST_UNSET_SECRET"}]
  failure: {retries: {maxAttempts: 3}}
  steps:
    - {id: use, run: {uses: noop, with: {auth: "{{ secrets.token }}"}}}
"""


def test_an_unresolvable_secret_fails_the_step_once_with_a_clear_error(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKRUNNER_TEST_UNSET_SECRET", raising=False)
    run = runtime.wait(submit(runtime, MISSING_SECRET_PACK).runId, timeout=60)

    assert run.status == "failed"
    use = run.step("use")
    assert use.status == "failed"
    assert len(use.attempts) == 1  # a missing secret is not retried
    assert use.error is not None
    assert use.error.code == "SecretNotFound"
    assert "TASKRUNNER_TEST_UNSET_SECRET" in use.error.message


ZERO_WHEN_PACK = """
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: zero-when, version: 1.0.0}
spec:
  sandbox: {mode: sealed, egressAllowlist: []}
  steps:
    - {id: count, run: {uses: noop, with: {n: 0, none: []}}, outputs: [n, none]}
    - {id: zero, when: "steps.count.outputs.n", run: {uses: noop}}
    - {id: empty, when: "steps.count.outputs.none", run: {uses: noop}}
"""


def test_run_time_when_follows_jmespath_truthiness(runtime: Any) -> None:
    run = runtime.wait(submit(runtime, ZERO_WHEN_PACK).runId, timeout=60)

    assert run.status == "succeeded"
    assert run.step("zero").status == "succeeded"  # 0 is true in JMESPath
    assert run.step("empty").status == "skipped"  # an empty array is false


RUN_TIME_PARAMETER_PACK = """
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: run-time-parameter, version: 1.0.0}
spec:
  sandbox: {mode: sealed, egressAllowlist: []}
  steps:
    - {id: answer, run: {uses: noop, with: {wait: soon}}}
    - {id: pause, run: {uses: sleep, with: {seconds: "{{ steps.answer.outputs.wait }}"}}}
"""


def test_a_parameter_known_only_at_run_time_is_checked_by_the_module_contract(runtime: Any) -> None:
    run = runtime.wait(submit(runtime, RUN_TIME_PARAMETER_PACK).runId, timeout=60)

    assert run.status == "failed"
    pause = run.step("pause")
    assert len(pause.attempts) == 1  # a bad parameter is not retried
    assert pause.error is not None
    assert pause.error.code == "InvalidParameters"
    assert pause.error.message.startswith(
        "run.with.seconds: sleep parameter 'seconds': Input should be a valid number"
    )
    assert "got a string" in pause.error.message
