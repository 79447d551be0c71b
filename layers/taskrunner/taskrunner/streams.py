"""Fixed-size chunk streaming with on-the-fly SHA-256 (memory never grows with file size)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Protocol

CHUNK_SIZE = 1024 * 1024
"""Bytes read per step by every streaming reader and writer."""


class Readable(Protocol):
    """Anything with a binary ``read(size)``."""

    def read(self, size: int = -1, /) -> bytes: ...


class HashingReader:
    """Wraps a binary stream; hashes and counts every byte read through it."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self._hasher = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._hasher.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    def at_end(self) -> bool:
        """True when the wrapped stream has no more bytes (reads one byte to find out)."""
        extra = self._stream.read(1)
        if extra:
            self._hasher.update(extra)
            self.size += len(extra)
        return not extra

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()


def iter_chunks(stream: Readable, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk
