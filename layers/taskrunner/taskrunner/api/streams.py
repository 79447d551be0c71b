"""Run log delivery: Server-Sent Events, NDJSON or JSON pages, chosen from ``Accept``.

SSE events carry ``id: <sequence>`` and ``event: <eventType>``, so a client that reconnects with
``Last-Event-ID`` resumes right after the last event it saw. A handler answers with the events
available now and sets ``x-taskrunner-stream-complete: true`` once the run is over and everything
was sent; behind API Gateway the client reconnects after the ``retry:`` hint, while the local
server keeps the connection open and polls the handler (see ``taskrunner.local.http_server``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response

from taskrunner.api.models import LogEventOut, LogPage
from taskrunner.errors import ValidationFailed

LogFormat = Literal["sse", "ndjson", "json"]

SSE_CONTENT_TYPE = "text/event-stream"
NDJSON_CONTENT_TYPE = "application/x-ndjson"
JSON_CONTENT_TYPE = "application/json"
STREAM_COMPLETE_HEADER = "x-taskrunner-stream-complete"
LAST_EVENT_ID_HEADER = "last-event-id"
DEFAULT_RETRY_MS = 2000
SSE_HEARTBEAT = ": keep-alive\n\n"

_MEDIA_FORMATS: dict[str, LogFormat] = {
    SSE_CONTENT_TYPE: "sse",
    NDJSON_CONTENT_TYPE: "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    JSON_CONTENT_TYPE: "json",
}


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value.strip())))
            except ValueError:
                return 0.0
    return 1.0


def negotiate_log_format(accept: str | None) -> LogFormat:
    """The best log format for an ``Accept`` header; JSON pages when nothing specific is asked."""
    best: tuple[float, int, LogFormat] | None = None
    for position, entry in enumerate((accept or "").split(",")):
        media, *params = entry.split(";")
        media = media.strip().lower()
        fmt = _MEDIA_FORMATS.get(media)
        quality = _quality(params)
        if fmt is None or quality <= 0:
            continue
        rank = (quality, -position, fmt)
        if best is None or rank[:2] > best[:2]:
            best = rank
    return best[2] if best else "json"


def parse_last_event_id(value: str | None) -> int | None:
    """The sequence in a ``Last-Event-ID`` header (or ``after`` parameter); None when absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if not text.isdigit():
        raise ValidationFailed(
            f"Last-Event-ID must be a log sequence number, got {text[:40]!r}.",
            problems=[{"path": "header.last-event-id", "message": "expected a non-negative integer"}],
            remediation="Send back the id of the last event received, or omit the header to start over.",
        )
    return int(text)


def _event_dict(event: LogEventOut | Mapping[str, Any]) -> dict[str, Any]:
    model = event if isinstance(event, LogEventOut) else LogEventOut.model_validate(event)
    return model.model_dump(mode="json", exclude_none=True)


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def sse_event(event: LogEventOut | Mapping[str, Any]) -> str:
    """One SSE event: ``id``, ``event``, ``data`` (JSON on one line) and a blank line."""
    data = _event_dict(event)
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"id: {data['sequence']}\nevent: {_one_line(data['eventType'])}\ndata: {payload}\n\n"


def render_sse(
    events: Iterable[LogEventOut | Mapping[str, Any]], *, retry_ms: int | None = DEFAULT_RETRY_MS
) -> str:
    """An SSE body: an optional ``retry:`` hint, then each event."""
    head = f"retry: {int(retry_ms)}\n\n" if retry_ms else ""
    return head + "".join(sse_event(e) for e in events)


def render_ndjson(events: Iterable[LogEventOut | Mapping[str, Any]]) -> str:
    """One JSON event per line."""
    return "".join(
        json.dumps(_event_dict(e), separators=(",", ":"), ensure_ascii=False) + "\n" for e in events
    )


def log_page(events: Iterable[LogEventOut | Mapping[str, Any]], *, complete: bool) -> LogPage:
    """A JSON page; ``nextCursor`` is the last sequence returned (or None when the page is empty)."""
    items = [e if isinstance(e, LogEventOut) else LogEventOut.model_validate(e) for e in events]
    cursor = str(items[-1].sequence) if items else None
    return LogPage(items=items, nextCursor=cursor, complete=complete)


def last_event_id_in(sse_text: str) -> str | None:
    """The last ``id:`` value in an SSE body, or None when it has none."""
    last: str | None = None
    for line in sse_text.splitlines():
        if line.startswith("id:"):
            last = line[3:].removeprefix(" ")
    return last


def log_response(
    events: Iterable[LogEventOut | Mapping[str, Any]],
    *,
    fmt: LogFormat,
    complete: bool,
    retry_ms: int | None = DEFAULT_RETRY_MS,
) -> Response[str]:
    """The logs response in ``fmt``, flagged with ``x-taskrunner-stream-complete`` when done."""
    headers = {STREAM_COMPLETE_HEADER: "true" if complete else "false", "Cache-Control": "no-cache"}
    if fmt == "sse":
        return Response(
            200, f"{SSE_CONTENT_TYPE}; charset=utf-8", render_sse(events, retry_ms=retry_ms), headers
        )
    if fmt == "ndjson":
        return Response(200, NDJSON_CONTENT_TYPE, render_ndjson(events), headers)
    page = log_page(events, complete=complete)
    return Response(200, JSON_CONTENT_TYPE, page.model_dump_json(exclude_none=True), headers)
