"""mongomock-ng does not implement the ``hello`` command; the Mongo store asks it once per client whether
the server runs transactions. :func:`answer_hello_as_standalone` makes mongomock-ng answer as a standalone
``mongod`` does (no ``setName``, no ``msg: isdbgrid``), which is what mongomock-ng models: no transactions.
"""

from __future__ import annotations

from typing import Any

import pytest

STANDALONE_HELLO = {"isWritablePrimary": True, "maxWireVersion": 21, "ok": 1.0}


def answer_hello_as_standalone(monkeypatch: pytest.MonkeyPatch) -> None:
    from mongomock_ng.database import Database

    command = Database.command

    def with_hello(self: Any, cmd: Any, *args: Any, **kwargs: Any) -> Any:
        if cmd == "hello" or (isinstance(cmd, dict) and next(iter(cmd), None) == "hello"):
            return dict(STANDALONE_HELLO)
        return command(self, cmd, *args, **kwargs)

    monkeypatch.setattr(Database, "command", with_hello)
