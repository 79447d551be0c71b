"""Peer comparison: ``taskrunner run`` vs Prefect 3.9 vs a floor, on the same number of trivial steps.

Each row runs, in a fresh process each and interleaved (``--repeat`` rounds, the median printed):

* TaskRunner: ``taskrunner run PACK --json`` of a generated pack of N ``noop`` steps (or one map of N items);
* Prefect: a flow of N trivial tasks (or ``task.map`` over N items) on Prefect's ephemeral SQLite server,
  from its own virtual environment (``--prefect-venv``, created and pinned by this script on first use),
  offline: ``PREFECT_API_URL`` unset, analytics and telemetry off;
* floor: a loop calling a trivial function and appending one fsynced JSON line per step.

Both systems run twice per round: *cold*, on an empty home (``TASKRUNNER_HOME``/``PREFECT_HOME`` a fresh
temporary directory: Prefect creates and migrates its database, TaskRunner parses the state machine), and
*warm*, on a home the same flow or pack already ran in once (untimed, before the first round), as when a
runbook runs again.

Every single run is bounded by ``--timeout`` seconds; a run that does not finish counts as the timeout and the
row is marked ``>``. Exit 1 when a run fails.

Run: .venv/bin/python bench/peer_prefect.py [--sizes 1,100,500,1000] [--map-items 1000] [--repeat 3]
                                            [--timeout 300] [--prefect-venv .venv-bench-prefect]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from local_engine import map_pack, noop_pack

REPO = Path(__file__).resolve().parents[1]
PREFECT_PIN = "prefect==3.9.1"
PYTHON_FOR_PREFECT = "python3.11"

PREFECT_FLOW = """
import sys
from prefect import flow, task

@task
def noop(n):
    return n

@flow
def steps(count: int) -> int:
    return sum(noop(i) for i in range(count))

@flow
def mapped(count: int) -> int:
    return sum(noop.map(range(count)).result())

kind, count = sys.argv[1], int(sys.argv[2])
assert (steps if kind == "steps" else mapped)(count) == count * (count - 1) // 2
"""

FLOOR = """
import json, os, sys
def noop(n):
    return n
with open(sys.argv[1], "a") as log:
    for i in range(int(sys.argv[2])):
        log.write(json.dumps({"step": i, "output": noop(i)}) + "\\n")
        log.flush()
        os.fsync(log.fileno())
"""

# Prefect settings that keep it on this machine: no API URL, so the ephemeral server (SQLite in PREFECT_HOME,
# on 127.0.0.1); the server's start-up analytics (sens-o-matic.prefect.io) off, run and resource telemetry
# off, no UI served.
PREFECT_OFFLINE = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_ENABLED": "true",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


SYSTEMS = ("taskrunner", "prefect", "taskrunner warm", "prefect warm", "floor")


@dataclass(frozen=True)
class Case:
    label: str
    kind: str  # steps | map
    count: int


@dataclass(frozen=True)
class Outcome:
    seconds: float
    timed_out: bool


def ensure_prefect(venv: Path) -> Path:
    """The virtual environment's python with ``PREFECT_PIN`` installed (created on first use)."""
    python = venv / "bin" / "python"
    stamp = venv / f".{PREFECT_PIN}"
    if not stamp.exists():
        print(f"installing {PREFECT_PIN} into {venv} ...", flush=True)
        if not python.exists():
            subprocess.run([PYTHON_FOR_PREFECT, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PREFECT_PIN], check=True)
        stamp.touch()
    return python


def timed(argv: list[str], env: dict[str, str], timeout: float, what: str) -> Outcome:
    start = time.perf_counter()
    try:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Outcome(timeout, True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(
            f"{what} failed (exit {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
        )
    return Outcome(seconds, False)


def clean_environment() -> dict[str, str]:
    prefixes = ("TASKRUNNER_", "PREFECT_", "AWS_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def run_taskrunner(case: Case, scratch: Path, timeout: float, home: Path | None = None) -> Outcome:
    """One run on ``home`` (kept), or on a fresh home (removed after)."""
    pack = scratch / f"{case.kind}-{case.count}.yaml"
    if not pack.exists():
        pack.write_text(noop_pack(case.count) if case.kind == "steps" else map_pack(case.count))
    used = home or Path(tempfile.mkdtemp(prefix="home-", dir=scratch))
    env = {**clean_environment(), "TASKRUNNER_HOME": str(used)}
    cli = str(Path(sys.executable).parent / "taskrunner")
    try:
        return timed([cli, "run", str(pack), "--json"], env, timeout, f"taskrunner run {pack.name}")
    finally:
        if home is None:
            shutil.rmtree(used, ignore_errors=True)


def run_prefect(case: Case, python: Path, scratch: Path, timeout: float, home: Path | None = None) -> Outcome:
    """One flow run on ``home`` (kept), or on a fresh home (removed after)."""
    used = home or Path(tempfile.mkdtemp(prefix="prefect-", dir=scratch))
    env = {**clean_environment(), **PREFECT_OFFLINE, "PREFECT_HOME": str(used)}
    try:
        argv = [str(python), "-c", PREFECT_FLOW, case.kind, str(case.count)]
        return timed(argv, env, timeout, f"prefect flow {case.label}")
    finally:
        if home is None:
            shutil.rmtree(used, ignore_errors=True)


def run_floor(case: Case, scratch: Path, timeout: float) -> Outcome:
    log = scratch / "floor.jsonl"
    log.unlink(missing_ok=True)
    return timed(
        [sys.executable, "-c", FLOOR, str(log), str(case.count)], os.environ.copy(), timeout, "floor"
    )


def cell(outcomes: list[Outcome]) -> tuple[float, str]:
    median = statistics.median(o.seconds for o in outcomes)
    return median, f"{'>' if any(o.timed_out for o in outcomes) else ''}{median:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,100,500,1000", help="comma-separated step counts")
    parser.add_argument("--map-items", type=int, default=1000, help="items of the map row (0: no map row)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed to any single run")
    parser.add_argument("--prefect-venv", type=Path, default=REPO / ".venv-bench-prefect")
    args = parser.parse_args()
    cases = [Case(f"{int(n):,}", "steps", int(n)) for n in args.sizes.split(",") if n.strip()]
    if args.map_items:
        cases.append(Case(f"map of {args.map_items:,}", "map", args.map_items))
    prefect = ensure_prefect(args.prefect_venv)

    results: dict[tuple[str, str], list[Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp:
        scratch = Path(tmp)
        warm = {  # each flow and pack ran once in its own warm home
            (case.label, system): Path(tempfile.mkdtemp(prefix="warm-", dir=scratch))
            for case in cases
            for system in ("taskrunner", "prefect")
        }

        def measure(system: str, case: Case) -> Outcome:
            home = warm[(case.label, system.removesuffix(" warm"))] if system.endswith(" warm") else None
            if system.startswith("taskrunner"):
                return run_taskrunner(case, scratch, args.timeout, home)
            if system.startswith("prefect"):
                return run_prefect(case, prefect, scratch, args.timeout, home)
            return run_floor(case, scratch, args.timeout)

        for case in cases:
            measure("taskrunner warm", case)
            measure("prefect warm", case)
        for round_ in range(1, args.repeat + 1):  # interleaved, so drift hits every column alike
            for case in cases:
                for system in SYSTEMS:
                    outcome = measure(system, case)
                    results.setdefault((case.label, system), []).append(outcome)
                    print(
                        f"  round {round_} {case.label:>14} {system:<10} {outcome.seconds:8.2f} s", flush=True
                    )

    print(
        f"\npython {sys.version.split()[0]}, {PREFECT_PIN}, {os.cpu_count()} CPUs; median of {args.repeat} "
        f"interleaved fresh processes per cell; each run bounded by {args.timeout:.0f} s"
    )
    print(
        "| steps | TaskRunner cold | Prefect cold | ratio cold | TaskRunner warm | Prefect warm | ratio warm "
        "| floor |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for case in cases:
        row = [case.label]
        for temperature in ("", " warm"):
            ours, ours_text = cell(results[(case.label, "taskrunner" + temperature)])
            theirs, theirs_text = cell(results[(case.label, "prefect" + temperature)])
            row += [ours_text, theirs_text, f"{ours / theirs:.2f}"]
        row.append(cell(results[(case.label, "floor")])[1])
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
