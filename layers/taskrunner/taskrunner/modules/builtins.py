"""Builtin step modules: noop, sleep, artifact.write and bundle.ingest (exec and http.request live alongside)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taskrunner.keys import ARTIFACT_NAME
from taskrunner.modules.base import ModuleContext, ModuleError, require
from taskrunner.streams import HashingReader, iter_chunks


def noop(ctx: ModuleContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs its parameters unchanged."""
    return dict(params)


def sleep(ctx: ModuleContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Sleeps ``seconds`` (bounded by the sandbox wall clock)."""
    seconds = float(require(params, "seconds", (int, float), "sleep"))
    limit = ctx.sandbox.wall_clock_seconds
    if seconds < 0 or (limit is not None and seconds > limit):
        raise ModuleError(
            f"sleep: seconds must be between 0 and {limit or 'the step timeout'}", retryable=False
        )
    time.sleep(seconds)
    return {"sleptSeconds": seconds}


def artifact_write(ctx: ModuleContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Writes ``content`` (text as is, anything else as JSON) as the artifact ``name``."""
    name = require(params, "name", str, "artifact.write")
    content = params.get("content", "")
    if isinstance(content, str):
        data, default_type = content.encode("utf-8"), "text/plain"
    else:
        data = (json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
        default_type = "application/json"
    ref = ctx.artifacts.write_bytes(name, data, str(params.get("mediaType") or default_type))
    return {
        "name": ref.name,
        "sha256": ref.sha256,
        "size": ref.size,
        "mediaType": ref.media_type,
        "storedPath": ref.stored_path,
    }


def _expected_checksum(params: Mapping[str, Any]) -> str:
    raw = params.get("checksumSha256") or params.get("checksum")
    if not isinstance(raw, str) or not raw:
        raise ModuleError(
            "bundle.ingest: checksumSha256 (or checksum) is required — pass the bundle's SHA-256 so it can be verified",
            retryable=False,
            code="ChecksumRequired",
        )
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
    path = Path(require(params, "path", str, "bundle.ingest"))
    expected = _expected_checksum(params)
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
