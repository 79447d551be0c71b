"""One contract for every run store: the file store, MongoDB via mongomock-ng (client injected through
the store factory), the MongoDB wire server (mongoeco, reached with pymongo) and, when
``TASKRUNNER_TEST_MONGODB_URI`` is set, a real MongoDB server."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mongomock_ng
import pymongo
import pytest
from conftest import MONGO_WIRE
from pydantic import ValidationError
from support.mongomock_hello import REPLICA_SET_HELLO, STANDALONE_HELLO, answer_hello
from taskrunner.config import Settings
from taskrunner.errors import Conflict, NotFound, ValidationFailed
from taskrunner.store import factory, log_gaps
from taskrunner.store.errors import StaleUpdate, StoreUnavailable
from taskrunner.store.file_store import FileRunStore
from taskrunner.store.log_gaps import GAP_EVENT_TYPE
from taskrunner.store.migrations import BASELINE, migrate
from taskrunner.store.mongo_store import MongoRunStore, supports_transactions
from taskrunner.store.port import RunStore
from taskrunner.store.records import (
    ArtifactRecord,
    Attempt,
    Decision,
    ErrorInfo,
    GateRecord,
    LogEvent,
    NewLogEvent,
    RunRecord,
    StepRecord,
    idempotent_run_id,
)

REAL_MONGO_URI = os.environ.get("TASKRUNNER_TEST_MONGODB_URI")
T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def make_run(run_id: str, tenant: str = "acme", steps: int = 3, key: str | None = None) -> RunRecord:
    return RunRecord(
        runId=run_id,
        tenantId=tenant,
        planHash="sha256:" + "ab" * 32,
        packName="hello",
        packVersion="1.0.0",
        idempotencyKey=key,
        requestedAt=T0,
        failurePolicy={"retries": {"maxAttempts": 2}},
        plan={"apiVersion": "stellaops.io/plan.v1", "steps": [{"id": f"s{i}"} for i in range(steps)]},
        steps=[StepRecord(stepId=f"s{i}", kind="run") for i in range(steps)],
    )


def make_gate(run_id: str, gate_id: str = "review", handle: str = "token-1", **extra: Any) -> GateRecord:
    return GateRecord(
        runId=run_id,
        tenantId="acme",
        gateId=gate_id,
        approvalId="security-review",
        requiredCount=2,
        grants=["packs.approve"],
        planHash="sha256:" + "ab" * 32,
        openedAt=T0,
        taskToken=handle,
        **extra,
    )


def decision(approver: str, verdict: str = "approve") -> Decision:
    return Decision.model_validate(
        {
            "approver": approver,
            "decision": verdict,
            "decidedAt": T0,
            "envelope": {
                "payloadType": "application/vnd.stellaops.pack-run+json",
                "payload": "e30=",
                "signatures": [],
            },
        }
    )


def _mongo_settings(uri: str, database: str) -> Settings:
    return Settings.model_validate(
        {"storage": {"mode": "mongo", "mongo": {"connection_string": uri, "database": database}}}
    )


_MOCK_LOCK = threading.RLock()


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _MOCK_LOCK:
            return method(*args, **kwargs)

    return locked


def _make_mongomock_atomic(monkeypatch: pytest.MonkeyPatch) -> None:
    """mongomock-ng lacks the server's per-operation atomicity (find_one_and_update re-reads the
    document after updating it), so its operations are serialised here, as a server would."""
    from mongomock_ng.collection import Collection, Cursor

    for name in ("_find_and_modify", "insert_one", "insert_many", "update_one", "replace_one", "find_one"):
        monkeypatch.setattr(Collection, name, _serialised(getattr(Collection, name)))
    monkeypatch.setattr(Cursor, "_compute_results", _serialised(Cursor._compute_results))


# Log appends per thread in the concurrency test: the wire server checks a unique index by scanning it.
APPENDS_PER_WORKER = {"wire": 40}


@pytest.fixture(params=["file", "mongomock", pytest.param("wire", marks=MONGO_WIRE), "mongodb"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunStore]:
    kind = request.param
    if kind == "file":
        yield factory.open_store(Settings(home=tmp_path))
        return
    if kind in ("mongomock", "mongomock-replica-set"):
        _make_mongomock_atomic(monkeypatch)
        answer_hello(monkeypatch, REPLICA_SET_HELLO if kind == "mongomock-replica-set" else STANDALONE_HELLO)
        client: Any = mongomock_ng.MongoClient()
        monkeypatch.setattr(factory, "mongo_client_factory", lambda uri, pool: client)
        settings = _mongo_settings("mongodb://mock.invalid:27017/contract", "contract")
        mongo = settings.storage.mongo
        db = factory.open_mongo_database(mongo)
        # mongomock-ng cannot evaluate $jsonSchema validators (the migration test checks them), and it
        # enforces unique indexes by scanning the collection on every insert, which makes 4,000 log
        # inserts quadratic: the log index is left out here; the contract checks sequences directly.
        migrate(db, factory.collection_names(mongo), validators=False)
        db.get_collection(mongo.logs_collection).drop_index("runId_1_sequence_1")
        yield factory.open_store(settings)
        return
    if kind == "wire":
        db = request.getfixturevalue("mongo_wire_database")
        settings = _mongo_settings(os.environ["TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING"], db.name)
        names = factory.collection_names(settings.storage.mongo)
        # The server evaluates every baseline validator except the logs' (it rejects an object-valued
        # additionalProperties): those collections are created with theirs, then the migration adds the rest.
        for spec in BASELINE.collections:
            if spec.role != "logs":
                db.create_collection(
                    names.of(spec.role),
                    validator=spec.validator,
                    validationLevel="strict",
                    validationAction="error",
                )
        migrate(db, names, validators=False)
        yield factory.open_store(settings)
        return
    if not REAL_MONGO_URI:
        pytest.skip("set TASKRUNNER_TEST_MONGODB_URI to run the contract against a real MongoDB")
    database = f"taskrunner_contract_{uuid.uuid4().hex[:12]}"
    real: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        REAL_MONGO_URI, serverSelectionTimeoutMS=5000
    )
    monkeypatch.setattr(factory, "mongo_client_factory", lambda uri, pool: real)
    settings = _mongo_settings(REAL_MONGO_URI, database)
    migrate(
        factory.open_mongo_database(settings.storage.mongo), factory.collection_names(settings.storage.mongo)
    )
    try:
        yield factory.open_store(settings)
    finally:
        real.drop_database(database)
        real.close()


def test_factory_selects_the_adapter(store: RunStore) -> None:
    assert isinstance(store, RunStore)
    assert isinstance(store, FileRunStore | MongoRunStore)


# -- runs ---------------------------------------------------------------------------------------------


def test_create_and_get_round_trip(store: RunStore) -> None:
    run, created = store.create_run(make_run("r1"))
    assert created
    assert run.version == 1
    assert run.createdAt == run.updatedAt
    assert run.createdAt >= T0
    stored = store.get_run("r1", "acme")
    assert stored == run
    assert store.get_run("r1", None) == run
    assert [s.stepId for s in stored.steps] == ["s0", "s1", "s2"]
    assert stored.plan == make_run("r1").plan


def test_unknown_run_and_other_tenant_are_not_found(store: RunStore) -> None:
    store.create_run(make_run("r1", tenant="acme"))
    with pytest.raises(NotFound):
        store.get_run("r1", "globex")
    with pytest.raises(NotFound):
        store.get_run("missing", "acme")
    with pytest.raises(NotFound):
        store.get_run("../../etc", None)


def test_duplicate_run_id_is_a_conflict(store: RunStore) -> None:
    store.create_run(make_run("r1"))
    with pytest.raises(Conflict):
        store.create_run(make_run("r1"))
    with pytest.raises(Conflict):
        store.create_run(make_run("r1", tenant="globex"))


def test_idempotency_key_returns_the_existing_run(store: RunStore) -> None:
    first, created = store.create_run(make_run("r1", key="submit-42"))
    again, created_again = store.create_run(make_run("r2", key="submit-42"))
    assert created
    assert not created_again
    assert again == first
    with pytest.raises(NotFound):
        store.get_run("r2", None)
    other, other_created = store.create_run(make_run("r3", tenant="globex", key="submit-42"))
    assert other_created
    assert other.runId == "r3"


def test_idempotent_run_ids_collide_into_the_same_run(store: RunStore) -> None:
    run_id = idempotent_run_id("acme", "k-1")
    first, _ = store.create_run(make_run(run_id, key="k-1"))
    again, created = store.create_run(make_run(run_id, key="k-1"))
    assert not created
    assert again == first
    with pytest.raises(Conflict):
        store.create_run(make_run(run_id, key="k-2"))


def _all_pages(store: RunStore, tenant: str, limit: int) -> list[list[RunRecord]]:
    pages, cursor = [], None
    while True:
        page, cursor = store.list_runs(tenant, limit=limit, cursor=cursor)
        pages.append(page)
        if cursor is None:
            return pages
        assert len(pages) < 20, "paging does not terminate"


def test_list_runs_newest_first_with_cursor_paging(store: RunStore) -> None:
    for i in range(7):
        store.create_run(make_run(f"a{i}", tenant="acme"))
    for i in range(3):
        store.create_run(make_run(f"g{i}", tenant="globex"))
    time.sleep(0.002)  # timestamps have millisecond resolution
    store.update_run("a2", expected_status=None, changes={"status": "running"})

    pages = _all_pages(store, "acme", limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    listed = [r.runId for page in pages for r in page]
    expected = sorted(
        (store.get_run(f"a{i}", "acme") for i in range(7)), key=lambda r: (r.updatedAt, r.runId), reverse=True
    )
    assert listed == [r.runId for r in expected]
    assert listed[0] == "a2"  # the most recently updated comes first
    assert {r.runId for page in _all_pages(store, "globex", limit=50) for r in page} == {"g0", "g1", "g2"}
    assert store.list_runs("nobody", limit=5) == ([], None)


def test_list_runs_rejects_bad_cursor_and_limit(store: RunStore) -> None:
    with pytest.raises(ValidationFailed):
        store.list_runs("acme", limit=10, cursor="not-a-cursor")
    with pytest.raises(ValidationFailed):
        store.list_runs("acme", limit=0)


def test_list_active_runs_spans_tenants(store: RunStore) -> None:
    store.create_run(make_run("p1", tenant="acme"))
    store.create_run(make_run("p2", tenant="globex"))
    store.create_run(make_run("done", tenant="acme"))
    store.update_run("p2", expected_status=["pending"], changes={"status": "running"})
    store.update_run("done", expected_status=None, changes={"status": "succeeded", "outcome": "succeeded"})
    assert sorted(r.runId for r in store.list_active_runs()) == ["p1", "p2"]
    assert store.count_active_runs() == 2


def test_count_active_runs_of_a_tenant_and_pack(store: RunStore) -> None:
    for run_id, tenant, pack in [("a1", "acme", "hello"), ("a2", "acme", "other"), ("g1", "globex", "hello")]:
        store.create_run(make_run(run_id, tenant=tenant).model_copy(update={"packName": pack}))
    store.create_run(make_run("a3", tenant="acme"))
    store.update_run("a3", expected_status=None, changes={"status": "failed", "outcome": "failed"})
    assert store.count_active_runs("acme", "hello") == 1
    assert store.count_active_runs("acme") == 2
    assert store.count_active_runs(pack_name="hello") == 2
    assert store.count_active_runs("nobody", "hello") == 0
    store.update_run("a1", expected_status=None, changes={"status": "running"})
    assert store.count_active_runs("acme", "hello") == 1
    store.update_run("a1", expected_status=None, changes={"status": "succeeded", "outcome": "succeeded"})
    assert store.count_active_runs("acme", "hello") == 0


def test_update_run_compare_and_set(store: RunStore) -> None:
    store.create_run(make_run("r1"))
    running = store.update_run(
        "r1",
        expected_status=["pending"],
        changes={"status": "running", "startedAt": T0 + timedelta(seconds=1)},
    )
    assert running.status == "running"
    assert running.version == 2
    assert running.startedAt == T0 + timedelta(seconds=1)
    with pytest.raises(StaleUpdate) as stale:
        store.update_run("r1", expected_status=["pending"], changes={"status": "cancelled"})
    assert isinstance(stale.value, Conflict)
    assert "running" in stale.value.message
    failed = store.update_run(
        "r1",
        expected_status=["running"],
        changes={"status": "failed", "error": {"code": "X", "message": "boom"}},
    )
    assert failed.error == ErrorInfo(code="X", message="boom")
    cleared = store.update_run("r1", expected_status=None, changes={"error": None})
    assert cleared.error is None
    assert cleared.version == 4
    assert store.get_run("r1", "acme") == cleared


def test_update_run_rejects_invalid_changes(store: RunStore) -> None:
    store.create_run(make_run("r1"))
    with pytest.raises(ValidationFailed):
        store.update_run("r1", expected_status=None, changes={"tenantId": "globex"})
    with pytest.raises(ValidationFailed):
        store.update_run("r1", expected_status=None, changes={"status": "exploded"})
    with pytest.raises(NotFound):
        store.update_run("missing", expected_status=None, changes={"status": "running"})
    assert store.get_run("r1", "acme").version == 1


def test_concurrent_cas_has_exactly_one_winner(store: RunStore) -> None:
    store.create_run(make_run("r1"))
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def contend(worker: int) -> None:
        barrier.wait()
        try:
            store.update_step(
                "r1",
                "s0",
                expected_status=["pending"],
                changes={"status": "running", "outputs": {"w": worker}},
            )
            outcomes.append("won")
        except StaleUpdate:
            outcomes.append("stale")

    _run_threads(8, contend)
    assert sorted(outcomes) == ["stale"] * 7 + ["won"]
    assert store.get_run("r1", None).step("s0").status == "running"


def _run_threads(count: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(worker: int) -> None:
        try:
            target(worker)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


# -- steps --------------------------------------------------------------------------------------------


def test_update_step_records_attempts(store: RunStore) -> None:
    store.create_run(make_run("r1"))
    first = Attempt(number=1, startedAt=T0, status="running")
    step = store.update_step(
        "r1", "s1", expected_status=["pending"], changes={"status": "running"}, attempt=first
    )
    assert step.status == "running"
    assert step.attempts == [first]
    failed = first.model_copy(
        update={
            "status": "failed",
            "completedAt": T0,
            "error": ErrorInfo(code="StepFailed", message="exit 1"),
        }
    )
    failed = failed.model_copy(update={"nextAttemptAt": T0 + timedelta(seconds=5)})
    store.update_step("r1", "s1", expected_status=["running"], changes={}, attempt=failed)
    second = Attempt(number=2, startedAt=T0 + timedelta(seconds=5), status="succeeded", completedAt=T0)
    done = store.update_step(
        "r1",
        "s1",
        expected_status=["running"],
        changes={"status": "succeeded", "outputs": {"answer": 42}, "completedAt": T0},
        attempt=second,
    )
    assert [a.number for a in done.attempts] == [1, 2]
    assert done.attempts[0] == failed
    run = store.get_run("r1", "acme")
    assert run.step("s1") == done
    assert run.step("s0").status == "pending"
    assert run.version == 4


def test_run_reads_follow_interleaved_step_and_run_updates(store: RunStore) -> None:
    created, _ = store.create_run(make_run("mix", steps=5))
    seen = created
    for i in range(5):
        store.update_step("mix", f"s{i}", expected_status=["pending"], changes={"status": "running"})
        if i == 2:
            store.update_run("mix", expected_status=["pending"], changes={"status": "running"})
        run = store.get_run("mix", "acme")
        assert run.step(f"s{i}").status == "running"
        assert run.version > seen.version
        assert run.updatedAt >= seen.updatedAt
        seen = run
    assert seen.version == created.version + 6
    assert seen.status == "running"
    assert [s.status for s in seen.steps] == ["running"] * 5
    assert seen.plan == created.plan
    with pytest.raises(StaleUpdate):
        store.update_step("mix", "s0", expected_status=["pending"], changes={"status": "running"})
    finished = store.update_step("mix", "s0", expected_status=["running"], changes={"status": "succeeded"})
    assert store.get_run("mix", "acme").step("s0") == finished


def test_update_step_compare_and_set_and_unknowns(store: RunStore) -> None:
    store.create_run(make_run("r1"))
    store.update_step("r1", "s0", expected_status=["pending"], changes={"status": "skipped"})
    with pytest.raises(StaleUpdate):
        store.update_step("r1", "s0", expected_status=["pending"], changes={"status": "running"})
    with pytest.raises(NotFound):
        store.update_step("r1", "nope", expected_status=None, changes={"status": "running"})
    with pytest.raises(NotFound):
        store.update_step("missing", "s0", expected_status=None, changes={"status": "running"})
    with pytest.raises(ValidationFailed):
        store.update_step("r1", "s1", expected_status=None, changes={"kind": "map"})


def test_concurrent_updates_of_different_steps_are_all_kept(store: RunStore) -> None:
    store.create_run(make_run("r1", steps=8))

    def work(worker: int) -> None:
        for n in range(1, 11):
            store.update_step(
                "r1",
                f"s{worker}",
                expected_status=None,
                changes={"status": "running"},
                attempt=Attempt(number=n, startedAt=T0, status="failed"),
            )

    _run_threads(8, work)
    run = store.get_run("r1", None)
    assert all([a.number for a in s.attempts] == list(range(1, 11)) for s in run.steps)
    assert run.version == 1 + 8 * 10


# -- logs ---------------------------------------------------------------------------------------------


def test_concurrent_appends_get_gapless_sequences(store: RunStore, request: pytest.FixtureRequest) -> None:
    store.create_run(make_run("r1"))
    per_worker = APPENDS_PER_WORKER.get(request.node.callspec.params["store"], 500)

    def append(worker: int) -> None:
        for i in range(per_worker):
            store.append_logs(
                "r1",
                [NewLogEvent(eventType="step.started", message=f"{worker}:{i}", metadata={"w": str(worker)})],
            )

    _run_threads(8, append)
    events = store.read_logs("r1")
    assert [e.sequence for e in events] == list(range(1, 8 * per_worker + 1))
    for worker in range(8):
        mine = [e.message for e in events if e.metadata["w"] == str(worker)]
        assert mine == [f"{worker}:{i}" for i in range(per_worker)]


def test_batch_append_and_read_after(store: RunStore) -> None:
    store.create_run(make_run("r1"))
    store.create_run(make_run("r2"))
    batch = [
        NewLogEvent(timestamp=T0, level="debug", eventType="run.created", message="created"),
        NewLogEvent(
            timestamp=T0, eventType="step.started", message="s0", stepId="s0", metadata={"attempt": "1"}
        ),
        NewLogEvent(timestamp=T0, level="error", eventType="step.failed", message="s0 failed", stepId="s0"),
    ]
    stored = store.append_logs("r1", batch)
    assert [e.sequence for e in stored] == [1, 2, 3]
    assert store.append_logs("r2", batch[:1])[0].sequence == 1
    more = store.append_logs("r1", [NewLogEvent(eventType="run.completed", message="done")] * 300)
    assert (more[0].sequence, more[-1].sequence) == (4, 303)

    assert store.read_logs("r1", after_sequence=0, limit=3) == stored
    tail = store.read_logs("r1", after_sequence=299)
    assert [e.sequence for e in tail] == [300, 301, 302, 303]
    window = store.read_logs("r1", after_sequence=255, limit=3)
    assert [e.sequence for e in window] == [256, 257, 258]
    assert store.read_logs("r1", after_sequence=303) == []
    assert stored[1].stepId == "s0"
    assert stored[1].metadata == {"attempt": "1"}
    assert stored[1].runId == "r1"
    assert store.append_logs("r1", []) == []


def test_logs_of_unknown_run(store: RunStore) -> None:
    with pytest.raises(NotFound):
        store.append_logs("missing", [NewLogEvent(eventType="x", message="y")])
    with pytest.raises(NotFound):
        store.read_logs("missing")


def _remove_log_event(store: RunStore, run_id: str, sequence: int) -> None:
    """Delete one stored event behind the store's back (an operator, a restore, the log TTL)."""
    if isinstance(store, FileRunStore):
        path = store.root / "runs" / run_id / "logs.ndjson"
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(line for line in lines if json.loads(line)["sequence"] != sequence))
        return
    assert isinstance(store, MongoRunStore)
    assert store._logs.delete_one({"runId": run_id, "sequence": sequence}).deleted_count == 1


def _gaps(events: list[LogEvent]) -> list[tuple[int, int, str]]:
    return [
        (int(e.metadata["firstSequence"]), int(e.metadata["lastSequence"]), e.metadata["cause"])
        for e in events
        if e.eventType == GAP_EVENT_TYPE
    ]


def _notes(*messages: str) -> list[NewLogEvent]:
    return [NewLogEvent(eventType="run.note", message=m) for m in messages]


def test_a_removed_event_is_reported_as_a_lost_gap(store: RunStore) -> None:
    store.create_run(make_run("r1"))
    store.append_logs("r1", _notes(*"abcdefg"))
    _remove_log_event(store, "r1", 1)
    _remove_log_event(store, "r1", 4)
    _remove_log_event(store, "r1", 5)

    events = store.read_logs("r1")
    assert [e.sequence for e in events] == [1, 2, 3, 5, 6, 7]
    assert _gaps(events) == [(1, 1, "lost"), (4, 5, "lost")]
    gap = events[3]
    assert (gap.level, gap.runId, gap.message) == ("warn", "r1", "log sequences 4-5 are missing: " + LOST)
    assert [e.message for e in events if e.eventType != GAP_EVENT_TYPE] == list("bcfg")
    # paging moves past a gap like past any event, and a page holds at most `limit` items
    assert [e.sequence for e in store.read_logs("r1", after_sequence=2, limit=2)] == [3, 5]
    assert [e.message for e in store.read_logs("r1", after_sequence=5)] == ["f", "g"]
    assert _gaps(store.read_logs("r1", after_sequence=3, limit=1)) == [(4, 5, "lost")]
    assert store.append_logs("r1", _notes("h"))[0].sequence == 8


LOST = "they were written, then deleted or expired"
# mongomock-ng transactions: one writer
ONE_WRITER_MONGO = ["mongomock", "mongomock-replica-set", pytest.param("wire", marks=MONGO_WIRE), "mongodb"]


@pytest.mark.parametrize("store", ONE_WRITER_MONGO, indirect=True)
def test_a_lost_tail_is_reported_against_the_reserved_counter(store: RunStore) -> None:
    store.create_run(make_run("r1"))
    store.append_logs("r1", _notes("a", "b", "c"))
    _remove_log_event(store, "r1", 3)
    events = store.read_logs("r1")
    assert [e.message for e in events[:2]] == ["a", "b"]
    assert _gaps(events) == [(3, 3, "lost")]
    assert store.read_logs("r1", after_sequence=3) == []


def _fail_batches(store: RunStore, monkeypatch: pytest.MonkeyPatch, marker: str = "crash") -> None:
    """The connection drops while a batch whose first message is ``marker`` is being inserted."""
    assert isinstance(store, MongoRunStore)
    insert_many = store._logs.insert_many

    def dropping(documents: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        if documents[0]["message"] == marker:
            raise pymongo.errors.AutoReconnect("connection closed by the server")
        return insert_many(documents, *args, **kwargs)

    monkeypatch.setattr(store._logs, "insert_many", dropping)


def _transactional(store: RunStore) -> bool:
    assert isinstance(store, MongoRunStore)
    return supports_transactions(store._runs.database.client)


@pytest.mark.parametrize("store", ONE_WRITER_MONGO, indirect=True)
def test_a_writer_stopping_between_reserve_and_insert_leaves_a_reported_gap(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create_run(make_run("r1"))
    store.append_logs("r1", _notes("a", "b"))
    _fail_batches(store, monkeypatch)
    with pytest.raises(StoreUnavailable):
        store.append_logs("r1", _notes("crash", "lost too"))
    after = store.append_logs("r1", _notes("c"))
    if _transactional(store):  # the reservation rolled back with the insert: no gap at all
        assert after[0].sequence == 3
        assert [e.message for e in store.read_logs("r1")] == ["a", "b", "c"]
        return
    assert after[0].sequence == 5
    # the marker is fresh: the writer might still be inserting, so readers stop just before it
    assert [e.message for e in store.read_logs("r1")] == ["a", "b"]
    assert store.read_logs("r1", after_sequence=2) == []
    assert not store.read_logs("r1", after_sequence=2, limit=1)

    monkeypatch.setattr(log_gaps, "PENDING_GRACE", timedelta(0))  # the writer is long gone
    events = store.read_logs("r1")
    assert [e.sequence for e in events] == [1, 2, 4, 5]
    assert _gaps(events) == [(3, 4, "unwritten")]
    assert events[2].message == "log sequences 3-4 were reserved but never written " + (
        "(the writer stopped before storing them)"
    )
    assert [e.message for e in store.read_logs("r1", after_sequence=4)] == ["c"]

    _remove_log_event(store, "r1", 2)  # a loss next to the gap keeps its own cause
    assert _gaps(store.read_logs("r1")) == [(2, 2, "lost"), (3, 4, "unwritten")]


@pytest.mark.parametrize("store", ["mongomock", "mongodb"], indirect=True)
def test_a_stored_batch_whose_marker_was_not_cleared_is_no_gap(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(store, MongoRunStore)
    store.create_run(make_run("r1"))
    update_one = store._runs.update_one

    def dropping_pulls(query: Any, update: Any, *args: Any, **kwargs: Any) -> Any:
        if "$pull" in update:
            raise pymongo.errors.AutoReconnect("connection closed by the server")
        return update_one(query, update, *args, **kwargs)

    monkeypatch.setattr(store._runs, "update_one", dropping_pulls)
    monkeypatch.setattr(log_gaps, "PENDING_GRACE", timedelta(0))
    assert [e.sequence for e in store.append_logs("r1", _notes("a", "b"))] == [1, 2]
    assert store.append_logs("r1", _notes("c"))[0].sequence == 3
    assert [e.message for e in store.read_logs("r1")] == ["a", "b", "c"]


@pytest.mark.parametrize("store", ONE_WRITER_MONGO, indirect=True)
def test_a_failed_last_batch_is_a_trailing_gap(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.create_run(make_run("r1"))
    store.append_logs("r1", _notes("a"))
    _fail_batches(store, monkeypatch)
    monkeypatch.setattr(log_gaps, "PENDING_GRACE", timedelta(0))
    with pytest.raises(StoreUnavailable):
        store.append_logs("r1", _notes("crash"))
    expected = [] if _transactional(store) else [(2, 2, "unwritten")]
    assert _gaps(store.read_logs("r1")) == expected


@pytest.mark.parametrize("store", ONE_WRITER_MONGO, indirect=True)
def test_once_the_run_is_sealed_a_fresh_reservation_is_a_gap(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create_run(make_run("r1"))
    _fail_batches(store, monkeypatch)
    with pytest.raises(StoreUnavailable):
        store.append_logs("r1", _notes("crash"))
    store.append_logs("r1", _notes("done"))
    transactional = _transactional(store)
    assert [e.message for e in store.read_logs("r1")] == (["done"] if transactional else [])  # in flight?
    store.update_run(
        "r1",
        expected_status=None,
        changes={"status": "succeeded", "completedAt": T0, "evidence": {"sha256": "ab" * 32}},
    )
    events = store.read_logs("r1")
    assert [e.message for e in events if e.eventType != GAP_EVENT_TYPE] == ["done"]
    assert _gaps(events) == ([] if transactional else [(1, 1, "unwritten")])


@pytest.mark.parametrize("store", ["mongomock", "mongodb"], indirect=True)
def test_concurrent_appenders_around_a_failed_batch_keep_every_other_sequence(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create_run(make_run("r1"))
    _fail_batches(store, monkeypatch)

    def append(worker: int) -> None:
        for i in range(100):
            batch = _notes("crash", "x", "y") if (worker, i) == (0, 50) else _notes(f"{worker}:{i}")
            try:
                store.append_logs("r1", batch)
            except StoreUnavailable:
                assert batch[0].message == "crash"

    _run_threads(4, append)
    monkeypatch.setattr(log_gaps, "PENDING_GRACE", timedelta(0))
    events = store.read_logs("r1")
    written = [e for e in events if e.eventType != GAP_EVENT_TYPE]
    assert len(written) == 399
    for worker in range(4):
        mine = [e.message for e in written if e.message.startswith(f"{worker}:")]
        assert mine == [f"{worker}:{i}" for i in range(100) if (worker, i) != (0, 50)]
    gaps = _gaps(events)
    if _transactional(store):
        assert gaps == []
        assert [e.sequence for e in events] == list(range(1, 400))
        return
    [(first, last, cause)] = gaps
    assert (last - first, cause) == (2, "unwritten")
    covered = sorted([e.sequence for e in written] + list(range(first, last + 1)))
    assert covered == list(range(1, 403))


def test_log_metadata_must_be_strings() -> None:
    with pytest.raises(ValidationError):
        NewLogEvent(eventType="x", message="y", metadata={"n": 1})  # type: ignore[dict-item]


# -- artifacts ----------------------------------------------------------------------------------------


def test_artifacts_are_unique_per_run_and_name(store: RunStore) -> None:
    store.create_run(make_run("r1"))
    store.create_run(make_run("r2"))
    pending = ArtifactRecord(runId="r1", name="report", type="file", status="pending", capturedAt=T0)
    store.put_artifact(pending)
    copied = pending.model_copy(
        update={"status": "copied", "storedPath": "s3://b/runs/r1/report", "sha256": "ab" * 32, "size": 12}
    )
    store.put_artifact(copied)
    store.put_artifact(
        ArtifactRecord(runId="r1", name="a-first", type="object", status="skipped", capturedAt=T0)
    )
    store.put_artifact(
        ArtifactRecord(runId="r2", name="report", type="file", status="pending", capturedAt=T0)
    )
    assert store.list_artifacts("r1") == [
        ArtifactRecord(runId="r1", name="a-first", type="object", status="skipped", capturedAt=T0),
        copied,
    ]
    assert [a.runId for a in store.list_artifacts("r2")] == ["r2"]
    with pytest.raises(NotFound):
        store.put_artifact(pending.model_copy(update={"runId": "missing"}))
    with pytest.raises(NotFound):
        store.list_artifacts("missing")


# -- gates --------------------------------------------------------------------------------------------


def test_gate_lifecycle_with_decisions(store: RunStore) -> None:
    store.create_run(make_run("r1"))
    gate = store.open_gate(make_gate("r1", expiresAt=T0 + timedelta(hours=4)))
    assert gate.status == "waiting"
    assert gate.taskToken == "token-1"
    assert "taskToken" not in gate.public()
    assert gate.public()["gateId"] == "review"

    after_one = store.add_decision("r1", "review", decision("alice"))
    assert [d.approver for d in after_one.decisions] == ["alice"]
    assert store.add_decision("r1", "review", decision("alice")) == after_one  # identical repeat
    with pytest.raises(Conflict):
        store.add_decision("r1", "review", decision("alice", "reject"))

    # resumed execution re-opens the gate with a new token: decisions survive
    reopened = store.open_gate(make_gate("r1", handle="token-2"))
    assert reopened.taskToken == "token-2"
    assert reopened.decisions == after_one.decisions

    after_two = store.add_decision("r1", "review", decision("bob"))
    assert [d.approver for d in after_two.decisions] == ["alice", "bob"]
    approved = store.update_gate(
        "r1", "review", expected_status=["waiting"], changes={"status": "approved", "closedAt": T0}
    )
    assert approved.status == "approved"
    assert approved.closedAt == T0
    with pytest.raises(StaleUpdate):
        store.update_gate("r1", "review", expected_status=["waiting"], changes={"status": "expired"})
    with pytest.raises(StaleUpdate):
        store.add_decision("r1", "review", decision("carol"))
    assert store.add_decision("r1", "review", decision("bob")) == approved  # late retry stays idempotent

    final = store.open_gate(make_gate("r1", handle="token-3"))  # a closed gate is not reopened
    assert final == approved
    assert final.taskToken == "token-2"
    assert store.get_gate("r1", "review") == approved


def test_gates_listing_and_unknowns(store: RunStore) -> None:
    store.create_run(make_run("r1"))
    later = make_gate("r1", gate_id="scan-all[1]::review").model_copy(
        update={"openedAt": T0 + timedelta(minutes=1)}
    )
    store.open_gate(later)
    store.open_gate(make_gate("r1", gate_id="first"))
    assert [g.gateId for g in store.list_gates("r1")] == ["first", "scan-all[1]::review"]
    with pytest.raises(NotFound):
        store.get_gate("r1", "nope")
    with pytest.raises(NotFound):
        store.add_decision("r1", "nope", decision("alice"))
    with pytest.raises(NotFound):
        store.open_gate(make_gate("missing"))
    with pytest.raises(NotFound):
        store.list_gates("missing")
    with pytest.raises(ValidationFailed):
        store.update_gate("r1", "first", expected_status=None, changes={"runId": "r2"})


def test_module_level_queries_and_projections_are_never_mutated(store: RunStore) -> None:
    """A client may add to the projection it is given (mongomock-ng adds ``_id``): each call gets its own."""
    from taskrunner.store import mongo_store

    def shared() -> dict[str, Any]:
        return {
            name: repr(value)
            for name, value in vars(mongo_store).items()
            if name.isupper() or (name.startswith("_") and name[1:].isupper())
        }

    before = shared()
    store.create_run(make_run("r1", key="k"))
    store.create_run(make_run("r2", key="k"))
    store.get_run("r1", "acme")
    store.list_runs("acme", limit=5, cursor=None)
    store.list_active_runs()
    store.update_run("r1", expected_status=None, changes={"status": "running"})
    assert shared() == before
