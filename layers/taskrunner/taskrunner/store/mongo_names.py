"""Names of the MongoDB collections TaskRunner owns (configurable; defaults from the baseline migration)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

from bson.codec_options import CodecOptions

CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, tzinfo=UTC)
"""Codec of every TaskRunner collection: dates read back as aware UTC datetimes."""


@dataclass(frozen=True)
class CollectionNames:
    """Collection names by role: runs, logs, artifacts, approvals, and the migration ledger."""

    runs: str = "pack_runs"
    logs: str = "pack_run_logs"
    artifacts: str = "pack_artifacts"
    approvals: str = "pack_run_approvals"
    migrations: str = "taskrunner_migrations"

    def of(self, role: str) -> str:
        """The collection name of ``role`` (``runs``, ``logs``, ``artifacts``, ``approvals``)."""
        name: str = getattr(self, role)
        return name
