"""Gaps in a run's log: sequences a reader expected but no store holds, shown as ``log.gap`` events.

A gap is never skipped silently: :func:`with_gaps` puts one ``log.gap`` event (level ``warn``) where
sequences are missing. Its ``sequence`` is the last missing one (so ``after``/``Last-Event-ID`` paging
moves past it) and its metadata names the range and the cause: ``unwritten`` (the sequences were
reserved by a writer that stopped before storing them) or ``lost`` (stored once, then deleted or
expired by the log TTL).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from taskrunner.store.records import LogEvent
from taskrunner.timeutil import utc_now

GAP_EVENT_TYPE = "log.gap"
PENDING_GRACE = timedelta(seconds=30)
"""How long a reservation may stay unwritten before readers report it as a gap (a writer stores its
batch within milliseconds of reserving it; until then readers stop just before it)."""

GapCause = Literal["unwritten", "lost"]


@dataclass(frozen=True)
class Reservation:
    """Sequences ``first..last`` reserved at ``at`` and not (yet) confirmed written."""

    first: int
    last: int
    at: datetime

    def stale(self, now: datetime) -> bool:
        return now - self.at >= PENDING_GRACE


@dataclass(frozen=True)
class Gap:
    first: int
    last: int
    cause: GapCause


_MESSAGES: dict[GapCause, tuple[str, str]] = {  # (one sequence, several)
    "unwritten": (
        "was reserved but never written (the writer stopped before storing it)",
        "were reserved but never written (the writer stopped before storing them)",
    ),
    "lost": (
        "is missing: it was written, then deleted or expired",
        "are missing: they were written, then deleted or expired",
    ),
}


def split_gap(first: int, last: int, reservations: Sequence[Reservation]) -> Iterator[Gap]:
    """The missing range ``first..last`` cut into runs of one cause."""
    start = first
    cause: GapCause
    while start <= last:
        owner = next((r for r in reservations if r.first <= start <= r.last), None)
        if owner is not None:
            end, cause = min(last, owner.last), "unwritten"
        else:
            later = [r.first for r in reservations if start < r.first <= last]
            end, cause = (min(later) - 1 if later else last), "lost"
        yield Gap(start, end, cause)
        start = end + 1


def find_gaps(
    sequences: Sequence[int], *, after: int, upto: int | None, reservations: Sequence[Reservation]
) -> list[Gap]:
    """The gaps of the sorted ``sequences`` after ``after`` (and up to ``upto``, the reserved maximum)."""
    gaps: list[Gap] = []
    expected = after + 1
    for sequence in [*sequences, *([upto + 1] if upto is not None else [])]:
        if sequence > expected:
            gaps.extend(split_gap(expected, sequence - 1, reservations))
        expected = max(expected, sequence + 1)
    return gaps


def gap_event(run_id: str, gap: Gap, reservations: Sequence[Reservation], near: datetime | None) -> LogEvent:
    """The ``log.gap`` event for ``gap``: dated at its reservation, else next to the events around it."""
    owner = next((r for r in reservations if r.first <= gap.first <= r.last), None)
    one, several = _MESSAGES[gap.cause]
    what = (
        f"log sequence {gap.first} {one}"
        if gap.first == gap.last
        else f"log sequences {gap.first}-{gap.last} {several}"
    )
    return LogEvent(
        runId=run_id,
        sequence=gap.last,
        timestamp=owner.at if owner and gap.cause == "unwritten" else near or utc_now(),
        level="warn",
        eventType=GAP_EVENT_TYPE,
        message=what,
        metadata={"firstSequence": str(gap.first), "lastSequence": str(gap.last), "cause": gap.cause},
    )


def with_gaps(
    run_id: str,
    events: Sequence[LogEvent],
    *,
    after: int,
    upto: int | None,
    reservations: Sequence[Reservation] = (),
    limit: int | None = None,
) -> list[LogEvent]:
    """``events`` (sorted, all after ``after``) with a ``log.gap`` event wherever sequences are missing.

    ``upto`` is the highest sequence known to be reserved (``None``: unknown, no trailing gap); when the
    store returned a full page (``limit`` events) nothing is known past it. At most ``limit`` items.
    """
    full = limit is not None and len(events) >= limit
    bound = None if full else upto
    gaps = find_gaps([e.sequence for e in events], after=after, upto=bound, reservations=reservations)
    merged: list[LogEvent] = []
    index = 0
    for gap in gaps:
        while index < len(events) and events[index].sequence < gap.first:
            merged.append(events[index])
            index += 1
        before = merged[-1].timestamp if merged else None
        nxt = events[index].timestamp if index < len(events) else None
        merged.append(gap_event(run_id, gap, reservations, before or nxt))
    merged.extend(events[index:])
    return merged[:limit] if limit else merged
