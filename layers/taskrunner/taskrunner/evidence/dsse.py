"""DSSE v1 envelopes: pre-authentication encoding, signing and verification.

Signing and PAE use ``securesystemslib.dsse.Envelope``. Verification is done here because the
library's ``Envelope.from_dict``/``verify`` select keys by ``keyid`` (the DSSE spec forbids using it
for a decision), require a ``keyid`` on every signature, and reject unpadded base64. Every signature
is tried against every trusted key; the payload is returned (and may be parsed) only once verified.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from securesystemslib.dsse import Envelope
from securesystemslib.signer import Signature

from taskrunner.canonical import canonical_bytes
from taskrunner.errors import TaskRunnerError
from taskrunner.evidence.hashing import json_failure
from taskrunner.evidence.signing import EvidenceSigner, TrustedKey

_STANDARD = re.compile(r"[A-Za-z0-9+/]*=*")
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]*=*")


class DsseError(TaskRunnerError):
    """A DSSE envelope is malformed or does not verify."""

    code = "DsseVerificationFailed"


@dataclass(frozen=True)
class VerifiedEnvelope:
    """The authenticated content of an envelope and the trusted keys that signed it."""

    payload: bytes
    payload_type: str
    keyids: tuple[str, ...]


def pae(payload_type: str, payload: bytes) -> bytes:
    """``PAE(UTF8(payloadType), payload)`` exactly as DSSE v1 defines it."""
    return Envelope(payload, payload_type, {}).pae()


def b64decode(text: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not (DSSE verifiers must accept either)."""
    if _STANDARD.fullmatch(text):
        altchars = None
    elif _URL_SAFE.fullmatch(text):
        altchars = b"-_"
    else:
        raise ValueError("characters outside the standard and URL-safe base64 alphabets")
    body = text.rstrip("=")
    if len(body) % 4 == 1 or (body != text and len(text) % 4):
        raise ValueError("incorrect length or padding")
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), altchars=altchars, validate=True)
    except binascii.Error as exc:  # pragma: no cover - the checks above leave nothing for it to reject
        raise ValueError(str(exc)) from exc


def sign_envelope(payload: bytes, payload_type: str, signers: Sequence[EvidenceSigner]) -> dict[str, Any]:
    """A JSON envelope over ``payload`` with one signature per signer (standard base64)."""
    if not signers:
        raise DsseError(
            "cannot sign a DSSE envelope without a signer",
            remediation="configure a signing key (TASKRUNNER_SIGNING__KEY) or generate one with "
            "'taskrunner keys generate'",
        )
    envelope = Envelope(payload, payload_type, {})
    message = envelope.pae()
    for signer in signers:
        envelope.signatures[signer.keyid] = Signature(signer.keyid, signer.sign(message).hex())
    return envelope.to_dict()


def envelope_bytes(envelope: Mapping[str, Any]) -> bytes:
    """The serialised form of an envelope as stored in a bundle (RFC 8785 canonical JSON)."""
    return canonical_bytes(dict(envelope))


def verify_envelope(
    envelope: Mapping[str, Any] | bytes | str,
    trusted: Sequence[TrustedKey],
    payload_type: str,
    *,
    threshold: int = 1,
) -> bytes:
    """The verified payload bytes of ``envelope``; raises :class:`DsseError` otherwise."""
    return verify_envelope_detailed(envelope, trusted, payload_type, threshold=threshold).payload


def verify_envelope_detailed(
    envelope: Mapping[str, Any] | bytes | str,
    trusted: Sequence[TrustedKey],
    payload_type: str,
    *,
    threshold: int = 1,
) -> VerifiedEnvelope:
    """Verify ``envelope`` against ``trusted`` keys, requiring ``threshold`` distinct signing keys.

    Each signature is tried against every trusted key (``keyid`` is ignored), unknown fields are
    ignored, and the payload type must equal ``payload_type``.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    body, claimed_type, signatures = _decode(envelope)
    if not trusted:
        raise DsseError(
            "no trusted keys to verify the signature against",
            remediation="pass the signer's public key (PEM), e.g. --trust signing.pub.pem",
        )
    message = pae(claimed_type, body)
    accepted: dict[str, None] = {}
    for signature in signatures:
        for key in trusted:
            if key.keyid not in accepted and key.verify(signature, message):
                accepted[key.keyid] = None
                break
    type_note = "" if claimed_type == payload_type else f"; payloadType is {claimed_type!r}"
    if not accepted:
        raise DsseError(
            f"no signature verifies against the trusted keys ({len(signatures)} signature(s), "
            f"{len(trusted)} trusted key(s){type_note})",
            remediation="the content was altered after signing or was signed by a key you do not trust",
        )
    if len(accepted) < threshold:
        raise DsseError(f"only {len(accepted)} of the required {threshold} trusted keys signed")
    if claimed_type != payload_type:
        raise DsseError(
            f"payloadType is {claimed_type!r}, expected {payload_type!r}",
            remediation="the envelope was signed for another purpose and cannot stand in for this one",
        )
    return VerifiedEnvelope(body, claimed_type, tuple(accepted))


def envelope_keyids(envelope: Mapping[str, Any]) -> list[str]:
    """The ``keyid`` labels of an envelope's signatures (unauthenticated: they only say which key to try)."""
    signatures = envelope.get("signatures")
    entries = signatures if isinstance(signatures, list) else []
    return [e["keyid"] for e in entries if isinstance(e, Mapping) and isinstance(e.get("keyid"), str)]


def _decode(envelope: Mapping[str, Any] | bytes | str) -> tuple[bytes, str, list[bytes]]:
    """Payload bytes, claimed payload type and raw signatures; raises on any malformation."""
    if isinstance(envelope, bytes | str):
        try:
            envelope = json.loads(envelope)
        except (ValueError, RecursionError) as exc:
            raise DsseError(f"envelope is not valid JSON: {json_failure(exc)}") from None
    if not isinstance(envelope, Mapping):
        raise DsseError("envelope is not a JSON object")
    payload_b64 = envelope.get("payload")
    payload_type = envelope.get("payloadType")
    signatures = envelope.get("signatures")
    if not isinstance(payload_b64, str):
        raise DsseError("envelope field 'payload' is missing or not a string")
    if not isinstance(payload_type, str):
        raise DsseError("envelope field 'payloadType' is missing or not a string")
    if not isinstance(signatures, list) or not signatures:
        raise DsseError("envelope has no signatures")
    try:
        body = b64decode(payload_b64)
    except ValueError as exc:
        raise DsseError(f"envelope payload is not valid base64: {exc}") from exc
    raw: list[bytes] = []
    for index, entry in enumerate(signatures):
        sig = entry.get("sig") if isinstance(entry, Mapping) else None
        if not isinstance(sig, str):
            raise DsseError(f"signature #{index + 1} has no 'sig' string")
        try:
            raw.append(b64decode(sig))
        except ValueError as exc:
            raise DsseError(f"signature #{index + 1} is not valid base64: {exc}") from exc
    return body, payload_type, raw
