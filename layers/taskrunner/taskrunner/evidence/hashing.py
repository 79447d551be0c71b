"""Streaming SHA-256 of files and streams in fixed-size chunks (memory does not grow with size)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

CHUNK_SIZE = 1024 * 1024
"""Bytes read per step by every streaming reader and writer of the evidence package."""


class Readable(Protocol):
    """Anything with a binary ``read(size)``."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class FileDigest:
    """Hex SHA-256 and byte size of some content."""

    sha256: str
    size: int

    @property
    def digest(self) -> str:
        """``sha256:<hex>``."""
        return "sha256:" + self.sha256


def hash_stream(stream: Readable, chunk_size: int = CHUNK_SIZE) -> FileDigest:
    """Digest of everything left in ``stream``, read ``chunk_size`` bytes at a time."""
    hasher = hashlib.sha256()
    size = 0
    while chunk := stream.read(chunk_size):
        hasher.update(chunk)
        size += len(chunk)
    return FileDigest(hasher.hexdigest(), size)


def hash_file(path: Path, chunk_size: int = CHUNK_SIZE) -> FileDigest:
    """Digest of the file at ``path``."""
    with path.open("rb", buffering=0) as stream:
        return hash_stream(stream, chunk_size)


def hash_bytes(data: bytes) -> FileDigest:
    """Digest of in-memory ``data``."""
    return FileDigest(hashlib.sha256(data).hexdigest(), len(data))


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

    def at_end(self) -> bool:
        """True when the wrapped stream has no more bytes (reads one byte to find out)."""
        extra = self._stream.read(1)
        if extra:
            self._hasher.update(extra)
            self.size += len(extra)
        return not extra

    def result(self) -> FileDigest:
        return FileDigest(self._hasher.hexdigest(), self.size)
