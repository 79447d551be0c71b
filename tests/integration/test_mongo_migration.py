"""`taskrunner db migrate` / `status` against MongoDB: mongomock-ng (injected through the store factory) and
the MongoDB wire server (mongoeco, reached with pymongo).

mongomock-ng stores validators passed to create_collection / collMod but cannot evaluate ``$jsonSchema``;
so the validators are checked as documents (against the baseline field tables), and the documents the
Mongo store writes are checked against them with a ``bsonType``-aware JSON Schema validator. The wire server
lacks ``collMod`` and rejects the logs validator (an object-valued ``additionalProperties``): the tests that
need those stay on mongomock-ng, and on the wire server `db migrate` must name what the server refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import mongomock_ng
import pytest
import typer
from bson.int64 import Int64
from bson.objectid import ObjectId
from conftest import MONGO_WIRE
from jsonschema import Draft4Validator, validators
from jsonschema.exceptions import ValidationError as SchemaError
from support.mongomock_hello import answer_hello_as_standalone
from taskrunner.cli.db import _reported, app
from taskrunner.errors import Conflict
from taskrunner.store import factory
from taskrunner.store.errors import MigrationFailed
from taskrunner.store.migrations import BASELINE, MIGRATIONS, migrate
from taskrunner.store.mongo_names import CODEC_OPTIONS, CollectionNames
from taskrunner.store.mongo_store import MongoRunStore
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
)
from typer.testing import CliRunner

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
NAMES = CollectionNames()

# The baseline migration document: indexes per collection in order, (keys, unique), after the implicit _id.
MIGRATED_INDEXES = {
    "pack_runs": [
        ([("updatedAt", -1)], False),
        ([("tenantId", 1), ("updatedAt", -1)], False),
        ([("tenantId", 1), ("packName", 1), ("status", 1)], False),  # 20261130-runs-queue-depth
    ],
    "pack_run_logs": [
        ([("runId", 1), ("sequence", 1)], True),
        ([("runId", 1), ("timestamp", 1)], False),
        ([("timestamp", 1)], False),
    ],
    "pack_artifacts": [([("runId", 1), ("name", 1)], True), ([("runId", 1)], False)],
    "pack_run_approvals": [([("runId", 1), ("gateId", 1)], True)],
}
# Field tables of the baseline: field -> BSON type (or enum), and the fields every document must hold.
BASELINE_FIELDS = {
    "pack_runs": {
        "_id": "string",
        "planHash": "string",
        "plan": "object",
        "failurePolicy": "object",
        "requestedAt": "date",
        "createdAt": "date",
        "updatedAt": "date",
        "steps": "array",
        "tenantId": "string",
    },
    "pack_run_logs": {
        "_id": "objectId",
        "runId": "string",
        "sequence": "long",
        "timestamp": "date",
        "level": ["trace", "debug", "info", "warn", "error"],
        "eventType": "string",
        "message": "string",
        "stepId": "string",
        "metadata": "object",
    },
    "pack_artifacts": {
        "_id": "objectId",
        "runId": "string",
        "name": "string",
        "type": "string",
        "sourcePath": ["string", "null"],
        "storedPath": ["string", "null"],
        "status": ["pending", "copied", "materialized", "skipped"],
        "notes": "string",
        "capturedAt": "date",
    },
}
OPTIONAL_FIELDS = {"tenantId", "_id", "stepId", "metadata", "sourcePath", "storedPath", "notes"}


class Recorder:
    """A database proxy that records every schema or data write made through it."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    def create_collection(self, name: str, **options: Any) -> Any:
        self.calls.append(("create_collection", name, options))
        return self.db.create_collection(name, **options)

    def command(self, command: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("command", dict(command)))
        return self.db.command(dict(command), *args, **kwargs)

    def get_collection(self, name: str, **kwargs: Any) -> Any:
        return _RecordingCollection(self.db.get_collection(name, **kwargs), self.calls)


class _RecordingCollection:
    def __init__(self, collection: Any, calls: list[tuple[Any, ...]]) -> None:
        self._collection = collection
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._collection, name)
        if name in {"create_index", "replace_one", "update_one", "insert_one", "drop_index"}:

            def recorded(*args: Any, **kwargs: Any) -> Any:
                self._calls.append((name, self._collection.name, args, kwargs))
                return attribute(*args, **kwargs)

            return recorded
        return attribute


def _bson_type(validator: Any, expected: Any, instance: Any, schema: Any) -> Iterator[SchemaError]:
    checks = {
        "string": lambda v: isinstance(v, str),
        "date": lambda v: isinstance(v, datetime),
        "long": lambda v: isinstance(v, Int64),
        "int": lambda v: type(v) is int and -(2**31) <= v < 2**31,
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "objectId": lambda v: isinstance(v, ObjectId),
        "null": lambda v: v is None,
    }
    types = [expected] if isinstance(expected, str) else expected
    if not any(checks[t](instance) for t in types):
        yield SchemaError(f"{instance!r} is not of BSON type {types}")


MongoJsonSchema = validators.extend(Draft4Validator, {"bsonType": _bson_type})


def schema_errors(collection: str, document: dict[str, Any]) -> list[str]:
    """What MongoDB's $jsonSchema validator of the baseline would reject in ``document``."""
    spec = next(c for c in BASELINE.collections if NAMES.of(c.role) == collection)
    return [e.message for e in MongoJsonSchema(spec.validator["$jsonSchema"]).iter_errors(document)]


def _cli_settings_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TASKRUNNER_CONFIG_FILE", "TASKRUNNER_STORAGE__MONGO__DATABASE", "TASKRUNNER_STORAGE__MODE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mock_mongo(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A mongomock database that the CLI reaches through the store factory and the settings."""
    answer_hello_as_standalone(monkeypatch)
    client: Any = mongomock_ng.MongoClient()
    monkeypatch.setattr(factory, "mongo_client_factory", lambda uri, pool: client)
    monkeypatch.setenv(
        "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING", "mongodb://mongo.invalid:27017/migtest"
    )
    _cli_settings_only(monkeypatch)
    return client.get_database("migtest", codec_options=CODEC_OPTIONS)


@pytest.fixture
def wire(mongo_wire_database: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh database on the wire server that the CLI reaches through the settings."""
    _cli_settings_only(monkeypatch)
    return mongo_wire_database


@pytest.fixture(params=["mongomock", pytest.param("wire", marks=MONGO_WIRE)])
def mongo(request: pytest.FixtureRequest) -> Any:
    """Each backend in turn: mongomock-ng, then the wire server."""
    return request.getfixturevalue("mock_mongo" if request.param == "mongomock" else "wire")


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_migrate_creates_the_baseline(mock_mongo: Any) -> None:
    recorder = Recorder(mock_mongo)
    applied = migrate(recorder, NAMES)  # type: ignore[arg-type]
    assert list(applied) == ["20251106-task-runner-baseline", "20261130-runs-queue-depth"]

    created = [c for c in recorder.calls if c[0] == "create_collection"]
    assert [c[1] for c in created] == list(MIGRATED_INDEXES)
    for _, name, options in created:
        assert options["validationLevel"] == "strict"
        assert options["validationAction"] == "error"
        assert mock_mongo.get_collection(name).options()["validator"] == options["validator"]

    index_calls = [
        (c[1], c[2][0], c[3].get("unique", False)) for c in recorder.calls if c[0] == "create_index"
    ]
    uniques = [unique for _, _, unique in index_calls]
    assert uniques == sorted(uniques, reverse=True), "unique indexes must be created first"
    assert len(index_calls) == sum(len(v) for v in MIGRATED_INDEXES.values())

    for name, expected in MIGRATED_INDEXES.items():
        listed = [
            (list(i["key"].items()), bool(i.get("unique")))
            for i in mock_mongo.get_collection(name).list_indexes()
        ]
        assert listed == [([("_id", 1)], False), *expected], name
    assert "expireAfterSeconds" not in mock_mongo.pack_run_logs.index_information()["timestamp_1"]

    entry = mock_mongo.taskrunner_migrations.find_one({"_id": "20251106-task-runner-baseline"})
    assert entry["collections"]["logs"] == "pack_run_logs"
    assert entry["checksum"].startswith("sha256:")
    assert entry["appliedAt"] <= datetime.now(UTC)


@pytest.mark.parametrize("collection", sorted(BASELINE_FIELDS))
def test_validators_mirror_the_field_tables(mock_mongo: Any, collection: str) -> None:
    migrate(mock_mongo, NAMES)
    schema = mock_mongo.get_collection(collection).options()["validator"]["$jsonSchema"]
    properties = schema["properties"]
    for field, expected in BASELINE_FIELDS[collection].items():
        declared = (
            properties[field].get("enum")
            if isinstance(expected, list) and "enum" in properties[field]
            else None
        )
        assert (declared or properties[field]["bsonType"]) == expected, field
    required = set(BASELINE_FIELDS[collection]) - OPTIONAL_FIELDS
    assert required <= set(schema["required"])
    assert set(schema["required"]) <= set(properties)


def test_approvals_validator_covers_the_gate_record(mock_mongo: Any) -> None:
    migrate(mock_mongo, NAMES)
    schema = mock_mongo.pack_run_approvals.options()["validator"]["$jsonSchema"]
    assert set(schema["properties"]) - {"_id"} <= set(GateRecord.model_fields)
    assert {"runId", "gateId", "status", "decisions"} <= set(schema["required"])


def test_second_run_is_a_no_op(mock_mongo: Any) -> None:
    migrate(mock_mongo, NAMES)
    first_entry = mock_mongo.taskrunner_migrations.find_one({})
    recorder = Recorder(mock_mongo)
    assert migrate(recorder, NAMES) == {m.id: [] for m in MIGRATIONS}  # type: ignore[arg-type]
    assert recorder.calls == []
    assert mock_mongo.taskrunner_migrations.find_one({}) == first_entry

    result = cli("migrate")
    assert result.exit_code == 0, result.output
    assert "20251106-task-runner-baseline: up to date" in result.output


def test_migrate_repairs_drift_only(mock_mongo: Any) -> None:
    migrate(mock_mongo, NAMES)
    mock_mongo.pack_runs.drop_index("tenantId_1_updatedAt_-1")
    mock_mongo.command({"collMod": "pack_run_logs", "validator": {}})
    recorder = Recorder(mock_mongo)
    applied = migrate(recorder, NAMES)  # type: ignore[arg-type]
    assert [str(a) for a in applied["20251106-task-runner-baseline"]] == [
        "set-validator pack_run_logs",
        "create-index pack_runs.tenantId_1_updatedAt_-1",
    ]
    assert [c[0] for c in recorder.calls] == ["command", "create_index", "replace_one"]
    assert recorder.calls[0][1]["collMod"] == "pack_run_logs"
    assert mock_mongo.pack_run_logs.options()["validator"] == recorder.calls[0][1]["validator"]


def test_conflicting_index_fails_with_a_clear_error(mongo: Any) -> None:
    mongo.create_collection("pack_run_logs")
    mongo.pack_run_logs.create_index([("runId", 1), ("sequence", 1)], name="legacy")
    with pytest.raises(MigrationFailed) as failure:
        migrate(mongo, NAMES)
    assert "legacy" in failure.value.message
    result = cli("migrate")
    assert result.exit_code == 1
    assert "error: index legacy of pack_run_logs exists with unique=False" in result.output
    assert "hint: drop that index" in result.output
    assert "Traceback" not in result.output


def test_status_before_and_after(mock_mongo: Any) -> None:
    before = cli("status")
    assert before.exit_code == 0, before.output
    assert "20251106-task-runner-baseline: not applied, 12 change(s) pending" in before.output
    assert "pending: create-index pack_run_logs.runId_1_sequence_1 (unique)" in before.output

    migrated = cli("migrate")
    assert migrated.exit_code == 0, migrated.output
    assert "applied 12 change(s)" in migrated.output
    after = cli("status")
    assert after.output.startswith("20251106-task-runner-baseline: applied 20")
    assert "pending" not in after.output


def test_configured_names_ttl_and_skipped_validators(mongo: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__LOGS_COLLECTION", "tr_logs")
    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__MIGRATIONS_COLLECTION", "tr_ledger")
    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__LOG_TTL_SECONDS", "3600")
    result = cli("migrate", "--skip-validators")
    assert result.exit_code == 0, result.output
    assert "tr_logs" in mongo.list_collection_names()
    assert "pack_run_logs" not in mongo.list_collection_names()
    assert mongo.tr_logs.index_information()["timestamp_1"]["expireAfterSeconds"] == 3600
    assert "validator" not in mongo.tr_logs.options()
    assert mongo.tr_ledger.find_one({})["validators"] is False

    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__LOG_TTL_SECONDS", "7200")
    status = cli("status")
    assert "pending: set-ttl tr_logs.timestamp_1" in status.output


def test_missing_connection_string_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING", raising=False)
    monkeypatch.delenv("TASKRUNNER_CONFIG_FILE", raising=False)
    result = cli("status")
    assert result.exit_code == 1
    assert "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING" in result.output


def _sample_documents(store: MongoRunStore) -> None:
    run = RunRecord(
        runId="r1",
        tenantId="acme",
        planHash="sha256:" + "ab" * 32,
        packName="hello",
        packVersion="1.0.0",
        requestedAt=T0,
        failurePolicy={"retries": {"maxAttempts": 2}},
        plan={"steps": [{"id": "s0"}]},
        steps=[StepRecord(stepId="s0", kind="run"), StepRecord(stepId="review", kind="gate.approval")],
    )
    store.create_run(run)
    store.update_step(
        "r1",
        "s0",
        expected_status=None,
        changes={"status": "failed", "error": {"code": "StepFailed", "message": "exit 1"}},
        attempt=Attempt(number=1, startedAt=T0, status="failed", error=ErrorInfo(code="E", message="m")),
    )
    store.update_run("r1", expected_status=None, changes={"status": "failed", "completedAt": T0})
    store.append_logs(
        "r1",
        [
            NewLogEvent(eventType="run.created", message="created"),
            NewLogEvent(eventType="step.failed", message="boom", stepId="s0", metadata={"attempt": "1"}),
        ],
    )
    store.put_artifact(ArtifactRecord(runId="r1", name="report", type="file", status="pending"))
    store.put_artifact(
        ArtifactRecord(
            runId="r1",
            name="bundle",
            type="file",
            status="copied",
            storedPath="s3://b/k",
            sha256="ab",
            size=3,
        )
    )
    store.open_gate(
        GateRecord(
            runId="r1",
            tenantId="acme",
            gateId="review",
            approvalId="security-review",
            requiredCount=2,
            planHash=run.planHash,
            taskToken="t",
        )
    )
    store.add_decision(
        "r1", "review", Decision(approver="alice", decision="approve", envelope={"payload": "e30="})
    )


def test_store_documents_satisfy_the_validators(mongo: Any) -> None:
    migrate(mongo, NAMES, validators=False)  # mongomock-ng cannot evaluate them on insert
    _sample_documents(MongoRunStore(mongo, NAMES))
    for name in ("pack_runs", "pack_run_logs", "pack_artifacts", "pack_run_approvals"):
        documents = list(mongo.get_collection(name).find())
        assert documents, name
        for document in documents:
            assert schema_errors(name, document) == [], (name, document)

    # the check is real: what the server would refuse is refused here too
    log = mongo.pack_run_logs.find_one({})
    assert schema_errors("pack_run_logs", {**log, "sequence": 3}) != []
    assert schema_errors("pack_run_logs", {**log, "metadata": {"n": 1}}) != []
    run = mongo.pack_runs.find_one({})
    assert schema_errors("pack_runs", {k: v for k, v in run.items() if k != "planHash"}) != []


def test_unique_indexes_surface_as_conflicts(mongo: Any) -> None:
    migrate(mongo, NAMES, validators=False)
    store = MongoRunStore(mongo, NAMES)
    _sample_documents(store)
    event = LogEvent(runId="r1", sequence=2, eventType="x", message="again")
    with pytest.raises(Conflict) as single:
        store.import_logs([event])
    assert "sequence" in single.value.message
    with pytest.raises(Conflict):
        store.import_logs([event.model_copy(update={"sequence": 3}), event])


# -- what the server refuses, named -----------------------------------------------------------------


@MONGO_WIRE
def test_unsupported_validator_keyword_is_named_and_skip_validators_migrates(wire: Any) -> None:
    refused = cli("migrate")
    assert refused.exit_code == 1
    assert (
        "error: MongoDB refused create-collection pack_run_logs: the server does not support the "
        "$jsonSchema keyword additionalProperties of its validator" in refused.output
    )
    assert "hint: run `taskrunner db migrate --skip-validators`" in refused.output
    assert "privileges" not in refused.output
    assert "Traceback" not in refused.output
    assert wire.taskrunner_migrations.find_one({}) is None

    migrated = cli("migrate", "--skip-validators")
    assert migrated.exit_code == 0, migrated.output
    assert "create-index pack_run_logs.runId_1_sequence_1 (unique)" in migrated.output
    assert "pack_runs (" not in migrated.output  # created (with its validator) by the refused run
    assert wire.taskrunner_migrations.find_one({})["validators"] is False
    again = cli("migrate", "--skip-validators")
    assert again.exit_code == 0, again.output
    assert "20251106-task-runner-baseline: up to date" in again.output
    status = cli("status")
    assert status.output.startswith("20251106-task-runner-baseline: applied 20")
    assert "pending" not in status.output


@MONGO_WIRE
def test_validator_repair_without_collmod_names_the_command(wire: Any) -> None:
    wire.create_collection("pack_runs")  # drift: created without its validator
    result = cli("migrate")
    assert result.exit_code == 1
    assert (
        "error: MongoDB refused set-validator pack_runs: the server does not support the collMod command"
        in result.output
    )
    assert "hint: run `taskrunner db migrate --skip-validators`" in result.output
    assert "validator" not in wire.pack_runs.options()


@MONGO_WIRE
def test_ttl_change_without_collmod_names_the_way_out(wire: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__LOG_TTL_SECONDS", "3600")
    assert cli("migrate", "--skip-validators").exit_code == 0
    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__LOG_TTL_SECONDS", "7200")
    refused = cli("migrate", "--skip-validators")
    assert refused.exit_code == 1
    assert (
        "error: MongoDB refused set-ttl pack_run_logs.timestamp_1: the server does not support the collMod "
        "command" in refused.output
    )
    assert "hint: drop the index it changes and run `taskrunner db migrate` again" in refused.output
    assert wire.pack_run_logs.index_information()["timestamp_1"]["expireAfterSeconds"] == 3600

    wire.pack_run_logs.drop_index("timestamp_1")  # what the hint says
    repaired = cli("migrate", "--skip-validators")
    assert repaired.exit_code == 0, repaired.output
    assert "create-index pack_run_logs.timestamp_1" in repaired.output
    assert wire.pack_run_logs.index_information()["timestamp_1"]["expireAfterSeconds"] == 7200


@MONGO_WIRE
def test_any_unsupported_command_is_named(wire: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exited, _reported():
        wire.command({"buildinfo": 1})
    assert exited.value.exit_code == 1
    err = capsys.readouterr().err
    assert "error: MongoDB refused the operation: the server does not support the buildinfo command" in err
    assert "privileges" not in err


def test_other_refusals_show_the_servers_message(mongo: Any) -> None:
    mongo.create_collection("pack_artifacts")
    mongo.pack_artifacts.create_index([("tenantId", 1)], name="runId_1")  # a name the baseline uses
    result = cli("migrate", "--skip-validators")
    assert result.exit_code == 1
    assert "error: MongoDB refused create-index pack_artifacts.runId_1: " in result.output
    assert "hint: fix what the server reports, then run `taskrunner db migrate` again" in result.output
    assert "privileges" not in result.output
    assert "Traceback" not in result.output
