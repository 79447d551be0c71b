"""Long-running process memory: RSS of one LocalRuntime (as ``serve`` holds it) after N and after M one-step runs.

Each run is submitted and waited for until its evidence is sealed, one after the other; after the warm-up
and after each batch the cyclic collector runs once and the resident set size is read from
``/proc/self/status``. A flat process grows by (nearly) nothing per run between the two checkpoints.

The target: RSS after the second batch within ``--target`` percent (default 10) of RSS after the first.

Run: .venv/bin/python bench/serve_memory.py [--first 100] [--then 300] [--target 10]
"""

from __future__ import annotations

import argparse
import gc
import logging
import tempfile
import time
from pathlib import Path

import yaml
from taskrunner.engine.submit import submit_run
from taskrunner.local.runtime import LocalRuntime

TENANT = "local"
HELLO = yaml.safe_dump(
    {
        "apiVersion": "stellaops.io/pack.v1",
        "kind": "TaskPack",
        "metadata": {"name": "bench-hello", "version": "1.0.0"},
        "spec": {
            "inputs": [],
            "sandbox": {"mode": "sealed", "egressAllowlist": []},
            "steps": [{"id": "hello", "run": {"uses": "noop", "with": {"greeting": "hello"}}}],
        },
    },
    sort_keys=False,
)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def run_hello(rt: LocalRuntime, count: int) -> float:
    """Run ``count`` one-step runs to sealed evidence, one after the other; seconds taken."""
    start = time.perf_counter()
    for _ in range(count):
        run = submit_run(rt.svc, tenant_id=TENANT, manifest=HELLO, inputs={}).run
        rt.wait(run.runId, timeout=60, interval=0.005)
    return time.perf_counter() - start


def checkpoint(label: str, runs: int, seconds: float) -> int:
    gc.collect()
    rss = rss_kib()
    print(f"{label:>14}: {runs:5d} runs  RSS {rss / 1024:8.1f} MiB  ({seconds:6.1f} s)", flush=True)
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--first", type=int, default=100)
    parser.add_argument("--then", type=int, default=300)
    parser.add_argument("--target", type=float, default=10.0, help="allowed growth in percent")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as home, LocalRuntime(Path(home), resume=False) as rt:
        warm = run_hello(rt, 10)
        checkpoint("warm-up", 10, warm)
        first = checkpoint("after first", 10 + args.first, run_hello(rt, args.first))
        then = checkpoint("after then", 10 + args.first + args.then, run_hello(rt, args.then))
        growth = (then - first) / args.then
        percent = (then / first - 1) * 100
        print(f"growth per run after the first {10 + args.first}: {growth:.1f} KiB ({percent:+.1f} %)")
        verdict = "met" if percent <= args.target else "missed"
        print(
            f"target: after {10 + args.first + args.then} runs within {args.target:g} % of after {10 + args.first}: {verdict}"
        )


if __name__ == "__main__":
    main()
