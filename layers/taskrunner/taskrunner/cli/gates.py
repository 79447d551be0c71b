"""Gates of a ``taskrunner run``: decided from the command line, at the terminal, or from elsewhere."""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING

import typer
from rich.live import Live

from taskrunner.cli.main import fail
from taskrunner.cli.main import stderr as console
from taskrunner.cli.progress import gate_progress, time_left
from taskrunner.engine.approvals import DecisionWord
from taskrunner.errors import TaskRunnerError
from taskrunner.store.records import GateRecord, RunRecord
from taskrunner.timeutil import iso, utc_now

if TYPE_CHECKING:
    from taskrunner.local.runtime import LocalRuntime

Decisions = dict[str, list[tuple[DecisionWord, str]]]
ANSWERS: dict[str, DecisionWord] = {"y": "approve", "r": "reject"}


def command_line_decisions(approve: list[str], reject: list[str]) -> Decisions:
    """Gate -> [(decision, approver)] from ``--approve GATE[=APPROVER]`` and ``--reject GATE``."""
    plan: Decisions = {}
    for item in approve:
        gate, _, approver = item.partition("=")
        plan.setdefault(gate, []).append(("approve", approver or "local-approver"))
    for gate in reject:
        plan.setdefault(gate, []).append(("reject", "local-approver"))
    return plan


def approve_command(run_id: str, gate_id: str) -> str:
    """The command another approver runs to decide the gate from any terminal on this machine."""
    return f"taskrunner approve {run_id} {gate_id} --as NAME"


class GateAnswerer:
    """Answers each gate once it opens: from the command line, else at the terminal, else waits.

    Without a terminal an unanswered gate waits for decisions made elsewhere until it expires; a gate that
    never expires (or any gate with ``wait`` off) is collected in :attr:`unanswerable`.
    """

    def __init__(
        self, rt: LocalRuntime, run_id: str, decisions: Decisions, live: Live | None, *, wait: bool
    ) -> None:
        self.rt, self.run_id, self.decisions, self.live, self.wait = rt, run_id, decisions, live, wait
        self.opened: set[str] = set()
        self.unanswerable: list[str] = []

    def gates(self, run: RunRecord) -> dict[str, GateRecord]:
        """The run's gates by id (none read while the run has no gate step)."""
        if not any(s.kind == "gate.approval" for s in run.steps):
            return {}
        return {g.gateId: g for g in self.rt.svc.store.list_gates(self.run_id)}

    def __call__(self, run: RunRecord, gates: dict[str, GateRecord]) -> None:
        for step in run.steps:
            gate = gates.get(step.stepId)
            if step.status != "waiting" or gate is None or step.stepId in self.opened:
                continue
            self.opened.add(step.stepId)
            self._opened(run, gate)

    def _opened(self, run: RunRecord, gate: GateRecord) -> None:
        """A gate just opened: say how to decide it, apply the command line's decisions, then ask or wait."""
        console.print(
            f"gate {gate.gateId} is waiting for {gate.requiredCount} approval(s); "
            f"another approver runs: {approve_command(self.run_id, gate.gateId)}",
            markup=False,
            soft_wrap=True,
        )
        for decision, approver in self.decisions.get(gate.gateId, []):
            self._decide(run, gate.gateId, decision, approver)
        if self.decisions.get(gate.gateId):
            gate = self.rt.svc.store.get_gate(self.run_id, gate.gateId)
        if gate.status != "waiting":
            return
        if sys.stdin.isatty():
            self._ask(run, gate.gateId)
        elif gate.expiresAt is not None and self.wait:
            console.print(
                f"no terminal to ask on: waiting for decisions on gate {gate.gateId} until "
                f"{iso(gate.expiresAt)} ({time_left(gate.expiresAt, utc_now())}); approve with "
                f"'{approve_command(self.run_id, gate.gateId)}' (add --reject to reject)",
                markup=False,
                soft_wrap=True,
            )
        else:
            self.unanswerable.append(gate.gateId)

    def _decide(self, run: RunRecord, gate_id: str, decision: DecisionWord, approver: str) -> bool:
        """Record one signed decision; a refused one is reported and nothing changes."""
        from taskrunner.local.approvers import approve_locally

        try:
            approve_locally(
                self.rt.svc,
                self.rt.home,
                tenant_id=run.tenantId,
                run_id=self.run_id,
                gate_id=gate_id,
                approver=approver,
                decision=decision,
                reason=f"{decision} from the command line",
            )
        except TaskRunnerError as exc:
            fail(exc)  # reported; the gate stays as it was
            return False
        return True

    def _ask(self, run: RunRecord, gate_id: str) -> None:
        """Ask for each approval still needed, until the gate closes or the user leaves it to others."""
        if self.live:
            self.live.stop()
        try:
            while (gate := self.rt.svc.store.get_gate(self.run_id, gate_id)).status == "waiting":
                answer = typer.prompt(
                    f"Approve gate '{gate_id}' of run {self.run_id}? ({gate_progress(gate)}; "
                    "y approve, r reject, n leave it to other approvers) [y/r/n]",
                    default="n",
                    show_default=False,
                    err=True,  # stdout carries only the command's output
                )
                answer = str(answer).strip().lower()
                if answer not in ("y", "r", "n"):
                    console.print(f"answer y, r or n (got {answer!r})", markup=False)
                    continue
                if answer == "n":
                    console.print(
                        f"waiting for decisions on gate {gate_id}: {approve_command(self.run_id, gate_id)}",
                        markup=False,
                        soft_wrap=True,
                    )
                    return
                approver = typer.prompt("Approver name", default=getpass.getuser(), err=True)
                if self._decide(run, gate_id, ANSWERS[answer], approver.strip()):
                    decided = self.rt.svc.store.get_gate(self.run_id, gate_id)
                    console.print(
                        f"gate {gate_id}: {ANSWERS[answer]}d by {approver.strip()}, "
                        f"{gate_progress(decided)}, {decided.status}",
                        markup=False,
                    )
        finally:
            if self.live:
                self.live.start()
