"""Hand-built plans covering every construct the ASL compiler emits, shared by the ASL tests.

The integration tests (moto's ASL parser, the npm ``asl-validator``) check the definition compiled
from every plan here, so a unit test that needs a new shape adds it to ``SCENARIOS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from taskrunner.asl import compile_plan, validate_definition
from taskrunner.plan.document import (
    ApprovalGateStep,
    MapStep,
    PackRef,
    ParallelStep,
    Plan,
    PlanStep,
    PolicyGateStep,
    RetryPolicy,
    RunStep,
    Sandbox,
)

PLAN_HASH = "sha256:" + "ab" * 32


def plan(*steps: PlanStep, name: str = "demo") -> Plan:
    return Plan(
        pack=PackRef(name=name, version="1.0.0", digest="sha256:" + "0" * 64),
        inputs={},
        sandbox=Sandbox(mode="sealed", egressAllowlist=[]),
        steps=list(steps),
    )


def run(step_id: str, **fields: Any) -> RunStep:
    return RunStep(id=step_id, uses="noop", **fields)


def approval(step_id: str, seconds: int = 14_400, **fields: Any) -> ApprovalGateStep:
    return ApprovalGateStep(id=step_id, approval="security-review", expiresAfterSeconds=seconds, **fields)


def policy(step_id: str, fail_action: str = "halt", **fields: Any) -> PolicyGateStep:
    return PolicyGateStep(
        id=step_id, policy="all-scanned", expression="`true`", failAction=fail_action, **fields
    )


def parallel(step_id: str, *children: PlanStep, max_parallel: int = 4, **fields: Any) -> ParallelStep:
    return ParallelStep(id=step_id, maxParallel=max_parallel, steps=list(children), **fields)


Template = Callable[[str, int], PlanStep]


def map_of(
    map_id: str, template_id: str, count: int, template: Template, max_parallel: int = 4, **fields: Any
) -> MapStep:
    """A map expanded like the planner does: child ``i`` gets ids ``<map_id>[i]::...``."""
    return MapStep(
        id=map_id,
        maxParallel=max_parallel,
        templateId=template_id,
        items=[f"item-{index}" for index in range(count)],
        steps=[template(f"{map_id}[{index}]::", index) for index in range(count)],
        **fields,
    )


def run_template(template_id: str, **fields: Any) -> Template:
    return lambda prefix, index: run(prefix + template_id, index=index, **fields)


def _parallel_in_map() -> Plan:
    def checks(prefix: str, index: int) -> PlanStep:
        return parallel(
            prefix + "checks",
            run(prefix + "lint", index=index),
            run(prefix + "license", index=index),
            run(prefix + "provenance", index=index),
            max_parallel=2,
            index=index,
        )

    def review(prefix: str, index: int) -> PlanStep:
        return parallel(
            prefix + "review", run(prefix + "scan", index=index), policy(prefix + "gate", index=index)
        )

    return plan(map_of("targets", "checks", 3, checks), map_of("audit", "review", 2, review))


def _map_in_parallel() -> Plan:
    return plan(
        parallel(
            "fanout",
            map_of("scan-all", "scan", 3, run_template("scan"), max_parallel=2),
            run("notify"),
            continueOnError=True,
        )
    )


def _map_in_map() -> Plan:
    """Inner maps whose length depends on the outer item: children of two shapes."""
    sizes = [2, 3, 3, 2, 1]

    def region(prefix: str, index: int) -> PlanStep:
        return map_of(
            prefix + "hosts", "patch", sizes[index], run_template("patch"), max_parallel=2, index=index
        )

    return plan(map_of("regions", "hosts", len(sizes), region, max_parallel=2))


def _long_ids() -> Plan:
    long_id = "a" * 60 + "-step"

    def template(prefix: str, index: int) -> PlanStep:
        return map_of(prefix + long_id, long_id + "x", 2, run_template(long_id + "x"), index=index)

    return plan(
        run("VerifyPlan"), run("SealFailure"), map_of(long_id, long_id, 2, template), run(long_id + "x")
    )


def _airgap_import() -> Plan:
    return plan(
        run(
            "ingest",
            retries=RetryPolicy(maxAttempts=3, backoffSeconds=2, backoffRate=2.0),
            timeoutSeconds=300,
        ),
        map_of(
            "scan-all", "scan", 3, run_template("scan", retries=RetryPolicy(maxAttempts=3)), max_parallel=2
        ),
        parallel("checks", run("lint"), run("license"), run("provenance"), max_parallel=2),
        approval("review"),
        policy("policy"),
        run("publish", when="inputs.dryRun == `false`", whenResolved=True),
        name="airgap-import",
    )


SCENARIOS: dict[str, Callable[[], Plan]] = {
    "hello": lambda: plan(run("greet"), run("report")),
    "run-retries": lambda: plan(
        run(
            "fetch",
            retries=RetryPolicy(maxAttempts=3, backoffSeconds=2.5, backoffRate=1.5),
            timeoutSeconds=120,
        ),
        run("once", retries=RetryPolicy(maxAttempts=1)),
        run("quick", retries=RetryPolicy(maxAttempts=2, backoffSeconds=0.2, backoffRate=1.0)),
    ),
    "continue-on-error": lambda: plan(run("first"), run("tolerant", continueOnError=True), run("last")),
    "continue-on-error-last": lambda: plan(run("first"), run("tolerant", continueOnError=True)),
    "parallel": lambda: plan(parallel("checks", run("lint"), run("license")), run("after")),
    "parallel-continue": lambda: plan(
        parallel("checks", run("lint"), run("license", continueOnError=True), continueOnError=True)
    ),
    "parallel-dispatch": lambda: plan(
        parallel("checks", run("lint"), run("license"), run("provenance"), max_parallel=2)
    ),
    "parallel-dispatch-continue": lambda: plan(
        parallel(
            "checks", run("lint"), run("license"), run("provenance"), max_parallel=1, continueOnError=True
        )
    ),
    "map": lambda: plan(map_of("scan-all", "scan", 3, run_template("scan"), max_parallel=2), run("publish")),
    "parallel-in-map": _parallel_in_map,
    "map-in-parallel": _map_in_parallel,
    "map-in-map": _map_in_map,
    "gates": lambda: plan(
        approval("review", seconds=3_600), policy("halting"), policy("lenient", "continue")
    ),
    "gates-in-map": lambda: plan(
        map_of(
            "sign-off",
            "approve",
            2,
            lambda prefix, index: parallel(
                prefix + "approve",
                approval(prefix + "review", index=index),
                policy(prefix + "check", index=index),
            ),
        )
    ),
    "empty-map": lambda: plan(map_of("nothing", "noop", 0, run_template("noop")), run("only")),
    "long-ids": _long_ids,
    "airgap-import": _airgap_import,
    "map-1246": lambda: plan(map_of("scan-all", "scan", 1_246, run_template("scan"))),
    "map-1247": lambda: plan(map_of("scan-all", "scan", 1_247, run_template("scan"))),
    "map-10000": lambda: plan(map_of("scan-all", "scan", 10_000, run_template("scan"), max_parallel=8)),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_compiles_to_a_valid_definition_within_limits(scenario: str) -> None:
    compiled = compile_plan(SCENARIOS[scenario]())

    assert validate_definition(compiled.definition) == []
    assert compiled.limits.ok, compiled.limits.problems
