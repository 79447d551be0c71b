"""Local key material under ``TASKRUNNER_HOME`` (created on first use, owner-only permissions)."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path


def taskrunner_home() -> Path:
    """``$TASKRUNNER_HOME`` or ``./.taskrunner``."""
    return Path(os.environ.get("TASKRUNNER_HOME") or ".taskrunner")


def load_or_create_secret(path: Path, size: int = 32) -> bytes:
    """Read a random secret from ``path``, creating it atomically (mode 0600) when absent."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # unique per writer
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secrets.token_bytes(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # first writer wins; a concurrent creator reads the winner's key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


def local_redaction_key() -> bytes:
    """The deployment redaction key of the local runtime."""
    return load_or_create_secret(taskrunner_home() / "keys" / "redaction.key")
