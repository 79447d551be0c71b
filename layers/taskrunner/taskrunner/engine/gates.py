"""open_gate and evaluate_policy: the approval and policy gates of a running state machine."""

from __future__ import annotations

from datetime import timedelta

from taskrunner.engine.conditions import skip_reason
from taskrunner.engine.context import template_context
from taskrunner.engine.errors import EvidenceMissing, PolicyDenied, StepAborted
from taskrunner.engine.fail_closed import evidence_refusal, log_refusal, missing_evidence
from taskrunner.engine.runlog import RunLog
from taskrunner.engine.services import Services
from taskrunner.engine.steptree import run_index
from taskrunner.pack.expressions import condition_expression, references_of, truthy
from taskrunner.plan.document import ApprovalGateStep, PolicyGateStep
from taskrunner.store.records import GateRecord
from taskrunner.timeutil import iso

CLOSED_FAILURES = {"rejected": "ApprovalRejected", "expired": "States.Timeout", "cancelled": "RunCancelled"}


def _skip(svc: Services, run_id: str, step_id: str, reason: str, log: RunLog) -> None:
    svc.store.update_step(
        run_id, step_id, expected_status={"pending", "waiting"}, changes={"status": "skipped"}
    )
    log.emit("step.skipped", f"{step_id} skipped: {reason}", step_id=step_id)


def _refuse(
    svc: Services, run_id: str, step_id: str, refusal: EvidenceMissing, log: RunLog, expected: set[str]
) -> None:
    now = svc.clock()
    svc.store.update_step(
        run_id,
        step_id,
        expected_status=expected,
        changes={
            "status": "failed",
            "startedAt": now,
            "completedAt": now,
            "error": {"code": refusal.code, "message": refusal.message},
        },
    )
    log_refusal(log, "gate.refused", step_id, refusal)


def approve_url(svc: Services, run_id: str) -> str | None:
    return f"{svc.public_url}/api/runs/{run_id}/approve" if svc.public_url else None


def console_url(svc: Services, run_id: str, gate_id: str) -> str | None:
    """The gate's page in the web console (never carries a token)."""
    return f"{svc.public_url}/console/#/runs/{run_id}/gates/{gate_id}" if svc.public_url else None


def open_gate(svc: Services, run_id: str, tenant_id: str, gate_id: str, task_token: str) -> dict[str, str]:
    """Park the execution on an approval: store the token server-side, mark the gate waiting, announce it."""
    run = svc.store.get_run(run_id, tenant_id)
    log = RunLog(svc.store, run_id)
    if run.status == "cancelled":
        svc.workflow.send_task_failure(task_token, "RunCancelled", f"run {run_id} was cancelled")
        return {"gateId": gate_id, "status": "cancelled"}
    index = run_index(run)
    step = index.step(gate_id)
    if not isinstance(step, ApprovalGateStep):
        raise StepAborted(f"step {gate_id} is not an approval gate")
    reason = skip_reason(run, index, gate_id)
    if reason:  # nobody will answer a skipped gate, so it answers its own token
        _skip(svc, run_id, gate_id, reason, log)
        svc.workflow.send_task_success(task_token, {"gateId": gate_id, "status": "skipped"})
        return {"gateId": gate_id, "status": "skipped"}
    existing = next((g for g in svc.store.list_gates(run_id) if g.gateId == gate_id), None)
    if existing is not None and existing.status == "approved":  # resumed run: an approved gate passes
        svc.workflow.send_task_success(task_token, {"gateId": gate_id, "status": "approved"})
        return {"gateId": gate_id, "status": "approved"}
    if existing is not None and existing.status in CLOSED_FAILURES:
        svc.workflow.send_task_failure(
            task_token, CLOSED_FAILURES[existing.status], f"gate {gate_id} {existing.status}"
        )
        return {"gateId": gate_id, "status": existing.status}
    missing = missing_evidence(run, step, references_of(step.message))
    if missing:  # nobody can judge what is not there: the gate fails its own token
        refusal = evidence_refusal(f"approval gate {gate_id}", missing)
        _refuse(svc, run_id, gate_id, refusal, log, {"pending", "waiting"})
        svc.workflow.send_task_failure(task_token, refusal.code, refusal.message)
        return {"gateId": gate_id, "status": "failed"}
    approval = next(a for a in index.plan.approvals if a.id == step.approval)
    now = svc.clock()
    expires = now + timedelta(seconds=step.expiresAfterSeconds)
    svc.store.open_gate(
        GateRecord(
            runId=run_id,
            tenantId=tenant_id,
            gateId=gate_id,
            approvalId=step.approval,
            status="waiting",
            requiredCount=step.requiredCount,
            grants=step.grants,
            reason=approval.reason,
            message=step.message,
            planHash=run.planHash,
            openedAt=now,
            expiresAt=expires,
            taskToken=task_token,
            decisions=[],
        )
    )
    svc.store.update_step(
        run_id,
        gate_id,
        expected_status={"pending", "waiting"},
        changes={"status": "waiting", "startedAt": now},
    )
    log.emit(
        "gate.pending",
        f"gate {gate_id} waits for {step.requiredCount} approval(s) of {step.approval}",
        step_id=gate_id,
        metadata={"approval": step.approval, "requiredCount": step.requiredCount, "expiresAt": iso(expires)},
    )
    svc.notifier.publish(
        "ApprovalRequested",
        {
            "runId": run_id,
            "gateId": gate_id,
            "planHash": run.planHash,
            "tenantId": tenant_id,
            "approval": step.approval,
            "requiredCount": step.requiredCount,
            "expiresAt": iso(expires),
            "approveUrl": approve_url(svc, run_id),
            "consoleUrl": console_url(svc, run_id, gate_id),
        },
    )
    return {"gateId": gate_id, "status": "waiting"}


def evaluate_policy(svc: Services, run_id: str, tenant_id: str, step_id: str) -> dict[str, str]:
    """Evaluate a policy gate; deny + ``halt`` raises PolicyDenied, deny + ``continue`` records and proceeds."""
    run = svc.store.get_run(run_id, tenant_id)
    index = run_index(run)
    step = index.step(step_id)
    if not isinstance(step, PolicyGateStep):
        raise StepAborted(f"step {step_id} is not a policy gate")
    log = RunLog(svc.store, run_id)
    if run.step(step_id).status in ("succeeded", "skipped"):
        return {"stepId": step_id, "status": run.step(step_id).status}
    reason = skip_reason(run, index, step_id)
    if reason:
        _skip(svc, run_id, step_id, reason, log)
        return {"stepId": step_id, "status": "skipped"}
    policy = condition_expression(step.expression)
    missing = missing_evidence(run, step, policy.references)
    if missing:  # fail closed whatever the failAction: a policy never decides over missing evidence
        refusal = evidence_refusal(f"policy {step.policy}", missing)
        _refuse(svc, run_id, step_id, refusal, log, {"pending", "failed"})
        raise refusal
    allowed = truthy(policy.evaluate(template_context(run, step, reads=policy.references)))
    now = svc.clock()
    status = "succeeded" if allowed else "failed"
    svc.store.update_step(
        run_id,
        step_id,
        expected_status={"pending", "failed"},
        changes={
            "status": status,
            "startedAt": now,
            "completedAt": now,
            "outputs": {"allowed": allowed, "policy": step.policy, "failAction": step.failAction},
            **(
                {}
                if allowed
                else {"error": {"code": "PolicyDenied", "message": f"policy {step.policy} denied"}}
            ),
        },
    )
    verdict = "allowed" if allowed else f"denied ({step.failAction})"
    log.emit(
        "policy.evaluated",
        f"policy {step.policy} {verdict}",
        level="info" if allowed else "error",
        step_id=step_id,
        metadata={"policy": step.policy, "allowed": str(allowed).lower(), "failAction": step.failAction},
    )
    if not allowed and step.failAction == "halt":
        raise PolicyDenied(
            f"policy {step.policy} denied the run at {step_id}",
            remediation=f"fix what {step.policy} checks ({step.expression}) and submit again",
        )
    return {"stepId": step_id, "status": status}
