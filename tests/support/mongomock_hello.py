"""mongomock-ng does not implement the ``hello`` command; the Mongo store asks it once per client whether
the server runs transactions. :func:`answer_hello` makes mongomock-ng answer as a standalone ``mongod`` (no
``setName``: no transactions, the default) or as a replica-set member does. mongomock-ng's transactions
roll a whole collection back on abort, which is faithful for one writer at a time only.
"""

from __future__ import annotations

from typing import Any

import pytest

STANDALONE_HELLO = {"isWritablePrimary": True, "maxWireVersion": 21, "ok": 1.0}
REPLICA_SET_HELLO = {**STANDALONE_HELLO, "setName": "rs0", "hosts": ["127.0.0.1:27017"]}


def answer_hello(monkeypatch: pytest.MonkeyPatch, reply: dict[str, Any]) -> None:
    from mongomock_ng.database import Database

    command = Database.command

    def with_hello(self: Any, cmd: Any, *args: Any, **kwargs: Any) -> Any:
        if cmd == "hello" or (isinstance(cmd, dict) and next(iter(cmd), None) == "hello"):
            return dict(reply)
        return command(self, cmd, *args, **kwargs)

    monkeypatch.setattr(Database, "command", with_hello)


def answer_hello_as_standalone(monkeypatch: pytest.MonkeyPatch) -> None:
    answer_hello(monkeypatch, STANDALONE_HELLO)
