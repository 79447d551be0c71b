"""Bounded per-run bookkeeping for long-running processes: the most recently used entries, the rest dropped."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class Recent(Generic[V]):
    """The ``size`` most recently used entries by key; an entry dropped must be one its owner can rebuild.
    Not thread-safe: callers sharing one hold their own lock."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.size = size
        self._entries: OrderedDict[str, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def setdefault(self, key: str, factory: Callable[[], V]) -> V:
        """The entry of ``key`` (made by ``factory`` if absent), now the most recently used."""
        if key in self._entries:
            self._entries.move_to_end(key)
        else:
            self._entries[key] = factory()
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return self._entries[key]


class RecentKeys(Recent[None]):
    """A set remembering its ``size`` most recently added keys."""

    def add(self, key: str) -> None:
        self.setdefault(key, lambda: None)
