"""Log delivery formats: SSE, NDJSON and JSON pages, Accept negotiation and Last-Event-ID."""

from __future__ import annotations

import json
from typing import Any

import pytest
from taskrunner.api.models import LogEventOut
from taskrunner.api.streams import (
    STREAM_COMPLETE_HEADER,
    last_event_id_in,
    log_page,
    log_response,
    negotiate_log_format,
    parse_last_event_id,
    render_ndjson,
    render_sse,
    sse_event,
)
from taskrunner.errors import ValidationFailed


def make_event(sequence: int, event_type: str = "step.started", message: str = "hello") -> dict[str, Any]:
    return {
        "runId": "run-1",
        "sequence": sequence,
        "timestamp": f"2026-01-02T03:04:{sequence:02d}.000Z",
        "eventType": event_type,
        "level": "info",
        "message": message,
        "stepId": "ingest",
        "metadata": {"attempt": "1"},
    }


def parse_sse(text: str) -> list[dict[str, str]]:
    """A minimal SSE parser following the WHATWG dispatch rules (blank line ends an event)."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.split("\n"):
        if line == "":
            if "data" in current:
                events.append(current)
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            current[name] = current[name] + "\n" + value if name == "data" and name in current else value
    return events


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "json"),
        ("", "json"),
        ("*/*", "json"),
        ("text/html", "json"),
        ("text/event-stream", "sse"),
        ("application/x-ndjson", "ndjson"),
        ("application/json", "json"),
        ("application/json;q=0.5, text/event-stream", "sse"),
        ("text/event-stream;q=0.2, application/x-ndjson;q=0.9", "ndjson"),
        ("application/x-ndjson, application/json", "ndjson"),
        ("text/event-stream;q=0", "json"),
        ("TEXT/EVENT-STREAM", "sse"),
    ],
)
def test_negotiate_log_format(accept: str | None, expected: str) -> None:
    assert negotiate_log_format(accept) == expected


def test_parse_last_event_id() -> None:
    assert parse_last_event_id(None) is None
    assert parse_last_event_id("  ") is None
    assert parse_last_event_id("17") == 17
    with pytest.raises(ValidationFailed, match="Last-Event-ID") as caught:
        parse_last_event_id("seventeen")
    assert caught.value.problems[0]["path"] == "header.last-event-id"


def test_sse_event_wire_format() -> None:
    text = sse_event(make_event(3, "step.succeeded", "line one\nline two"))
    lines = text.split("\n")
    assert lines[0] == "id: 3"
    assert lines[1] == "event: step.succeeded"
    assert lines[2].startswith("data: ")
    assert lines[3:] == ["", ""]  # one blank line terminates the event
    data = json.loads(lines[2].removeprefix("data: "))
    assert data["message"] == "line one\nline two"  # escaped inside JSON, still one data line
    assert data["sequence"] == 3


def test_render_sse_round_trips_through_a_parser() -> None:
    events = [make_event(i) for i in range(1, 4)]
    text = render_sse(events, retry_ms=1500)
    assert text.startswith("retry: 1500\n\n")
    parsed = parse_sse(text)
    assert [e["id"] for e in parsed] == ["1", "2", "3"]
    assert [json.loads(e["data"]) for e in parsed] == [
        LogEventOut.model_validate(e).model_dump() for e in events
    ]
    assert last_event_id_in(text) == "3"
    assert not render_sse([], retry_ms=None)
    assert last_event_id_in(render_sse([])) is None


def test_render_ndjson_one_event_per_line() -> None:
    text = render_ndjson([make_event(1), make_event(2)])
    lines = text.splitlines()
    assert [json.loads(line)["sequence"] for line in lines] == [1, 2]
    assert text.endswith("\n")


def test_log_page_cursor_is_the_last_sequence() -> None:
    page = log_page([make_event(4), make_event(5)], complete=False)
    assert (page.nextCursor, page.complete) == ("5", False)
    assert log_page([], complete=True).nextCursor is None


def test_invalid_event_is_rejected() -> None:
    with pytest.raises(ValueError, match="level"):
        sse_event({**make_event(1), "level": "loud"})


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("sse", "text/event-stream"), ("ndjson", "application/x-ndjson"), ("json", "application/json")],
)
def test_log_response_sets_type_and_completion(fmt: Any, content_type: str) -> None:
    response = log_response([make_event(1)], fmt=fmt, complete=True)
    assert response.status_code == 200
    assert str(response.headers["Content-Type"]).startswith(content_type)
    assert response.headers[STREAM_COMPLETE_HEADER] == "true"
    assert isinstance(response.body, str)
    if fmt == "json":
        assert json.loads(response.body)["items"][0]["sequence"] == 1
    assert log_response([], fmt=fmt, complete=False).headers[STREAM_COMPLETE_HEADER] == "false"
