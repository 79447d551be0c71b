"""A decision made by another process reaches this process's parked execution through its wake-up socket,
not the relay's periodic poll (here set to an hour, so only the wake-up can deliver it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, submit, wait_for_step
from support.clock import fast_clock
from taskrunner.local import runtime as local_runtime
from taskrunner.local.runtime import LocalRuntime

TASKRUNNER = str(Path(sys.executable).with_name("taskrunner"))
GATE_PACK = REPO / "tests" / "fixtures" / "packs" / "approval-gate.yaml"


def test_approve_in_another_process(tr_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_runtime, "GATE_RELAY_SECONDS", 3600.0)
    with fast_clock(0.01), LocalRuntime(tr_home) as rt:
        run = submit(rt, GATE_PACK)
        wait_for_step(rt, run.runId, "review", "waiting", timeout=60)

        approved = subprocess.run(
            [TASKRUNNER, "approve", run.runId, "review", "--as", "alice", "--json"],
            cwd=REPO,
            env={**os.environ, "TASKRUNNER_HOME": str(tr_home)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert approved.returncode == 0, approved.stderr + approved.stdout

        final = rt.wait(run.runId, timeout=60)
    assert final.status == "succeeded"
    assert final.step("review").status == "approved"
    assert final.step("ship").status == "succeeded"
