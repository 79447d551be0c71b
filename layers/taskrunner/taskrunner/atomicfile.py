"""Atomic, durable file writes: the one way files are replaced or created under a name others read.

Data goes to a uniquely named temp file ``.<name>.<random>.tmp`` beside the target (never a name shared
by two writers, whatever their process or thread), is fsynced, then renamed over the target (replace) or
hard-linked to it (create once: the first writer wins, the others read the winner's bytes); the directory
is fsynced so the new name survives a crash. Readers see the old or the new file, never a torn one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _temp_copy(path: Path, chunks: Iterable[bytes], mode: int) -> Path:
    """A fsynced temp file beside ``path`` holding ``chunks`` (removed again if writing fails)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        try:
            if mode != 0o600:
                os.fchmod(fd, mode)
            for chunk in chunks:
                write_all(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path: Path, data: bytes | Iterable[bytes], *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (bytes or a stream of chunks) atomically and durably."""
    tmp = _temp_copy(path, [data] if isinstance(data, bytes) else data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def create_once(path: Path, data: bytes, *, mode: int = 0o600) -> bool:
    """Publish ``data`` at ``path`` unless a file is already there; True when this call created it."""
    tmp = _temp_copy(path, [data], mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def read_or_create(path: Path, make: Callable[[], bytes], *, mode: int = 0o600) -> bytes:
    """The bytes of ``path``; when absent, created first from ``make()`` (the directory too, mode 0700).

    Safe under any number of concurrent first callers: exactly one file is published and every caller
    returns its bytes.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    create_once(path, make(), mode=mode)
    return path.read_bytes()
