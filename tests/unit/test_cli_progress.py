"""The run view: gate rows with approvals, approvers and time left; containers derived from their children."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rich.console import Console
from taskrunner.cli.progress import gate_detail, run_table, time_left
from taskrunner.store.records import Decision, GateRecord, RunRecord, StepRecord

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def gate(required: int, *decisions: tuple[str, str], status: str = "waiting") -> GateRecord:
    return GateRecord(
        runId="r1",
        tenantId="local",
        gateId="signoff",
        approvalId="release",
        planHash="sha256:" + "0" * 64,
        requiredCount=required,
        status=status,  # type: ignore[arg-type]
        expiresAt=NOW + timedelta(minutes=59, seconds=30),
        decisions=[Decision(approver=a, decision=d, envelope={}) for a, d in decisions],  # type: ignore[arg-type]
    )


def render(run: RunRecord, gates: dict[str, GateRecord]) -> str:
    out = io.StringIO()
    Console(file=out, width=140, color_system=None).print(run_table(run, gates, now=NOW))
    return out.getvalue()


def test_time_left_reads_in_hours_minutes_or_seconds() -> None:
    assert time_left(NOW + timedelta(hours=1, minutes=5, seconds=9), NOW) == "1h 05m left"
    assert time_left(NOW + timedelta(minutes=3, seconds=7), NOW) == "3m 07s left"
    assert time_left(NOW + timedelta(seconds=42), NOW) == "42s left"
    assert time_left(NOW - timedelta(seconds=1), NOW) == "expired"


def test_gate_detail_counts_approvals_names_deciders_and_the_time_left() -> None:
    assert gate_detail(gate(2), NOW) == "0/2 approvals; 59m 30s left"
    assert gate_detail(gate(2, ("alice", "approve")), NOW) == "1/2 approvals: alice; 59m 30s left"
    closed = gate(2, ("alice", "approve"), ("carol", "reject"), status="rejected")
    assert gate_detail(closed, NOW) == "1/2 approvals: alice; rejected by carol"


def test_live_containers_show_the_status_derived_from_their_children() -> None:
    steps = [
        StepRecord(stepId="build", kind="map"),
        StepRecord(stepId="build[0]::compile", kind="run", parentId="build", status="succeeded"),
        StepRecord(stepId="qa", kind="parallel"),
        StepRecord(stepId="unit", kind="run", parentId="qa", status="succeeded"),
        StepRecord(stepId="lint", kind="run", parentId="qa", status="running"),
        StepRecord(stepId="signoff", kind="gate.approval", status="waiting"),
    ]
    run = RunRecord(
        runId="r1",
        tenantId="local",
        planHash="sha256:" + "0" * 64,
        status="running",
        packName="two-approvers",
        packVersion="1.0.0",
        requestedAt=NOW,
        failurePolicy={},
        plan={},
        steps=steps,
    )
    text = render(run, {"signoff": gate(2, ("alice", "approve"))})

    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.startswith("│")}
    assert "succeeded" in rows["build"]  # stored as pending; its only child has finished
    assert "running" in rows["qa"]  # one child still running
    assert "1/2 approvals: alice; 59m 30s left" in rows["signoff"]
