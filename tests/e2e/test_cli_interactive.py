"""The CLI as a person uses it: answering a gate at the terminal prompt, and following a live log."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import REPO, submit

TASKRUNNER = str(Path(sys.executable).with_name("taskrunner"))
GATE_PACK = REPO / "tests" / "fixtures" / "packs" / "approval-gate.yaml"
SLOW_PACK = """
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: slow, version: 1.0.0}
spec:
  sandbox: {mode: sealed, egressAllowlist: []}
  steps:
    - {id: first, run: {uses: noop, with: {n: 1}}}
    - {id: pause, run: {uses: sleep, with: {seconds: 1.5}}}
    - {id: last, run: {uses: noop, with: {n: 2}}}
"""


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen, deadline = b"", time.monotonic() + timeout
    while needle not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{needle!r} not seen; output so far: {seen[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            seen += chunk
    return seen


def test_a_gate_is_answered_at_the_terminal_prompt(tr_home: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: `taskrunner run` on a real terminal
        os.execv(TASKRUNNER, [TASKRUNNER, "run", str(GATE_PACK)])  # noqa: S606 - fixed argv
    try:
        _read_until(fd, b"Approve gate 'review'", timeout=90)
        os.write(fd, b"y\n")
        tail = _read_until(fd, b"evidence", timeout=90)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, tail[-2000:]
    assert b"succeeded" in tail
    (run_dir,) = [d for d in (tr_home / "runs").iterdir() if d.is_dir() and not d.name.startswith(".")]
    gates = json.loads((run_dir / "approvals.json").read_text())
    assert gates["review"]["status"] == "approved"
    assert [d["approver"] for d in gates["review"]["decisions"]] == ["local-approver"]


def test_logs_follow_streams_a_running_run_until_it_ends(runtime: Any) -> None:
    run = submit(runtime, SLOW_PACK)
    follower = subprocess.run(
        [TASKRUNNER, "runs", "logs", run.runId, "--follow"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "TASKRUNNER_HOME": str(runtime.home)},
    )
    assert follower.returncode == 0, follower.stderr
    events = [json.loads(line) for line in follower.stdout.splitlines()]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["eventType"] == "run.created"
    assert events[-1]["eventType"] == "run.completed"
    assert runtime.svc.store.get_run(run.runId, None).status == "succeeded"
