"""``taskrunner run`` / ``approve`` / ``runs`` with ``TASKRUNNER_STORAGE__MODE=mongo``: the real console script
against a MongoDB wire-protocol server (mongoeco on 127.0.0.1), checked from the outside with pymongo.

Run records, logs, artifact records and gates land in MongoDB and nowhere in the file store; artifact and
evidence bytes stay under ``TASKRUNNER_HOME/objects``. A server that does not answer, or a database not
migrated, stops the command before anything runs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import MONGO_WIRE, PACKS, REPO, wait_for
from pymongo import MongoClient
from support.mongo_wire import free_port
from test_http_api import GATE, READ, RUN, started, user_token
from test_restart_resume import PACK as RESTARTABLE
from test_restart_resume import TENANT, Serve, cli
from test_run_cli import TASKRUNNER, Result, example_arguments, stored_file, taskrunner, write_bundle

pytestmark = MONGO_WIRE  # one worker starts the wire server for every test that uses it
SHARED_PACKS = REPO.parent / "shared" / "packs"
DATABASE = "taskrunner_mongo_mode"


def example_packs() -> list[Path]:
    """Every example pack (the shared ones and this repository's), each distinct text once."""
    seen: dict[str, Path] = {}
    for directory in (SHARED_PACKS, PACKS):
        for pack in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
            seen.setdefault(hashlib.sha256(pack.read_bytes()).hexdigest(), pack)
    return sorted(seen.values(), key=lambda p: (p.stem, str(p)))


@pytest.fixture(scope="module")
def mongo_server(mongo_wire_uri: str) -> str:
    """The tests' MongoDB wire server (one per test process); its base URI, without a database."""
    parts = urlsplit(mongo_wire_uri)
    return f"{parts.scheme}://{parts.netloc}"


def mongo_env(uri: str) -> dict[str, str]:
    return {"TASKRUNNER_STORAGE__MODE": "mongo", "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING": uri}


@pytest.fixture(scope="module")
def mongo_uri(mongo_server: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database migrated with ``taskrunner db migrate`` (mongoeco has no collMod: without validators)."""
    uri = f"{mongo_server}/{DATABASE}?directConnection=true"
    home = tmp_path_factory.mktemp("migrate")
    result = taskrunner(home, "db", "migrate", "--skip-validators", env=mongo_env(uri))
    assert result.code == 0, result.stderr
    return uri


@pytest.fixture(scope="module")
def db(mongo_uri: str) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000, tz_aware=True)
    try:
        yield client.get_database(DATABASE)
    finally:
        client.close()


def assert_only_in_mongo(db: Any, home: Path, run_id: str) -> None:
    """The run's records are in MongoDB; the home holds no run store, only objects, keys and caches."""
    run = db.pack_runs.find_one({"_id": run_id})
    assert run is not None
    assert run["status"] == "succeeded"
    assert db.pack_run_logs.count_documents({"runId": run_id}) > 0
    assert not (home / "runs").exists()
    assert not (home / "active").exists()
    leaks = [p for p in home.rglob("*") if p.is_file() and run_id.encode() in p.read_bytes()]
    assert all(p.is_relative_to(home / "objects") for p in leaks), leaks  # bytes, not records


@pytest.mark.parametrize("pack", example_packs(), ids=lambda p: f"{p.parent.parent.name}-{p.stem}")
def test_every_example_pack_runs_with_its_records_in_mongodb(
    pack: Path, mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    bundle = write_bundle(tmp_path)
    args, env = example_arguments(pack.stem, bundle)
    home = tmp_path / "home"
    started = time.monotonic()
    result = taskrunner(home, "run", str(pack), "--json", *args, env={**env, **mongo_env(mongo_uri)})
    elapsed = time.monotonic() - started
    print(f"mongo-mode run of {pack.name}: {elapsed:.2f}s")

    assert result.code == 0, result.stderr
    document = result.document()
    run_id = document["runId"]
    assert document["status"] == "succeeded"
    assert_only_in_mongo(db, home, run_id)
    stored = db.pack_runs.find_one({"_id": run_id})
    assert stored["planHash"] == document["planHash"]
    assert stored["evidence"]["sha256"] == document["evidence"]["sha256"]
    evidence = stored_file(document["evidence"]["location"])
    assert evidence.is_relative_to(home / "objects")
    assert evidence.is_file()
    artifacts = {a["name"]: a for a in db.pack_artifacts.find({"runId": run_id})}
    assert set(artifacts) == {a["name"] for a in document["artifacts"]}
    for artifact in artifacts.values():
        assert stored_file(artifact["storedPath"]).is_relative_to(home / "objects")
    gates = list(db.pack_run_approvals.find({"runId": run_id}))
    if pack.stem == "airgap-import":
        assert [(g["gateId"], g["status"]) for g in gates] == [("review", "approved")]

    if pack.stem == "hello":  # the run commands read the same store
        events = taskrunner(home, "runs", "logs", run_id, "--json", env=mongo_env(mongo_uri))
        assert events.code == 0, events.stderr
        assert [e["sequence"] for e in events.document()] == [
            e["sequence"] for e in db.pack_run_logs.find({"runId": run_id}).sort("sequence", 1)
        ]
        shown = taskrunner(home, "runs", "show", run_id, "--json", env=mongo_env(mongo_uri))
        assert shown.document()["status"] == "succeeded"


def test_a_gate_is_approved_from_another_process(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    """``taskrunner approve`` records the decision in MongoDB; the running ``taskrunner run`` goes on."""
    path, sha = write_bundle(tmp_path)
    home = tmp_path / "home"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TASKRUNNER_", "AWS_", "POWERTOOLS_"))}
    env = {**base, "TASKRUNNER_HOME": str(home), "MIRROR_TOKEN": "t", **mongo_env(mongo_uri)}
    pack = PACKS / "airgap-import.yaml"
    inputs = ["-i", f"bundlePath={path}", "-i", f"bundleSha256={sha}"]
    running = subprocess.Popen(
        [str(TASKRUNNER), "run", str(pack), "--json", *inputs],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        gate = wait_for(
            lambda: db.pack_run_approvals.find_one(
                {"gateId": "review", "status": "waiting", "tenantId": "local"}
            ),
            timeout=60,
        )
        run_id = gate["runId"]
        approved = taskrunner(home, "approve", run_id, "review", "--as", "olivia", env=mongo_env(mongo_uri))
        assert approved.code == 0, approved.stderr
        stdout, stderr = running.communicate(timeout=60)
    finally:
        if running.poll() is None:
            running.kill()
        running.wait()
    assert running.returncode == 0, stderr
    assert Result(0, stdout, stderr).document()["status"] == "succeeded"
    gate = db.pack_run_approvals.find_one({"runId": run_id, "gateId": "review"})
    assert gate["status"] == "approved"
    assert [d["approver"] for d in gate["decisions"]] == ["olivia"]
    assert_only_in_mongo(db, home, run_id)


@pytest.mark.parametrize("command", [["run", str(PACKS / "hello.yaml")], ["serve", "--port", "0"]])
def test_an_unreachable_server_stops_the_command_before_anything_runs(
    command: list[str], tmp_path: Path
) -> None:
    port = free_port("127.0.0.1")
    uri = f"mongodb://opsuser-7f3:hunter2-secret@127.0.0.1:{port}/taskrunner"
    started = time.monotonic()
    result = taskrunner(tmp_path / "home", *command, env=mongo_env(uri), timeout=30)

    assert result.code == 1
    assert time.monotonic() - started < 15
    assert "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING" in result.stderr
    assert "mongosh" in result.stderr
    assert f"mongodb://***@127.0.0.1:{port}/taskrunner" in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout
    assert "opsuser-7f3" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "home").exists()


def test_an_unmigrated_database_stops_the_command_before_anything_runs(
    mongo_server: str, tmp_path: Path
) -> None:
    uri = f"{mongo_server}/never_migrated?directConnection=true"
    for command in (["run", str(PACKS / "hello.yaml")], ["runs", "list"], ["approve", "r", "review"]):
        result = taskrunner(tmp_path / "home", *command, env=mongo_env(uri))
        assert result.code == 1, command
        assert "not migrated" in result.stderr
        assert "run `taskrunner db migrate`" in result.stderr
        assert "Traceback" not in result.stderr
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        assert client.get_database("never_migrated").list_collection_names() == []
    finally:
        client.close()
    assert not (tmp_path / "home").exists()


def test_serve_resumes_and_finishes_a_run_kept_in_mongodb(
    mongo_uri: str, db: Any, tr_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server killed while a gate waits: the next one resumes the run from MongoDB; ``approve`` ends it."""
    for name, value in mongo_env(mongo_uri).items():
        monkeypatch.setenv(name, value)
    tr_home.mkdir(parents=True)
    token = user_token(TENANT, READ, RUN)
    first = Serve(tr_home, tr_home / "serve-1.log").start()
    try:
        run_id = started(first.api, token, RESTARTABLE)["runId"]
        wait_for(lambda: db.pack_run_approvals.find_one({"runId": run_id, "status": "waiting"}), timeout=60)
    finally:
        first.kill()
    second = Serve(tr_home, tr_home / "serve-2.log").start()
    try:
        pending = {"runId": run_id, "eventType": "gate.pending"}
        wait_for(lambda: db.pack_run_logs.count_documents(pending) == 2, timeout=60)  # parked again
        cli(tr_home, "approve", run_id, GATE, "--as", "olivia")
        wait_for(lambda: (db.pack_runs.find_one({"_id": run_id}) or {}).get("evidence"), timeout=60)
    finally:
        second.stop()
    assert_only_in_mongo(db, tr_home, run_id)
