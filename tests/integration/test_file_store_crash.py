"""The file store survives ``kill -9`` at any point: no torn or lost acknowledged record, gapless logs."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from taskrunner.store.errors import CorruptRecord
from taskrunner.store.file_store import FileRunStore
from taskrunner.store.records import NewLogEvent, RunRecord, StepRecord

STEPS = 2000  # a large run.json, so a kill often lands inside its rewrite

# Appends 40-event batches and rewrites run.json in a loop, printing each acknowledged write.
WRITER = """
import sys
import pytest
from taskrunner.store.errors import CorruptRecord
from taskrunner.store.file_store import FileRunStore
from taskrunner.store.records import NewLogEvent

store = FileRunStore(sys.argv[1])
payload = "x" * 1500
n = 0
while True:
    n += 1
    batch = [NewLogEvent(eventType="step.started", message=f"{n}:{i}:{payload}") for i in range(40)]
    events = store.append_logs("crash", batch)
    print(f"log {events[0].sequence} {events[-1].sequence}", flush=True)
    step = f"s{n % 97}"
    store.update_step("crash", step, expected_status=None, changes={"outputs": {"n": n}})
    print(f"step {step} {n}", flush=True)
"""


def _create_run(root: Path) -> FileRunStore:
    store = FileRunStore(root)
    store.create_run(
        RunRecord(
            runId="crash",
            tenantId="acme",
            planHash="sha256:" + "ef" * 32,
            packName="crash",
            packVersion="1.0.0",
            requestedAt=datetime(2026, 1, 1, tzinfo=UTC),
            failurePolicy={},
            plan={"steps": [{"id": f"s{i}"} for i in range(STEPS)]},
            steps=[StepRecord(stepId=f"s{i}", kind="run") for i in range(STEPS)],
        )
    )
    return store


def _kill_writer_midstream(root: Path, acks_before_kill: int, delay: float) -> list[str]:
    """Run the writer, SIGKILL it after some acknowledged writes; returns every acknowledgement."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acks: list[str] = []
    try:
        while len(acks) < acks_before_kill:
            line = proc.stdout.readline()
            assert line, f"writer exited early: {proc.stderr.read() if proc.stderr else ''}"
            acks.append(line.strip())
        time.sleep(delay)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    acks.extend(line.strip() for line in proc.stdout.read().splitlines() if line.strip())
    assert proc.returncode == -signal.SIGKILL
    return acks


def _check_recovered(root: Path, acks: list[str], previous_steps: dict[str, int]) -> dict[str, int]:
    store = FileRunStore(root)  # a fresh process view: no cached state
    events = store.read_logs("crash")
    sequences = [e.sequence for e in events]
    assert sequences == list(range(1, len(sequences) + 1)), "log sequences must stay gapless"
    acked_logs = [int(a.split()[2]) for a in acks if a.startswith("log ")]
    assert sequences[-1] >= max(acked_logs), "an acknowledged log event was lost"

    raw = (root / "runs" / "crash" / "logs.ndjson").read_bytes()
    complete = raw[: raw.rfind(b"\n")]  # a torn trailing fragment, if any, is not part of the log
    assert all(json.loads(line)["runId"] == "crash" for line in complete.split(b"\n"))

    run = store.get_run("crash", "acme")  # run.json is whole (never torn)
    acked_steps = dict(previous_steps)
    for ack in acks:
        if ack.startswith("step "):
            _, step, n = ack.split()
            acked_steps[step] = max(acked_steps.get(step, 0), int(n))
    for step, n in acked_steps.items():
        outputs = run.step(step).outputs
        assert outputs is not None
        assert outputs["n"] >= n, f"acknowledged update of {step} lost"
    return acked_steps


def test_kill_9_mid_stream_loses_nothing_acknowledged(tmp_path: Path) -> None:
    _create_run(tmp_path)
    rng = random.Random(20251106)
    acked_steps: dict[str, int] = {}
    for _ in range(4):
        acks = _kill_writer_midstream(
            tmp_path, acks_before_kill=rng.randint(4, 40), delay=rng.uniform(0, 0.03)
        )
        acked_steps = _check_recovered(tmp_path, acks, acked_steps)

    store = FileRunStore(tmp_path)
    before = store.read_logs("crash")
    after = store.append_logs("crash", [NewLogEvent(eventType="run.resumed", message="after crashes")])
    assert after[0].sequence == len(before) + 1
    assert (tmp_path / "runs" / "crash" / "logs.ndjson").read_bytes().endswith(b"\n")
    assert not list((tmp_path / "runs" / "crash").glob(".*.tmp")), "temp files of killed writers are swept"


def test_torn_trailing_line_is_ignored_then_truncated(tmp_path: Path) -> None:
    store = _create_run(tmp_path)
    store.append_logs("crash", [NewLogEvent(eventType="e", message=str(i)) for i in range(3)])
    log = tmp_path / "runs" / "crash" / "logs.ndjson"
    with log.open("ab") as handle:
        handle.write(b'{"runId":"crash","sequence":4,"mess')  # a writer died mid-line

    reopened = FileRunStore(tmp_path)
    assert [e.sequence for e in reopened.read_logs("crash")] == [1, 2, 3]
    appended = reopened.append_logs("crash", [NewLogEvent(eventType="e", message="next")])
    assert appended[0].sequence == 4
    lines = log.read_bytes().splitlines()
    assert [json.loads(line)["sequence"] for line in lines] == [1, 2, 3, 4]
    assert [e.message for e in FileRunStore(tmp_path).read_logs("crash", after_sequence=3)] == ["next"]


def test_leftover_temp_file_is_ignored_and_swept(tmp_path: Path) -> None:
    store = _create_run(tmp_path)
    leftover = tmp_path / "runs" / "crash" / ".run.json.999.1.tmp"
    leftover.write_text('{"runId": "half-writ')
    reopened = FileRunStore(tmp_path)
    assert reopened.get_run("crash", None) == store.get_run("crash", None)
    reopened.update_run("crash", expected_status=["pending"], changes={"status": "running"})
    assert not leftover.exists()
    assert FileRunStore(tmp_path).get_run("crash", None).status == "running"


def test_damaged_record_is_reported_as_a_domain_error(tmp_path: Path) -> None:
    store = _create_run(tmp_path)
    store.append_logs("crash", [NewLogEvent(eventType="e", message="m")])
    (tmp_path / "runs" / "crash" / "run.json").write_text('{"runId": "crash"}')
    (tmp_path / "runs" / "crash" / "logs.ndjson").write_bytes(b"not json\n")
    for read in (
        lambda: store.get_run("crash", None),
        lambda: store.read_logs("crash"),
        store.list_active_runs,
    ):
        with pytest.raises(CorruptRecord) as failure:
            read()
        assert str(tmp_path) in failure.value.message
        assert failure.value.remediation


def test_step_update_appends_to_the_step_log_and_leaves_run_json_alone(tmp_path: Path) -> None:
    store = _create_run(tmp_path)
    run_json = tmp_path / "runs" / "crash" / "run.json"
    before = run_json.read_bytes()
    store.update_step("crash", "s7", expected_status=["pending"], changes={"status": "running"})
    assert run_json.read_bytes() == before
    log = (tmp_path / "runs" / "crash" / "steps.ndjson").read_bytes().splitlines()
    assert [json.loads(line)["step"]["stepId"] for line in log] == ["s7"]
    assert FileRunStore(tmp_path).get_run("crash", None).step("s7").status == "running"

    store.update_run("crash", expected_status=["pending"], changes={"status": "running"})
    assert (tmp_path / "runs" / "crash" / "steps.ndjson").read_bytes() == b""  # folded into run.json
    folded = json.loads(run_json.read_bytes())
    assert next(s for s in folded["steps"] if s["stepId"] == "s7")["status"] == "running"


def test_crash_between_folding_and_emptying_the_step_log_applies_nothing_twice(tmp_path: Path) -> None:
    store = _create_run(tmp_path)
    for status in ("running", "succeeded"):
        store.update_step("crash", "s1", expected_status=None, changes={"status": status})
    log = tmp_path / "runs" / "crash" / "steps.ndjson"
    leftover = log.read_bytes()
    store.update_run("crash", expected_status=["pending"], changes={"status": "running"})
    log.write_bytes(leftover)  # the writer died before emptying the log
    with log.open("ab") as handle:
        handle.write(b'{"version": 99, "updatedAt": "2026-')  # and another one mid-line

    reopened = FileRunStore(tmp_path)
    run = reopened.get_run("crash", None)
    assert (run.status, run.step("s1").status, run.version) == ("running", "succeeded", 4)
    step = reopened.update_step("crash", "s2", expected_status=["pending"], changes={"status": "running"})
    assert FileRunStore(tmp_path).get_run("crash", None).step("s2") == step
    assert FileRunStore(tmp_path).get_run("crash", None).version == 5
    assert log.read_bytes().endswith(b"\n")


def test_active_runs_are_counted_from_marks_without_reading_any_run(tmp_path: Path) -> None:
    store = _create_run(tmp_path)
    small = RunRecord.model_validate(
        {**store.get_run("crash", None).model_dump(), "runId": "done", "steps": []}
    )
    store.create_run(small)
    store.update_run("done", expected_status=None, changes={"status": "succeeded"})
    (tmp_path / "runs" / "done" / "run.json").write_text("damaged")  # never read to count
    assert store.count_active_runs() == 1
    assert sorted(os.listdir(tmp_path / "active")) == ["crash"]


def test_marks_are_rebuilt_for_an_older_store_and_a_surplus_mark_is_healed(tmp_path: Path) -> None:
    store = _create_run(tmp_path)
    shutil.rmtree(tmp_path / "active")  # a store written before marks existed
    reopened = FileRunStore(tmp_path)
    assert reopened.count_active_runs() == 1
    reopened.update_run("crash", expected_status=None, changes={"status": "failed"})
    assert reopened.count_active_runs() == 0
    (tmp_path / "active" / "crash").touch()  # a writer died between run.json and removing its mark
    assert store.list_active_runs() == []
    assert store.count_active_runs() == 0
