"""``taskrunner serve`` killed (SIGKILL) while a gate waits, restarted on the same TASKRUNNER_HOME, approved:
the run completes and no step that had finished before the kill runs again.

The helpers that run ``taskrunner`` as a subprocess are shared with the offline approvals test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, wait_for
from taskrunner.evidence.signing import generate_ed25519_keyfile
from taskrunner.local.approvers import approver_key_path, signed_envelope
from test_http_api import (
    GATE,
    READ,
    RUN,
    Api,
    approval_token,
    log_events,
    run_detail,
    started,
    step_of,
    user_token,
    wait_waiting,
)

TASKRUNNER = str(Path(sys.executable).with_name("taskrunner"))
TENANT = "local"

PACK = f"""\
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {{name: restartable, version: 1.0.0}}
spec:
  approvals:
    - {{id: sign-off, grants: [packs.approve], requiredCount: 1, expiresAfter: PT1H}}
  sandbox: {{mode: sealed, egressAllowlist: []}}
  steps:
    - {{id: before, run: {{uses: noop, with: {{phase: before}}}}}}
    - id: checks
      parallel:
        steps:
          - {{id: lint, run: {{uses: noop, with: {{check: lint}}}}}}
          - {{id: docs, run: {{uses: noop, with: {{check: docs}}}}}}
    - id: {GATE}
      gate.approval: {{approval: sign-off, message: "resume me"}}
    - {{id: after, run: {{uses: noop, with: {{phase: after}}}}}}
"""


def cli_env(home: Path) -> dict[str, str]:
    return {**os.environ, "TASKRUNNER_HOME": str(home), "POWERTOOLS_LOG_LEVEL": "WARNING"}


def cli(home: Path, *args: str, check: bool = True, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run ``taskrunner ARGS`` on ``home`` (from the project directory unless ``cwd`` says otherwise)."""
    done = subprocess.run(
        [TASKRUNNER, *args], cwd=cwd, env=cli_env(home), capture_output=True, text=True, timeout=180
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"taskrunner {' '.join(args)} exited {done.returncode}:\n{done.stderr}{done.stdout}"
        )
    return done


class Serve:
    """``taskrunner serve --port 0`` as a child process; its URL is read from its stdout."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home, self.log = home, log
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 90) -> Serve:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [TASKRUNNER, "serve", "--port", "0"],
                cwd=REPO,
                env=cli_env(self.home),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.url = wait_for(self._url, timeout=timeout, interval=0.1)
        return self

    def _url(self) -> str | None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"taskrunner serve exited {self.process.returncode}:\n{self.log.read_text()}"
            )
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return next((line.strip() for line in lines if line.startswith("http://")), None)

    @property
    def api(self) -> Api:
        return Api(self.url)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as when the machine or the process dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Ctrl-C, then SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture
def servers(tr_home: Path) -> Iterator[list[Serve]]:
    """Started servers are stopped at the end, whatever happened."""
    tr_home.mkdir(parents=True, exist_ok=True)
    started_servers: list[Serve] = []
    try:
        yield started_servers
    finally:
        for server in started_servers:
            server.kill()


def trusted_approver(home: Path, name: str) -> Any:
    """An approver key under ``home``, trusted for the tenant with ``taskrunner approvals trust``."""
    signer = generate_ed25519_keyfile(approver_key_path(home, name))
    public = home / f"{name}.pub.pem"
    public.write_text(signer.public_key_pem, encoding="utf-8")
    cli(home, "approvals", "trust", name, str(public), "--tenant", TENANT)
    return signer


def started_steps(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["stepId"] for e in events if e["eventType"] == "step.started")


def test_a_killed_server_resumes_the_waiting_run_and_reruns_nothing(
    tr_home: Path, servers: list[Serve]
) -> None:
    token = user_token(TENANT, READ, RUN)
    first = Serve(tr_home, tr_home / "serve-1.log")
    servers.append(first)
    first.start()
    run = started(first.api, token, PACK)
    run_id = run["runId"]
    before_kill = wait_waiting(first.api, token, run_id)
    events_before = log_events(first.api, token, run_id)
    finished = [s["stepId"] for s in before_kill["steps"] if s["status"] == "succeeded"]
    assert finished == ["before", "checks", "lint", "docs"]  # the parallel's status follows its children
    signer = trusted_approver(tr_home, "alice")

    first.kill()  # SIGKILL while the gate waits

    second = Serve(tr_home, tr_home / "serve-2.log")
    servers.append(second)
    second.start()
    api = second.api
    pending = [e for e in log_events(api, token, run_id) if e["eventType"] == "gate.pending"]
    assert len(pending) >= 1
    # the restarted server resumed the run: a new execution reaches the gate and parks on it again
    wait_for(
        lambda: [e["eventType"] for e in log_events(api, token, run_id)].count("gate.pending") == 2,
        timeout=60,
    )
    resumed = run_detail(api, token, run_id)
    assert resumed["status"] == "running"
    assert step_of(resumed, GATE)["status"] == "waiting"

    envelope = signed_envelope(
        signer,
        run_id=run_id,
        gate_id=GATE,
        plan_hash=run["planHash"],
        tenant_id=TENANT,
        decision="approve",
        reason="after restart",
        approver="alice",
    )
    body = {
        "gateId": GATE,
        "decision": "approve",
        "reason": "after restart",
        "planHash": run["planHash"],
        "envelope": envelope,
    }
    reply = api.post(f"/api/runs/{run_id}/approve", approval_token(api, TENANT, "alice", run_id), body)
    assert reply.status == 200, reply.body
    assert reply.json()["status"] == "approved"

    final = wait_for(
        lambda: (d := run_detail(api, token, run_id))["status"] in ("succeeded", "failed", "cancelled") and d,
        timeout=60,
    )
    assert final["status"] == "succeeded", final
    wait_for(lambda: api.get(f"/api/runs/{run_id}/evidence", token).status == 200, timeout=30)
    events_after = log_events(api, token, run_id)
    for step_id in finished:  # finished before the kill: same attempts, not started again
        assert step_of(final, step_id)["attempts"] == step_of(before_kill, step_id)["attempts"], step_id
        assert step_of(final, step_id)["status"] == "succeeded"
    assert {s: n for s, n in started_steps(events_after).items() if s in finished} == dict(
        started_steps(events_before)
    )
    assert started_steps(events_after) == Counter({"before": 1, "lint": 1, "docs": 1, "after": 1})
    assert [a["status"] for a in step_of(final, "after")["attempts"]] == ["succeeded"]
    assert step_of(final, GATE)["status"] == "approved"
    assert step_of(final, "checks")["status"] == "succeeded"
    sequences = [e["sequence"] for e in events_after]
    assert sequences == list(range(1, len(sequences) + 1))  # the log survived the kill without a gap
    assert [e["eventType"] for e in events_after].count("run.completed") == 1
