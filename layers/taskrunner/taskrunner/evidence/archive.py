"""One streaming pass over a bundle: the digest of every entry, the bytes of the small control files.

Nothing is extracted to disk; artifacts are hashed in fixed-size chunks as they stream by.
"""

from __future__ import annotations

import io
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from taskrunner.evidence import layout
from taskrunner.evidence.hashing import CHUNK_SIZE, FileDigest, HashingReader

CONTROL_FILES = frozenset(
    {
        layout.MANIFEST,
        layout.MANIFEST_DSSE,
        layout.PLAN,
        layout.APPROVER_KEYS,
        layout.INPUTS_LOCK,
        layout.ATTESTATION,
        layout.APPROVALS_LEDGER,
        layout.PACK_ENVELOPE,
        layout.PACK_SBOM,
    }
)
MAX_CONTROL_FILE = 64 * 1024 * 1024
_TYPE_NAMES = {
    tarfile.DIRTYPE: "directory",
    tarfile.SYMTYPE: "symbolic link",
    tarfile.LNKTYPE: "hard link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
}


@dataclass
class ArchiveScan:
    """What a pass over a bundle found."""

    digests: dict[str, FileDigest] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def scan_archive(path: Path) -> ArchiveScan:
    """Read the ``tar.gz`` at ``path`` once; problems (bad gzip, odd entries) are collected, not raised."""
    scan = ArchiveScan()
    try:
        raw = path.open("rb", buffering=0)
    except OSError as exc:
        scan.problems.append(f"cannot open bundle {path}: {exc.strerror}")
        return scan
    with raw:
        stream = GzipStreamReader(raw)
        try:
            _read_entries(stream, scan)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            scan.problems.append(f"bundle is not a readable tar.gz: {exc or type(exc).__name__}")
    return scan


def _read_entries(stream: GzipStreamReader, scan: ArchiveScan) -> None:
    with tarfile.TarFile(fileobj=stream, mode="r") as tar:  # type: ignore[arg-type]
        for member in tar:
            name = member.name
            if problem := _name_problem(name):
                scan.problems.append(f"entry {name!r} {problem}")
                continue
            if not member.isreg():
                kind = _TYPE_NAMES.get(member.type, f"type {member.type!r}")
                scan.problems.append(f"{name}: is a {kind}; a bundle holds regular files only")
                continue
            if name in scan.digests:
                scan.problems.append(f"{name}: appears more than once in the bundle")
                continue
            content = tar.extractfile(member)
            if content is None:  # pragma: no cover - regular files always have content
                continue
            keep = name in CONTROL_FILES and member.size <= MAX_CONTROL_FILE
            reader = HashingReader(content)
            parts = []
            while chunk := reader.read(CHUNK_SIZE):
                if keep:
                    parts.append(chunk)
            scan.digests[name] = FileDigest(reader.hexdigest(), reader.size)
            if keep:
                scan.contents[name] = b"".join(parts)
            elif name in CONTROL_FILES:
                scan.problems.append(f"{name}: is larger than {MAX_CONTROL_FILE} bytes")
        # Read to the end of the gzip stream, so its CRC is checked; only zero padding may follow.
        trailing = False
        while chunk := stream.read(CHUNK_SIZE):
            trailing = trailing or chunk.count(0) != len(chunk)
        if trailing:
            scan.problems.append("bundle has data after the end of the tar archive")


def _name_problem(name: str) -> str | None:
    if name.startswith("/") or "\\" in name or any(part in ("", ".", "..") for part in name.split("/")):
        return "is not a plain relative path"
    return None


class GzipStreamReader:
    """Forward-only reader of the decompressed bytes of a gzip file.

    Inflates at most ``CHUNK_SIZE`` bytes at a time (a highly compressed entry cannot blow up memory),
    checks each member's CRC-32 and length (zlib does), and supports concatenated members. ``seek``
    moves forward only, which is all a sequential ``tarfile`` pass needs.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._chunk = b""
        self._offset = 0
        self._position = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self._position:
            raise OSError("the bundle stream can only move forward")
        while self._position < target and self.read(min(CHUNK_SIZE, target - self._position)):
            pass
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(CHUNK_SIZE), b""))
        parts: list[bytes] = []
        wanted = size
        while wanted:
            if self._offset == len(self._chunk):
                self._chunk, self._offset = self._inflate(), 0
                if not self._chunk:
                    break
            take = min(wanted, len(self._chunk) - self._offset)
            whole = self._offset == 0 and take == len(self._chunk)
            parts.append(self._chunk if whole else self._chunk[self._offset : self._offset + take])
            self._offset += take
            wanted -= take
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._position += len(data)
        return data

    def _inflate(self) -> bytes:
        """Up to ``CHUNK_SIZE`` more decompressed bytes; empty at the end of the stream."""
        while not self._done:
            if self._inflater.eof:
                rest = self._inflater.unused_data or self._raw.read(CHUNK_SIZE)
                if not rest:
                    self._done = True
                    break
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # another gzip member
                data = self._inflater.decompress(rest, CHUNK_SIZE)
            elif self._inflater.unconsumed_tail:
                data = self._inflater.decompress(self._inflater.unconsumed_tail, CHUNK_SIZE)
            else:
                compressed = self._raw.read(CHUNK_SIZE)
                if not compressed:
                    raise EOFError("the gzip stream ends before its end-of-stream marker (truncated bundle)")
                data = self._inflater.decompress(compressed, CHUNK_SIZE)
            if data:
                return data
        return b""
