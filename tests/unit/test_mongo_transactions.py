"""Whether the Mongo store writes a log batch in a transaction: decided from the server's ``hello`` reply,
asked once per client."""

from __future__ import annotations

from typing import Any

import pytest
from taskrunner.store.mongo_store import supports_transactions


class _Admin:
    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.asked: list[str] = []

    def command(self, name: str) -> dict[str, Any]:
        self.asked.append(name)
        return dict(self.reply)


class _Client:
    """A client whose admin database answers ``hello`` with a recorded server reply."""

    def __init__(self, reply: dict[str, Any]) -> None:
        self.admin = _Admin(reply)


STANDALONE = {"isWritablePrimary": True, "maxWireVersion": 21, "ok": 1.0}
REPLICA_SET_MEMBER = {
    **STANDALONE,
    "setName": "rs0",
    "hosts": ["127.0.0.1:27017"],
    "primary": "127.0.0.1:27017",
}
MONGOS = {**STANDALONE, "msg": "isdbgrid"}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [(STANDALONE, False), (REPLICA_SET_MEMBER, True), (MONGOS, True), ({**STANDALONE, "setName": ""}, False)],
    ids=["standalone", "replica-set", "mongos", "empty-set-name"],
)
def test_transactions_follow_the_server_topology(reply: dict[str, Any], expected: bool) -> None:
    assert supports_transactions(_Client(reply)) is expected  # type: ignore[arg-type]


def test_the_answer_is_cached_per_client() -> None:
    standalone, replica = _Client(STANDALONE), _Client(REPLICA_SET_MEMBER)
    for _ in range(3):
        assert not supports_transactions(standalone)  # type: ignore[arg-type]
        assert supports_transactions(replica)  # type: ignore[arg-type]
    assert standalone.admin.asked == ["hello"]
    assert replica.admin.asked == ["hello"]


class _EqualClient(_Client):
    """Clients of one address compare equal (as pymongo's and mongomock's do), whatever server they reach."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _EqualClient)

    def __hash__(self) -> int:
        return 27017


def test_the_answer_is_per_client_object_not_per_equal_client() -> None:
    replica = _EqualClient(REPLICA_SET_MEMBER)
    assert supports_transactions(replica)  # type: ignore[arg-type]
    standalone = _EqualClient(STANDALONE)
    assert standalone == replica
    assert not supports_transactions(standalone)  # type: ignore[arg-type]
    assert supports_transactions(replica)  # type: ignore[arg-type]
    del replica  # a collected client's entry goes; the live one keeps its own
    assert not supports_transactions(standalone)  # type: ignore[arg-type]
    assert standalone.admin.asked == ["hello"]
