"""Run and approval latencies measured the way the SLOs define them, and p95 reports against ``spec.slo``.

A run's duration is start (or request) to completion minus the time its approval gates waited for decisions,
so ``runP95Seconds`` bounds the work and ``approvalP95Seconds`` the people. Both feed the ``RunDuration`` and
``ApprovalLatency`` metrics and ``taskrunner runs slo``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from taskrunner.observability import MetricUnit, per_pack
from taskrunner.store.port import RunStore
from taskrunner.store.records import GateRecord, RunRecord

REPORT_PAGE = 200
# metric measured -> (its SLO field, the 0/1 metric of samples over that bound, which the burn-rate alarms average)
LATENCY_METRICS = {
    "RunDuration": ("runP95Seconds", "RunSloMissed"),
    "ApprovalLatency": ("approvalP95Seconds", "ApprovalSloMissed"),
}


def record_latency(metric: str, seconds: float, run: RunRecord) -> None:
    """Emit ``metric`` per pack and, when the run's plan bounds it, whether this sample missed the SLO."""
    per_pack(metric, seconds, MetricUnit.Seconds, run.packName)
    field, missed = LATENCY_METRICS[metric]
    bound = (run.plan.get("slo") or {}).get(field)
    if isinstance(bound, int):
        per_pack(missed, float(seconds > bound), MetricUnit.Count, run.packName)


def approval_waits(gates: Iterable[GateRecord]) -> list[float]:
    """Seconds each decided gate waited, opened to closed (gates still open or never decided are left out)."""
    return [
        (gate.closedAt - gate.openedAt).total_seconds()
        for gate in gates
        if gate.closedAt is not None and gate.status in ("approved", "rejected")
    ]


def working_seconds(run: RunRecord, gates: Iterable[GateRecord], end: datetime) -> float:
    """Seconds from the run's start to ``end``, minus the time its approval gates were open."""
    start = run.startedAt or run.requestedAt
    waited = sum(((gate.closedAt or end) - gate.openedAt).total_seconds() for gate in gates)
    return max((end - start).total_seconds() - waited, 0.0)


def p95(values: Sequence[float]) -> float | None:
    """The 95th percentile (nearest rank, as CloudWatch's ``p95`` of few samples), None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


@dataclass(frozen=True)
class PackSlo:
    """One pack's measured p95s (seconds) and its SLO bounds (the latest run's plan)."""

    pack: str
    runs: int
    approvals: int
    runP95Seconds: float | None
    approvalP95Seconds: float | None
    runSlo: int | None
    approvalSlo: int | None

    @property
    def met(self) -> bool:
        """False when a measured p95 is over its bound; True when every bound is met or unmeasured."""
        return not any(
            bound is not None and measured is not None and measured > bound
            for measured, bound in (
                (self.runP95Seconds, self.runSlo),
                (self.approvalP95Seconds, self.approvalSlo),
            )
        )


def slo_report(store: RunStore, tenant_id: str, pack: str | None = None) -> list[PackSlo]:
    """Every pack of the tenant (or only ``pack``) with p95s over its finished runs and decided gates."""
    runs: dict[str, list[float]] = {}
    waits: dict[str, list[float]] = {}
    bounds: dict[str, tuple[int | None, int | None]] = {}
    cursor: str | None = None
    while True:
        page, cursor = store.list_runs(tenant_id, limit=REPORT_PAGE, cursor=cursor)
        for run in page:  # newest first: the first run seen of a pack carries its current SLO
            if pack is not None and run.packName != pack:
                continue
            slo = run.plan.get("slo") or {}
            bounds.setdefault(run.packName, (slo.get("runP95Seconds"), slo.get("approvalP95Seconds")))
            gates = store.list_gates(run.runId)
            waits.setdefault(run.packName, []).extend(approval_waits(gates))
            durations = runs.setdefault(run.packName, [])
            if run.completedAt is not None and run.status == "succeeded":
                durations.append(working_seconds(run, gates, run.completedAt))
        if cursor is None:
            break
    return [
        PackSlo(
            pack=name,
            runs=len(runs[name]),
            approvals=len(waits[name]),
            runP95Seconds=p95(runs[name]),
            approvalP95Seconds=p95(waits[name]),
            runSlo=bounds[name][0],
            approvalSlo=bounds[name][1],
        )
        for name in sorted(bounds)
    ]
