"""migrate_db: the CloudFormation custom resource that brings the MongoDB schema up to date on deploy."""

from typing import Any

from taskrunner.observability import logger
from taskrunner.store.deploy_migration import on_event


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return on_event(event, context.get_remaining_time_in_millis)
