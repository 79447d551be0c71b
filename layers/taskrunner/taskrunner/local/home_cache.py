"""Results the local runtime computes at start and keeps in ``$TASKRUNNER_HOME/cache``, authenticated.

Each entry is ``<directory>/<sha256(version, key)>``: the HMAC-SHA256 of its value under this directory's
key (``.key``, mode 0600, the directory 0700), then the value. An entry that does not carry this key's tag
is a miss (the caller computes the value again and replaces it), so nothing read back was written by
anyone but this home. Writes are best effort (a full disk costs a recomputation, nothing else); the
``keep`` most recently written entries are kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from taskrunner.atomicfile import read_or_create, write_atomic
from taskrunner.observability import logger

_TAG = hashlib.sha256().digest_size


class HomeCache:
    """Authenticated byte values under ``directory``, keyed by text, for one ``version`` of their producer."""

    def __init__(self, directory: Path, version: str, *, keep: int = 128) -> None:
        self.directory = directory
        self._version = version.encode()
        self._keep = keep
        self._key: bytes | None = None

    def _path(self, key: str) -> Path:
        return self.directory / hashlib.sha256(self._version + b"\0" + key.encode()).hexdigest()

    def _signing_key(self) -> bytes:
        if self._key is None:
            self._key = read_or_create(self.directory / ".key", lambda: secrets.token_bytes(32))
        return self._key

    def load(self, key: str) -> bytes | None:
        """The value stored for ``key``, or None (absent, foreign, torn or unreadable)."""
        try:
            data = self._path(key).read_bytes()
            signing_key = self._signing_key()
        except OSError:
            return None
        tag, value = data[:_TAG], data[_TAG:]
        if not hmac.compare_digest(tag, hmac.new(signing_key, value, hashlib.sha256).digest()):
            return None
        return value

    def save(self, key: str, value: bytes) -> None:
        """Store ``value`` for ``key``; failures are logged, never raised."""
        try:
            tag = hmac.new(self._signing_key(), value, hashlib.sha256).digest()
            write_atomic(self._path(key), tag + value)
            self._prune()
        except OSError as exc:  # disk full, read-only home: compute it next time
            logger.warning("could not keep a computed value", extra={"error": repr(exc)})

    def _prune(self) -> None:
        entries = [entry for entry in os.scandir(self.directory) if not entry.name.startswith(".")]
        if len(entries) <= self._keep:
            return
        entries.sort(key=lambda entry: entry.stat().st_mtime_ns)
        for entry in entries[: len(entries) - self._keep]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
