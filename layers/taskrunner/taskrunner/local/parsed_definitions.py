"""Parsed state machine definitions kept on disk: a definition is parsed once per home, not once per process.

moto's ANTLR parser costs ~3.5 ms per state (a 1,000-step pack: ~4 s of every ``taskrunner run``); loading
the parsed program back costs ~0.04 ms per state. An entry is ``<dir>/<sha256(moto version, definition)>``:
the HMAC-SHA256 of the pickled program under this directory's key (``.key``, mode 0600, the directory 0700),
then the pickle. An entry that does not carry this key's tag is never unpickled: it is a miss, parsed again
and replaced, as is a corrupt or unreadable one. Writes are best effort (a full disk costs a parse, nothing
else); the ``KEEP`` most recently written entries are kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import pickle
import secrets
from pathlib import Path

from taskrunner.atomicfile import read_or_create, write_atomic
from taskrunner.observability import logger

KEEP = 128
_TAG = hashlib.sha256().digest_size


class ParsedDefinitions:
    """Pickled parse results of moto's ASL parser under ``directory``, keyed by moto version and definition."""

    def __init__(self, directory: Path, moto_version: str) -> None:
        self.directory = directory
        self._version = moto_version.encode()
        self._key: bytes | None = None

    def _path(self, definition: str) -> Path:
        digest = hashlib.sha256(self._version + b"\0" + definition.encode())
        return self.directory / digest.hexdigest()

    def _signing_key(self) -> bytes:
        if self._key is None:
            self._key = read_or_create(self.directory / ".key", lambda: secrets.token_bytes(32))
        return self._key

    def load(self, definition: str) -> object | None:
        """The stored parse of ``definition``, or None (absent, foreign, corrupt or unreadable)."""
        try:
            data = self._path(definition).read_bytes()
            key = self._signing_key()
        except OSError:
            return None
        tag, body = data[:_TAG], data[_TAG:]
        if not hmac.compare_digest(tag, hmac.new(key, body, hashlib.sha256).digest()):
            return None
        try:
            return pickle.loads(body)  # noqa: S301 - bytes this home's key authenticated
        except Exception as exc:  # e.g. a class moto renamed within one version string
            logger.warning("discarding an unreadable parsed definition", extra={"error": repr(exc)})
            return None

    def save(self, definition: str, parsed: object) -> None:
        """Store ``parsed`` for ``definition``; failures are logged, never raised."""
        try:
            body = pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL)
            tag = hmac.new(self._signing_key(), body, hashlib.sha256).digest()
            write_atomic(self._path(definition), tag + body)
            self._prune()
        except Exception as exc:  # not picklable, disk full, read-only home: parse next time
            logger.warning("could not store a parsed definition", extra={"error": repr(exc)})

    def _prune(self) -> None:
        entries = [entry for entry in os.scandir(self.directory) if not entry.name.startswith(".")]
        if len(entries) <= KEEP:
            return
        entries.sort(key=lambda entry: entry.stat().st_mtime_ns)
        for entry in entries[: len(entries) - KEEP]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
