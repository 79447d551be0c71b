"""ASL compile time per phase for hand-built plans of 10,000 steps.

Phases: limits model (event estimates, map modes), building the states, validating them, encoding the
canonical bytes. Cases: 10,000 sequential run steps (a definition far over the 1 MiB quota, the worst
case for the compiler), a 10,000-item map (DISTRIBUTED), and 100 regions x 100 hosts nested maps.

Target: compile_plan of each case well under 0.5 s on 2 cores. Prints the best of ``--repeat`` runs
(CPU seconds, GC paused as the CLI runs it) and MISSED next to a case over the target.
Run: .venv/bin/python bench/asl_compile.py [--repeat N]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from taskrunner.asl.compiler import _Compiler, _encode, _Scope, _Target, compile_plan
from taskrunner.asl.envelope import FAILURE_STATE, load_envelope
from taskrunner.asl.limits import EventModel
from taskrunner.asl.names import StateNames
from taskrunner.asl.templates import StepIds
from taskrunner.asl.validator import validate_definition
from taskrunner.plan.document import MapStep, PackRef, Plan, PlanStep, RetryPolicy, RunStep, Sandbox

TARGET_SECONDS = 0.5
PLAN_HASH = "sha256:" + "0" * 64


def plan(steps: list[PlanStep]) -> Plan:
    return Plan(
        pack=PackRef(name="bench", version="1.0.0", digest=PLAN_HASH),
        inputs={},
        sandbox=Sandbox(mode="sealed", egressAllowlist=[]),
        steps=steps,
    )


def sequential(count: int) -> Plan:
    retries = RetryPolicy(maxAttempts=2, backoffSeconds=1)
    return plan([RunStep(id=f"s{index}", uses="noop", retries=retries) for index in range(count)])


def wide_map(count: int) -> Plan:
    children: list[PlanStep] = [
        RunStep(id=f"fan[{index}]::each", uses="noop", index=index) for index in range(count)
    ]
    return plan(
        [MapStep(id="fan", maxParallel=40, templateId="each", items=list(range(count)), steps=children)]
    )


def nested_maps(outer: int, inner: int) -> Plan:
    def region(index: int) -> PlanStep:
        prefix = f"regions[{index}]::hosts"
        hosts: list[PlanStep] = [
            RunStep(id=f"{prefix}[{host}]::patch", uses="noop", index=host) for host in range(inner)
        ]
        return MapStep(
            id=prefix, maxParallel=8, templateId="patch", items=list(range(inner)), steps=hosts, index=index
        )

    regions = [region(index) for index in range(outer)]
    return plan(
        [MapStep(id="regions", maxParallel=4, templateId="hosts", items=list(range(outer)), steps=regions)]
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def phases(subject: Plan) -> dict[str, float]:
    """CPU seconds of each compile phase, done the way compile_plan does them."""
    times: dict[str, float] = {}

    def timed(name: str, action: Callable[[], object]) -> object:
        start = time.process_time()
        result = action()
        times[name] = time.process_time() - start
        return result

    model = timed("model", lambda: EventModel(subject))
    assert isinstance(model, EventModel)
    envelope = load_envelope(comment="bench")
    compiler = _Compiler(model, StateNames(envelope.states))
    scope = _Scope(envelope.states, _Target(FAILURE_STATE), StepIds(), ())
    timed("states", lambda: envelope.splice(compiler.chain(subject.steps, scope, envelope.continuation)))
    timed("validate", lambda: validate_definition(envelope.definition))
    timed("encode", lambda: _encode(envelope.definition, fractional=compiler.fractional))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cases = {
        "sequential-10000": sequential(10_000),
        "map-10000": wide_map(10_000),
        "nested-100x100": nested_maps(100, 100),
    }
    header = ("case", "model", "states", "validate", "encode", "compile", "KiB", "events", "modes")
    print(f"best of {args.repeat}, CPU seconds, GC paused; target compile < {TARGET_SECONDS} s")
    print(f"{header[0]:<18}" + "".join(f"{h:>10}" for h in header[1:]))
    for name, subject in cases.items():
        best: dict[str, float] = {}
        total = float("inf")
        for _ in range(args.repeat):
            with gc_paused():
                best = {k: min(v, best.get(k, v)) for k, v in phases(subject).items()}
                start = time.process_time()
                compiled = compile_plan(subject)
                total = min(total, time.process_time() - start)
        modes = ",".join(sorted({entry.mode[0] for entry in compiled.limits.maps})) or "-"
        row = [best["model"], best["states"], best["validate"], best["encode"], total]
        verdict = "" if total < TARGET_SECONDS else "  MISSED"
        print(
            f"{name:<18}"
            + "".join(f"{value:>10.3f}" for value in row)
            + f"{len(compiled.definition_bytes) // 1024:>10}{compiled.limits.history_events:>10}{modes:>10}{verdict}"
        )


if __name__ == "__main__":
    main()
