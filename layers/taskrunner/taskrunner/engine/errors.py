"""Errors raised to Step Functions by the worker Lambdas; the class name is the ASL ``Error`` name."""

from __future__ import annotations

from taskrunner.errors import Conflict, TaskRunnerError


class StepFailed(TaskRunnerError):
    """A run step failed; Retry policies match on this name."""

    code = "StepFailed"


class StepAborted(TaskRunnerError):
    """A run step failed in a way retrying cannot fix (bad parameters, checksum mismatch, egress denied)."""

    code = "StepAborted"


class PlanHashMismatch(TaskRunnerError):
    code = "PlanHashMismatch"
    status = 409


class PolicyDenied(TaskRunnerError):
    code = "PolicyDenied"


class EvidenceMissing(TaskRunnerError):
    """A gate reads the evidence of a step that did not succeed: it refuses rather than decide without it."""

    code = "EvidenceMissing"
    status = 409


class RunCancelled(TaskRunnerError):
    code = "RunCancelled"
    status = 409


class RunFinished(Conflict):
    code = "RunFinished"


class StateMachineGone(TaskRunnerError):
    """The run's state machine was deleted (or is being deleted) since it was looked up."""

    code = "StateMachineGone"
    status = 503
