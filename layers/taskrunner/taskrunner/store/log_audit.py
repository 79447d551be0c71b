"""A bounded check of the Mongo run logs for ``taskrunner db status``: which runs have gaps, and why.

The most recently updated runs (at most ``scan_limit``) are compared with their stored event counts in one
aggregation; only runs holding fewer events than they reserved, or an open ``pendingLogs`` marker, are read
further (sequences only) to tell ``unwritten`` gaps (a writer stopped) from ``lost`` events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database

from taskrunner.store.mongo_names import CODEC_OPTIONS, CollectionNames
from taskrunner.store.mongo_store import MongoRunStore

SCAN_LIMIT = 1000
EXAMPLES = 5


@dataclass(frozen=True)
class RunGaps:
    """Missing sequences of one run, by cause."""

    run_id: str
    unwritten: int
    lost: int


@dataclass(frozen=True)
class LogAudit:
    """The outcome over one collection set: runs scanned, runs with each cause, a few examples."""

    runs_collection: str
    logs_collection: str
    scanned: int
    truncated: bool  # more runs exist than were scanned
    unwritten_runs: int = 0
    lost_runs: int = 0
    examples: list[RunGaps] = field(default_factory=list)


def audit_logs(
    db: Database[dict[str, Any]],
    names: CollectionNames,
    *,
    scan_limit: int = SCAN_LIMIT,
    examples: int = EXAMPLES,
) -> LogAudit:
    """Check the newest ``scan_limit`` runs for log gaps; list up to ``examples`` affected runs."""
    runs = db.get_collection(names.runs, codec_options=CODEC_OPTIONS)
    logs = db.get_collection(names.logs, codec_options=CODEC_OPTIONS)
    found = (
        runs.find({}, {"logSequence": 1, "pendingLogs": 1})
        .sort("updatedAt", DESCENDING)
        .limit(scan_limit + 1)
    )
    docs = list(found)
    scanned = docs[:scan_limit]
    reserved = {d["_id"]: int(d.get("logSequence", 0)) for d in scanned}
    counts = {
        row["_id"]: int(row["n"])
        for row in logs.aggregate(
            [{"$match": {"runId": {"$in": list(reserved)}}}, {"$group": {"_id": "$runId", "n": {"$sum": 1}}}]
        )
    }
    suspects = [
        d["_id"] for d in scanned if counts.get(d["_id"], 0) < reserved[d["_id"]] or d.get("pendingLogs")
    ]
    store = MongoRunStore(db, names)
    affected: list[RunGaps] = []
    for run_id in suspects:
        gaps = store.log_gaps(run_id)
        unwritten = sum(g.last - g.first + 1 for g in gaps if g.cause == "unwritten")
        lost = sum(g.last - g.first + 1 for g in gaps if g.cause == "lost")
        if unwritten or lost:
            affected.append(RunGaps(run_id, unwritten, lost))
    return LogAudit(
        runs_collection=names.runs,
        logs_collection=names.logs,
        scanned=len(scanned),
        truncated=len(docs) > scan_limit,
        unwritten_runs=sum(1 for r in affected if r.unwritten),
        lost_runs=sum(1 for r in affected if r.lost),
        examples=affected[:examples],
    )
