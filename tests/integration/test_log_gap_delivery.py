"""A gap in a run's log reaches users: ``taskrunner runs logs`` prints the ``log.gap`` event and warns on
stderr, the HTTP logs route sends it as an SSE event (``event: log.gap``, ``id`` past the gap) and in JSON
pages, and paging resumes after it."""

from __future__ import annotations

import base64
import importlib.util
import json
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from taskrunner.api.streams import log_response
from taskrunner.cli.app import app
from taskrunner.composition import reset_services, services
from taskrunner.engine import queries
from taskrunner.store.file_store import FileRunStore
from taskrunner.store.records import NewLogEvent, RunRecord, StepRecord
from typer.testing import CliRunner


@pytest.fixture
def home(tr_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A run with events 1..4 whose event 2 was removed from the log file (services built as a function's:
    a region set, as Lambda sets one)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    reset_services()
    store = FileRunStore(tr_home)
    store.create_run(
        RunRecord(
            runId="r-gap",
            tenantId="local",
            planHash="sha256:" + "ab" * 32,
            packName="hello",
            packVersion="1.0.0",
            plan={"steps": [{"id": "s0"}]},
            requestedAt=datetime(2026, 1, 2, tzinfo=UTC),
            failurePolicy={},
            steps=[StepRecord(stepId="s0", kind="run")],
        )
    )
    store.append_logs("r-gap", [NewLogEvent(eventType="run.note", message=m) for m in "abcd"])
    path = tr_home / "runs" / "r-gap" / "logs.ndjson"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(line for line in lines if json.loads(line)["sequence"] != 2))
    yield tr_home
    reset_services()


def test_runs_logs_prints_the_gap_and_warns(home: Path) -> None:
    result = CliRunner().invoke(app, ["runs", "logs", "r-gap"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["sequence"], e["eventType"]) for e in lines] == [
        (1, "run.note"),
        (2, "log.gap"),
        (3, "run.note"),
        (4, "run.note"),
    ]
    assert lines[1]["metadata"] == {"firstSequence": "2", "lastSequence": "2", "cause": "lost"}
    assert "warning: log sequence 2 is missing: it was written, then deleted or expired" in result.stderr
    as_json = CliRunner().invoke(app, ["runs", "logs", "r-gap", "--json", "--after", "1"])
    assert [e["eventType"] for e in json.loads(as_json.stdout)] == ["log.gap", "run.note", "run.note"]


def test_the_logs_route_streams_the_gap(home: Path) -> None:
    read = queries.read_logs(services(), "local", "r-gap", 1, None)
    sse = log_response(read.events, fmt="sse", complete=read.complete).body
    assert "id: 2\nevent: log.gap\n" in sse
    assert '"cause":"lost"' in sse
    page = json.loads(log_response(read.events, fmt="json", complete=read.complete).body)
    assert [e["eventType"] for e in page["items"]] == ["log.gap", "run.note", "run.note"]
    after_gap = queries.read_logs(services(), "local", "r-gap", 2, None)  # Last-Event-ID: 2
    assert [e.message for e in after_gap.events] == ["c", "d"]


def _logs_request(accept: str, last_event_id: str) -> dict[str, Any]:
    """The sample API Gateway event of the logs route, aimed at run r-gap of tenant local."""
    event: dict[str, Any] = json.loads((REPO / "events" / "get_run-logs-sse.json").read_text())
    template_id = event["pathParameters"]["runId"]
    event["rawPath"] = event["rawPath"].replace(template_id, "r-gap")
    event["requestContext"]["http"]["path"] = event["rawPath"]
    event["pathParameters"]["runId"] = "r-gap"
    event["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = "local"
    event["headers"].update({"accept": accept, "last-event-id": last_event_id})
    return event


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_the_get_run_function_answers_with_the_gap(home: Path) -> None:
    spec = importlib.util.spec_from_file_location("get_run_app", REPO / "functions" / "get_run" / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = types.SimpleNamespace(
        function_name="get_run",
        function_version="$LATEST",
        memory_limit_in_mb=512,
        aws_request_id="req-1",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:get_run",
    )
    reply = module.handler(_logs_request("text/event-stream", "1"), context)
    assert reply["statusCode"] == 200, reply
    body = base64.b64decode(reply["body"]).decode() if reply.get("isBase64Encoded") else reply["body"]
    assert [line for line in body.splitlines() if line.startswith(("id:", "event:"))] == [
        "id: 2",
        "event: log.gap",
        "id: 3",
        "event: run.note",
        "id: 4",
        "event: run.note",
    ]
