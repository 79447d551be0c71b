"""The signed statement a bundle comes with: ``bundle.ingest`` stages a bundle only while it is valid.

The envelope is DSSE (``payloadType: application/vnd.in-toto+json``) over an in-toto Statement v1 whose
``subject`` names the bundle's SHA-256 and whose ``predicate.expiresAt`` (ISO-8601 UTC) bounds its validity.
A missing, unverifiable or expired envelope refuses the bundle (fail-closed), with how to fix it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from taskrunner.errors import TaskRunnerError
from taskrunner.modules.base import ModuleError
from taskrunner.timeutil import iso, parse_iso

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_RESIGN = "have the publisher sign a statement naming this bundle's sha256 with a predicate.expiresAt"


def _refusal(message: str, code: str, remediation: str) -> ModuleError:
    return ModuleError(f"bundle.ingest: {message}", retryable=False, code=code, remediation=remediation)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _refusal(
            f"the bundle's {what} {path} cannot be read ({exc.strerror or exc})",
            "BundleEnvelopeMissing",
            f"ship the {what} beside the bundle, or fix the path in run.with",
        ) from None


def check_bundle_envelope(envelope_path: Path, key_path: Path, sha256: str, now: datetime) -> str:
    """Verify the envelope over the bundle whose digest is ``sha256``; returns its ``expiresAt``."""
    from taskrunner.evidence.dsse import verify_envelope
    from taskrunner.evidence.signing import load_trusted_key

    envelope, pem = _read(envelope_path, "envelope"), _read(key_path, "publisher key")
    try:
        key = load_trusted_key(pem, f"publisher key {key_path}")
        statement: Any = json.loads(verify_envelope(envelope, [key], IN_TOTO_PAYLOAD_TYPE))
    except (TaskRunnerError, ValueError, RecursionError) as exc:
        message = exc.message if isinstance(exc, TaskRunnerError) else f"its payload is not JSON: {exc}"
        raise _refusal(
            f"envelope {envelope_path.name} does not verify: {message}", "BundleEnvelopeInvalid", _RESIGN
        ) from None
    subjects = statement.get("subject") if isinstance(statement, dict) else None
    digests = [
        s["digest"].get("sha256")
        for s in subjects or []
        if isinstance(s, dict) and isinstance(s.get("digest"), dict)
    ]
    if sha256 not in digests:
        raise _refusal(
            f"envelope {envelope_path.name} does not name the bundle's sha256 {sha256}",
            "BundleEnvelopeInvalid",
            _RESIGN,
        )
    predicate = statement.get("predicate")
    expires = predicate.get("expiresAt") if isinstance(predicate, dict) else None
    try:
        expires_at = parse_iso(expires) if isinstance(expires, str) else None
    except ValueError:
        expires_at = None
    if expires_at is None:
        raise _refusal(
            f"envelope {envelope_path.name} has no valid predicate.expiresAt (an ISO-8601 UTC time)",
            "BundleEnvelopeInvalid",
            _RESIGN,
        )
    if now >= expires_at:
        raise _refusal(
            f"envelope {envelope_path.name} expired at {iso(expires_at)} (now {iso(now)})",
            "BundleEnvelopeExpired",
            "get a freshly signed statement for the bundle from its publisher, then run again",
        )
    return iso(expires_at)
