"""File store throughput: log appends/s (single events and batches), log reads/s (full, paged and
tail), and the per-step store cost for runs of 100, 1,000 and 10,000 steps: a step update (one line
appended to steps.ndjson) and a step as ``execute_step`` does it (read the run, update the step twice).

Targets: the per-step cost flat in the run's size (10,000 steps within 2x of 100); appends bounded by one
fsync per batch; counting the active runs (the queue depth checked on every submit) flat in the number
of finished runs stored. Run: .venv/bin/python bench/store_append.py [--events N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from taskrunner.store.file_store import FileRunStore
from taskrunner.store.records import NewLogEvent, RunRecord, StepRecord


def new_run(store: FileRunStore, run_id: str, steps: int) -> None:
    store.create_run(
        RunRecord(
            runId=run_id,
            tenantId="bench",
            planHash="sha256:" + "0" * 64,
            packName="bench",
            packVersion="1.0.0",
            requestedAt=datetime.now(UTC),
            failurePolicy={},
            plan={"steps": [{"id": f"s{i}", "uses": "noop"} for i in range(steps)]},
            steps=[StepRecord(stepId=f"s{i}", kind="run") for i in range(steps)],
        )
    )


def timed(label: str, count: int, unit: str, action: Callable[[], object]) -> None:
    start = time.perf_counter()
    action()
    elapsed = time.perf_counter() - start
    print(f"{label:<44} {count / elapsed:>12,.0f} {unit}/s   ({elapsed * 1000:,.1f} ms for {count:,})")


def event(i: int) -> NewLogEvent:
    return NewLogEvent(
        eventType="step.started", message=f"step s{i} started", stepId=f"s{i}", metadata={"n": str(i)}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="log events per append benchmark")
    args = parser.parse_args()
    n = args.events

    with tempfile.TemporaryDirectory() as root:
        store = FileRunStore(Path(root))
        new_run(store, "single", 10)
        new_run(store, "batch", 10)
        events = [event(i) for i in range(n)]

        timed(
            "append, 1 event per call",
            n,
            "events",
            lambda: [store.append_logs("single", [e]) for e in events],
        )
        timed(
            "append, batches of 100",
            n,
            "events",
            lambda: [store.append_logs("batch", events[i : i + 100]) for i in range(0, n, 100)],
        )
        reads = 50
        timed(
            "read all events (after 0)",
            reads * n,
            "events",
            lambda: [store.read_logs("batch") for _ in range(reads)],
        )
        fresh = FileRunStore(Path(root))  # cold read index
        timed("read all events, cold index", n, "events", lambda: fresh.read_logs("batch"))
        timed(
            "read pages of 100 (after_sequence, limit)",
            n,
            "events",
            lambda: [store.read_logs("batch", after_sequence=i, limit=100) for i in range(0, n, 100)],
        )
        polls = 2000
        timed(
            "tail poll (last 10 events)",
            polls,
            "reads",
            lambda: [store.read_logs("batch", after_sequence=n - 10) for _ in range(polls)],
        )

        for steps in (100, 1_000, 10_000):
            run_id = f"steps-{steps}"
            new_run(store, run_id, steps)
            updates = 50
            start = time.perf_counter()
            for i in range(updates):
                store.update_step(run_id, f"s{i}", expected_status=["pending"], changes={"status": "running"})
            per_update = (time.perf_counter() - start) / updates * 1000
            start = time.perf_counter()
            for i in range(updates, 2 * updates):  # execute_step: read the run, start and finish the step
                store.get_run(run_id, "bench").step(f"s{i}")
                store.update_step(run_id, f"s{i}", expected_status=["pending"], changes={"status": "running"})
                store.update_step(
                    run_id, f"s{i}", expected_status=["running"], changes={"status": "succeeded"}
                )
            per_step = (time.perf_counter() - start) / updates * 1000
            print(
                f"{steps:>6,} steps: step update {per_update:>7.2f} ms, "
                f"step read + 2 updates {per_step:>7.2f} ms"
            )

        for stored in (100, 1_000):
            for i in range(stored - len(list(store.iter_run_ids()))):
                new_run(store, f"done-{stored}-{i}", 1)
                store.update_run(f"done-{stored}-{i}", expected_status=None, changes={"status": "succeeded"})
            counts = 100
            start = time.perf_counter()
            for _ in range(counts):
                store.count_active_runs()
            per_count = (time.perf_counter() - start) / counts * 1000
            print(f"count active runs, {stored:>6,} runs stored  {per_count:>8.3f} ms/count")


if __name__ == "__main__":
    main()
