"""The MongoDB wire-protocol server of the tests: mongoeco (in memory) from ``.venv-mongo`` (Python 3.13).

``make test`` installs ``.venv-mongo``; the store, migration and importer suites reach the server with the
real pymongo client, and the SAM tests hand it to the built functions.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[2]
MONGO_PYTHON = REPO / ".venv-mongo" / "bin" / "python"
MONGO_SERVER = REPO / "tools" / "mongo-wire" / "serve.py"
MISSING = f"{MONGO_PYTHON} is missing: `make .venv-mongo/.installed` installs the MongoDB wire server"


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def available() -> bool:
    """Whether the server can be started here; in CI (``CI=true``) it must be."""
    return MONGO_PYTHON.exists() or os.environ.get("CI", "").lower() == "true"


@contextmanager
def mongo_server(host: str = "127.0.0.1") -> Iterator[str]:
    """The wire server on a free port of ``host``; yields its connection string (database ``taskrunner``)."""
    if not MONGO_PYTHON.exists():
        raise RuntimeError(MISSING)
    port = free_port(host)
    process = subprocess.Popen(
        [str(MONGO_PYTHON), str(MONGO_SERVER), host, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once listening
        if not line.startswith("mongodb://"):
            raise RuntimeError(f"the MongoDB wire server did not start (exit {process.poll()})")
        yield f"mongodb://{host}:{port}/taskrunner?directConnection=true"
    finally:
        process.terminate()
        process.wait(timeout=10)


def database_uri(server_uri: str, database: str) -> str:
    """``server_uri`` with ``database`` as its default database."""
    parts = urlsplit(server_uri)
    return urlunsplit(parts._replace(path=f"/{database}"))
