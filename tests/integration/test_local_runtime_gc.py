"""The local runtime tunes the cyclic garbage collector while it runs and gives the process its settings back."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from taskrunner.local.runtime import GC_THRESHOLD, LocalRuntime

pytestmark = pytest.mark.xdist_group("local_seam")  # one moto runtime per process


def test_the_collector_is_tuned_while_the_runtime_runs_and_restored_at_stop(tmp_path: Path) -> None:
    before = gc.get_threshold()
    assert before != GC_THRESHOLD
    with LocalRuntime(tmp_path / "home", resume=False):
        assert gc.get_threshold() == GC_THRESHOLD
        assert gc.get_freeze_count() > 0  # start-up's objects are out of every collection
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
