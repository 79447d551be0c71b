"""Artifact store on the local file system (the embedded default): ``<root>/<key>``, atomic, streamed."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from taskrunner.atomicfile import write_atomic
from taskrunner.engine.ports import StoredObject
from taskrunner.errors import NotFound, ValidationFailed
from taskrunner.keys import check_key
from taskrunner.streams import HashingReader, iter_chunks


class FileArtifactStore:
    """Objects are files under ``root``, each written atomically (:func:`~taskrunner.atomicfile.write_atomic`)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root) or key.endswith("/"):
            raise ValidationFailed(f"object key {key!r} escapes the artifact store")
        return path

    def put_bytes(self, key: str, data: bytes, media_type: str) -> StoredObject:
        import io

        return self.put_stream(key, io.BytesIO(data), media_type)

    def put_stream(self, key: str, stream: BinaryIO, media_type: str) -> StoredObject:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        reader = HashingReader(stream)
        write_atomic(path, iter_chunks(reader))
        return StoredObject(key, reader.hexdigest(), reader.size)

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise NotFound(f"no object {self.location(key)}") from None

    def presign(self, key: str, expires_seconds: int = 900) -> str:
        return self._path(key).as_uri()

    def location(self, key: str) -> str:
        return self._path(key).as_uri()
