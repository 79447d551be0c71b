"""`taskrunner db import-fs DIR`: file-store runs backfilled into MongoDB: mongomock-ng (injected through the
store factory) and the MongoDB wire server (mongoeco, reached with pymongo)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mongomock_ng
import pytest
from conftest import MONGO_WIRE
from support.mongomock_hello import answer_hello_as_standalone
from taskrunner.cli.db import app
from taskrunner.store import factory, importer
from taskrunner.store.file_store import FileRunStore
from taskrunner.store.importer import import_file_store
from taskrunner.store.migrations import migrate
from taskrunner.store.mongo_names import CODEC_OPTIONS, CollectionNames
from taskrunner.store.mongo_store import MongoRunStore
from taskrunner.store.records import (
    ArtifactRecord,
    Attempt,
    Decision,
    GateRecord,
    NewLogEvent,
    RunRecord,
    StepRecord,
)
from typer.testing import CliRunner

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
NAMES = CollectionNames()


def _run(run_id: str, tenant: str) -> RunRecord:
    return RunRecord(
        runId=run_id,
        tenantId=tenant,
        planHash="sha256:" + "cd" * 32,
        packName="airgap-import",
        packVersion="1.2.0",
        idempotencyKey=f"key-{run_id}",
        requestedAt=T0,
        failurePolicy={"retries": {"maxAttempts": 3}},
        plan={"steps": [{"id": "ingest"}, {"id": "review"}]},
        steps=[StepRecord(stepId="ingest", kind="run"), StepRecord(stepId="review", kind="gate.approval")],
    )


def populate(source: FileRunStore) -> dict[str, int]:
    """Three runs in two tenants: one long log (several import batches), artifacts, a decided gate."""
    source.create_run(_run("r-long", "acme"))
    source.create_run(_run("r-gate", "acme"))
    source.create_run(_run("r-other", "globex"))
    source.update_run("r-long", expected_status=["pending"], changes={"status": "running", "startedAt": T0})
    source.update_step(
        "r-long",
        "ingest",
        expected_status=["pending"],
        changes={"status": "succeeded", "outputs": {"metadata": {"files": 3}}},
        attempt=Attempt(number=1, startedAt=T0, completedAt=T0, status="succeeded"),
    )
    for chunk in range(5):
        source.append_logs(
            "r-long",
            [
                NewLogEvent(eventType="step.started", message=f"{chunk}-{i}", stepId="ingest")
                for i in range(60)
            ],
        )
    source.append_logs(
        "r-gate", [NewLogEvent(eventType="gate.pending", message="waiting", metadata={"g": "review"})]
    )
    source.put_artifact(
        ArtifactRecord(runId="r-long", name="report", type="file", status="copied", storedPath="x")
    )
    source.put_artifact(ArtifactRecord(runId="r-long", name="bundle", type="object", status="pending"))
    source.open_gate(
        GateRecord(
            runId="r-gate",
            tenantId="acme",
            gateId="review",
            approvalId="security-review",
            requiredCount=1,
            planHash="sha256:" + "cd" * 32,
            openedAt=T0,
            expiresAt=T0 + timedelta(hours=4),
            taskToken="token-abc",
        )
    )
    source.add_decision(
        "r-gate", "review", Decision(approver="alice", decision="approve", envelope={"p": "e30="})
    )
    return {"runs": 3, "logs": 301, "artifacts": 2, "approvals": 1}


def assert_equal_through_the_port(source: FileRunStore, target: MongoRunStore) -> None:
    run_ids = list(source.iter_run_ids())
    assert run_ids
    for run_id in run_ids:
        assert target.get_run(run_id, None) == source.get_run(run_id, None)
        assert target.read_logs(run_id) == source.read_logs(run_id)
        assert target.list_artifacts(run_id) == source.list_artifacts(run_id)
        assert target.list_gates(run_id) == source.list_gates(run_id)
    for tenant in ("acme", "globex"):
        assert target.list_runs(tenant, limit=10) == source.list_runs(tenant, limit=10)


@pytest.fixture(params=["mongomock", pytest.param("wire", marks=MONGO_WIRE)])
def mongo(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The target database, reached by the CLI through the settings: mongomock-ng, then the wire server."""
    monkeypatch.setattr(importer, "LOG_BATCH", 64)  # several batches without thousands of events
    monkeypatch.delenv("TASKRUNNER_CONFIG_FILE", raising=False)
    monkeypatch.delenv("TASKRUNNER_STORAGE__MONGO__DATABASE", raising=False)
    if request.param == "wire":
        return request.getfixturevalue("mongo_wire_database")
    answer_hello_as_standalone(monkeypatch)
    client: Any = mongomock_ng.MongoClient()
    monkeypatch.setattr(factory, "mongo_client_factory", lambda uri, pool: client)
    monkeypatch.setenv(
        "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING", "mongodb://mongo.invalid:27017/imports"
    )
    return client.get_database("imports", codec_options=CODEC_OPTIONS)


def import_fs(directory: Path) -> Any:
    return CliRunner().invoke(app, ["import-fs", str(directory)])


def test_import_backfills_everything_once(tmp_path: Path, mongo: Any) -> None:
    source = FileRunStore(tmp_path)
    expected = populate(source)
    assert expected["logs"] > 4 * importer.LOG_BATCH  # the long log spans several batches
    migrate(mongo, NAMES, validators=False)

    first = import_fs(tmp_path)
    assert first.exit_code == 0, first.output
    assert (
        f"runs: {expected['runs']} imported, 0 updated, 0 unchanged; log events: {expected['logs']}; "
        f"artifacts: {expected['artifacts']}; approvals: {expected['approvals']}"
    ) in first.output
    target = MongoRunStore(mongo, NAMES)
    assert_equal_through_the_port(source, target)
    assert target.get_gate("r-gate", "review").taskToken == "token-abc"

    counts = {name: mongo.get_collection(name).count_documents({}) for name in mongo.list_collection_names()}
    second = import_fs(tmp_path)
    assert second.exit_code == 0, second.output
    assert (
        "runs: 0 imported, 0 updated, 3 unchanged; log events: 0; artifacts: 0; approvals: 0" in second.output
    )
    assert {
        name: mongo.get_collection(name).count_documents({}) for name in mongo.list_collection_names()
    } == counts


def test_import_catches_up_with_runs_that_moved_on(tmp_path: Path, mongo: Any) -> None:
    source = FileRunStore(tmp_path)
    populate(source)
    migrate(mongo, NAMES, validators=False)
    target = MongoRunStore(mongo, NAMES)
    import_file_store(source, target)

    source.update_run(
        "r-long", expected_status=["running"], changes={"status": "succeeded", "completedAt": T0}
    )
    source.append_logs("r-long", [NewLogEvent(eventType="run.completed", message="done")] * 3)
    source.put_artifact(ArtifactRecord(runId="r-long", name="bundle", type="object", status="materialized"))
    report = import_file_store(source, target)
    assert (report.runs_updated, report.runs_unchanged, report.logs, report.artifacts, report.approvals) == (
        1,
        2,
        3,
        1,
        0,
    )
    assert_equal_through_the_port(source, target)

    # the Mongo store carries on where the file store stopped
    appended = target.append_logs("r-long", [NewLogEvent(eventType="run.note", message="after import")])
    assert appended[0].sequence == source.read_logs("r-long")[-1].sequence + 1


def test_newer_mongo_runs_are_not_overwritten(tmp_path: Path, mongo: Any) -> None:
    source = FileRunStore(tmp_path)
    populate(source)
    migrate(mongo, NAMES, validators=False)
    target = MongoRunStore(mongo, NAMES)
    import_file_store(source, target)
    target.update_run("r-other", expected_status=None, changes={"status": "cancelled"})
    report = import_file_store(source, target)
    assert report.written == 0
    assert target.get_run("r-other", None).status == "cancelled"


def test_import_requires_the_migration_and_a_file_store_root(tmp_path: Path, mongo: Any) -> None:
    populate(FileRunStore(tmp_path))
    unmigrated = import_fs(tmp_path)
    assert unmigrated.exit_code == 1
    assert "run `taskrunner db migrate` first" in unmigrated.output
    assert mongo.list_collection_names() == []

    not_a_store = import_fs(tmp_path / "runs" / "r-long")
    assert not_a_store.exit_code == 1
    assert "is not a file-store root" in not_a_store.output


def test_a_file_store_gap_is_imported_as_the_same_gap(tmp_path: Path, mongo: Any) -> None:
    source = FileRunStore(tmp_path)
    source.create_run(_run("r-gap", "acme"))
    source.append_logs("r-gap", [NewLogEvent(eventType="run.note", message=m) for m in "abcd"])
    path = tmp_path / "runs" / "r-gap" / "logs.ndjson"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:1] + lines[2:]))  # sequence 2 removed by hand
    migrate(mongo, NAMES, validators=False)
    target = MongoRunStore(mongo, NAMES)

    report = import_file_store(source, target)
    assert report.logs == 3  # the gap is not an event
    assert mongo.pack_run_logs.count_documents({"runId": "r-gap", "eventType": "log.gap"}) == 0
    assert target.read_logs("r-gap") == source.read_logs("r-gap")
    assert [(e.sequence, e.eventType) for e in target.read_logs("r-gap")][:3] == [
        (1, "run.note"),
        (2, "log.gap"),
        (3, "run.note"),
    ]
