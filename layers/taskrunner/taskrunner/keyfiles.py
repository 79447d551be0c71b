"""Local key material under ``TASKRUNNER_HOME`` (created on first use, owner-only permissions)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from taskrunner.atomicfile import read_or_create


def taskrunner_home() -> Path:
    """``$TASKRUNNER_HOME`` or ``./.taskrunner``."""
    return Path(os.environ.get("TASKRUNNER_HOME") or ".taskrunner")


def load_or_create_secret(path: Path, size: int = 32) -> bytes:
    """Read a random secret from ``path``, creating it atomically (mode 0600) when absent."""
    return read_or_create(path, lambda: secrets.token_bytes(size))


def local_redaction_key() -> bytes:
    """The deployment redaction key of the local runtime."""
    return load_or_create_secret(taskrunner_home() / "keys" / "redaction.key")
