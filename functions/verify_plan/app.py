"""verify_plan: first state of every execution — the run's plan and its state machine are unchanged."""

from taskrunner.engine.payloads import VerifyPlanPayload
from taskrunner.engine.services import Services
from taskrunner.engine.verify import verify_plan
from taskrunner.workers import worker


@worker(VerifyPlanPayload)
def handler(event: VerifyPlanPayload, svc: Services) -> dict[str, str]:
    return verify_plan(
        svc, event.runId, event.tenantId, event.planHash, event.stateMachine, event.functionArn
    )
