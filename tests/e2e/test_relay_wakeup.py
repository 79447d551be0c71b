"""A decision made by another process reaches this process's parked execution through its wake-up socket,
not the relay's periodic poll (here set to an hour, so only the wake-up can deliver it).

The deciding commands (``approve``, ``approvals import``, ``runs cancel``) start no local runtime of their
own: they never import moto, only record the change in the store and wake the runtimes. A run no runtime
holds continues when one starts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, submit, wait_for, wait_for_step
from support.clock import fast_clock
from taskrunner.cli.app import app
from taskrunner.local import runtime as local_runtime
from taskrunner.local.runtime import LocalRuntime
from typer.testing import CliRunner

TASKRUNNER = str(Path(sys.executable).with_name("taskrunner"))
GATE_PACK = REPO / "tests" / "fixtures" / "packs" / "approval-gate.yaml"
MOTO_IMPORT = re.compile(r"^import time:.*\|\s*moto(\.|$)", re.MULTILINE)


def taskrunner(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``taskrunner ARGS`` in a fresh process with ``-X importtime`` (every module it imports is on stderr)."""
    return subprocess.run(
        [sys.executable, "-X", "importtime", TASKRUNNER, *args],
        cwd=REPO,
        env={**os.environ, "TASKRUNNER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def without_moto(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    imported = MOTO_IMPORT.findall(done.stderr)
    assert not imported, "the command imported moto (it started a local runtime)"
    assert "import time:" in done.stderr  # the check above saw the command's imports
    return done


@pytest.fixture
def relay_by_wakeup_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_runtime, "GATE_RELAY_SECONDS", 3600.0)


@pytest.mark.usefixtures("relay_by_wakeup_only")
def test_approve_in_another_process_moves_the_parked_run_on_without_moto(tr_home: Path) -> None:
    with fast_clock(0.01), LocalRuntime(tr_home) as rt:
        run = submit(rt, GATE_PACK)
        wait_for_step(rt, run.runId, "review", "waiting", timeout=60)

        approved = without_moto(
            taskrunner(tr_home, "approve", run.runId, "review", "--as", "alice", "--json")
        )
        assert approved.returncode == 0, approved.stderr[-3000:] + approved.stdout
        view = json.loads(approved.stdout)
        assert (view["status"], view["approvals"], view["decision"]) == ("approved", 1, "approve")

        final = rt.wait(run.runId, timeout=60)
        events = [e.eventType for e in rt.svc.store.read_logs(run.runId)]
    assert final.status == "succeeded"
    assert final.step("review").status == "approved"
    assert final.step("ship").status == "succeeded"
    assert events.count("gate.approved") == 1


@pytest.mark.usefixtures("relay_by_wakeup_only")
def test_cancel_in_another_process_ends_the_parked_run_without_moto(tr_home: Path) -> None:
    with fast_clock(0.01), LocalRuntime(tr_home) as rt:
        run = submit(rt, GATE_PACK)
        wait_for_step(rt, run.runId, "review", "waiting", timeout=60)

        cancelled = without_moto(taskrunner(tr_home, "runs", "cancel", run.runId, "--json"))
        assert cancelled.returncode == 0, cancelled.stderr[-3000:] + cancelled.stdout
        assert json.loads(cancelled.stdout)["status"] == "cancelled"

        final = rt.wait(run.runId, timeout=60)  # sealed by the cancelling process
        sfn = rt.aws.client("stepfunctions") if rt.aws else None
        assert sfn is not None

        def running() -> list[object]:
            return [
                e
                for m in sfn.list_state_machines()["stateMachines"]
                for e in sfn.list_executions(stateMachineArn=m["stateMachineArn"], statusFilter="RUNNING")[
                    "executions"
                ]
            ]

        # the relay stops the parked execution once woken: it ends soon after the run was sealed
        wait_for(lambda: not running(), timeout=30)
    assert final.status == "cancelled"
    assert final.evidence is not None
    assert final.step("review").status == "cancelled"
    assert final.step("ship").status != "succeeded"


def test_a_decision_while_no_runtime_holds_the_run_applies_when_one_starts(tr_home: Path) -> None:
    with fast_clock(0.01), LocalRuntime(tr_home) as rt:
        run = submit(rt, GATE_PACK)
        wait_for_step(rt, run.runId, "review", "waiting", timeout=60)
    # the runtime is gone; its run is still running in the store, parked at the gate
    approved = without_moto(taskrunner(tr_home, "approve", run.runId, "review", "--as", "bob"))
    assert approved.returncode == 0, approved.stderr[-3000:]
    assert f"gate review of run {run.runId}: approve recorded; 1/1 approvals, approved" in approved.stdout

    with fast_clock(0.01), LocalRuntime(tr_home) as rt:
        assert run.runId in rt.resumed
        final = rt.wait(run.runId, timeout=60)
    assert final.status == "succeeded"
    assert final.step("ship").status == "succeeded"

    # deciding a closed gate is refused with a clear error, and changes nothing
    gates_file = next((tr_home / "runs").glob("*/approvals.json"))
    before = gates_file.read_bytes()
    refused = without_moto(taskrunner(tr_home, "approve", run.runId, "review", "--reject", "--as", "carol"))
    assert refused.returncode != 0
    assert "gate review is already approved" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert gates_file.read_bytes() == before


@pytest.mark.usefixtures("relay_by_wakeup_only")
def test_an_offline_response_imported_in_another_process_moves_the_parked_run_on_without_moto(
    tr_home: Path, tmp_path: Path
) -> None:
    def cli(*args: str) -> str:
        done = CliRunner().invoke(app, list(args))
        assert done.exit_code == 0, done.output
        return done.stdout

    key, request, response = tmp_path / "dana.pem", tmp_path / "request.json", tmp_path / "response.json"
    with fast_clock(0.01), LocalRuntime(tr_home) as rt:
        run = submit(rt, GATE_PACK)
        wait_for_step(rt, run.runId, "review", "waiting", timeout=60)
        cli("keys", "generate", "--out", str(key))
        public = tmp_path / "dana.pub.pem"
        exported = json.loads(cli("keys", "export-public", "--key", key.as_uri(), "--json"))
        public.write_text(exported["publicKeyPem"], encoding="utf-8")
        cli("approvals", "trust", "dana", str(public))
        cli("approvals", "export", run.runId, "review", "-o", str(request))
        cli("approvals", "sign", str(request), "--key", str(key), "--as", "dana", "-o", str(response))

        imported = without_moto(taskrunner(tr_home, "approvals", "import", str(response), "--json"))
        assert imported.returncode == 0, imported.stderr[-3000:] + imported.stdout
        assert json.loads(imported.stdout)["status"] == "approved"
        final = rt.wait(run.runId, timeout=60)
    assert final.status == "succeeded"
    assert final.step("ship").status == "succeeded"


SLEEPY_PACK = """
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: sleepy, version: 1.0.0}
spec:
  sandbox: {mode: sealed, egressAllowlist: []}
  steps:
    - {id: pause, run: {uses: sleep, with: {seconds: 2}}}
    - {id: after, run: {uses: noop, with: {n: 1}}}
"""


@pytest.mark.usefixtures("relay_by_wakeup_only")
def test_cancel_in_another_process_stops_the_execution_of_a_running_run(tr_home: Path) -> None:
    with fast_clock(0.01), LocalRuntime(tr_home) as rt:
        run = submit(rt, SLEEPY_PACK)
        running = wait_for_step(rt, run.runId, "pause", "running", timeout=60)
        assert running.executionArn
        cancelled = without_moto(taskrunner(tr_home, "runs", "cancel", run.runId))
        assert cancelled.returncode == 0, cancelled.stderr[-3000:]
        sfn = rt.aws.client("stepfunctions") if rt.aws else None
        assert sfn is not None
        # moto ends a stopped execution once its running task returns (FAILED with the task's error, where AWS
        # says ABORTED at once); stopped, neither the Catch (SealFailure) nor the next step runs
        wait_for(lambda: sfn.describe_execution(executionArn=running.executionArn)["status"] != "RUNNING")
        history = sfn.get_execution_history(executionArn=running.executionArn, maxResults=1000)["events"]
        entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
        final = rt.wait(run.runId, timeout=60)
    assert entered == ["VerifyPlan", "pause"]
    assert final.status == "cancelled"
    assert final.step("after").status != "succeeded"
