"""Per-function environment variables over the process-global ``os.environ``.

Handlers of different functions run at once in threads of one process, and each must see its own
environment (its template variables, ``AWS_LAMBDA_FUNCTION_NAME``, a fresh ``_X_AMZN_TRACE_ID``, ...).
While :func:`overlay_installed` is active, ``os.environ`` is an :class:`OverlayEnviron`: lookups, ``in``,
iteration, ``copy()`` and ``os.getenv`` consult the overlay of the current context first (set with
:func:`environment_overlay`; threads started with a copied context keep it), then the process
environment. ``None`` in an overlay hides a process variable. Writes inside an overlay stay in it, as in
a Lambda sandbox. Child processes get what the caller passes as ``env`` (``exec`` builds it from
``os.environ``, so it sees the overlay); with ``env=None`` they inherit the process environment only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar

Overlay = MutableMapping[str, str | None]

_OVERLAY: ContextVar[Overlay | None] = ContextVar("taskrunner_local_environ", default=None)
_install_lock = threading.Lock()
_installed = 0


class OverlayEnviron(os._Environ):
    """``os.environ`` with the current context's overlay in front of the process environment."""

    def __getitem__(self, key: str) -> str:
        overlay = _OVERLAY.get()
        if overlay is not None and key in overlay:
            value = overlay[key]
            if value is None:
                raise KeyError(key)
            return value
        return str(super().__getitem__(key))

    def __setitem__(self, key: str, value: str) -> None:
        overlay = _OVERLAY.get()
        if overlay is None:
            super().__setitem__(key, value)
        else:
            overlay[key] = str(value)

    def __delitem__(self, key: str) -> None:
        overlay = _OVERLAY.get()
        if overlay is None:
            super().__delitem__(key)
            return
        if key not in self:
            raise KeyError(key)
        overlay[key] = None

    def __iter__(self) -> Iterator[str]:
        overlay = _OVERLAY.get()
        if overlay is None:
            yield from super().__iter__()
            return
        for key in list(super().__iter__()):
            if key not in overlay:
                yield key
        yield from [key for key, value in list(overlay.items()) if value is not None]

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> dict[str, str]:
        return dict(self)

    def __repr__(self) -> str:
        return f"environ({self.copy()!r})"


@contextmanager
def overlay_installed() -> Iterator[None]:
    """Make ``os.environ`` an :class:`OverlayEnviron` for the block (nested uses share one install)."""
    global _installed
    with _install_lock:
        if _installed == 0:
            os.environ.__class__ = OverlayEnviron
        _installed += 1
    try:
        yield
    finally:
        with _install_lock:
            _installed -= 1
            if _installed == 0:
                os.environ.__class__ = os._Environ


@contextmanager
def environment_overlay(overlay: Overlay) -> Iterator[None]:
    """Variables of ``overlay`` (``None``: unset) win over the process environment in this context."""
    token = _OVERLAY.set(overlay)
    try:
        yield
    finally:
        _OVERLAY.reset(token)
