"""A deterministic, streaming gzip writer that stores incompressible data instead of deflating it.

The stream is cut into fixed-size chunks. A chunk whose samples do not compress is written as
DEFLATE stored blocks (a copy at memory speed); other chunks go through zlib. Every decision depends
only on the bytes written, the header carries no name and mtime 0, so the same input always gives
the same output (with the same zlib build). The result is one ordinary gzip member.

Compressed output is written and hashed on a worker thread (both release the GIL), so the caller's
own hashing and reading overlap with it; the queue between them holds a few chunks at most.
"""

from __future__ import annotations

import hashlib
import queue
import struct
import threading
import zlib
from typing import BinaryIO

from taskrunner.errors import TaskRunnerError
from taskrunner.evidence.hashing import CHUNK_SIZE

# RFC 1952 header: magic, CM=deflate, FLG=0 (no name/comment/extra), MTIME=0, XFL=0, OS=255 (unknown).
_HEADER = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"
# RFC 1951 empty stored block with BFINAL=1 ends a stream whose last block was not final.
_FINAL_EMPTY_BLOCK = b"\x01\x00\x00\xff\xff"
_STORED_MAX = 0xFFFF
_SAMPLES = 4
_SAMPLE_SIZE = 4096
_STORE_RATIO = 0.9  # a chunk is stored when its samples deflate to more than 90% of their size
_PIPE_DEPTH = 4


class _OutputPipe:
    """Writes and hashes byte strings on a worker thread, in order; errors surface on the next call."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_PIPE_DEPTH)
        self._hasher = hashlib.sha256()
        self._error: Exception | None = None
        self.size = 0
        self._thread = threading.Thread(target=self._drain, name="evidence-gzip-writer", daemon=True)
        self._thread.start()

    def put(self, data: bytes) -> None:
        self._raise_error()
        self._queue.put(data)
        self.size += len(data)

    def finish(self) -> str:
        """Wait until everything is written; the hex SHA-256 of all of it."""
        self._stop()
        self._raise_error()
        return self._hasher.hexdigest()

    def abort(self) -> None:
        """Stop the worker without raising (the stream is being abandoned)."""
        self._stop()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _raise_error(self) -> None:
        if isinstance(self._error, TaskRunnerError):  # the destination's own, clear error
            raise self._error
        if self._error is not None:
            raise TaskRunnerError(
                f"cannot write the bundle: {self._error}",
                code="BundleWriteFailed",
                remediation="check the destination (free space, permissions) and seal again",
            ) from self._error

    def _drain(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._out.write(data)
                    self._hasher.update(data)
                except Exception as exc:  # reported to the producer on its next call
                    self._error = exc


class DeterministicGzipWriter:
    """File-like sink: ``write`` uncompressed bytes, ``close`` to finish the gzip stream.

    ``tell`` reports uncompressed bytes written (what ``tarfile`` needs); ``sha256`` and
    ``compressed_size`` describe the compressed output after ``close``. Call ``abort`` instead of
    ``close`` to abandon an unfinished stream.
    """

    def __init__(self, out: BinaryIO, *, level: int = 6, chunk_size: int = CHUNK_SIZE) -> None:
        self._pipe = _OutputPipe(out)
        self._level = level
        self._chunk_size = chunk_size
        self._pending = bytearray()
        self._deflater: zlib._Compress | None = None
        self._crc = 0
        self._size = 0
        self.sha256 = ""
        self.closed = False
        self._emit(_HEADER)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.closed:
            raise ValueError("write to a closed gzip stream")
        view = memoryview(data).cast("B")
        written = len(view)
        self._crc = zlib.crc32(view, self._crc)
        self._size += written
        if self._pending:
            room = self._chunk_size - len(self._pending)
            self._pending += view[:room]
            view = view[room:]
            if len(self._pending) < self._chunk_size:
                return written
            chunk, self._pending = self._pending, bytearray()
            self._encode(memoryview(chunk))
        # Chunk boundaries fall at fixed stream offsets, whatever the sizes of the writes.
        while len(view) >= self._chunk_size:
            self._encode(view[: self._chunk_size])
            view = view[self._chunk_size :]
        self._pending += view
        return written

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        """No-op: output is produced per chunk; ``close`` writes the rest."""

    def close(self) -> None:
        """Encode what is buffered and write the final block and the gzip trailer (idempotent)."""
        if self.closed:
            return
        if self._pending:
            chunk, self._pending = self._pending, bytearray()
            self._encode(memoryview(chunk))
        if self._deflater is not None:
            self._emit(self._deflater.flush(zlib.Z_FINISH))
            self._deflater = None
        else:
            self._emit(_FINAL_EMPTY_BLOCK)
        self._emit(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        self.closed = True
        self.sha256 = self._pipe.finish()

    def abort(self) -> None:
        """Abandon the stream: stop writing, leave ``out`` incomplete."""
        self.closed = True
        self._pipe.abort()

    @property
    def compressed_size(self) -> int:
        """Bytes of gzip output produced so far."""
        return self._pipe.size

    def _encode(self, chunk: memoryview) -> None:
        if self._incompressible(chunk):
            if self._deflater is not None:
                # Byte-align and empty the deflater; its history must not span the stored bytes.
                self._emit(self._deflater.flush(zlib.Z_SYNC_FLUSH))
                self._deflater = None
            self._emit(self._stored_blocks(chunk))
        else:
            if self._deflater is None:
                self._deflater = zlib.compressobj(self._level, zlib.DEFLATED, -zlib.MAX_WBITS)
            self._emit(self._deflater.compress(chunk))

    @staticmethod
    def _incompressible(chunk: memoryview) -> bool:
        length = len(chunk)
        if length < _SAMPLES * _SAMPLE_SIZE:
            return False
        sample = b"".join(
            chunk[offset : offset + _SAMPLE_SIZE] for offset in range(0, length, length // _SAMPLES)
        )[: _SAMPLES * _SAMPLE_SIZE]
        return len(zlib.compress(sample, 1)) > _STORE_RATIO * len(sample)

    @staticmethod
    def _stored_blocks(chunk: memoryview) -> bytes:
        parts: list[bytes | memoryview] = []
        for offset in range(0, len(chunk), _STORED_MAX):
            block = chunk[offset : offset + _STORED_MAX]
            # BFINAL=0, BTYPE=00 (stored), padded to the byte boundary, then LEN and NLEN.
            parts.append(struct.pack("<BHH", 0, len(block), len(block) ^ 0xFFFF))
            parts.append(block)
        return b"".join(parts)

    def _emit(self, data: bytes) -> None:
        if data:
            self._pipe.put(data)
