"""The per-context overlay of os.environ that gives each in-process function its own environment."""

from __future__ import annotations

import contextvars
import os
import threading
from collections import ChainMap
from collections.abc import Iterator

import pytest
from taskrunner.local.environ import environment_overlay, overlay_installed


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TR_OVERLAY_BASE", "base")
    monkeypatch.setenv("TR_OVERLAY_HIDDEN", "process")
    monkeypatch.delenv("TR_OVERLAY_FN", raising=False)
    with overlay_installed():
        yield
    assert type(os.environ) is os._Environ  # restored


def test_without_an_overlay_os_environ_is_the_process_environment(installed: None) -> None:
    assert os.environ["TR_OVERLAY_BASE"] == "base"
    os.environ["TR_OVERLAY_FN"] = "set"
    assert os.getenv("TR_OVERLAY_FN") == "set"
    del os.environ["TR_OVERLAY_FN"]
    assert "TR_OVERLAY_FN" not in os.environ


def test_an_overlay_wins_for_every_accessor(installed: None) -> None:
    with environment_overlay({"TR_OVERLAY_FN": "fn", "TR_OVERLAY_HIDDEN": None}):
        assert os.environ["TR_OVERLAY_FN"] == "fn"
        assert os.environ.get("TR_OVERLAY_FN") == "fn"
        assert os.getenv("TR_OVERLAY_FN") == "fn"
        assert "TR_OVERLAY_FN" in os.environ
        assert os.environ["TR_OVERLAY_BASE"] == "base"  # the process environment shows through
        assert "TR_OVERLAY_HIDDEN" not in os.environ  # None hides a process variable
        assert os.getenv("TR_OVERLAY_HIDDEN") is None
        with pytest.raises(KeyError):
            os.environ["TR_OVERLAY_HIDDEN"]
        keys = list(os.environ)
        assert {"TR_OVERLAY_FN", "TR_OVERLAY_BASE"} <= set(keys)
        assert "TR_OVERLAY_HIDDEN" not in keys
        assert len(keys) == len(set(keys)) == len(os.environ)
        copied = os.environ.copy()
        assert isinstance(copied, dict)
        assert copied["TR_OVERLAY_FN"] == "fn"
        assert "TR_OVERLAY_HIDDEN" not in copied
        assert dict(os.environ) == copied
    assert "TR_OVERLAY_FN" not in os.environ
    assert os.environ["TR_OVERLAY_HIDDEN"] == "process"


def test_writes_inside_an_overlay_stay_in_it(installed: None) -> None:
    overlay: dict[str, str | None] = {}
    with environment_overlay(overlay):
        os.environ["TR_OVERLAY_FN"] = "mine"
        os.environ.setdefault("TR_OVERLAY_OTHER", "default")
        del os.environ["TR_OVERLAY_BASE"]
        assert os.environ["TR_OVERLAY_FN"] == "mine"
        assert "TR_OVERLAY_BASE" not in os.environ
        with pytest.raises(KeyError):
            del os.environ["TR_OVERLAY_NEVER_SET"]
    assert overlay == {"TR_OVERLAY_FN": "mine", "TR_OVERLAY_OTHER": "default", "TR_OVERLAY_BASE": None}
    assert "TR_OVERLAY_FN" not in os.environ
    assert os.environ["TR_OVERLAY_BASE"] == "base"


def test_concurrent_contexts_see_their_own_values_and_copied_contexts_follow(installed: None) -> None:
    seen: dict[str, list[str | None]] = {}
    barrier = threading.Barrier(2)

    def function(name: str) -> None:
        with environment_overlay(ChainMap({"TR_OVERLAY_TRACE": f"trace-{name}"}, {"TR_OVERLAY_FN": name})):
            barrier.wait()  # both overlays are active at the same time
            child_context = contextvars.copy_context()
            child: list[str | None] = []
            thread = threading.Thread(
                target=child_context.run, args=(lambda: child.append(os.getenv("TR_OVERLAY_FN")),)
            )
            thread.start()
            thread.join()
            seen[name] = [os.getenv("TR_OVERLAY_FN"), os.getenv("TR_OVERLAY_TRACE"), *child]

    threads = [threading.Thread(target=function, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"a": ["a", "trace-a", "a"], "b": ["b", "trace-b", "b"]}


def test_installs_nest() -> None:
    with overlay_installed():
        with overlay_installed():
            assert type(os.environ).__name__ == "OverlayEnviron"
        assert type(os.environ).__name__ == "OverlayEnviron"
    assert type(os.environ) is os._Environ
