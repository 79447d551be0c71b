"""Fixed-size chunk streaming with on-the-fly SHA-256 (memory never grows with file size)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024


class HashingReader:
    """Wraps a binary stream; hashes and counts every byte read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def iter_chunks(stream: BinaryIO, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk
