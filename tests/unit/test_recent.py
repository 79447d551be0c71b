"""Bounded per-run bookkeeping: the most recently used entries are kept, the oldest dropped."""

from __future__ import annotations

import pytest
from taskrunner.recent import Recent, RecentKeys


def test_the_least_recently_used_entry_is_dropped_past_the_bound() -> None:
    recent: Recent[list[str]] = Recent(2)
    a = recent.setdefault("a", list)
    recent.setdefault("b", list)
    assert recent.setdefault("a", list) is a  # used again: now the most recent
    recent.setdefault("c", list)
    assert ("a" in recent, "b" in recent, "c" in recent) == (True, False, True)
    assert len(recent) == 2


def test_recent_keys_is_a_bounded_set() -> None:
    keys = RecentKeys(3)
    for key in ("t1", "t2", "t3", "t4", "t2", "t5"):
        keys.add(key)
    assert [key for key in ("t1", "t2", "t3", "t4", "t5") if key in keys] == ["t2", "t4", "t5"]


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="size must be at least 1, got 0"):
        Recent(0)
