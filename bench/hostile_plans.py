"""Hostile plans: how long the pre-flight takes to refuse packs Step Functions (or the configured bounds)
would not accept. Prints, per case, the manifest size, time to parse the text, time to refuse the
parsed document (validate + bounds + floors, as ``plan``/``compile``/the API do) and the first problem.

Cases: maps nested 17 and 50 deep (two items each: 2^17 and 2^50 steps if expanded), maps nested 8 deep
with 4 items each (65,536 steps, within the nesting limit), 20,000 sequential steps (a 13 MB definition and
280,000 history events), and a parallel of 20,000 steps run one at a time (its history fits once it runs
as a DISTRIBUTED Map; its definition would be 13 MB).

Target: every refusal well under a second. Run: .venv/bin/python bench/hostile_plans.py [--repeat N]
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from typing import Any

from taskrunner.pack.errors import ManifestError
from taskrunner.pack.source import gc_paused, parse_source
from taskrunner.plan.planner import build_plan


def pack(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "stellaops.io/pack.v1",
        "kind": "TaskPack",
        "metadata": {"name": "hostile", "version": "1.0.0"},
        "spec": {"sandbox": {"mode": "sealed", "egressAllowlist": []}, "steps": steps},
    }


def nested_maps(depth: int, width: int) -> dict[str, Any]:
    step: dict[str, Any] = {"id": "leaf", "run": {"uses": "noop"}}
    for level in range(depth):
        step = {"id": f"m{level}", "map": {"items": list(range(width)), "step": step}}
    return pack([step])


def run_steps(count: int) -> list[dict[str, Any]]:
    return [{"id": f"s{i}", "run": {"uses": "noop", "with": {"n": i}}} for i in range(count)]


CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "nested-map-17x2": lambda: nested_maps(17, 2),
    "nested-map-50x2": lambda: nested_maps(50, 2),
    "nested-map-8x4": lambda: nested_maps(8, 4),
    "sequential-20000": lambda: pack(run_steps(20_000)),
    "parallel-20000-one-at-a-time": lambda: pack(
        [{"id": "all", "parallel": {"maxParallel": 1, "steps": run_steps(20_000)}}]
    ),
}


def refuse(text: str) -> tuple[float, float, str]:
    """Seconds to parse, seconds to refuse the parsed document, and the first problem."""
    with gc_paused():
        start = time.perf_counter()
        try:
            document = parse_source(text, source_name="bench").document
        except ManifestError as exc:
            return time.perf_counter() - start, 0.0, str(exc).splitlines()[0]
        parsed = time.perf_counter()
        try:
            build_plan(document, {}, source_name="bench")
        except ManifestError as exc:
            return parsed - start, time.perf_counter() - parsed, str(exc).splitlines()[0]
    raise SystemExit("accepted: the pre-flight no longer refuses this case")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(
        f"best of {args.repeat} (milliseconds); refuse = validate + bounds + floors from the parsed document"
    )
    print(f"{'case':<30}{'MB':>7}{'parse ms':>10}{'refuse ms':>11}  problem")
    for name, build in CASES.items():
        text = json.dumps(build())
        parse_s, refuse_s, problem = float("inf"), float("inf"), ""
        for _ in range(args.repeat):
            gc.collect()
            parsed, refused, problem = refuse(text)
            parse_s, refuse_s = min(parse_s, parsed), min(refuse_s, refused)
        shown = problem if len(problem) <= 110 else problem[:107] + "..."
        print(f"{name:<30}{len(text) / 1e6:>7.2f}{parse_s * 1e3:>10.1f}{refuse_s * 1e3:>11.1f}  {shown}")


if __name__ == "__main__":
    main()
