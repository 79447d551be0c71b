"""Step Functions adapter: state machines named by stack prefix and definition digest, executions by run id."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from taskrunner.engine.errors import StateMachineGone
from taskrunner.errors import Conflict

# A token whose task already ended (timed out, cancelled, or an engine that restarted) is answered by no one.
_STALE_TOKEN = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")
_GONE = ("StateMachineDoesNotExist", "StateMachineDeleting")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class StepFunctionsEngine:
    def __init__(self, sfn: Any, role_arn: str, log_group_arn: str | None = None) -> None:
        self._sfn = sfn
        self._role_arn = role_arn
        # Execution logs carry no data (inputs and outputs may hold what steps produced); errors only.
        self._settings: dict[str, Any] = {"tracingConfiguration": {"enabled": True}}
        if log_group_arn:
            self._settings["loggingConfiguration"] = {
                "level": "ERROR",
                "includeExecutionData": False,
                "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": log_group_arn}}],
            }

    def _arn_for(self, name: str) -> str:
        """State machine ARN in the role's partition and account (the role lives in the same account)."""
        parts = self._role_arn.split(":")
        return f"arn:{parts[1]}:states:{self._sfn.meta.region_name}:{parts[4]}:stateMachine:{name}"

    def ensure_state_machine(self, name: str, definition: str) -> str:
        """Create ``name`` unless it exists; an existing one must hold ``definition`` (its name ends in the
        definition's digest, so anything else was changed by hand) and is updated to this role and settings.

        Nothing is cached: machines are deleted when idle and may be re-created by other processes.
        """
        arn = self._arn_for(name)
        try:
            current = self._sfn.describe_state_machine(stateMachineArn=arn)
        except ClientError as exc:
            if _code(exc) != "StateMachineDoesNotExist":
                raise
            try:
                arn = self._sfn.create_state_machine(
                    name=name,
                    definition=definition,
                    roleArn=self._role_arn,
                    type="STANDARD",
                    **self._settings,
                )["stateMachineArn"]
            except ClientError as create_exc:
                if _code(create_exc) == "StateMachineDeleting":
                    raise self._gone(name) from None
                if _code(create_exc) != "StateMachineAlreadyExists":
                    raise
                return self.ensure_state_machine(name, definition)  # created meanwhile: compare it
        else:
            self._adopt(arn, name, definition, current)
        return str(arn)

    def _adopt(self, arn: str, name: str, definition: str, current: Mapping[str, Any]) -> None:
        if current.get("status") == "DELETING":
            raise self._gone(name)
        if current.get("definition") != definition:
            raise Conflict(
                f"state machine {name} exists with a different definition than the one its name was derived "
                "from; it was changed outside TaskRunner",
                remediation=f"delete state machine {name} (no execution of it may be running) and retry",
            )
        wanted_logging = self._settings.get("loggingConfiguration", {"level": "OFF"})
        if (
            current.get("roleArn") != self._role_arn
            or current.get("tracingConfiguration", {}).get("enabled") is not True
            or current.get("loggingConfiguration", {}).get("level", "OFF") != wanted_logging["level"]
        ):
            self._sfn.update_state_machine(stateMachineArn=arn, roleArn=self._role_arn, **self._settings)

    @staticmethod
    def _gone(name: str) -> StateMachineGone:
        return StateMachineGone(
            f"state machine {name} is being deleted (its last run just finished)",
            remediation="resume the run in a few seconds; the state machine is created again then",
        )

    def delete_state_machine_if_idle(self, state_machine_arn: str, finishing_execution: str) -> bool:
        """Delete the state machine unless an execution other than ``finishing_execution`` is running."""
        try:
            pages = self._sfn.get_paginator("list_executions").paginate(
                stateMachineArn=state_machine_arn, statusFilter="RUNNING"
            )
            for page in pages:
                if any(e["executionArn"] != finishing_execution for e in page["executions"]):
                    return False
            self._sfn.delete_state_machine(stateMachineArn=state_machine_arn)
        except ClientError as exc:
            if _code(exc) not in _GONE:
                raise
        return True

    def start_execution(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> str:
        try:
            return str(
                self._sfn.start_execution(
                    stateMachineArn=state_machine_arn, name=name, input=json.dumps(dict(payload))
                )["executionArn"]
            )
        except ClientError as exc:
            if _code(exc) in _GONE:
                raise self._gone(state_machine_arn.rsplit(":", 1)[-1]) from None
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
        try:
            return str(self._sfn.describe_execution(executionArn=execution_arn)["status"])
        except ClientError as exc:
            if _code(exc) not in ("ExecutionDoesNotExist", *_GONE):
                raise
            return "DELETED"  # ended, and its state machine was retired since
