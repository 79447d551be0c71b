"""Parallel and map steps take their status from their children, live and when the run is sealed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from taskrunner.engine.seal import container_statuses


def tree() -> tuple[list[SimpleNamespace], dict[str, str]]:
    """A parallel ``p`` holding a map ``m`` (children m[0], m[1]) and a run step ``c``."""
    records = [
        SimpleNamespace(stepId="p", kind="parallel", parentId=None),
        SimpleNamespace(stepId="m", kind="map", parentId="p"),
        SimpleNamespace(stepId="m[0]::x", kind="run", parentId="m"),
        SimpleNamespace(stepId="m[1]::x", kind="run", parentId="m"),
        SimpleNamespace(stepId="c", kind="run", parentId="p"),
    ]
    return records, {r.stepId: "pending" for r in records}


@pytest.mark.parametrize(
    ("children", "live", "expected_map", "expected_parallel"),
    [
        ({"m[0]::x": "pending", "m[1]::x": "pending", "c": "pending"}, True, "pending", "pending"),
        ({"m[0]::x": "succeeded", "m[1]::x": "running", "c": "pending"}, True, "running", "running"),
        ({"m[0]::x": "succeeded", "m[1]::x": "succeeded", "c": "running"}, True, "succeeded", "running"),
        ({"m[0]::x": "succeeded", "m[1]::x": "succeeded", "c": "succeeded"}, False, "succeeded", "succeeded"),
        ({"m[0]::x": "skipped", "m[1]::x": "skipped", "c": "skipped"}, False, "skipped", "skipped"),
        ({"m[0]::x": "succeeded", "m[1]::x": "failed", "c": "succeeded"}, False, "failed", "failed"),
        ({"m[0]::x": "succeeded", "m[1]::x": "cancelled", "c": "cancelled"}, False, "cancelled", "cancelled"),
    ],
)
def test_container_status_follows_children(
    children: dict[str, str], live: bool, expected_map: str, expected_parallel: str
) -> None:
    records, statuses = tree()
    statuses.update(children)
    derived = container_statuses(records, statuses, live=live)
    assert derived["m"] == expected_map
    assert derived["p"] == expected_parallel
    assert {k: derived[k] for k in children} == children  # leaves are never changed
