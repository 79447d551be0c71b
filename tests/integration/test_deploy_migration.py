"""functions/migrate_db: the ``Custom::MongoMigration`` resource, answered over HTTP as CloudFormation expects
(a PUT of the JSON response to the request's ResponseURL), against mongomock-ng through the store factory."""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import types
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import mongomock_ng
import pytest
from taskrunner.store import factory
from taskrunner.store.migrations import MIGRATIONS
from taskrunner.store.mongo_names import CODEC_OPTIONS

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "events" / "migrate_db-create.json"
BASELINE_COLLECTIONS = {"pack_runs", "pack_run_logs", "pack_artifacts", "pack_run_approvals"}


class CloudFormation:
    """A local stand-in for the presigned S3 URL CloudFormation reads the answer from."""

    def __init__(self) -> None:
        self.answers: list[tuple[dict[str, str], dict[str, Any]]] = []
        received = self.answers

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/response?X-Amz-Signature=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self) -> dict[str, Any]:
        assert len(self.answers) == 1, self.answers
        headers, body = self.answers.pop()
        assert headers.get("Content-Type", "") == ""  # what the presigned URL was signed for
        return body


@pytest.fixture
def cfn() -> Iterator[CloudFormation]:
    stand_in = CloudFormation()
    stand_in.thread.start()
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


@pytest.fixture
def mongo(monkeypatch: pytest.MonkeyPatch) -> Any:
    client: Any = mongomock_ng.MongoClient()
    monkeypatch.setattr(factory, "mongo_client_factory", lambda uri, pool: client)
    for name in list(os.environ):
        if name.startswith("TASKRUNNER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TASKRUNNER_STORAGE__MODE", "mongo")
    monkeypatch.setenv(
        "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING", "mongodb://mongo.invalid:27017/deploytest"
    )
    return client.get_database("deploytest", codec_options=CODEC_OPTIONS)


@pytest.fixture(scope="module")
def handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """``functions/migrate_db/app.py`` loaded by path, as the Lambda runtime loads ``app.handler``."""
    spec = importlib.util.spec_from_file_location(
        "migrate_db_app", REPO / "functions" / "migrate_db" / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    function: Callable[[dict[str, Any], Any], dict[str, Any]] = module.handler
    return function


def context(remaining_ms: int = 300_000) -> Any:
    return types.SimpleNamespace(
        function_name="migrate_db",
        function_version="$LATEST",
        memory_limit_in_mb=512,
        aws_request_id="req-1",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:migrate_db",
        get_remaining_time_in_millis=lambda: remaining_ms,
    )


def request(cfn: CloudFormation, request_type: str, **changes: Any) -> dict[str, Any]:
    """The sample Create request as ``request_type``, answered to the local stand-in."""
    event: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    event.update(RequestType=request_type, ResponseURL=cfn.url, **changes)
    if request_type != "Create":
        event["PhysicalResourceId"] = "taskrunner-mongo-schema"
    return event


def test_create_migrates_and_answers_success(cfn: CloudFormation, mongo: Any, handler: Any) -> None:
    handler(request(cfn, "Create"), context())

    answer = cfn.answer()
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
    for key in ("StackId", "RequestId", "LogicalResourceId"):
        assert answer[key] == sample[key]
    assert answer["PhysicalResourceId"] == "taskrunner-mongo-schema"
    assert set(mongo.list_collection_names()) >= BASELINE_COLLECTIONS
    assert mongo.taskrunner_migrations.count_documents({}) == len(MIGRATIONS)
    assert "change(s) applied" in answer["Reason"]
    assert not answer["Reason"].startswith("1 migration(s) checked, 0")


def test_update_is_idempotent_and_delete_keeps_the_data(
    cfn: CloudFormation, mongo: Any, handler: Any
) -> None:
    handler(request(cfn, "Create"), context())
    cfn.answer()

    handler(request(cfn, "Update"), context())
    update = cfn.answer()
    assert (update["Status"], update["PhysicalResourceId"]) == ("SUCCESS", "taskrunner-mongo-schema")
    assert ", 0 change(s) applied" in update["Reason"]

    handler(request(cfn, "Delete"), context())
    delete = cfn.answer()
    assert delete["Status"] == "SUCCESS"
    assert set(mongo.list_collection_names()) >= BASELINE_COLLECTIONS
    assert mongo.taskrunner_migrations.count_documents({}) == len(MIGRATIONS)


def test_delete_answers_success_even_without_a_database(
    cfn: CloudFormation, mongo: Any, handler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING")
    handler(request(cfn, "Delete"), context())
    assert cfn.answer()["Status"] == "SUCCESS"


def test_missing_connection_settings_answer_failed_with_the_setting_to_fix(
    cfn: CloudFormation, mongo: Any, handler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING")
    handler(request(cfn, "Create"), context())
    answer = cfn.answer()
    assert answer["Status"] == "FAILED"
    assert "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING" in answer["Reason"]
    assert answer["PhysicalResourceId"] == "taskrunner-mongo-schema"  # what the rollback's Delete names


def test_a_conflicting_index_answers_failed_and_names_it(
    cfn: CloudFormation, mongo: Any, handler: Any
) -> None:
    mongo.create_collection("pack_run_logs")
    mongo.pack_run_logs.create_index([("runId", 1), ("sequence", 1)], name="legacy")
    handler(request(cfn, "Update"), context())
    answer = cfn.answer()
    assert answer["Status"] == "FAILED"
    assert "legacy" in answer["Reason"]
    assert "fix:" in answer["Reason"]


def test_no_time_left_answers_failed_instead_of_letting_the_stack_wait(
    cfn: CloudFormation, mongo: Any, handler: Any
) -> None:
    handler(request(cfn, "Create"), context(remaining_ms=5_000))  # less than the margin kept to answer
    answer = cfn.answer()
    assert answer["Status"] == "FAILED"
    assert "did not finish" in answer["Reason"]
    assert "taskrunner db migrate" in answer["Reason"]


def test_an_unknown_request_type_answers_failed(cfn: CloudFormation, mongo: Any, handler: Any) -> None:
    handler(request(cfn, "Replace"), context())
    answer = cfn.answer()
    assert answer["Status"] == "FAILED"
    assert "RequestType" in answer["Reason"]


def test_an_event_without_a_response_url_is_reported_not_raised(mongo: Any, handler: Any) -> None:
    event = json.loads(SAMPLE.read_text(encoding="utf-8"))
    del event["ResponseURL"]
    result = handler(event, context())
    assert (result["Status"], result["Delivered"]) == ("SUCCESS", False)


def test_a_migration_still_running_near_the_deadline_is_given_up_on() -> None:
    from taskrunner.store.deploy_migration import _within

    release = threading.Event()
    with pytest.raises(TimeoutError, match="did not finish within"):
        _within(0.05, lambda: str(release.wait(5)))
    release.set()
    assert _within(5, lambda: "done") == "done"
