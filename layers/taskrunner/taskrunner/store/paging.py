"""Opaque cursors for run listings (newest first by ``updatedAt``, then ``runId``)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from taskrunner.errors import ValidationFailed
from taskrunner.timeutil import iso, parse_iso

MAX_PAGE_SIZE = 1000


def check_limit(limit: int) -> int:
    """``limit`` when it is a valid page size (1..1000)."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationFailed(
            f"page size {limit} is out of range", remediation=f"use a limit from 1 to {MAX_PAGE_SIZE}"
        )
    return limit


def encode_cursor(updated_at: datetime, run_id: str) -> str:
    """The cursor that resumes a listing after the run ``(updated_at, run_id)``."""
    raw = json.dumps([iso(updated_at), run_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """``(updatedAt, runId)`` of the last run of the previous page."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        updated_at, run_id = json.loads(raw)
        return parse_iso(updated_at), str(run_id)
    except (binascii.Error, ValueError, TypeError, AttributeError) as exc:
        raise ValidationFailed(
            "invalid page cursor", remediation="pass the nextCursor value of the previous page unchanged"
        ) from exc
