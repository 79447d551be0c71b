"""Missing log sequences become ``log.gap`` events: cut by cause at reservation edges, dated, paged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskrunner.store.log_gaps import GAP_EVENT_TYPE, Gap, Reservation, find_gaps, with_gaps
from taskrunner.store.records import LogEvent

T0 = datetime(2026, 1, 2, tzinfo=UTC)
RESERVED = [Reservation(4, 6, T0), Reservation(7, 7, T0 + timedelta(seconds=1))]


def _events(*sequences: int) -> list[LogEvent]:
    return [
        LogEvent(runId="r", sequence=s, timestamp=T0 + timedelta(minutes=s), eventType="e", message=str(s))
        for s in sequences
    ]


def test_a_missing_range_is_cut_where_reservations_start_and_end() -> None:
    gaps = find_gaps([1, 2, 9], after=0, upto=9, reservations=RESERVED)
    assert gaps == [Gap(3, 3, "lost"), Gap(4, 6, "unwritten"), Gap(7, 7, "unwritten"), Gap(8, 8, "lost")]


def test_nothing_missing_means_no_gap() -> None:
    assert find_gaps([3, 4, 5], after=2, upto=5, reservations=RESERVED) == []
    assert find_gaps([], after=5, upto=5, reservations=()) == []
    assert find_gaps([], after=5, upto=None, reservations=()) == []


def test_trailing_sequences_count_only_against_a_known_counter() -> None:
    assert find_gaps([1], after=0, upto=3, reservations=()) == [Gap(2, 3, "lost")]
    assert find_gaps([1], after=0, upto=None, reservations=()) == []


def test_gap_events_take_the_place_of_the_missing_sequences() -> None:
    merged = with_gaps("r", _events(1, 2, 8), after=0, upto=8, reservations=RESERVED)
    assert [(e.sequence, e.eventType) for e in merged] == [
        (1, "e"),
        (2, "e"),
        (3, GAP_EVENT_TYPE),
        (6, GAP_EVENT_TYPE),
        (7, GAP_EVENT_TYPE),
        (8, "e"),
    ]
    lost, unwritten = merged[2], merged[3]
    assert lost.timestamp == T0 + timedelta(minutes=2)  # next to the event before it
    assert lost.message == "log sequence 3 is missing: it was written, then deleted or expired"
    assert unwritten.timestamp == T0  # when the numbers were reserved
    assert unwritten.metadata == {"firstSequence": "4", "lastSequence": "6", "cause": "unwritten"}
    assert unwritten.level == "warn"


def test_a_page_holds_at_most_limit_items_and_claims_nothing_past_a_full_page() -> None:
    page = with_gaps("r", _events(2, 3), after=0, upto=10, limit=2)
    assert [(e.sequence, e.eventType) for e in page] == [(1, GAP_EVENT_TYPE), (2, "e")]
    assert [e.sequence for e in with_gaps("r", _events(5, 6), after=4, upto=10, limit=2)] == [5, 6]
    assert [e.sequence for e in with_gaps("r", _events(5), after=4, upto=10, limit=2)] == [5, 10]
