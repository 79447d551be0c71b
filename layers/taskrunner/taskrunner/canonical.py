"""Canonical JSON (RFC 8785) and the digests built on it."""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785


def canonical_bytes(document: Any) -> bytes:
    """Serialise ``document`` as RFC 8785 (JCS) canonical JSON bytes."""
    return rfc8785.dumps(document)


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + sha256_hex(data)


def digest_of(document: Any) -> str:
    """``sha256:<hex>`` of the canonical bytes of ``document``."""
    return sha256_digest(canonical_bytes(document))
