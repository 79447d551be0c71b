"""Local engine overhead: wall time per step of generated packs run end to end by the LocalRuntime (moto
executes the compiled ASL, the in-process runner invokes the real handlers) - 1, 100 and 1,000 ``noop``
steps and a map of 1,000 ``noop`` items - against the floor: the execute_step handler called directly in a
loop over every step of a run of the same pack (created without an execution), i.e. the step work alone.

Each case is bounded by ``--case-timeout`` seconds (engine and floor each): a case that does not finish is
stopped (the run cancelled) and reported with the steps done in that time, so the whole benchmark ends in
a few minutes. ``--case-timeout 0`` runs every case to completion.

Then one case (``--profile``, default noop-100) runs again under cProfile in every thread (moto runs each
execution, Map iteration and handler in its own threads) and the top costs are printed per step.

Run: .venv/bin/python bench/local_engine.py [--steps 1,100,1000] [--map-items 1000] [--case-timeout 30]
                                            [--profile noop-100|none] [--top 20]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import importlib.util
import logging
import os
import pstats
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from taskrunner.engine.lifecycle import cancel_run
from taskrunner.engine.submit import submit_run
from taskrunner.local.lambda_runner import LambdaContext
from taskrunner.local.runtime import LocalRuntime

REPO = Path(__file__).resolve().parents[1]
TENANT = "local"
TERMINAL = {"succeeded", "failed", "cancelled"}
IDLE = ("acquire", "sleep", "wait", "select", "poll", "join", "_wait_for_tstate_lock")
# project functions that mostly wait (polling loops), left out of the cumulative ranking
PROJECT_IDLE = {"_loop", "wait", "wait_idle", "engine", "run"}
HOT_SPOTS = [
    ("moto/core/botocore_stubber.py", "process_request"),  # every AWS call into moto, handler included
    ("moto/awslambda/models.py", "invoke"),
    ("moto/stepfunctions/parser/asl/utils/boto_client.py", "boto_client_for"),  # a new client per Task
    ("moto/stepfunctions/parser/asl/parse/asl_parser.py", "parse"),  # ANTLR parse of the definition
    ("moto/stepfunctions/parser/backend/execution.py", "to_history_output"),
    ("boto3/session.py", "client"),
    ("taskrunner/local/lambda_runner.py", "_invoke"),
]


# ------------------------------------------------------------------------------------------ packs
def _pack(name: str, steps: list[dict[str, Any]], inputs: list[dict[str, Any]] | None = None) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "stellaops.io/pack.v1",
            "kind": "TaskPack",
            "metadata": {"name": name, "version": "1.0.0"},
            "spec": {
                "inputs": inputs or [],
                "sandbox": {"mode": "sealed", "egressAllowlist": []},
                "steps": steps,
            },
        },
        sort_keys=False,
    )


def noop_pack(count: int) -> str:
    return _pack(
        f"bench-noop-{count}",
        [{"id": f"s{i}", "run": {"uses": "noop", "with": {"n": i}}} for i in range(count)],
    )


def map_pack(items: int) -> str:
    step = {
        "id": "each",
        "map": {
            "items": "{{ inputs.items }}",
            "maxParallel": 10,
            "step": {"id": "item", "run": {"uses": "noop", "with": {"item": "{{ item }}"}}},
        },
    }
    return _pack(
        f"bench-map-{items}", [step], [{"name": "items", "type": "array", "default": list(range(items))}]
    )


# ------------------------------------------------------------------------------------------ measuring
@dataclasses.dataclass
class Measured:
    seconds: float
    done: int
    total: int
    note: str = ""
    submit_seconds: float = 0.0  # plan, compile, create the state machine, start (included in seconds)

    @property
    def per_step_ms(self) -> float:
        return self.seconds * 1000 / self.done if self.done else float("nan")


class NoExecution:
    """A workflow engine that starts nothing: the floor's run exists in the store only."""

    def ensure_state_machine(self, name: str, definition: str) -> str:
        return f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}"

    def delete_state_machine_if_idle(self, state_machine_arn: str, finishing_execution: str) -> bool:
        return False

    def start_execution(self, state_machine_arn: str, name: str, payload: Any) -> str:
        return f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"

    def stop_execution(self, execution_arn: str, error: str, cause: str) -> None:
        return None

    def send_task_success(self, task_token: str, output: Any) -> None:
        return None

    def send_task_failure(self, task_token: str, error: str, cause: str) -> None:
        return None

    def execution_status(self, execution_arn: str) -> str:
        return "RUNNING"


def run_steps(run: Any) -> list[str]:
    return [s.stepId for s in run.steps if s.kind == "run"]


def engine(rt: LocalRuntime, manifest: str, timeout: float) -> Measured:
    """Submit and wait for the sealed outcome; on timeout cancel and count the steps done.

    The run is polled with a growing interval (10 ms to 250 ms): reading a large run record is not free,
    and a tight poll would compete with the engine for the interpreter.
    """
    start = time.perf_counter()
    run = submit_run(rt.svc, tenant_id=TENANT, manifest=manifest, inputs={}).run
    submitted = time.perf_counter() - start
    deadline = None if timeout <= 0 else start + timeout
    interval = 0.01
    while True:
        current = rt.svc.store.get_run(run.runId, None)
        if current.status in TERMINAL and current.evidence is not None:
            seconds = time.perf_counter() - start
            steps = run_steps(current)
            return Measured(seconds, len(steps), len(steps), current.status, submitted)
        if deadline is not None and time.perf_counter() > deadline:
            seconds = time.perf_counter() - start
            done = sum(1 for s in current.steps if s.kind == "run" and s.status == "succeeded")
            cancel_run(rt.svc, TENANT, run.runId, "benchmark timeout")
            assert rt.aws is not None
            rt.aws.runner.wait_idle(30)
            note = f"stopped after {timeout:g} s"
            return Measured(seconds, done, len(run_steps(current)), note, submitted)
        time.sleep(interval)
        interval = min(interval * 1.5, 0.25)


def load_execute_step(rt: LocalRuntime) -> tuple[Callable[[Any, Any], Any], Any]:
    """The execute_step handler, loaded by path as Lambda loads it, and a Lambda context for it."""
    assert rt.aws is not None
    function = rt.aws.runner.functions["execute_step"]
    spec = importlib.util.spec_from_file_location(
        f"bench_execute_step_{uuid.uuid4().hex}", function.handler_file
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = LambdaContext(function, str(uuid.uuid4()), time.monotonic() + 10**6)
    return module.handler, context


def floor(rt: LocalRuntime, manifest: str, timeout: float) -> Measured:
    """The execute_step handler called directly for every run step of a fresh run of the same pack."""
    svc = dataclasses.replace(rt.svc, workflow=NoExecution())
    run = submit_run(svc, tenant_id=TENANT, manifest=manifest, inputs={}).run
    handler, context = load_execute_step(rt)
    steps = run_steps(rt.svc.store.get_run(run.runId, None))
    start = time.perf_counter()
    deadline = None if timeout <= 0 else start + timeout
    done = 0
    for step_id in steps:
        result = handler({"runId": run.runId, "tenantId": TENANT, "stepId": step_id, "attempt": 0}, context)
        assert result["status"] == "succeeded", result
        done += 1
        if deadline is not None and time.perf_counter() > deadline:
            return Measured(time.perf_counter() - start, done, len(steps), f"stopped after {timeout:g} s")
    return Measured(time.perf_counter() - start, done, len(steps))


@contextmanager
def runtime(home: Path) -> Iterator[LocalRuntime]:
    os.environ["TASKRUNNER_HOME"] = str(home)
    with LocalRuntime(home) as rt:
        yield rt


# ------------------------------------------------------------------------------------------ profiling
@contextmanager
def profile_threads(profiles: list[cProfile.Profile]) -> Iterator[None]:
    """cProfile every thread started inside the block."""
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()
        try:
            original(self)
        finally:
            profile.disable()

    threading.Thread.run = run  # type: ignore[method-assign]
    try:
        yield
    finally:
        threading.Thread.run = original  # type: ignore[method-assign]


def _label(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    for marker in ("/site-packages/", "/layers/taskrunner/", "/lib/python3."):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            if marker == "/lib/python3.":
                filename = "stdlib/" + filename.split("/", 1)[1]
            break
    else:
        filename = filename.replace(str(REPO) + "/", "")
    return f"{filename}:{line}({name})" if line else name


def report_profile(profiles: list[cProfile.Profile], steps: int, top: int) -> None:
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        try:
            stats.add(profile)
        except TypeError:  # a thread that never ran anything
            continue
    table: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    busy = {k: v for k, v in table.items() if not any(word in k[2] for word in IDLE)}
    cpu = sum(v[2] for v in busy.values())
    print(
        f"\nprofile: {cpu:.2f} s of non-idle time in all threads = {cpu * 1000 / steps:.1f} ms/step (under cProfile)"
    )
    print(f"top {top} by own time (ms per step; idle waits excluded)")
    for key, (_cc, calls, own, _cum, callers) in sorted(busy.items(), key=lambda kv: -kv[1][2])[:top]:
        print(f"  {own * 1000 / steps:>8.2f}  {calls / steps:>8.1f} calls/step  {_label(key)}")
        if not key[1]:  # a builtin: name who calls it
            ranked = sorted(callers.items(), key=lambda kv: -kv[1][2])[:2]
            for caller, numbers in ranked:
                print(f"  {'':>8}  {numbers[2] * 1000 / steps:>8.2f} ms from {_label(caller)}")
    print(f"top {top} by cumulative time in project code (ms per step; includes file I/O and lock waits)")
    project = [
        (key, value)
        for key, value in table.items()
        if _label(key).startswith(("taskrunner/", "functions/")) and key[2] not in PROJECT_IDLE
    ]
    for key, (_cc, calls, _own, cum, _callers) in sorted(project, key=lambda kv: -kv[1][3])[:top]:
        print(f"  {cum * 1000 / steps:>8.2f}  {calls / steps:>8.1f} calls/step  {_label(key)}")
    print("moto and botocore hot spots (cumulative ms per step)")
    for key, (_cc, calls, _own, cum, _callers) in sorted(table.items(), key=lambda kv: -kv[1][3]):
        label = _label(key)
        if any(label.startswith(prefix) and key[2] == name for prefix, name in HOT_SPOTS):
            print(f"  {cum * 1000 / steps:>8.2f}  {calls / steps:>8.1f} calls/step  {label}")


# ------------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", default="1,100,1000", help="comma-separated noop step counts")
    parser.add_argument("--map-items", type=int, default=1000, help="items of the map case (0: none)")
    parser.add_argument(
        "--case-timeout", type=float, default=30.0, help="seconds per case and phase (0: none)"
    )
    parser.add_argument("--profile", default="noop-100", help="case to profile, or 'none'")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    logging.getLogger("moto").setLevel(logging.CRITICAL)  # a run stopped on timeout logs every failed state

    cases = [(f"noop-{n}", noop_pack(int(n))) for n in args.steps.split(",") if n]
    if args.map_items:
        cases.append((f"map-{args.map_items}", map_pack(args.map_items)))
    workdir = Path(tempfile.mkdtemp(prefix="taskrunner-bench-"))
    try:
        print(
            f"python {sys.version.split()[0]}; LocalRuntime, real clock; per-case timeout {args.case_timeout:g} s"
        )
        columns = f"{'case':<12}{'steps':>9}{'submit s':>10}{'engine s':>10}{'ms/step':>9}"
        print(columns + f"{'floor s':>9}{'ms/step':>9}{'engine/floor':>14}")
        with runtime(workdir / "home") as rt:
            engine(rt, noop_pack(1), 0)  # warm: handler imports, first state machine, first evidence key
            for name, manifest in cases:
                measured = engine(rt, manifest, args.case_timeout)
                base = floor(rt, manifest, args.case_timeout)
                steps = str(measured.total)
                if measured.done != measured.total:
                    steps = f"{measured.done}/{measured.total}"
                notes = (measured.note, f"floor {base.note}" if base.note else "")
                print(
                    f"{name:<12}{steps:>9}{measured.submit_seconds:>10.2f}{measured.seconds:>10.2f}"
                    f"{measured.per_step_ms:>9.1f}{base.seconds:>9.2f}{base.per_step_ms:>9.1f}"
                    f"{measured.per_step_ms / base.per_step_ms:>14.1f}  {'; '.join(n for n in notes if n)}",
                    flush=True,
                )
        chosen = dict(cases).get(args.profile)
        if chosen is None:
            if args.profile != "none":
                print(f"\nno case named {args.profile!r} to profile")
            return
        profiles: list[cProfile.Profile] = []
        with profile_threads(profiles), runtime(workdir / "profile-home") as rt:
            main_thread = cProfile.Profile()  # submit (plan, compile, start) and polling the run
            profiles.append(main_thread)
            main_thread.enable()
            measured = engine(rt, chosen, args.case_timeout)
            main_thread.disable()
            assert rt.aws is not None
            rt.aws.runner.wait_idle(30)
        print(f"\nprofiled {args.profile}: {measured.done} steps in {measured.seconds:.2f} s under cProfile")
        report_profile(profiles, max(measured.done, 1), args.top)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
