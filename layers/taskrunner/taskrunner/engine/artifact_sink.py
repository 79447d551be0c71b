"""Where a step's module writes files: redacted, streamed to the artifact store, recorded with digests."""

from __future__ import annotations

import io
from typing import BinaryIO

from taskrunner.engine.ports import StoredObject
from taskrunner.engine.runlog import RunLog
from taskrunner.engine.services import Services
from taskrunner.keys import ARTIFACT_NAME, artifact_key
from taskrunner.modules.base import ArtifactRef, ModuleError
from taskrunner.redaction import RedactingReader, Redactor
from taskrunner.store.records import ArtifactRecord


class StepArtifactSink:
    """Artifact names are run-unique; inside a map child they are prefixed with the child (``m[2]::name``)."""

    def __init__(self, svc: Services, run_id: str, step_id: str, redactor: Redactor, log: RunLog) -> None:
        self._svc = svc
        self._run_id = run_id
        self._step_id = step_id
        self._redactor = redactor
        self._log = log
        prefix = step_id.rpartition("::")[0]
        self._prefix = f"{prefix}::" if prefix else ""

    def write_bytes(self, name: str, data: bytes, media_type: str) -> ArtifactRef:
        return self.write_stream(name, io.BytesIO(data), media_type)

    def write_stream(self, name: str, stream: BinaryIO, media_type: str) -> ArtifactRef:
        if not ARTIFACT_NAME.matches(name):  # checked as rendered, before redaction
            raise ModuleError(
                f"artifact name {self._redactor.clip(name, 80)!r} is not valid: {ARTIFACT_NAME.hint}",
                retryable=False,
                code="InvalidName",
            )
        name = self._prefix + self._redactor.text(name)  # a name may be templated from a secret
        source: BinaryIO = RedactingReader(stream, self._redactor) if self._redactor else stream  # type: ignore[assignment]
        stored = self._svc.artifacts.put_stream(artifact_key(self._run_id, name), source, media_type)
        return self._record(name, stored, media_type)

    def _record(self, name: str, stored: StoredObject, media_type: str) -> ArtifactRef:
        location = self._svc.artifacts.location(stored.key)
        self._svc.store.put_artifact(
            ArtifactRecord(
                runId=self._run_id,
                name=name,
                type="file",
                storedPath=location,
                status="copied",
                notes=f"captured by step {self._step_id}",
                capturedAt=self._svc.clock(),
                sha256=stored.sha256,
                size=stored.size,
                mediaType=media_type,
            )
        )
        self._log.emit(
            "artifact.captured",
            f"artifact {name} captured ({stored.size} bytes)",
            step_id=self._step_id,
            metadata={"name": name, "sha256": stored.sha256, "size": stored.size},
        )
        return ArtifactRef(
            name=name, sha256=stored.sha256, size=stored.size, media_type=media_type, stored_path=location
        )
