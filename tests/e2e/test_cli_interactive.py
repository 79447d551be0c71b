"""The CLI as a person uses it: answering gates at the terminal prompt, deciding a gate from another
terminal while ``run`` waits, and following a live log."""

from __future__ import annotations

import getpass
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import REPO, submit

TASKRUNNER = str(Path(sys.executable).with_name("taskrunner"))
GATE_PACK = REPO / "tests" / "fixtures" / "packs" / "approval-gate.yaml"
TWO_APPROVERS_PACK = REPO / "tests" / "fixtures" / "packs" / "two-approvers.yaml"
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


@contextmanager
def waiting_run(*options: str) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """``taskrunner run`` of the two-approver pack without a terminal, once it waits on gate signoff: the
    process, the run id and what it told on stderr. The process is killed if the block leaves it running."""
    waiting = subprocess.Popen(
        [TASKRUNNER, "run", str(TWO_APPROVERS_PACK), *options, "--json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert waiting.stderr is not None
        told = _read_until(waiting.stderr.fileno(), b"to reject)", timeout=90).decode()
        found = re.search(r"taskrunner approve (\S+) signoff --as NAME", told)
        assert found is not None, told
        yield waiting, found.group(1), told
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()


def _stored_gates(home: Path) -> dict[str, Any]:
    (run_dir,) = [d for d in (home / "runs").iterdir() if d.is_dir() and not d.name.startswith(".")]
    gates: dict[str, Any] = json.loads((run_dir / "approvals.json").read_text())
    return gates


def test_a_gate_is_answered_at_the_terminal_prompt_as_the_os_user(tr_home: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: `taskrunner run` on a real terminal
        os.execv(TASKRUNNER, [TASKRUNNER, "run", str(GATE_PACK)])  # noqa: S606 - fixed argv
    try:
        _read_until(fd, b"Approve gate 'review'", timeout=90)
        os.write(fd, b"y\n")
        _read_until(fd, b"Approver name", timeout=30)
        os.write(fd, b"\n")  # the default: the OS user
        tail = _read_until(fd, b"evidence", timeout=90)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, tail[-2000:]
    assert b"succeeded" in tail
    gates = _stored_gates(tr_home)
    assert gates["review"]["status"] == "approved"
    assert [d["approver"] for d in gates["review"]["decisions"]] == [getpass.getuser()]


def _plain(output: bytes) -> str:
    """Terminal output without its escape sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))


def test_a_two_approver_gate_asks_for_each_approval_and_shows_progress(tr_home: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # a 120-column terminal
        argv = [TASKRUNNER, "run", str(TWO_APPROVERS_PACK)]
        os.execve(TASKRUNNER, argv, {**os.environ, "COLUMNS": "120"})  # noqa: S606 - fixed argv
    try:
        opened = _read_until(fd, b"Approve gate 'signoff'", timeout=90)
        os.write(fd, b"y\n")
        _read_until(fd, b"Approver name", timeout=30)
        os.write(fd, b"alice\n")
        second = _read_until(fd, b"Approve gate 'signoff'", timeout=30)
        os.write(fd, b"y\n")
        _read_until(fd, b"Approver name", timeout=30)
        os.write(fd, b"bob\n")
        tail = _read_until(fd, b"evidence", timeout=90)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, tail[-2000:]
    # The gate opened with the command another approver would run, and the prompt counted approvals.
    run_id = re.search(rb"taskrunner approve (\S+) signoff --as NAME", opened)
    assert run_id is not None, opened[-2000:]
    assert b"0/2 approvals" in opened
    assert b"approved by alice, 1/2 approvals, waiting" in second
    assert b"1/2 approvals" in second.split(b"approved by alice")[1]  # asked again, with one approval in
    final = _plain(tail)
    assert "approved by bob, 2/2 approvals, approved" in final
    assert re.search(r"signoff\s.*approved.*2/2 approvals: alice, bob ", final), final
    # Containers read finished, not pending, once their children have finished.
    assert re.search(r"build\s+.*map\s+.*succeeded", final), final
    assert re.search(r"qa\s+.*parallel\s+.*succeeded", final), final
    assert 'output release: {"released": true}' in final
    gates = _stored_gates(tr_home)
    assert gates["signoff"]["status"] == "approved"
    assert [d["approver"] for d in gates["signoff"]["decisions"]] == ["alice", "bob"]


def test_without_a_terminal_run_waits_for_a_decision_from_another_process(tr_home: Path) -> None:
    # The command line gives one of the two approvals; the second comes from another process.
    with waiting_run("--approve", "signoff=alice") as (waiting, run_id, told):
        assert "waiting for decisions on gate signoff until" in told
        assert waiting.poll() is None  # still waiting, not cancelled
        approved = subprocess.run(
            [TASKRUNNER, "approve", run_id, "signoff", "--as", "bob"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert approved.returncode == 0, approved.stderr
        assert "approve recorded; 2/2 approvals, approved" in approved.stdout
        out, _ = waiting.communicate(timeout=120)
    assert waiting.returncode == 0
    document = json.loads(out)
    assert document["status"] == "succeeded"
    assert {s["stepId"]: s["status"] for s in document["steps"]}["signoff"] == "approved"
    assert [d["approver"] for d in _stored_gates(tr_home)["signoff"]["decisions"]] == ["alice", "bob"]


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
