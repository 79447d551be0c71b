"""A pack version's bundle: a deterministic ``tar.gz`` of its manifest (``pack.yaml``) and the files it names.

The same files always give the same bytes (sorted entries, fixed mtime/mode/owner, the deterministic gzip
writer of the evidence bundle), so the bundle's SHA-256 identifies the pack version.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping

from taskrunner.errors import ValidationFailed
from taskrunner.evidence import layout
from taskrunner.evidence.gzipstream import DeterministicGzipWriter
from taskrunner.evidence.hashing import hash_bytes
from taskrunner.keys import ARTIFACT_NAME
from taskrunner.pack.limits import MAX_MANIFEST_BYTES

MANIFEST_FILE = "pack.yaml"
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
MAX_BUNDLE_FILES = 256


def build_bundle(files: Mapping[str, bytes]) -> bytes:
    """The bundle of ``files`` (path -> content); ``pack.yaml`` must be one of them."""
    if MANIFEST_FILE not in files:
        raise ValidationFailed(
            f"a pack bundle needs its manifest as {MANIFEST_FILE}", remediation="pass the pack manifest"
        )
    for path in files:
        ARTIFACT_NAME.check(path, "the pack bundle")
    out = io.BytesIO()
    gz = DeterministicGzipWriter(out)
    try:
        with tarfile.TarFile(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:  # type: ignore[arg-type]
            for path in sorted(files):
                info = tarfile.TarInfo(path)
                info.size = len(files[path])
                info.mtime = layout.TAR_MTIME
                info.mode = layout.TAR_MODE
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(files[path]))
        gz.close()
    finally:
        gz.abort()
    return out.getvalue()


def bundle_digest(bundle: bytes) -> str:
    """``sha256:<hex>`` of the bundle bytes."""
    return "sha256:" + hash_bytes(bundle).sha256


def read_bundle(bundle: bytes) -> dict[str, bytes]:
    """The files of a bundle; refuses anything but regular files with valid names, and oversized bundles."""
    invalid = ValidationFailed(
        "the pack bundle is not a tar.gz of regular files",
        remediation="build it with 'taskrunner packs build'",
    )
    if len(bundle) > MAX_BUNDLE_BYTES:
        raise ValidationFailed(
            f"the pack bundle is larger than {MAX_BUNDLE_BYTES:,} bytes",
            remediation="ship fewer or smaller files",
        )
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
            for member in tar:
                if not member.isfile() or not ARTIFACT_NAME.matches(member.name) or member.name in files:
                    raise invalid
                total += member.size
                if len(files) >= MAX_BUNDLE_FILES or total > MAX_BUNDLE_BYTES:
                    raise invalid
                extracted = tar.extractfile(member)
                files[member.name] = extracted.read() if extracted else b""
    except (tarfile.TarError, OSError, EOFError):
        raise invalid from None
    if MANIFEST_FILE not in files or len(files[MANIFEST_FILE]) > MAX_MANIFEST_BYTES:
        raise ValidationFailed(
            f"the pack bundle has no {MANIFEST_FILE} (or it is larger than any manifest)",
            remediation="build it with 'taskrunner packs build'",
        )
    return files
