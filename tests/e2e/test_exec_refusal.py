"""Fail closed: where ``exec`` cannot be isolated (here: as in AWS Lambda), a sealed pack's ``exec`` step fails
once with ``SandboxUnavailable`` — not retried, the program never started — and the run fails."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import submit

PACK = """
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: exec-refused, version: 1.0.0}
spec:
  sandbox: {mode: sealed, egressAllowlist: [], cpuSeconds: 60, memoryMiB: 1024}
  steps:
    - id: shell
      retries: {maxAttempts: 3, backoffSeconds: 1}
      run: {uses: exec, with: {argv: [touch, "%s"]}}
"""


def test_a_sealed_pack_refuses_exec_where_it_cannot_be_isolated(
    runtime: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = (
        tmp_path / "bin"
    )  # an unshare that fails as it does where namespaces are not allowed (AWS Lambda)
    broken.mkdir()
    (broken / "unshare").write_text("#!/bin/sh\necho 'unshare: Operation not permitted' >&2\nexit 1\n")
    (broken / "unshare").chmod(0o755)
    monkeypatch.setenv("PATH", f"{broken}{os.pathsep}{os.environ['PATH']}")
    marker = tmp_path / "ran"
    run = runtime.wait(submit(runtime, PACK % marker).runId, timeout=60)

    assert run.status == "failed"
    step = run.step("shell")
    assert step.status == "failed"
    assert [a.status for a in step.attempts] == ["failed"]  # StepAborted: retrying cannot help
    assert step.error.code == "SandboxUnavailable"
    assert "Operation not permitted" in step.error.message
    assert "unshare" in step.error.message  # how to get a host where it runs
    assert not marker.exists()
