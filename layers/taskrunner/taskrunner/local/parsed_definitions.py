"""Parsed state machine definitions kept on disk: a definition is parsed once per home, not once per process.

moto's ANTLR parser costs ~3.5 ms per state (a 1,000-step pack: ~4 s of every ``taskrunner run``); loading
the parsed program back costs ~0.04 ms per state. Programs are pickled into a :class:`HomeCache` keyed by the
moto version and the definition text; the cache's HMAC check comes first, so only bytes this home wrote are
ever unpickled.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from taskrunner.local.home_cache import HomeCache
from taskrunner.observability import logger


class ParsedDefinitions:
    """Parse results of moto's ASL parser under ``directory``, keyed by moto version and definition."""

    def __init__(self, directory: Path, moto_version: str) -> None:
        self._cache = HomeCache(directory, f"moto {moto_version}")

    def load(self, definition: str) -> object | None:
        """The stored parse of ``definition``, or None (absent, foreign, corrupt or unreadable)."""
        data = self._cache.load(definition)
        if data is None:
            return None
        try:
            return pickle.loads(data)  # noqa: S301 - bytes this home's key authenticated
        except Exception as exc:  # e.g. a class moto renamed within one version string
            logger.warning("discarding an unreadable parsed definition", extra={"error": repr(exc)})
            return None

    def save(self, definition: str, parsed: object) -> None:
        """Store ``parsed`` for ``definition``; failures are logged, never raised."""
        try:
            data = pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # not picklable: parse next time
            logger.warning("could not keep a parsed definition", extra={"error": repr(exc)})
            return
        self._cache.save(definition, data)
