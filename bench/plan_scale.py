"""Plan scale: plan + hash + compile generated packs of 100, 1,000 and 10,000 steps, and a map of 10,000
items. Prints seconds per phase and peak MiB for each, work(10,000) / work(1,000), and whether the pre-flight
accepts the pack (10,000 sequential steps are over the Step Functions history limit: measured through the
planner and compiler directly, refused by ``build_plan``; see bench/hostile_plans.py for refusal times).

Targets: plan + hash + compile of 10,000 steps in under 1 s on 2 cores; the ratio under 12.
Run: .venv/bin/python bench/plan_scale.py [--repeat N] [--no-compile]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import yaml
from taskrunner.asl.limits import pack_floors
from taskrunner.pack.loader import load_pack
from taskrunner.pack.source import gc_paused, parse_source
from taskrunner.plan.document import Plan
from taskrunner.plan.hashing import canonical_plan_bytes, plan_hash_of_bytes
from taskrunner.plan.planner import plan_pack
from taskrunner.plan.simulate import simulate

Compile = Callable[[Plan], Any]


def manifest(steps: list[dict[str, Any]], inputs: list[dict[str, Any]] | None = None) -> str:
    document = {
        "apiVersion": "stellaops.io/pack.v1",
        "kind": "TaskPack",
        "metadata": {"name": "scale", "version": "1.0.0"},
        "spec": {
            "inputs": inputs or [{"name": "who", "type": "string", "default": "world"}],
            "sandbox": {"mode": "sealed", "egressAllowlist": []},
            "failure": {"retries": {"maxAttempts": 2, "backoffSeconds": 1}},
            "steps": steps,
        },
    }
    return yaml.safe_dump(document, sort_keys=False)


def sequential_pack(count: int) -> str:
    """``count`` steps: groups of run steps, parallels of four and a gate every 100 steps."""
    steps: list[dict[str, Any]] = []
    made = 0
    while made < count:
        i = len(steps)
        if i % 25 == 24 and count - made >= 5:
            children = [{"id": f"p{i}c{j}", "run": {"uses": "noop", "with": {"n": j}}} for j in range(4)]
            steps.append({"id": f"p{i}", "parallel": {"maxParallel": 2, "steps": children}})
            made += 5
        else:
            step = {
                "id": f"s{i}",
                "run": {"uses": "noop", "with": {"greeting": "hello {{ inputs.who }}", "n": i}},
                "outputs": ["greeting"],
            }
            if i % 10 == 3:
                step["when"] = "inputs.who != 'nobody'"
            steps.append(step)
            made += 1
    return manifest(steps)


def map_pack(items: int) -> str:
    template = {"id": "each", "run": {"uses": "noop", "with": {"target": "{{ item }}", "at": "{{ index }}"}}}
    return manifest(
        [{"id": "fan", "map": {"items": "{{ inputs.targets }}", "maxParallel": 40, "step": template}}],
        [{"name": "targets", "type": "array", "default": [f"t{i}" for i in range(items)]}],
    )


def compiler() -> Compile | None:
    try:
        from taskrunner.asl.compiler import compile_plan
    except ImportError:
        return None
    return compile_plan


def run_once(text: str, compile_step: Compile | None) -> tuple[dict[str, float], int, bool]:
    """One pipeline run as the CLI does it (GC paused): phase -> seconds, the number of steps, and whether
    the pack is within the Step Functions limits."""
    times: dict[str, float] = {}
    with gc_paused():
        start = time.perf_counter()
        document = parse_source(text, source_name="bench").document
        times["parse"] = time.perf_counter() - start
        start = time.perf_counter()
        pack = load_pack(document, source_name="bench")
        plan = plan_pack(pack, {})
        plan_hash_of_bytes(canonical_plan_bytes(plan))
        steps = len(simulate(plan).steps)
        times["plan"] = time.perf_counter() - start
        start = time.perf_counter()
        within = not pack_floors(pack.manifest.spec.steps, pack.manifest.spec.maxParallel).problems()
        if compile_step is not None:
            compiled_ok = compile_step(plan).limits.ok  # compiled even when the floors already refuse
            within = within and compiled_ok
        times["compile"] = time.perf_counter() - start
    return times, steps, within


def measure(
    text: str, compile_step: Compile | None, repeat: int
) -> tuple[dict[str, float], float, int, bool]:
    """Best time per phase over ``repeat`` runs, the peak traced MiB of one more run, steps, accepted."""
    best: dict[str, float] = {}
    count, within = 0, False
    for _ in range(repeat):
        gc.collect()
        times, count, within = run_once(text, compile_step)
        best = {k: min(v, best.get(k, v)) for k, v in times.items()}
    gc.collect()
    tracemalloc.start()
    run_once(text, compile_step)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return best, peak, count, within


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    compile_step = None if args.no_compile else compiler()
    if compile_step is None:
        print("compile: not measured (taskrunner.asl.compiler unavailable or --no-compile)")
    print(f"best of {args.repeat} per phase (seconds); peak MiB by tracemalloc over one full run")
    print("work = plan+hash+compile from the parsed document; YAML parsing (PyYAML/libyaml) shown apart")
    header = ("case", "steps", "parse", "plan+hash", "compile", "work", "peak MiB", "accepted")
    print(f"{header[0]:<18}" + "".join(f"{h:>11}" for h in header[1:]))
    work: dict[str, float] = {}
    cases = [
        ("steps-100", sequential_pack(100)),
        ("steps-1000", sequential_pack(1_000)),
        ("steps-10000", sequential_pack(10_000)),
        ("map-10000-items", map_pack(10_000)),
    ]
    for name, text in cases:
        best, peak, count, within = measure(text, compile_step, args.repeat)
        work[name] = best["plan"] + best["compile"]
        row = (count, best["parse"], best["plan"], best["compile"], work[name], peak)
        print(
            f"{name:<18}{row[0]:>11}"
            + "".join(f"{v:>11.3f}" for v in row[1:5])
            + f"{row[5]:>11.1f}{'yes' if within else 'no':>11}"
        )
    ratio = work["steps-10000"] / work["steps-1000"]
    print(f"ratio work(10,000)/work(1,000) = {ratio:.2f}   (target < 12)")
    print(f"work for 10,000 steps = {work['steps-10000']:.3f} s   (target < 1 s on 2 cores)")


if __name__ == "__main__":
    main()
