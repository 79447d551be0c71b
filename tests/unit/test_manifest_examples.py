"""The example packs: every valid one loads and plans; every invalid one fails as its first comment says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from taskrunner.pack import ManifestError, load_pack
from taskrunner.plan.planner import build_plan

PACKS = Path(__file__).resolve().parents[2] / "examples" / "packs"
VALID = sorted(PACKS.glob("*.yaml"))
INVALID = sorted((PACKS / "invalid").glob("*.yaml"))
# The packs the design contract ships beside the project (../shared/packs): the same rules hold for them.
SHARED = Path(__file__).resolve().parents[3] / "shared" / "packs"
SHARED_VALID = sorted(SHARED.glob("*.yaml"))
SHARED_INVALID = sorted((SHARED / "invalid").glob("*.yaml"))
REQUIRED_INPUTS = {"airgap-import.yaml": {"bundlePath": "/tmp/bundle.tar", "bundleSha256": "0" * 64}}

# JSON path and line of the problem each invalid pack must report (the line where the comment omits it).
EXPECTED: dict[str, tuple[str, int]] = {
    "bad-duration.yaml": ("spec.approvals[0].expiresAfter", 7),
    "bad-expression.yaml": ("spec.steps[0].when", 9),
    "duplicate-step-id.yaml": ("spec.steps[1].id", 9),
    "map-over-step-output.yaml": ("spec.steps[1].map.items", 10),
    "missing-parameter.yaml": ("spec.steps[0].run.with.name", 10),
    "missing-sandbox.yaml": ("spec.sandbox", 6),
    "secret-in-condition.yaml": ("spec.steps[0].when", 10),
    "two-kinds.yaml": ("spec.steps[0]", 9),
    "undeclared-input.yaml": ("spec.steps[0].run.with.greeting", 10),
    "undeclared-step-output.yaml": ("spec.steps[0].outputs[0]", 10),
    "unknown-approval.yaml": ("spec.steps[0].gate.approval.approval", 9),
    "unknown-module.yaml": ("spec.steps[0].run.uses", 10),
    "unknown-parameter.yaml": ("spec.steps[0].run.with.command", 11),
    "unknown-step-output.yaml": ("spec.outputs[0].from", 13),
    "wrong-parameter-type.yaml": ("spec.steps[0].run.with.seconds", 10),
}
_STATED_PATH = re.compile(r"\b(spec(?:\.[A-Za-z][\w.-]*|\[\d+\])+)")
_STATED_LINE = re.compile(r"\(line (\d+)\)")


def test_there_are_example_packs_of_both_kinds() -> None:
    assert VALID
    assert INVALID
    assert {path.name for path in INVALID} == set(EXPECTED), "add the new invalid pack to EXPECTED"


@pytest.mark.parametrize(
    "path", VALID + SHARED_VALID, ids=lambda p: ("shared:" if SHARED in p.parents else "") + p.name
)
def test_valid_examples_load_and_plan(path: Path) -> None:
    loaded = load_pack(path)
    result = build_plan(loaded, REQUIRED_INPUTS.get(path.name, {}))
    assert result.plan.pack.name == loaded.manifest.metadata.name
    assert result.simulation.steps


def test_the_shared_packs_are_here() -> None:
    assert SHARED_VALID, f"no packs in {SHARED}"
    assert {p.name for p in SHARED_INVALID} <= set(EXPECTED), "add the shared invalid pack to EXPECTED"


@pytest.mark.parametrize(
    "path", INVALID + SHARED_INVALID, ids=lambda p: ("shared:" if SHARED in p.parents else "") + p.name
)
def test_invalid_examples_fail_as_their_first_comment_states(path: Path) -> None:
    comment = path.read_text().splitlines()[0]
    assert comment.startswith("# expected: refused - ")
    with pytest.raises(ManifestError) as info:
        load_pack(path)
    located = {(p["path"], p["line"]) for p in info.value.problem_list}
    path_expected, line_expected = EXPECTED[path.name]
    assert (path_expected, line_expected) in located
    stated_path = _STATED_PATH.search(comment)
    if stated_path:
        assert stated_path.group(1).rstrip(".") == path_expected
    stated_line = _STATED_LINE.search(comment)
    if stated_line:
        assert int(stated_line.group(1)) == line_expected
    assert all(p["file"] == str(path) and p["hint"] for p in info.value.problem_list)
