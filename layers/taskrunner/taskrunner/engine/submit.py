"""Plan and submit: plan + hash a pack, persist the run, create-or-reuse its state machine, start it."""

from __future__ import annotations

import secrets as _secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskrunner.engine.errors import StateMachineGone
from taskrunner.engine.runlog import RunLog
from taskrunner.engine.services import Services
from taskrunner.engine.steptree import initial_steps
from taskrunner.errors import NotFound, TaskRunnerError, TooManyRequests
from taskrunner.keys import TENANT_ID
from taskrunner.observability import count
from taskrunner.store.records import RunRecord, idempotent_run_id

if TYPE_CHECKING:
    from taskrunner.engine.registry import VerifiedPack

GONE_RETRY_DELAYS = (0.0, 1.0, 2.0)  # seconds to wait before trying again to create a machine being deleted
QUEUE_RETRY_AFTER_SECONDS = (60, 300)  # Retry-After of a full queue: the pack's runP95Seconds within these

if TYPE_CHECKING:
    from taskrunner.asl.compiler import CompiledStateMachine
    from taskrunner.pack.loader import LoadedPack
    from taskrunner.pack.source import Source
    from taskrunner.plan.document import Plan
    from taskrunner.plan.planner import PlanResult


@dataclass(frozen=True)
class Submitted:
    run: RunRecord
    created: bool


def new_run_id(svc: Services) -> str:
    """Sortable and unique: ``20261122T223015Z-9f2c4e1a``."""
    return svc.clock().strftime("%Y%m%dT%H%M%SZ") + "-" + _secrets.token_hex(4)


def plan_pack(
    manifest: Source | LoadedPack, inputs: Mapping[str, Any], source_name: str = "manifest"
) -> PlanResult:
    """Plan only: validation, resolved plan, planHash, simulation and the compiled definition (limits
    enforced); nothing is stored or started."""
    from taskrunner.plan.planner import (
        build_plan,  # the planner and its YAML/JSON Schema stack load on demand
    )

    return build_plan(manifest, inputs, source_name=source_name)


def submit_run(
    svc: Services,
    *,
    tenant_id: str,
    manifest: Source,
    inputs: Mapping[str, Any],
    idempotency_key: str | None = None,
    source_name: str = "manifest",
    release: VerifiedPack | None = None,
) -> Submitted:
    """Persist and start a run; the same tenant + idempotency key returns the first run unchanged."""
    TENANT_ID.check(tenant_id, "the submission")
    planned = plan_pack(manifest, inputs, source_name)
    compiled = planned.compiled
    now = svc.clock()
    plan_doc = planned.plan.to_document()
    run_id = idempotent_run_id(tenant_id, idempotency_key) if idempotency_key else new_run_id(svc)
    if not (idempotency_key and _exists(svc, run_id, tenant_id)):  # a retry returns its run, never a 429
        check_queue_depth(svc, tenant_id, planned.plan)
    record = RunRecord(
        runId=run_id,
        tenantId=tenant_id,
        planHash=planned.plan_hash,
        plan=plan_doc,
        failurePolicy=plan_doc["failure"],
        status="pending",
        requestedAt=now,
        createdAt=now,
        updatedAt=now,
        steps=initial_steps(planned.plan),
        idempotencyKey=idempotency_key,
        packName=planned.plan.pack.name,
        packVersion=planned.plan.pack.version,
        packRelease=(
            {
                "name": release.name,
                "version": release.version,
                "digest": release.digest,
                "keyIds": list(release.keyids),
            }
            if release
            else None
        ),
    )
    run, created = svc.store.create_run(record)
    if not created:
        return Submitted(run, False)
    count("RunsSubmitted")
    count("QueueDepth", svc.store.count_active_runs())
    RunLog(svc.store, run.runId).emit(
        "run.created", f"run of {run.packName}@{run.packVersion} created", metadata={"planHash": run.planHash}
    )
    return Submitted(start_execution(svc, run, compiled), True)


def _exists(svc: Services, run_id: str, tenant_id: str) -> bool:
    try:
        svc.store.get_run(run_id, tenant_id)
    except NotFound:
        return False
    return True


def check_queue_depth(svc: Services, tenant_id: str, plan: Plan) -> None:
    """Refuse (429 ``QueueDepthExceeded``) when the tenant already has ``slo.maxQueueDepth`` unfinished runs
    of the pack. The count is read before the run is stored, so concurrent submits may pass it together."""
    limit = plan.slo.maxQueueDepth if plan.slo else None
    if limit is None:
        return
    depth = svc.store.count_active_runs(tenant_id, plan.pack.name)
    if depth < limit:
        return
    low, high = QUEUE_RETRY_AFTER_SECONDS
    retry_after = min(max(plan.slo.runP95Seconds or low, low), high) if plan.slo else low
    raise TooManyRequests(
        f"pack {plan.pack.name} already has {depth} unfinished runs of tenant {tenant_id},"
        f" its spec.slo.maxQueueDepth is {limit}",
        code="QueueDepthExceeded",
        retry_after_seconds=retry_after,
        remediation=f"retry after {retry_after} seconds, once runs finish (`taskrunner runs list` shows"
        " them), cancel runs you no longer need, or raise spec.slo.maxQueueDepth in the pack",
    )


def start_execution(
    svc: Services, run: RunRecord, compiled: CompiledStateMachine, execution_name: str | None = None
) -> RunRecord:
    """Create-or-reuse the stack's state machine for ``compiled`` and start an execution of it.

    The execution input is constant-size: ``{runId, tenantId, planHash}``. A machine deleted since it was
    looked up (its last execution ended meanwhile) is created again once its deletion completed. A run
    that cannot be started is recorded ``failed`` (``resume`` starts it later) and the error raised.
    """
    try:
        machine_arn, execution_arn = _start(svc, run, compiled, execution_name or run.runId)
    except TaskRunnerError as exc:
        _record_start_failure(svc, run, f"{exc.code}: {exc.message}")
        raise
    except Exception as exc:
        _record_start_failure(svc, run, type(exc).__name__)
        raise TaskRunnerError(
            f"run {run.runId} could not be started: {type(exc).__name__}",
            code="StartFailed",
            remediation="check the workflow engine configuration and resume the run",
        ) from exc
    updated: RunRecord = svc.store.update_run(
        run.runId,
        expected_status=None,
        changes={"stateMachineArn": machine_arn, "executionArn": execution_arn},
    )
    return updated


def _start(svc: Services, run: RunRecord, compiled: CompiledStateMachine, name: str) -> tuple[str, str]:
    deployment = compiled.deployment(svc.state_machine_prefix, svc.function_arns)
    payload = {"runId": run.runId, "tenantId": run.tenantId, "planHash": run.planHash}
    for delay in GONE_RETRY_DELAYS:
        try:
            machine_arn = svc.workflow.ensure_state_machine(deployment.name, deployment.definition)
            return machine_arn, svc.workflow.start_execution(machine_arn, name, payload)
        except StateMachineGone:
            time.sleep(delay)  # a deletion in progress completes within seconds
    machine_arn = svc.workflow.ensure_state_machine(deployment.name, deployment.definition)
    return machine_arn, svc.workflow.start_execution(machine_arn, name, payload)


def _record_start_failure(svc: Services, run: RunRecord, message: str) -> None:
    svc.store.update_run(
        run.runId,
        expected_status=None,
        changes={
            "status": "failed",
            "error": {"code": "StartFailed", "message": message},
            "completedAt": svc.clock(),
        },
    )
