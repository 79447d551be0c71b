"""retire_state_machine: an execution ended (EventBridge) - delete its state machine unless another runs."""

from typing import Any

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from taskrunner.composition import workflow_engine
from taskrunner.config import load_settings
from taskrunner.engine.lifecycle import retire_state_machine
from taskrunner.engine.payloads import ExecutionEnded
from taskrunner.errors import ValidationFailed
from taskrunner.observability import logger


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        ended = parse(event=event.get("detail"), model=ExecutionEnded)
    except ValidationError as exc:
        raise ValidationFailed(f"invalid ExecutionEnded: {exc.errors(include_input=False)}") from None
    settings = load_settings()
    deleted = retire_state_machine(
        workflow_engine(settings),
        settings.aws.state_machine_prefix,
        ended.stateMachineArn,
        ended.executionArn,
    )
    return {"stateMachineArn": ended.stateMachineArn, "deleted": deleted}
