"""Streaming SHA-256 of files and streams in fixed-size chunks (memory does not grow with size)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from taskrunner.streams import CHUNK_SIZE, HashingReader, Readable

__all__ = ["CHUNK_SIZE", "FileDigest", "HashingReader", "Readable", "hash_bytes", "hash_file", "hash_stream"]


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


def json_failure(exc: BaseException) -> str:
    """Why ``json.loads`` refused a document (a ``RecursionError`` means it is nested too deeply)."""
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
