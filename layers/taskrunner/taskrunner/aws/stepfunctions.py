"""Step Functions adapter: state machines keyed by definition digest, executions named by run id."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

# A token whose task already ended (timed out, cancelled, or an engine that restarted) is answered by no one.
_STALE_TOKEN = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class StepFunctionsEngine:
    def __init__(self, sfn: Any, role_arn: str) -> None:
        self._sfn = sfn
        self._role_arn = role_arn
        self._arns: dict[str, str] = {}

    def _arn_for(self, name: str) -> str:
        """State machine ARN in the role's partition and account (the role lives in the same account)."""
        parts = self._role_arn.split(":")
        return f"arn:{parts[1]}:states:{self._sfn.meta.region_name}:{parts[4]}:stateMachine:{name}"

    def ensure_state_machine(self, name: str, definition: str) -> str:
        """The name embeds the definition digest, so an existing machine of that name is the same machine."""
        if name in self._arns:
            return self._arns[name]
        try:
            arn = self._sfn.create_state_machine(
                name=name, definition=definition, roleArn=self._role_arn, type="STANDARD"
            )["stateMachineArn"]
        except ClientError as exc:
            if _code(exc) not in ("StateMachineAlreadyExists", "ConflictException"):
                raise
            arn = self._arn_for(name)
        self._arns[name] = arn
        return str(arn)

    def start_execution(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> str:
        try:
            return str(
                self._sfn.start_execution(
                    stateMachineArn=state_machine_arn, name=name, input=json.dumps(dict(payload))
                )["executionArn"]
            )
        except ClientError as exc:
            if _code(exc) != "ExecutionAlreadyExists":
                raise
            return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"

    def stop_execution(self, execution_arn: str, error: str, cause: str) -> None:
        try:
            self._sfn.stop_execution(executionArn=execution_arn, error=error, cause=cause)
        except ClientError as exc:
            if _code(exc) not in ("ExecutionDoesNotExist", "ExecutionNotRunning"):
                raise

    def send_task_success(self, task_token: str, output: Mapping[str, Any]) -> None:
        try:
            self._sfn.send_task_success(taskToken=task_token, output=json.dumps(dict(output)))
        except ClientError as exc:
            if _code(exc) not in _STALE_TOKEN:
                raise

    def send_task_failure(self, task_token: str, error: str, cause: str) -> None:
        try:
            self._sfn.send_task_failure(taskToken=task_token, error=error, cause=cause[:32768])
        except ClientError as exc:
            if _code(exc) not in _STALE_TOKEN:
                raise

    def execution_status(self, execution_arn: str) -> str:
        return str(self._sfn.describe_execution(executionArn=execution_arn)["status"])
