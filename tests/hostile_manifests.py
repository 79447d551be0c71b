"""Hypothesis strategies for hostile pack manifests: structured mutations of real packs (the pack schema's
shape with wrong values, missing and unknown fields) and hostile YAML/JSON text (deep nesting, aliases,
huge scalars, control characters, invalid UTF-8, tabs, merge and duplicate keys, unsafe tags, binary)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

PACKS = Path(__file__).resolve().parents[1] / "examples" / "packs"
REAL_PACKS = sorted(p.read_text(encoding="utf-8") for p in PACKS.glob("*.yaml"))
HELLO = (PACKS / "hello.yaml").read_text(encoding="utf-8")

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        ["{{ inputs.who }}", "{{", "}}", "{{ steps.x.outputs.y }}", "P1D", "PT0S", "*.x", "", "1.0.0"]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated_packs(draw: st.DrawFn) -> dict[str, Any]:
    """A real pack with a few subtrees replaced, removed or given unknown siblings."""
    document = copy.deepcopy(yaml.safe_load(draw(st.sampled_from(REAL_PACKS))))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = [p for p in _paths(document) if p]
        path = draw(st.sampled_from(paths))
        parent: Any = document
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "extra"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
        if not isinstance(document, dict) or not document:
            break
    return document


def _deep(draw: st.DrawFn) -> str:
    depth = draw(st.integers(min_value=1, max_value=20_000))
    kind = draw(st.sampled_from(["flow-seq", "flow-map", "block-seq", "block-map", "json", "compact"]))
    closed = draw(st.booleans())
    if kind == "flow-seq":
        return "a: " + "[" * depth + ("]" * depth if closed else "")
    if kind == "flow-map":
        return "a: " + "{k: " * depth + "1" + ("}" * depth if closed else "")
    if kind == "json":
        return '{"a":' * depth + "1" + ("}" * depth if closed else "")
    if kind == "compact":
        return "- " * min(depth, 5_000) + "x\n"
    depth = min(depth, 300)
    if kind == "block-seq":
        return "".join("  " * i + "-\n" for i in range(depth))
    return "".join("  " * i + f"k{i}:\n" for i in range(depth))


def _aliases(draw: st.DrawFn) -> str:
    width = draw(st.integers(min_value=1, max_value=12))
    levels = draw(st.integers(min_value=1, max_value=10))
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    if draw(st.booleans()):
        lines.append("r: &r [*r]")
    return "\n".join(lines) + "\n"


def _scalars(draw: st.DrawFn) -> str:
    size = draw(st.integers(min_value=1, max_value=200_000))
    kind = draw(st.sampled_from(["text", "int", "float", "key"]))
    if kind == "int":
        return "n: " + "9" * min(size, 8_000) + "\n"
    if kind == "float":
        return "n: " + "9" * min(size, 8_000) + ".5e999\n"
    if kind == "key":
        return "k" * size + ": 1\n"
    return "s: " + "x" * size + "\n"


def _fragments(draw: st.DrawFn) -> str:
    return draw(
        st.sampled_from(
            [
                "\t- tab\n",
                "base: &b {x: 1}\nm:\n  <<: *b\n  <<: [*b, *b]\n",
                "a: 1\na: 2\n",
                "? [a, b]\n: 1\n",
                "? {a: 1}\n: 2\n",
                "x: !!python/object/apply:os.system [true]\n",
                "x: !!python/name:os.system\n",
                "x: !!binary Zm9v\n",
                "x: !!set {a, b}\n",
                "x: !!omap [a: 1]\n",
                "x: !!timestamp 2020-01-01\n",
                "x: !!int 0x\n",
                "x: !!bool maybe\n",
                "x: !!float nan\n",
                "x: !custom 1\n",
                "%YAML 1.1\n---\na: 1\n",
                "--- a\n--- b\n",
                "a: *undefined\n",
                "{{ inputs.who }}: x\n",
                "x: .inf\n",
                "steps: [{id: x, map: {items: '{{ inputs.who }}', step: {id: y, run: {uses: noop}}}}]\n",
                "x: '" + "(" * 3000 + "'\n",
                "when: " + "inputs.a || " * 1000 + "inputs.b\n",
            ]
        )
    )


@st.composite
def hostile_texts(draw: st.DrawFn) -> bytes:
    """Hostile manifest bytes: a hostile piece alone, spliced into a real pack, or raw bytes."""
    kind = draw(st.sampled_from(["deep", "aliases", "scalars", "fragment", "text", "binary", "json"]))
    if kind == "binary":
        return draw(st.binary(max_size=2_000))
    if kind == "text":
        text = draw(st.text(max_size=500))
    elif kind == "json":
        text = json.dumps(draw(mutated_packs()))
    else:
        text = {"deep": _deep, "aliases": _aliases, "scalars": _scalars, "fragment": _fragments}[kind](draw)
    if draw(st.booleans()):  # splice it into a real pack at a line boundary
        lines = draw(st.sampled_from(REAL_PACKS)).splitlines(keepends=True)
        at = draw(st.integers(min_value=0, max_value=len(lines)))
        text = "".join(lines[:at]) + text + "".join(lines[at:])
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(min_value=0, max_value=9)) == 0:  # sometimes not UTF-8 at all
        data = data.replace(b"a", b"\xff", 1) or b"\xff"
    return data


def hostile_corpus() -> list[bytes]:
    """A fixed corpus of the worst cases, for a child process that must exit normally."""
    worst = [
        "a: " + "[" * 300_000,
        "a: " + "{k: " * 300_000,
        "[" * 300_000 + "]" * 300_000,
        '{"a":' * 300_000,
        "- " * 300_000 + "x\n",
        "".join("  " * i + "-\n" for i in range(2_000)),
        "l0: &l0 ["
        + ", ".join(["lol"] * 10)
        + "]\n"
        + "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 12)),
        "r: &r [*r]\n",
        "n: " + "9" * 50_000 + "\n",
        "x: !!python/object/apply:os.system [true]\n",
        "a: 1\n\x00\n",
    ]
    return [w.encode() for w in worst] + [b"\xff\xfe\x00" * 100, HELLO.encode()]
