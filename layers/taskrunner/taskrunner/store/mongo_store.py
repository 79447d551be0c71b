"""MongoDB store (pymongo) on the collections of the baseline migration.

Documents: ``pack_runs`` keeps a run under ``_id = runId`` plus ``logSequence``, the highest reserved log
sequence; ``pack_run_logs``, ``pack_artifacts`` and ``pack_run_approvals`` keep one document per event,
artifact and gate with generated ids. Absent optional fields are omitted. Step updates are compare-and-set
on the run's ``version``; unique-index violations and connection failures surface as domain errors.

Log sequences: a batch reserves its sequences with an atomic update of ``logSequence`` and then inserts
its events. Where the server runs transactions (a replica set or ``mongos``, asked once per client with
``hello``) both writes commit together, so no reservation is ever left unwritten. On a standalone server
the reserving update also appends ``{first, last, at}`` to the run's ``pendingLogs`` (one atomic pipeline
update, so concurrent writers each get their own range and marker) and the writer pulls the marker after
its insert (a marker whose pull was lost covers no missing sequence: harmless). A reader first snapshots
``logSequence`` and ``pendingLogs``, then reads the events up to that counter: a missing sequence under a
marker younger than :data:`~taskrunner.store.log_gaps.PENDING_GRACE` is still being written (the reader
stops before it); under an older marker, or any marker once the run is sealed (its log is final then),
the writer stopped (``unwritten``); without a marker it was written and later removed (``lost``, e.g. by
the log TTL). See :mod:`taskrunner.store.log_gaps`.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal, ParamSpec, TypeVar

from bson.int64 import Int64
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.collection import Collection as MongoCollection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, OperationFailure

from taskrunner.errors import Conflict, NotFound, TaskRunnerError, ValidationFailed
from taskrunner.store.errors import StaleUpdate, StoreUnavailable, ensure_status
from taskrunner.store.log_gaps import Gap, Reservation, find_gaps, with_gaps
from taskrunner.store.mongo_names import CODEC_OPTIONS, CollectionNames
from taskrunner.store.paging import check_limit, decode_cursor, encode_cursor
from taskrunner.store.records import (
    ACTIVE_RUN_STATUSES,
    GATE_CHANGES,
    RUN_CHANGES,
    TERMINAL_RUN_STATUSES,
    ArtifactRecord,
    Attempt,
    Decision,
    GateRecord,
    LogEvent,
    NewLogEvent,
    RunRecord,
    StepRecord,
    changed_step,
    decided_gate,
    reopened_gate,
)
from taskrunner.timeutil import utc_now

Document = dict[str, Any]
ImportOutcome = Literal["inserted", "updated", "unchanged"]
P = ParamSpec("P")
R = TypeVar("R")


def _no_counter() -> Document:
    """The run projection without the log bookkeeping: a fresh dict per call (clients may add ``_id``)."""
    return {"logSequence": 0, "pendingLogs": 0}


# by client identity: clients compare equal by address, and two clients of one address may differ (a test's
# stand-in answering as a replica set, then one answering as a standalone server)
_TRANSACTIONS: dict[int, tuple[weakref.ref[MongoClient[Document]], bool]] = {}
_TRANSACTIONS_GUARD = threading.RLock()  # a collected client's callback may run while it is held


def supports_transactions(client: MongoClient[Document]) -> bool:
    """Whether the server runs multi-document transactions (replica set or mongos), asked once per client."""
    key = id(client)
    with _TRANSACTIONS_GUARD:
        entry = _TRANSACTIONS.get(key)
    if entry is not None and entry[0]() is client:
        return entry[1]
    hello = client.admin.command("hello")
    known = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
    with _TRANSACTIONS_GUARD:
        _TRANSACTIONS[key] = (weakref.ref(client, lambda _ref: _forget(key)), known)
    return known


def _forget(key: int) -> None:
    with _TRANSACTIONS_GUARD:
        entry = _TRANSACTIONS.get(key)
        if entry is not None and entry[0]() is None:
            del _TRANSACTIONS[key]


_CAS_RETRIES = 100
_PLAN_CACHE_SIZE = 16  # plans kept per process, by planHash


def _duplicate(error: Mapping[str, Any]) -> Conflict:
    key = error.get("keyValue") or error.get("errmsg") or "a unique index"
    return Conflict(
        f"a record with the same key already exists ({key})",
        remediation="the record was stored before; read it instead of creating it again",
    )


def _translated(method: Callable[P, R]) -> Callable[P, R]:
    """Turn pymongo failures into domain errors (no driver tracebacks reach users)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except DuplicateKeyError as exc:
            raise _duplicate(exc.details or {}) from None
        except BulkWriteError as exc:
            errors = (exc.details or {}).get("writeErrors") or [{}]
            if all(e.get("code") == 11000 for e in errors):
                raise _duplicate(errors[0]) from None
            raise TaskRunnerError(
                f"MongoDB rejected a batch write: {errors[0].get('errmsg', exc)}",
                code="StoreError",
                remediation="see the MongoDB logs",
            ) from None
        except ConnectionFailure as exc:
            raise StoreUnavailable(
                f"MongoDB is unreachable: {exc}",
                remediation="check TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING and the network path to it",
            ) from None
        except OperationFailure as exc:
            if exc.code == 121:
                raise ValidationFailed(
                    "a document failed the collection's schema validation",
                    remediation="run `taskrunner db migrate` with this version of TaskRunner",
                ) from None
            raise TaskRunnerError(
                f"MongoDB rejected the operation: {exc}",
                code="StoreError",
                remediation="see the MongoDB logs",
            ) from None

    return wrapper


def _not_found(run_id: str) -> NotFound:
    return NotFound(f"run {run_id} not found", remediation="check the run id")


def _run_doc(run: RunRecord) -> Document:
    data = run.model_dump(exclude_none=True)
    return {"_id": data.pop("runId"), **data}


def _run_of(doc: Mapping[str, Any]) -> RunRecord:
    data = dict(doc)
    data["runId"] = data.pop("_id")
    data.pop("logSequence", None)
    data.pop("pendingLogs", None)
    return RunRecord.model_validate(data)


def _log_doc(event: LogEvent) -> Document:
    doc = event.model_dump(exclude_none=True)
    doc["sequence"] = Int64(event.sequence)
    return doc


def _sets(patch: Mapping[str, Any]) -> Document:
    """``$set``/``$unset`` of validated changes (``None`` clears a field)."""
    update: Document = {"$set": {k: v for k, v in patch.items() if v is not None}}
    unset = {k: "" for k, v in patch.items() if v is None}
    if unset:
        update["$unset"] = unset
    return update


class MongoRunStore:
    """:class:`~taskrunner.store.port.RunStore` on MongoDB (see the module docstring)."""

    def __init__(self, database: Database[Document], names: CollectionNames | None = None) -> None:
        names = names or CollectionNames()
        self.names = names
        self._runs: MongoCollection[Document] = database.get_collection(
            names.runs, codec_options=CODEC_OPTIONS
        )
        self._logs: MongoCollection[Document] = database.get_collection(
            names.logs, codec_options=CODEC_OPTIONS
        )
        self._artifacts: MongoCollection[Document] = database.get_collection(
            names.artifacts, codec_options=CODEC_OPTIONS
        )
        self._gates: MongoCollection[Document] = database.get_collection(
            names.approvals, codec_options=CODEC_OPTIONS
        )
        self._plans: OrderedDict[str, dict[str, Any]] = OrderedDict()  # planHash -> plan (read-only)
        self._plans_guard = threading.Lock()

    def _require_run(self, run_id: str) -> None:
        if self._runs.find_one({"_id": run_id}, {"_id": 1}) is None:
            raise _not_found(run_id)

    # -- runs ----------------------------------------------------------------------------------------

    @_translated
    def create_run(self, run: RunRecord) -> tuple[RunRecord, bool]:
        key = run.idempotencyKey
        if key:
            found = self._runs.find_one({"tenantId": run.tenantId, "idempotencyKey": key}, _no_counter())
            if found is not None:
                return _run_of(found), False
        now = utc_now()
        stored = RunRecord.model_validate(
            {**run.model_dump(), "createdAt": now, "updatedAt": now, "version": 1}
        )
        try:
            self._runs.insert_one({**_run_doc(stored), "logSequence": Int64(0)})
        except DuplicateKeyError:
            existing = self._runs.find_one({"_id": run.runId}, _no_counter())
            if (
                existing is not None
                and key
                and (existing.get("tenantId"), existing.get("idempotencyKey"))
                == (
                    run.tenantId,
                    key,
                )
            ):
                return _run_of(existing), False
            raise Conflict(f"run {run.runId} already exists", remediation="use a new run id") from None
        return stored, True

    @_translated
    def get_run(self, run_id: str, tenant_id: str | None) -> RunRecord:
        query: Document = {"_id": run_id}
        if tenant_id is not None:
            query["tenantId"] = tenant_id
        doc = self._runs.find_one(query, {**_no_counter(), "plan": 0})  # the plan is read once per planHash
        if doc is None:
            raise _not_found(run_id)
        doc["plan"] = self._plan(run_id, doc["planHash"])
        return _run_of(doc)

    def _plan(self, run_id: str, plan_hash: str) -> dict[str, Any]:
        """The plan of ``plan_hash`` (plans are immutable and named by their hash), read from the run once."""
        with self._plans_guard:
            plan = self._plans.get(plan_hash)
            if plan is not None:
                self._plans.move_to_end(plan_hash)
                return plan
        doc = self._runs.find_one({"_id": run_id}, {"plan": 1})
        if doc is None:
            raise _not_found(run_id)
        plan = doc["plan"]
        with self._plans_guard:
            self._plans[plan_hash] = plan
            while len(self._plans) > _PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        return plan

    @_translated
    def list_runs(
        self, tenant_id: str, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[RunRecord], str | None]:
        check_limit(limit)
        query: Document = {"tenantId": tenant_id}
        if cursor:
            updated_at, run_id = decode_cursor(cursor)
            query["$or"] = [
                {"updatedAt": {"$lt": updated_at}},
                {"updatedAt": updated_at, "_id": {"$lt": run_id}},
            ]
        found = self._runs.find(query, _no_counter()).sort([("updatedAt", DESCENDING), ("_id", DESCENDING)])
        runs = [_run_of(doc) for doc in found.limit(limit + 1)]
        page = runs[:limit]
        return page, encode_cursor(page[-1].updatedAt, page[-1].runId) if len(runs) > limit else None

    @_translated
    def list_active_runs(self) -> list[RunRecord]:
        found = self._runs.find({"status": {"$in": sorted(ACTIVE_RUN_STATUSES)}}, _no_counter())
        return [_run_of(doc) for doc in found.sort("_id", ASCENDING)]

    @_translated
    def count_active_runs(self, tenant_id: str | None = None, pack_name: str | None = None) -> int:
        query: dict[str, object] = {"status": {"$in": sorted(ACTIVE_RUN_STATUSES)}}
        if tenant_id is not None:
            query["tenantId"] = tenant_id
        if pack_name is not None:
            query["packName"] = pack_name
        return int(self._runs.count_documents(query))

    def _stale(self, what: str, current: str, expected: Collection[str] | None) -> StaleUpdate:
        """The StaleUpdate of a lost CAS (also when the status changed back in between)."""
        try:
            ensure_status(what, current, expected)
        except StaleUpdate as exc:
            return exc
        return StaleUpdate(f"{what} changed concurrently", remediation="re-read the record and decide again")

    @_translated
    def update_run(
        self, run_id: str, *, expected_status: Collection[str] | None, changes: Mapping[str, Any]
    ) -> RunRecord:
        update = _sets(RUN_CHANGES.validate(changes, json=False))
        update["$set"]["updatedAt"] = utc_now()
        update["$inc"] = {"version": 1}
        query: Document = {"_id": run_id}
        if expected_status is not None:
            query["status"] = {"$in": list(expected_status)}
        doc = self._runs.find_one_and_update(
            query, update, projection=_no_counter(), return_document=ReturnDocument.AFTER
        )
        if doc is None:
            current = self._runs.find_one({"_id": run_id}, {"status": 1})
            if current is None:
                raise _not_found(run_id)
            raise self._stale(f"run {run_id}", current["status"], expected_status)
        return _run_of(doc)

    @_translated
    def update_step(
        self,
        run_id: str,
        step_id: str,
        *,
        expected_status: Collection[str] | None,
        changes: Mapping[str, Any],
        attempt: Attempt | None = None,
    ) -> StepRecord:
        what = f"step {step_id} of run {run_id}"
        for _ in range(_CAS_RETRIES):  # optimistic: retry while other steps of the run change
            doc = self._runs.find_one(
                {"_id": run_id}, {"version": 1, "steps": {"$elemMatch": {"stepId": step_id}}}
            )
            if doc is None:
                raise _not_found(run_id)
            if not doc.get("steps"):
                raise NotFound(
                    f"run {run_id} has no step {step_id!r}", remediation="use a step id of the plan"
                )
            current = StepRecord.model_validate(doc["steps"][0])
            ensure_status(what, current.status, expected_status)
            step = changed_step(current, changes, attempt)
            result = self._runs.update_one(
                {"_id": run_id, "version": doc["version"], "steps.stepId": step_id},
                {
                    "$set": {"steps.$": step.model_dump(exclude_none=True), "updatedAt": utc_now()},
                    "$inc": {"version": 1},
                },
            )
            if result.matched_count:
                return step
        raise StaleUpdate(f"{what} is contended", remediation="retry the update")

    # -- logs ----------------------------------------------------------------------------------------

    @_translated
    def append_logs(self, run_id: str, events: Sequence[NewLogEvent]) -> list[LogEvent]:
        if not events:
            self._require_run(run_id)
            return []
        client = self._runs.database.client
        if supports_transactions(client):
            with client.start_session() as session:
                return session.with_transaction(lambda s: self._reserve_and_insert(run_id, events, s))
        stored = self._reserve_and_insert(run_id, events, None)
        with contextlib.suppress(ConnectionFailure):  # stored: a marker left behind covers no missing event
            self._runs.update_one({"_id": run_id}, {"$pull": {"pendingLogs": {"first": stored[0].sequence}}})
        return stored

    def _reserve_and_insert(
        self, run_id: str, events: Sequence[NewLogEvent], session: ClientSession | None
    ) -> list[LogEvent]:
        """Reserve the batch's sequences (with a ``pendingLogs`` marker outside a transaction), insert it."""
        count = Int64(len(events))
        update: Document | list[Document] = {"$inc": {"logSequence": count}}
        if session is None:
            previous = {"$ifNull": ["$logSequence", Int64(0)]}
            marker = {"first": {"$add": [previous, 1]}, "last": {"$add": [previous, count]}, "at": utc_now()}
            update = [
                {
                    "$set": {
                        "logSequence": {"$add": [previous, count]},
                        "pendingLogs": {"$concatArrays": [{"$ifNull": ["$pendingLogs", []]}, [marker]]},
                    }
                }
            ]
        counter = self._runs.find_one_and_update(
            {"_id": run_id},
            update,
            projection={"_id": 0, "logSequence": 1},
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if counter is None:
            raise _not_found(run_id)
        first = int(counter["logSequence"]) - len(events) + 1
        stored = [
            LogEvent.model_construct(
                **{name: getattr(event, name) for name in NewLogEvent.model_fields},
                runId=run_id,
                sequence=first + i,
            )
            for i, event in enumerate(events)
        ]
        self._logs.insert_many([_log_doc(e) for e in stored], ordered=True, session=session)
        return stored

    def _log_bounds(self, run_id: str, after: int) -> tuple[int | None, list[Reservation]]:
        """The highest sequence a reader may report on now, and the stale (abandoned) reservations."""
        doc = self._runs.find_one(
            {"_id": run_id}, {"_id": 0, "logSequence": 1, "pendingLogs": 1, "status": 1, "evidence": 1}
        )
        if doc is None:
            raise _not_found(run_id)
        upto = int(doc["logSequence"]) if "logSequence" in doc else None
        now = utc_now()
        sealed = doc.get("status") in TERMINAL_RUN_STATUSES and doc.get("evidence") is not None
        pending = [Reservation(int(p["first"]), int(p["last"]), p["at"]) for p in doc.get("pendingLogs", [])]
        abandoned = [r for r in pending if sealed or r.stale(now)]  # a sealed run's log is final
        in_flight = [r.first - 1 for r in pending if r not in abandoned and r.last > after]
        if in_flight:  # a writer is storing these: stop before them, later reads pick them up
            upto = max(after, min([*in_flight, *([upto] if upto is not None else [])]))
        return upto, abandoned

    @_translated
    def read_logs(self, run_id: str, after_sequence: int = 0, limit: int | None = None) -> list[LogEvent]:
        upto, abandoned = self._log_bounds(run_id, after_sequence)
        window: Document = {"$gt": after_sequence}
        if upto is not None:
            window["$lte"] = upto
        found = self._logs.find({"runId": run_id, "sequence": window}, {"_id": 0})
        events = [LogEvent.model_validate(doc) for doc in found.sort("sequence", ASCENDING).limit(limit or 0)]
        return with_gaps(run_id, events, after=after_sequence, upto=upto, reservations=abandoned, limit=limit)

    @_translated
    def log_gaps(self, run_id: str) -> list[Gap]:
        """The run's gaps now (adapter-specific, for ``taskrunner db status``); reads sequences only."""
        upto, abandoned = self._log_bounds(run_id, 0)
        window: Document = {"$gt": 0} if upto is None else {"$gt": 0, "$lte": upto}
        found = self._logs.find({"runId": run_id, "sequence": window}, {"_id": 0, "sequence": 1})
        sequences = [int(doc["sequence"]) for doc in found.sort("sequence", ASCENDING)]
        return find_gaps(sequences, after=0, upto=upto, reservations=abandoned)

    @_translated
    def last_log_sequence(self, run_id: str) -> int:
        """The highest stored log sequence of the run, 0 when none (adapter-specific, for the importer)."""
        doc = self._logs.find_one({"runId": run_id}, {"sequence": 1}, sort=[("sequence", DESCENDING)])
        return int(doc["sequence"]) if doc else 0

    # -- artifacts -----------------------------------------------------------------------------------

    @_translated
    def put_artifact(self, record: ArtifactRecord) -> ArtifactRecord:
        self._require_run(record.runId)
        key = {"runId": record.runId, "name": record.name}
        try:
            self._artifacts.replace_one(key, record.model_dump(exclude_none=True), upsert=True)
        except DuplicateKeyError:  # a concurrent upsert inserted it first: replace that one
            self._artifacts.replace_one(key, record.model_dump(exclude_none=True), upsert=True)
        return record

    @_translated
    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        found = self._artifacts.find({"runId": run_id}, {"_id": 0}).sort("name", ASCENDING)
        records = [ArtifactRecord.model_validate(doc) for doc in found]
        if not records:
            self._require_run(run_id)
        return records

    # -- gates ---------------------------------------------------------------------------------------

    @_translated
    def open_gate(self, record: GateRecord) -> GateRecord:
        self._require_run(record.runId)
        key = {"runId": record.runId, "gateId": record.gateId}
        insert = {k: v for k, v in record.model_dump(exclude_none=True).items() if k not in key}
        try:
            if self._gates.update_one(key, {"$setOnInsert": insert}, upsert=True).upserted_id is not None:
                return record
        except DuplicateKeyError:
            pass  # opened concurrently: treat as re-opening
        existing = self.get_gate(record.runId, record.gateId)
        gate = reopened_gate(existing, record)
        if gate is existing:
            return existing
        doc = self._gates.find_one_and_update(
            {**key, "status": "waiting"},
            {"$set": {"taskToken": record.taskToken}},
            projection={"_id": 0},
            return_document=ReturnDocument.AFTER,
        )
        return GateRecord.model_validate(doc) if doc else self.get_gate(record.runId, record.gateId)

    @_translated
    def get_gate(self, run_id: str, gate_id: str) -> GateRecord:
        doc = self._gates.find_one({"runId": run_id, "gateId": gate_id}, {"_id": 0})
        if doc is None:
            raise NotFound(
                f"run {run_id} has no open gate {gate_id!r}", remediation="use the gate id of a waiting gate"
            )
        return GateRecord.model_validate(doc)

    @_translated
    def list_gates(self, run_id: str) -> list[GateRecord]:
        found = self._gates.find({"runId": run_id}, {"_id": 0}).sort(
            [("openedAt", ASCENDING), ("gateId", ASCENDING)]
        )
        gates = [GateRecord.model_validate(doc) for doc in found]
        if not gates:
            self._require_run(run_id)
        return gates

    @_translated
    def add_decision(self, run_id: str, gate_id: str, decision: Decision) -> GateRecord:
        for _ in range(_CAS_RETRIES):
            existing = self.get_gate(run_id, gate_id)
            gate = decided_gate(existing, decision)
            if gate is existing:
                return existing
            doc = self._gates.find_one_and_update(
                {
                    "runId": run_id,
                    "gateId": gate_id,
                    "status": "waiting",
                    "decisions.approver": {"$ne": decision.approver},
                },
                {"$push": {"decisions": decision.model_dump(exclude_none=True)}},
                projection={"_id": 0},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return GateRecord.model_validate(doc)
        raise StaleUpdate(f"gate {gate_id} of run {run_id} is contended", remediation="retry the decision")

    @_translated
    def update_gate(
        self,
        run_id: str,
        gate_id: str,
        *,
        expected_status: Collection[str] | None,
        changes: Mapping[str, Any],
    ) -> GateRecord:
        update = _sets(GATE_CHANGES.validate(changes, json=False))
        query: Document = {"runId": run_id, "gateId": gate_id}
        if expected_status is not None:
            query["status"] = {"$in": list(expected_status)}
        if not update["$set"]:
            del update["$set"]
        if not update:
            current = self.get_gate(run_id, gate_id)
            ensure_status(f"gate {gate_id} of run {run_id}", current.status, expected_status)
            return current
        doc = self._gates.find_one_and_update(
            query, update, projection={"_id": 0}, return_document=ReturnDocument.AFTER
        )
        if doc is None:
            current = self.get_gate(run_id, gate_id)
            raise self._stale(f"gate {gate_id} of run {run_id}", current.status, expected_status)
        return GateRecord.model_validate(doc)

    # -- backfill (adapter-specific, used by the file-store importer) ------------------------------------

    @_translated
    def import_run(self, run: RunRecord, log_sequence: int) -> ImportOutcome:
        """Store ``run`` as is (version and timestamps kept) unless Mongo holds the same or a newer version."""
        doc = _run_doc(run)
        existing = self._runs.find_one({"_id": run.runId}, {"version": 1, "logSequence": 1})
        if existing is None:
            self._runs.insert_one({**doc, "logSequence": Int64(log_sequence)})
            return "inserted"
        if existing.get("version", 0) < run.version:
            counter = max(int(existing.get("logSequence", 0)), log_sequence)
            replaced = self._runs.replace_one(
                {"_id": run.runId, "version": existing.get("version", 0)},
                {**doc, "logSequence": Int64(counter)},
            )
            return "updated" if replaced.matched_count else "unchanged"
        self._runs.update_one({"_id": run.runId}, {"$max": {"logSequence": Int64(log_sequence)}})
        return "unchanged"

    @_translated
    def import_logs(self, events: Sequence[LogEvent]) -> int:
        """Insert events with their sequences (callers pass only sequences not stored yet)."""
        if events:
            self._logs.insert_many([_log_doc(e) for e in events], ordered=True)
        return len(events)

    @_translated
    def import_artifact(self, record: ArtifactRecord) -> bool:
        """Upsert the artifact record unless an equal one is stored; True when written."""
        key = {"runId": record.runId, "name": record.name}
        existing = self._artifacts.find_one(key, {"_id": 0})
        if existing is not None and ArtifactRecord.model_validate(existing) == record:
            return False
        self._artifacts.replace_one(key, record.model_dump(exclude_none=True), upsert=True)
        return True

    @_translated
    def import_gate(self, record: GateRecord) -> bool:
        """Upsert the gate record (decisions and token included) unless an equal one is stored."""
        key = {"runId": record.runId, "gateId": record.gateId}
        existing = self._gates.find_one(key, {"_id": 0})
        if existing is not None and GateRecord.model_validate(existing) == record:
            return False
        self._gates.replace_one(key, record.model_dump(exclude_none=True), upsert=True)
        return True
