"""``taskrunner db status`` tells runs whose writer stopped between reserving and inserting log sequences
(unwritten gaps) from runs whose stored events were removed (lost), over a bounded scan (mongomock-ng
injected through the store factory)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import mongomock_ng
import pymongo
import pytest
from support.mongomock_hello import answer_hello_as_standalone
from taskrunner.cli.db import app
from taskrunner.store import factory, mongo_store
from taskrunner.store.errors import StoreUnavailable
from taskrunner.store.log_audit import audit_logs
from taskrunner.store.migrations import migrate
from taskrunner.store.mongo_names import CODEC_OPTIONS, CollectionNames
from taskrunner.store.mongo_store import MongoRunStore
from taskrunner.store.records import NewLogEvent
from test_store_contract import make_run
from typer.testing import CliRunner

NAMES = CollectionNames()


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MongoRunStore:
    answer_hello_as_standalone(monkeypatch)
    client: Any = mongomock_ng.MongoClient()
    monkeypatch.setattr(factory, "mongo_client_factory", lambda uri, pool: client)
    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING", "mongodb://mongo.invalid:27017/audit")
    for name in ("TASKRUNNER_CONFIG_FILE", "TASKRUNNER_STORAGE__MONGO__DATABASE", "TASKRUNNER_STORAGE__MODE"):
        monkeypatch.delenv(name, raising=False)
    db = client.get_database("audit", codec_options=CODEC_OPTIONS)
    migrate(db, NAMES, validators=False)
    return MongoRunStore(db, NAMES)


def _run(store: MongoRunStore, run_id: str, *messages: str) -> None:
    store.create_run(make_run(run_id, steps=1))
    store.append_logs(run_id, [NewLogEvent(eventType="run.note", message=m) for m in messages])


def _crash_append(store: MongoRunStore, monkeypatch: pytest.MonkeyPatch, run_id: str, count: int) -> None:
    """A writer reserves ``count`` sequences a minute ago, then loses its connection before inserting."""
    with monkeypatch.context() as patched:
        patched.setattr(mongo_store, "utc_now", lambda: datetime.now(UTC) - timedelta(minutes=1))
        patched.setattr(store._logs, "insert_many", _dropped_connection)
        with pytest.raises(StoreUnavailable):
            store.append_logs(run_id, [NewLogEvent(eventType="run.note", message="crash")] * count)


def _dropped_connection(*args: Any, **kwargs: Any) -> Any:
    raise pymongo.errors.AutoReconnect("connection closed by the server")


@pytest.fixture
def damaged(store: MongoRunStore, monkeypatch: pytest.MonkeyPatch) -> MongoRunStore:
    _run(store, "r-intact", "a", "b")
    _run(store, "r-crashed", "a")
    _crash_append(store, monkeypatch, "r-crashed", 2)
    _run(store, "r-lost", "a", "b", "c")
    store._logs.delete_one({"runId": "r-lost", "sequence": 2})
    _run(store, "r-both", "a", "b")
    _crash_append(store, monkeypatch, "r-both", 1)
    store.append_logs("r-both", [NewLogEvent(eventType="run.note", message="later")])
    store._logs.delete_one({"runId": "r-both", "sequence": 1})
    _run(store, "r-writing", "a")
    store._runs.update_one(  # a writer reserved 2..3 just now and is inserting them
        {"_id": "r-writing"},
        {"$set": {"logSequence": 3, "pendingLogs": [{"first": 2, "last": 3, "at": datetime.now(UTC)}]}},
    )
    return store


def test_audit_counts_runs_by_cause(damaged: MongoRunStore) -> None:
    audit = audit_logs(damaged._runs.database, NAMES)
    assert (audit.scanned, audit.truncated) == (5, False)
    assert (audit.unwritten_runs, audit.lost_runs) == (2, 2)
    found = {(r.run_id, r.unwritten, r.lost) for r in audit.examples}
    assert found == {("r-crashed", 2, 0), ("r-lost", 0, 1), ("r-both", 1, 1)}


def test_audit_is_bounded(damaged: MongoRunStore) -> None:
    audit = audit_logs(damaged._runs.database, NAMES, scan_limit=2, examples=1)
    assert (audit.scanned, audit.truncated) == (2, True)
    assert len(audit.examples) <= 1


def test_db_status_reports_gaps_and_losses(damaged: MongoRunStore) -> None:
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert (
        "logs (pack_runs/pack_run_logs, 5 run(s)): 2 with unwritten gaps, 2 with lost events" in result.output
    )
    assert "  r-crashed: 2 unwritten, 0 lost" in result.output
    assert "  r-both: 1 unwritten, 1 lost" in result.output
    assert "r-writing" not in result.output
    assert "r-intact" not in result.output


def test_db_status_of_clean_logs(store: MongoRunStore) -> None:
    _run(store, "r1", "a")
    result = CliRunner().invoke(app, ["status"])
    assert (
        "logs (pack_runs/pack_run_logs, 1 run(s)): 0 with unwritten gaps, 0 with lost events" in result.output
    )
