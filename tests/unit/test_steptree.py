"""A run's plan is parsed once per planHash: every step of the run reads the same typed Plan."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from taskrunner.engine.context import template_context
from taskrunner.engine.seal import run_outputs
from taskrunner.engine.steptree import initial_steps, plan_of, run_index
from taskrunner.engine.submit import plan_pack
from taskrunner.store.records import RunRecord

PACK = Path(__file__).resolve().parents[2] / "examples" / "packs" / "hello.yaml"


def run_of(who: str, run_id: str) -> RunRecord:
    planned = plan_pack(PACK.read_text(encoding="utf-8"), {"who": who})
    document = planned.plan.to_document()
    return RunRecord(
        runId=run_id,
        tenantId="local",
        planHash=planned.plan_hash,
        packName="hello",
        packVersion="1.0.0",
        requestedAt=datetime(2026, 1, 2, tzinfo=UTC),
        failurePolicy=document["failure"],
        plan=document,
        steps=initial_steps(planned.plan),
    )


def test_runs_of_one_plan_share_one_parsed_plan() -> None:
    first, again = run_of("ops", "20260102T000000Z-00000001"), run_of("ops", "20260102T000000Z-00000002")
    other = run_of("dev", "20260102T000000Z-00000003")

    assert plan_of(first) is plan_of(first) is plan_of(again)  # parsed once, whichever run asks
    assert run_index(first) is run_index(again)
    assert plan_of(other) is not plan_of(first)
    assert plan_of(other).inputs == {"who": "dev"}


def test_the_typed_plan_feeds_templates_and_outputs() -> None:
    run = run_of("ops", "20260102T000000Z-00000004")
    greet = run_index(run).step("greet")

    assert template_context(run, greet)["inputs"] == run.plan["inputs"] == {"who": "ops"}
    report = run.step("report")
    report.outputs = {"sha256": "ab" * 32}
    assert run_outputs(run) == {"report": {"sha256": "ab" * 32}}
