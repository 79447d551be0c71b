"""Builtin step modules: noop, sleep, artifact.write and bundle.ingest (exec and http.request live alongside)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, JsonValue, model_validator
from pydantic_core import PydanticCustomError

from taskrunner.keys import ARTIFACT_NAME
from taskrunner.modules.base import ModuleContext, ModuleError
from taskrunner.modules.bundle_envelope import check_bundle_envelope
from taskrunner.modules.contracts import Contract, Outputs, Params, parse_params
from taskrunner.streams import HashingReader, iter_chunks
from taskrunner.timeutil import utc_now


class NoopParams(Params):
    model_config = ConfigDict(extra="allow")


def noop(ctx: ModuleContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs its parameters unchanged."""
    return dict(params)


NOOP = Contract(NoopParams, None, "Does nothing; its outputs are its `with` (any keys).")


class SleepParams(Params):
    seconds: float = Field(
        ge=0, description="seconds to wait: a number from 0 to spec.sandbox.wallClockSeconds"
    )


class SleepOutputs(Outputs):
    sleptSeconds: float


def sleep(ctx: ModuleContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Sleeps ``seconds`` (bounded by the sandbox wall clock)."""
    seconds = parse_params("sleep", SleepParams, params).seconds
    limit = ctx.sandbox.wall_clock_seconds
    if limit is not None and seconds > limit:
        raise ModuleError(
            f"sleep: seconds must be between 0 and {limit or 'the step timeout'}", retryable=False
        )
    time.sleep(seconds)
    return {"sleptSeconds": seconds}


SLEEP = Contract(SleepParams, SleepOutputs, "Waits `seconds`, at most `spec.sandbox.wallClockSeconds`.")


class ArtifactWriteParams(Params):
    name: str = Field(description="the artifact name, e.g. report.json (letters, digits, '.', '_', '-', '/')")
    content: JsonValue = Field("", description="text (written as is) or any JSON value (written as JSON)")
    mediaType: str | None = Field(None, description="media type; text/plain for text, else application/json")


class ArtifactOutputs(Outputs):
    name: str
    sha256: str
    size: int
    mediaType: str
    storedPath: str


def artifact_write(ctx: ModuleContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Writes ``content`` (text as is, anything else as JSON) as the artifact ``name``."""
    parsed = parse_params("artifact.write", ArtifactWriteParams, params)
    content = parsed.content
    if isinstance(content, str):
        data, default_type = content.encode("utf-8"), "text/plain"
    else:
        data = (json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
        default_type = "application/json"
    ref = ctx.artifacts.write_bytes(parsed.name, data, parsed.mediaType or default_type)
    return {
        "name": ref.name,
        "sha256": ref.sha256,
        "size": ref.size,
        "mediaType": ref.media_type,
        "storedPath": ref.stored_path,
    }


ARTIFACT_WRITE = Contract(ArtifactWriteParams, ArtifactOutputs, "Writes `content` as the artifact `name`.")


class BundleIngestParams(Params):
    path: str = Field(description="the bundle file to stage; its file name must be a valid artifact name")
    checksumSha256: str | None = Field(None, description="the bundle's SHA-256 (hex, optionally sha256:)")
    checksum: str | None = Field(None, description="the same as checksumSha256 (one of the two is required)")
    envelope: str | None = Field(
        None,
        description="a DSSE envelope over the bundle's statement; the bundle is staged only while it is valid",
    )
    publicKey: str | None = Field(None, description="the PEM public key that must have signed envelope")

    @model_validator(mode="after")
    def _checksum_given(self) -> BundleIngestParams:
        if not (self.checksumSha256 or self.checksum):
            raise PydanticCustomError(
                "checksum_required", "checksumSha256 (or checksum) is required so the bundle can be verified"
            )
        if (self.envelope is None) != (self.publicKey is None):
            raise PydanticCustomError(
                "envelope_key_pair", "envelope and publicKey go together: give both, or neither"
            )
        return self


class BundleIngestOutputs(Outputs):
    filename: str
    sha256: str
    size: int
    sourcePath: str
    stagedPath: str
    metadataPath: str


def _expected_checksum(params: BundleIngestParams) -> str:
    raw = params.checksumSha256 or params.checksum or ""
    value = raw.lower().removeprefix("sha256:")
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ModuleError(f"bundle.ingest: checksum '{raw}' is not a SHA-256 hex digest", retryable=False)
    return value


def _mismatch(path: Path, expected: str, actual: str) -> ModuleError:
    return ModuleError(
        f"bundle.ingest: checksum mismatch for {path.name}: expected {expected}, got {actual}",
        retryable=False,
        code="ChecksumMismatch",
    )


def bundle_ingest(ctx: ModuleContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Verifies a bundle's SHA-256, then streams it to ``bundles/<checksum>/<filename>``; writes metadata.json.

    A bundle that does not match its checksum is never staged: the content-addressed path would lie.
    """
    parsed = parse_params("bundle.ingest", BundleIngestParams, params)
    path = Path(parsed.path)
    expected = _expected_checksum(parsed)
    if not ARTIFACT_NAME.matches(path.name):  # staged as bundles/<checksum>/<file name>
        shown = Path(ctx.redactor.text(str(path))).name  # a secret in the path may hold a '/'
        raise ModuleError(
            f"bundle.ingest: file name {ctx.redactor.clip(shown, 80)!r} cannot be staged: {ARTIFACT_NAME.hint}",
            retryable=False,
            code="InvalidName",
        )
    if not path.is_file():
        raise ModuleError(f"bundle.ingest: bundle file not found: {path}", code="BundleNotFound")
    with path.open("rb") as raw:
        verifier = HashingReader(raw)
        for _ in iter_chunks(verifier):
            pass
    if verifier.hexdigest() != expected:
        raise _mismatch(path, expected, verifier.hexdigest())
    if parsed.envelope is not None and parsed.publicKey is not None:
        check_bundle_envelope(Path(parsed.envelope), Path(parsed.publicKey), expected, utc_now())
    staged_name = f"bundles/{expected}/{path.name}"
    with path.open("rb") as raw:
        reader = HashingReader(raw)
        ref = ctx.artifacts.write_stream(staged_name, reader, "application/octet-stream")  # type: ignore[arg-type]
    actual = reader.hexdigest()
    if actual != expected:  # the file changed between verifying and staging
        raise _mismatch(path, expected, actual)
    metadata = {
        "filename": path.name,
        "sha256": actual,
        "size": reader.size,
        "sourcePath": str(path),
        "stagedPath": ref.stored_path,
    }
    meta_bytes = (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode("utf-8")
    meta_ref = ctx.artifacts.write_bytes(f"bundles/{expected}/metadata.json", meta_bytes, "application/json")
    return {**metadata, "metadataPath": meta_ref.stored_path}


BUNDLE_INGEST = Contract(
    BundleIngestParams,
    BundleIngestOutputs,
    "Verifies a bundle's SHA-256 while streaming it, stages `bundles/<sha256>/<file>` and `metadata.json`.",
)
