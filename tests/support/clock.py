"""A fast clock for tests: scale the real sleeps of moto's Step Functions interpreter.

moto sleeps for real on ``Retry`` intervals (``IntervalSeconds`` x ``BackoffRate``) and ``Wait`` states,
and waits for real on ``TimeoutSeconds``. Users get real time; tests wrap a block in :func:`fast_clock`
to scale those durations down. Process-global while active (moto runs states in its own threads).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from taskrunner.errors import ConfigurationError

_lock = threading.Lock()
_active = False


class _ScaledTime:
    """Stands in for the ``time`` module inside one moto module: ``sleep`` is scaled, the rest is real."""

    def __init__(self, factor: float) -> None:
        self._factor = factor

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self._factor)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextmanager
def fast_clock(factor: float = 0.01, *, timeouts: bool = False) -> Iterator[None]:
    """Scale moto's Retry and Wait sleeps by ``factor`` (and ``TimeoutSeconds`` too when ``timeouts``).

    Keep ``timeouts`` off when handlers do real work: a scaled ``TimeoutSeconds`` would cut them short.
    """
    global _active
    if not 0 < factor <= 1:
        raise ConfigurationError(f"fast_clock factor {factor} is not in (0, 1]", remediation="Use e.g. 0.01.")
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.common.timeouts import timeout
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    def wait_interval(self: WaitFunction, env: Any, wait_seconds: int) -> None:
        # Wait states end early when the execution stops (program_state_event), as in moto.
        deadline = time.monotonic() + wait_seconds * factor
        while env.is_running():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            env.program_state_event.wait(remaining)

    def eval_timeout(self: Any, env: Any) -> None:
        seconds = self._eval_seconds(env=env)
        env.stack.append(seconds if self.is_default_value() else seconds * factor)

    with _lock:
        if _active:
            raise ConfigurationError(
                "fast_clock is already active", remediation="Do not nest fast_clock blocks."
            )
        _active = True
    try:
        with ExitStack() as patches:
            _patch(patches, retrier_decl, "time", _ScaledTime(factor))
            _patch(patches, WaitFunction, "_wait_interval", wait_interval)
            if timeouts:
                _patch(patches, timeout.Timeout, "_eval_body", eval_timeout)
            yield
    finally:
        with _lock:
            _active = False


def _patch(stack: ExitStack, owner: Any, name: str, replacement: Any) -> None:
    if not hasattr(owner, name):
        raise ConfigurationError(
            f"moto has no {getattr(owner, '__name__', owner)}.{name}",
            remediation="moto changed: re-verify tests/support/clock.py against the pinned moto.",
        )
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    stack.callback(setattr, owner, name, original)
