"""What `db migrate` says when MongoDB refuses a change, for the replies a MongoDB server sends (code,
codeName, errmsg as in the server's error documents); the wire-server tests cover the live replies."""

from __future__ import annotations

import pytest
from pymongo.errors import OperationFailure
from taskrunner.store.migrations import ActionKind, refusal


def reply(code: int, code_name: str, errmsg: str) -> OperationFailure:
    return OperationFailure(errmsg, code, {"ok": 0.0, "errmsg": errmsg, "code": code, "codeName": code_name})


def test_unauthorized_points_at_the_privileges() -> None:
    failure = refusal(
        reply(13, "Unauthorized", "not authorized on taskrunner to execute command { collMod: ... }"),
        "set-validator pack_runs",
        kind="set-validator",
    )
    assert failure.message.startswith("MongoDB refused set-validator pack_runs: the user is not authorized")
    assert "privileges createCollection, collMod, createIndex" in failure.remediation


@pytest.mark.parametrize(
    ("kind", "hint"),
    [
        ("set-validator", "--skip-validators"),
        ("set-ttl", "drop the index it changes"),
        (None, "use a MongoDB server that implements collMod"),
    ],
)
def test_command_not_found_names_the_command(kind: ActionKind | None, hint: str) -> None:
    failure = refusal(reply(59, "CommandNotFound", "no such command: 'collMod'"), "the change", kind=kind)
    assert "the server does not support the collMod command" in failure.message
    assert hint in failure.remediation
    assert "privileges" not in failure.remediation


@pytest.mark.parametrize(
    ("code", "code_name", "errmsg", "keyword"),
    [
        (
            9,
            "FailedToParse",
            "$jsonSchema keyword 'patternProperties' is not currently supported",
            "patternProperties",
        ),
        (9, "FailedToParse", "Unknown $jsonSchema keyword: foo", "foo"),
        (2, "BadValue", "$jsonSchema additionalProperties must be a bool", "additionalProperties"),
    ],
)
def test_unsupported_schema_keyword_is_named(code: int, code_name: str, errmsg: str, keyword: str) -> None:
    failure = refusal(
        reply(code, code_name, errmsg), "create-collection pack_run_logs", kind="create-collection"
    )
    assert f"does not support the $jsonSchema keyword {keyword} of its validator" in failure.message
    assert "--skip-validators" in failure.remediation


def test_anything_else_shows_the_servers_message() -> None:
    errmsg = "An existing index has the same name as the requested index"
    failure = refusal(reply(86, "IndexKeySpecsConflict", errmsg), "create-index pack_runs.updatedAt_-1")
    assert failure.message == f"MongoDB refused create-index pack_runs.updatedAt_-1: {errmsg} (code 86)"
    assert "privileges" not in failure.remediation
