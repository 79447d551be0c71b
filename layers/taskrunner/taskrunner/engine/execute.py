"""execute_step: run one plan step's module, idempotently per (runId, stepId), recording every attempt."""

from __future__ import annotations

import math
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from taskrunner.engine.artifact_sink import StepArtifactSink
from taskrunner.engine.conditions import skip_reason
from taskrunner.engine.context import template_context
from taskrunner.engine.errors import RunCancelled, StepAborted, StepFailed
from taskrunner.engine.runlog import RunLog
from taskrunner.engine.services import Services
from taskrunner.engine.steptree import plan_of, run_index
from taskrunner.errors import TaskRunnerError
from taskrunner.modules.base import ModuleContext, ModuleError
from taskrunner.modules.registry import resolve_module
from taskrunner.observability import MetricUnit, count
from taskrunner.pack.expressions import references_of, render, roots_of
from taskrunner.plan.document import RetryPolicy, RunStep
from taskrunner.redaction import Redactor
from taskrunner.store.records import Attempt, ErrorInfo, RunRecord
from taskrunner.timeutil import iso

FINISHED = frozenset({"succeeded", "skipped"})


def retry_delay_seconds(policy: RetryPolicy, attempt: int) -> float:
    """Delay before attempt ``attempt + 1``, as the compiled Retry waits (SFN intervals are whole seconds >= 1)."""
    return max(1, math.ceil(policy.backoffSeconds)) * policy.backoffRate ** (attempt - 1)


def execute_step(
    svc: Services, run_id: str, tenant_id: str, step_id: str, retry_count: int
) -> dict[str, str]:
    """Runs attempt ``retry_count + 1`` of ``step_id``; raises StepFailed (retryable) or StepAborted."""
    run = svc.store.get_run(run_id, tenant_id)
    record = run.step(step_id)
    if record.status in FINISHED:  # idempotent: a resumed execution passes finished steps
        return {"stepId": step_id, "status": record.status}
    if run.status == "cancelled":
        raise RunCancelled(f"run {run_id} was cancelled")
    index = run_index(run)
    step = index.step(step_id)
    if not isinstance(step, RunStep):
        raise StepAborted(f"step {step_id} is a {step.kind} step, not a run step")
    log = RunLog(svc.store, run_id)
    reason = skip_reason(run, index, step_id)
    if reason:
        svc.store.update_step(run_id, step_id, expected_status={"pending"}, changes={"status": "skipped"})
        log.emit("step.skipped", f"{step_id} skipped: {reason}", step_id=step_id)
        return {"stepId": step_id, "status": "skipped"}

    number, started = retry_count + 1, svc.clock()
    svc.store.update_step(
        run_id,
        step_id,
        expected_status={"pending", "running"},
        changes={"status": "running", **({} if record.startedAt else {"startedAt": started})},
        attempt=Attempt(number=number, startedAt=started, status="running"),
    )
    log.emit(
        "step.started",
        f"{step_id} attempt {number} started",
        step_id=step_id,
        metadata={"attempt": number, "uses": step.uses},
    )
    plan = index.plan
    policy = plan.security.secretsRedactionPolicy
    redactor = Redactor((), policy, svc.redaction_key)
    try:  # a secret that cannot be resolved fails the attempt like any other step failure
        secrets = svc.secret_values(plan.secrets) if "secrets" in roots_of(step.with_) else {}
        redactor = Redactor(secrets.values(), policy, svc.redaction_key)
        log = RunLog(svc.store, run_id, redactor)
        outputs = _run_module(svc, run, step, number, redactor, log, secrets)
    except ModuleError as exc:
        _record_failure(
            svc,
            run_id,
            step,
            number,
            started,
            redactor.text(exc.message),
            exc.retryable,
            log,
            exc.code,
            redactor.text(exc.remediation),
        )
    except TaskRunnerError as exc:
        _record_failure(svc, run_id, step, number, started, redactor.text(exc.message), False, log, exc.code)
    except Exception as exc:  # a module bug: retry per policy, never leak a traceback
        _record_failure(
            svc, run_id, step, number, started, f"{type(exc).__name__}: {redactor.text(str(exc))}", True, log
        )
    completed = svc.clock()
    svc.store.update_step(
        run_id,
        step_id,
        expected_status={"running"},
        changes={"status": "succeeded", "outputs": outputs, "completedAt": completed, "error": None},
        attempt=Attempt(number=number, startedAt=started, completedAt=completed, status="succeeded"),
    )
    log.emit(
        "step.succeeded",
        f"{step_id} succeeded",
        step_id=step_id,
        metadata={"attempt": number, "durationMs": int((completed - started).total_seconds() * 1000)},
    )
    count("StepDuration", (completed - started).total_seconds() * 1000, MetricUnit.Milliseconds)
    return {"stepId": step_id, "status": "succeeded"}


def _run_module(
    svc: Services,
    run: RunRecord,
    step: RunStep,
    number: int,
    redactor: Redactor,
    log: RunLog,
    secrets: dict[str, str],
) -> dict[str, Any]:
    params = render(step.with_, template_context(run, step, secrets, reads=references_of(step.with_)))
    module = resolve_module(step.uses)
    sink = StepArtifactSink(svc, run.runId, step.id, redactor, log)
    with tempfile.TemporaryDirectory(prefix="taskrunner-") as workdir:
        ctx = ModuleContext(
            run_id=run.runId,
            tenant_id=run.tenantId,
            step_id=step.id,
            attempt=number,
            sandbox=svc.sandbox_for(plan_of(run).sandbox),
            workdir=Path(workdir),
            artifacts=sink,
            log=lambda level, message, meta: None,
            redactor=redactor,
            timeout_seconds=step.timeoutSeconds,
        )
        outputs = module(ctx, params)
    missing = [name for name in step.outputs if name not in outputs]
    if missing:
        raise ModuleError(
            f"{step.uses} did not produce declared output(s): {', '.join(missing)}", retryable=False
        )
    redacted: dict[str, Any] = redactor.value(outputs)
    return redacted


def _record_failure(
    svc: Services,
    run_id: str,
    step: RunStep,
    number: int,
    started: datetime,
    message: str,
    retryable: bool,
    log: RunLog,
    code: str = "StepFailed",
    remediation: str = "",
) -> None:
    final = not retryable or number >= step.retries.maxAttempts
    completed = svc.clock()
    next_at = None if final else completed + timedelta(seconds=retry_delay_seconds(step.retries, number))
    svc.store.update_step(
        run_id,
        step.id,
        expected_status={"running"},
        changes={"status": "failed", "error": {"code": code, "message": message}, "completedAt": completed}
        if final
        else {},
        attempt=Attempt(
            number=number,
            startedAt=started,
            completedAt=completed,
            status="failed",
            error=ErrorInfo(code=code, message=message),
            nextAttemptAt=next_at,
        ),
    )
    log.emit(
        "step.failed",
        f"{step.id} attempt {number} failed: {message}",
        level="error",
        step_id=step.id,
        metadata={
            "attempt": number,
            "final": str(final).lower(),
            "code": code,
            "remediation": remediation or None,
        },
    )
    count("StepFailures")
    if next_at is not None:
        count("StepRetries")
        when = iso(next_at)
        log.emit(
            "step.retry_scheduled",
            f"{step.id} retries at {when}",
            level="warn",
            step_id=step.id,
            metadata={"attempt": number + 1, "nextAttemptAt": when},
        )
        raise StepFailed(message)
    raise StepFailed(message) if retryable else StepAborted(message)
