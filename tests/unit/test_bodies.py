"""Which request bodies the handlers refuse before validation, and with which problem."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from taskrunner.api.bodies import MAX_BODY_DEPTH, body_problem


def event(body: str | bytes, content_type: str | None = "application/json") -> dict[str, Any]:
    headers = {"content-type": content_type} if content_type else {}
    if isinstance(body, bytes):
        encoded = base64.b64encode(body).decode("ascii")
        return {"rawPath": "/api/runs", "headers": headers, "body": encoded, "isBase64Encoded": True}
    return {"rawPath": "/api/runs", "headers": headers, "body": body, "isBase64Encoded": False}


def nested(depth: int) -> str:
    return json.dumps({"inputs": json.loads("[" * (depth - 1) + "]" * (depth - 1))})


@pytest.mark.parametrize(
    "accepted",
    [
        event('{"packRef": "hello@1.0.0"}'),
        event('{"packRef": "x"}', "application/json; charset=utf-8"),
        event('{"packRef": "x"}', None),
        event('{"manifest": "caf\\u00e9 \\ud83d\\ude00"}'),  # a surrogate pair is a character
        event(b'{"manifest": "caf\xc3\xa9"}'),
        event(nested(MAX_BODY_DEPTH)),
        event('{"packRef": '),  # plain syntax errors are left to request validation (422)
        event(""),
    ],
)
def test_readable_bodies_pass(accepted: dict[str, Any]) -> None:
    assert body_problem(accepted) is None


@pytest.mark.parametrize(
    ("refused", "status", "words"),
    [
        (event("a=1", "application/x-www-form-urlencoded"), 415, "application/x-www-form-urlencoded"),
        (event(b"\xff\xfe", "multipart/form-data"), 415, "multipart/form-data"),
        (event(b'{"manifest": "\xff"}'), 400, "not valid UTF-8"),
        (event("not base64!") | {"isBase64Encoded": True}, 400, "not valid UTF-8"),
        (event('{"manifest": "\\ud800"}'), 400, "lone surrogate"),
        (event('{"\\udfff": 1}'), 400, "lone surrogate"),
        (event('{"n": ' + "9" * 4301 + "}"), 400, "number"),
        (event(nested(MAX_BODY_DEPTH + 1)), 400, f"deeper than {MAX_BODY_DEPTH}"),
        (event("[" * 100_000 + "]" * 100_000), 400, f"deeper than {MAX_BODY_DEPTH}"),
    ],
    ids=[
        "form",
        "multipart",
        "not-utf8",
        "bad-base64",
        "surrogate",
        "surrogate-key",
        "int",
        "depth",
        "recursion",
    ],
)
def test_unreadable_bodies_are_problems(refused: dict[str, Any], status: int, words: str) -> None:
    document = body_problem(refused)

    assert document is not None
    assert (document["status"], document["instance"]) == (status, "/api/runs")
    assert document["code"] == ("MalformedBody" if status == 400 else "UnsupportedMediaType")
    assert words in document["detail"]
    assert "application/json" in document["remediation"]
