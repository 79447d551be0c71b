"""Domain errors. Each carries a stable ``code``, a message and a remediation hint.

The API turns them into RFC 9457 problem+json; the CLI prints them without a traceback.
"""

from __future__ import annotations


class TaskRunnerError(Exception):
    """Base of every error a user may see."""

    code = "TaskRunnerError"
    status = 400

    def __init__(self, message: str, *, remediation: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.remediation = remediation
        if code:
            self.code = code


class ValidationFailed(TaskRunnerError):
    """Input (a manifest, inputs, a request) is invalid; ``problems`` lists every issue."""

    code = "ValidationFailed"
    status = 422

    def __init__(self, message: str, problems: list[dict[str, object]] | None = None, **kw: str) -> None:
        super().__init__(message, **kw)
        self.problems = problems or []


class NotFound(TaskRunnerError):
    code = "NotFound"
    status = 404


class Conflict(TaskRunnerError):
    code = "Conflict"
    status = 409


class TooManyRequests(TaskRunnerError):
    """A limit refuses the request for now; ``retry_after_seconds`` says when trying again makes sense."""

    code = "TooManyRequests"
    status = 429

    def __init__(
        self, message: str, *, retry_after_seconds: int, remediation: str = "", code: str | None = None
    ) -> None:
        super().__init__(message, remediation=remediation, code=code)
        self.retry_after_seconds = retry_after_seconds


class ConfigurationError(TaskRunnerError):
    code = "ConfigurationError"
    status = 500
