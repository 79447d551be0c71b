"""Cross-process decision latency, ``taskrunner approve`` wall time and ``taskrunner run`` start-up.

1. A local runtime in this process parks a run at an approval gate; ``taskrunner approve`` in another
   process decides it. The latency is the gate's ``closedAt`` (the decision stored by the other process)
   to the next step's ``startedAt`` (its ``step.started``), both from the store. Prints p50/p95, and the
   median wall time of those ``taskrunner approve`` processes (start to exit).
2. Wall time of ``taskrunner run --json`` of a one-step pack in a fresh process on a fresh home (median).

Targets: decision p95 well under 100 ms; approve < 1 s; start-up <= 1.5 s. MISSED is printed next to a
missed target.
Run: .venv/bin/python bench/decision_latency.py [--samples 15] [--startups 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from taskrunner.engine.submit import submit_run
from taskrunner.local.runtime import LocalRuntime

TASKRUNNER = str(Path(sys.executable).with_name("taskrunner"))
REPO = Path(__file__).resolve().parent.parent
DECISION_TARGET_MS = 100.0
APPROVE_TARGET_S = 1.0
STARTUP_TARGET_S = 1.5
GATE_PACK = """\
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: decided-elsewhere, version: 1.0.0}
spec:
  approvals:
    - {id: sign-off, grants: [packs.approve], requiredCount: 1, expiresAfter: PT1H}
  sandbox: {mode: sealed, egressAllowlist: []}
  steps:
    - {id: before, run: {uses: noop, with: {n: 1}}}
    - {id: review, gate.approval: {approval: sign-off, message: go?}}
    - {id: after, run: {uses: noop, with: {n: 2}}}
"""
ONE_STEP_PACK = """\
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: one-step, version: 1.0.0}
spec:
  sandbox: {mode: sealed, egressAllowlist: []}
  steps:
    - {id: only, run: {uses: noop, with: {n: 1}}}
"""


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.005)


def one_decision(rt: LocalRuntime, env: dict[str, str]) -> tuple[float, float]:
    """Park a run at its gate, approve it from another process: milliseconds from decision to next step,
    and the approving process's wall seconds."""
    store = rt.svc.store
    run_id = submit_run(rt.svc, tenant_id="local", manifest=GATE_PACK, inputs={}).run.runId
    wait_until(lambda: store.get_run(run_id, None).step("review").status == "waiting")
    began = time.perf_counter()
    subprocess.run(
        [TASKRUNNER, "approve", run_id, "review", "--json"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    approve_seconds = time.perf_counter() - began
    wait_until(lambda: store.get_run(run_id, None).step("after").startedAt is not None)
    started = store.get_run(run_id, None).step("after").startedAt
    closed = store.get_gate(run_id, "review").closedAt
    rt.wait(run_id, timeout=60)
    if started is None or closed is None:
        raise SystemExit(f"run {run_id}: gate not closed or next step not started")
    return (started - closed).total_seconds() * 1000, approve_seconds


def decision_latencies(samples: int) -> list[tuple[float, float]]:
    """Per sample: milliseconds from a decision stored by another process to the next step's start, and
    the wall seconds of the ``taskrunner approve`` that made it."""
    with tempfile.TemporaryDirectory(prefix="tr-") as tmp:
        home = Path(tmp)
        env = {**os.environ, "TASKRUNNER_HOME": str(home), "POWERTOOLS_LOG_LEVEL": "ERROR"}
        os.environ["TASKRUNNER_HOME"] = str(home)
        with LocalRuntime(home, resume=False) as rt:
            return [one_decision(rt, env) for _ in range(samples)]


def startup_seconds(count: int) -> list[float]:
    """Wall seconds of ``taskrunner run`` of a one-step pack, each on a fresh home."""
    times = []
    with tempfile.TemporaryDirectory(prefix="tr-") as tmp:
        pack = Path(tmp) / "one-step.yaml"
        pack.write_text(ONE_STEP_PACK, encoding="utf-8")
        for index in range(count):
            env = {**os.environ, "TASKRUNNER_HOME": f"{tmp}/home{index}", "POWERTOOLS_LOG_LEVEL": "ERROR"}
            began = time.perf_counter()
            subprocess.run(
                [TASKRUNNER, "run", str(pack), "--json"], cwd=REPO, env=env, check=True, capture_output=True
            )
            times.append(time.perf_counter() - began)
    return times


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--startups", type=int, default=3)
    args = parser.parse_args()

    samples = decision_latencies(args.samples)
    latencies = [latency for latency, _ in samples]
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    missed = "" if p95 < DECISION_TARGET_MS else "  MISSED"
    print(
        f"cross-process decision -> step.started: p50 {p50:.1f} ms, p95 {p95:.1f} ms (n={len(latencies)}){missed}"
    )
    approves = [seconds for _, seconds in samples]
    median = statistics.median(approves)
    missed = "" if median < APPROVE_TARGET_S else "  MISSED"
    print(
        f"taskrunner approve (fresh process): median {median:.2f} s, min {min(approves):.2f} s "
        f"(n={len(approves)}){missed}"
    )

    times = startup_seconds(args.startups)
    median = statistics.median(times)
    missed = "" if median <= STARTUP_TARGET_S else "  MISSED"
    print(
        f"taskrunner run (one step): median {median:.2f} s, min {min(times):.2f} s (n={len(times)}){missed}"
    )


if __name__ == "__main__":
    main()
