"""Hostile manifests and inputs are refused with a positioned problem naming the limit, never a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from taskrunner.pack.errors import InputsError, ManifestError, ManifestTooLarge, PlanTooLarge
from taskrunner.pack.expressions import ExpressionError, compile_expression
from taskrunner.pack.limits import (
    MAX_DEPTH,
    MAX_EXPRESSION_CHARS,
    MAX_MANIFEST_BYTES,
    MAX_PLANNED_STEPS,
    too_deep,
)
from taskrunner.pack.loader import load_pack
from taskrunner.pack.source import parse_source, parse_text
from taskrunner.plan.planner import build_plan, plan_pack

DEEP = 30_000
PACK = """apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: limits, version: 1.0.0}
spec:
  inputs:
    - {name: items, type: array, default: []}
    - {name: blob, type: object, default: {}}
  sandbox: {mode: sealed, egressAllowlist: []}
  steps:
    - id: fan
      map:
        items: "{{ inputs.items }}"
        step: {id: each, run: {uses: noop, with: {n: "{{ item }}"}}}
"""


def refused(text: str | bytes) -> dict[str, object]:
    with pytest.raises(ManifestError) as info:
        parse_source(text, source_name="m.yaml")
    problem = info.value.problem_list[0]
    assert problem["line"] is not None, problem
    assert problem["column"] is not None, problem
    return dict(problem)


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("[" * DEEP, (1, MAX_DEPTH + 1), "64 levels"),
        ('{"a":' * DEEP, (1, 5 * MAX_DEPTH + 1), "64 levels"),
        ("a: " + "[" * DEEP, (1, MAX_DEPTH + 3), "64 levels"),
        ("a: " + "{a: " * DEEP, (1, 4 * MAX_DEPTH), "64 levels"),
        ("".join("  " * i + "k:\n" for i in range(100)), (MAX_DEPTH + 1, 2 * MAX_DEPTH + 1), "64 levels"),
        ("a: &a [*a]\n", (1, 4), "recursive alias"),
        ("? [a]\n: 1\n", (1, 3), "key must be a string"),
        ("a: 1\nb: x\x00y\n", (2, 5), "#x0000 is not allowed"),
        ("a: é\nb: x\x01\n", (2, 5), "#x0001 is not allowed"),
        ("a: " + "9" * 5000 + "\n", (1, 4), "5,000 digits"),
        ('{"a": ' + "9" * 5000 + "}", (1, 7), "5,000 digits"),
        ("a: !!int 0x\n", (1, 4), "cannot read int"),
        ("a: !!bool maybe\n", (1, 4), "cannot read bool"),
        ("", (1, 1), "empty"),
        (b"a: 1\nb: \xff\n", (2, 4), "not UTF-8"),
    ],
)
def test_hostile_text_is_refused_at_a_position(
    text: str | bytes, where: tuple[int, int], fragment: str
) -> None:
    problem = refused(text)
    assert (problem["line"], problem["column"]) == where
    assert fragment in str(problem["message"])


def test_alias_chains_count_towards_the_depth_limit() -> None:
    lines = ["a0: &a0 [[[[[[[[1]]]]]]]]"] + [f"a{i}: &a{i} [[[[[[[[*a{i - 1}]]]]]]]]" for i in range(1, 10)]
    problem = refused("\n".join(lines) + "\n")
    assert "64 levels" in str(problem["message"])


def test_billion_laughs_is_refused() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]" for i in range(8)]
    problem = refused("\n".join(lines) + "\n")
    assert "values (the limit)" in str(problem["message"])


def test_documents_over_the_size_limit_are_refused_before_parsing(tmp_path: Path) -> None:
    text = "a: " + "x" * MAX_MANIFEST_BYTES
    with pytest.raises(ManifestTooLarge) as info:
        parse_text(text, "big.yaml")
    assert info.value.status == 413
    assert f"{MAX_MANIFEST_BYTES:,} bytes" in str(info.value)
    with pytest.raises(ManifestTooLarge):
        parse_source({"a": "x" * MAX_MANIFEST_BYTES})


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_an_endless_file_is_read_only_up_to_the_limit() -> None:
    with pytest.raises(ManifestTooLarge) as info:
        parse_source(Path("/dev/zero"))
    assert "larger than the limit" in str(info.value)


def test_deep_parsed_objects_are_refused_with_their_path() -> None:
    document: dict[str, object] = {"apiVersion": "x"}
    node = document
    for _ in range(DEEP):
        child: dict[str, object] = {}
        node["k"] = child
        node = child
    with pytest.raises(ManifestError) as info:
        parse_source(document)
    problem = info.value.problem_list[0]
    assert problem["path"] == ".".join(["k"] * MAX_DEPTH)
    assert too_deep({"a": [[1]]}, limit=2) == ["a", 0]
    assert too_deep({"a": [[1]]}, limit=3) is None


def test_deep_inputs_are_refused() -> None:
    value: list[object] = []
    node = value
    for _ in range(DEEP):
        inner: list[object] = []
        node.append(inner)
        node = inner
    with pytest.raises(InputsError) as info:
        build_plan(PACK, {"blob": {"v": value}})
    assert "64 levels" in str(info.value)


def test_map_expansion_is_bounded() -> None:
    with pytest.raises(ManifestError) as info:
        build_plan(PACK, {"items": list(range(MAX_PLANNED_STEPS + 5))})
    message = str(info.value)
    assert f"{MAX_PLANNED_STEPS:,}" in message
    assert message.count("steps (the limit)") == 1
    assert len(build_plan(PACK, {"items": list(range(100))}).plan.steps[0].steps) == 100


def test_expressions_are_bounded_in_length_and_nesting() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression("inputs.a || " * (MAX_EXPRESSION_CHARS // 10))
    assert f"{MAX_EXPRESSION_CHARS:,}" in info.value.message
    with pytest.raises(ExpressionError) as info:
        compile_expression("(" * 2000 + "inputs.a" + ")" * 2000)
    assert "nested too deeply" in info.value.message


def test_deep_yaml_in_a_thread_does_not_crash_the_process() -> None:
    """libyaml composes recursively in C: a deep document used to overflow a thread's stack (SIGSEGV)."""
    code = (
        "import threading\n"
        "from taskrunner.pack.errors import ManifestError\n"
        "from taskrunner.pack.source import parse_text\n"
        "def go():\n"
        "    for text in ('a: ' + '[' * 200000, 'a: ' + '{a: ' * 200000, '- ' * 200000):\n"
        "        try:\n"
        "            parse_text(text, 'm.yaml')\n"
        "        except ManifestError as exc:\n"
        "            print(exc.problem_list[0]['line'], flush=True)\n"
        "t = threading.Thread(target=go)\n"
        "t.start(); t.join()\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == ["1", "1", "1"]


def test_too_many_written_steps_are_refused_before_planning() -> None:
    steps = "".join(f"    - {{id: s{i}, run: {{uses: noop}}}}\n" for i in range(MAX_PLANNED_STEPS + 1))
    manifest = PACK.split("  steps:\n")[0] + "  steps:\n" + steps
    loaded = load_pack(manifest)
    with pytest.raises(ManifestError) as info:
        plan_pack(loaded)
    assert f"more than {MAX_PLANNED_STEPS:,} steps (the limit)" in str(info.value)
    with pytest.raises(PlanTooLarge) as refused:
        build_plan(loaded)
    assert "would record at least" in str(refused.value)  # history events, known before planning
