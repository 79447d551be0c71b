"""The file store's per-process bookkeeping stays bounded however many runs a long-running process sees."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from taskrunner.store import file_store
from taskrunner.store.file_store import FileRunStore
from taskrunner.store.records import NewLogEvent
from test_store_contract import make_run

BOUND = 4


def _log(message: str) -> list[NewLogEvent]:
    return [NewLogEvent(eventType="run.note", message=message)]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FileRunStore:
    monkeypatch.setattr(file_store, "_RUN_BOOKKEEPING", BOUND)
    monkeypatch.setattr(file_store, "_RUN_CACHE_SIZE", BOUND)
    return FileRunStore(tmp_path / "store")


def test_after_many_runs_the_bookkeeping_is_no_larger_than_its_bound(store: FileRunStore) -> None:
    runs = [f"r-{i:03d}" for i in range(5 * BOUND)]
    for run_id in runs:
        store.create_run(make_run(run_id, steps=1))
        store.update_step(run_id, "s0", expected_status=None, changes={"status": "succeeded"})
        store.append_logs(run_id, _log("one"))
        store.read_logs(run_id)
        store.update_run(run_id, expected_status=None, changes={"status": "succeeded"})
    assert len(store._logs) == BOUND
    assert len(store._swept) == BOUND
    assert len(store._states) == BOUND
    assert len(store._locks) == 0  # a path's thread lock lives only while a thread holds or waits for it


def test_a_run_whose_bookkeeping_was_dropped_continues_where_it_was(store: FileRunStore) -> None:
    store.create_run(make_run("r-first", steps=1))
    store.append_logs("r-first", _log("before"))
    assert [e.sequence for e in store.read_logs("r-first")] == [1]
    for i in range(2 * BOUND):  # other runs push r-first out
        store.create_run(make_run(f"r-{i:03d}", steps=1))
        store.append_logs(f"r-{i:03d}", _log("other"))
    assert "r-first" not in store._swept
    appended = store.append_logs("r-first", _log("after"))
    assert [e.sequence for e in appended] == [2]
    assert [e.message for e in store.read_logs("r-first", after_sequence=1)] == ["after"]
    assert store.get_run("r-first", "acme").steps[0].status == "pending"


def test_writers_of_one_run_on_many_threads_still_exclude_each_other(store: FileRunStore) -> None:
    store.create_run(make_run("r-busy", steps=1))
    threads = [
        threading.Thread(target=lambda: [store.append_logs("r-busy", _log("x")) for _ in range(20)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e.sequence for e in store.read_logs("r-busy")] == list(range(1, 81))
    assert len(store._locks) == 0
