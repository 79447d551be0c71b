"""Formats of the scalar fields evidence documents carry."""

from __future__ import annotations

import re

TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
HEX_PATTERN = r"^[0-9a-f]{64}$"

# The patterns are anchored for JSON Schema; Python matches them in full (``$`` would allow a newline).
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN[1:-1])
_DIGEST = re.compile(DIGEST_PATTERN[1:-1])
_HEX = re.compile(HEX_PATTERN[1:-1])


def is_timestamp(value: object) -> bool:
    """ISO-8601 UTC with a ``Z`` suffix, e.g. ``2026-01-02T03:04:05.678Z``."""
    return isinstance(value, str) and bool(_TIMESTAMP.fullmatch(value))


def is_digest(value: object) -> bool:
    """``sha256:<64 lowercase hex>``."""
    return isinstance(value, str) and bool(_DIGEST.fullmatch(value))


def is_hex_sha256(value: object) -> bool:
    """64 lowercase hex characters."""
    return isinstance(value, str) and bool(_HEX.fullmatch(value))
