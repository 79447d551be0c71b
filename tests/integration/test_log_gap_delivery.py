"""A gap in a run's log reaches users: ``taskrunner runs logs`` prints the ``log.gap`` event and warns on
stderr, the HTTP logs route sends it as an SSE event (``event: log.gap``, ``id`` past the gap) and in JSON
pages, and paging resumes after it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from taskrunner.api.streams import log_response
from taskrunner.cli.app import app
from taskrunner.composition import reset_services, services
from taskrunner.engine import queries
from taskrunner.store.file_store import FileRunStore
from taskrunner.store.records import NewLogEvent, RunRecord, StepRecord
from typer.testing import CliRunner


@pytest.fixture
def home(tr_home: Path) -> Any:
    """A run with events 1..4 whose event 2 was removed from the log file."""
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
