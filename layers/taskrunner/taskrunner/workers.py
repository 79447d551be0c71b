"""The Lambda entry shared by the state machine workers: parse the payload, correlate, run the use case.

An exception leaves the handler as the Lambda error type (its class name), which the compiled ASL's
Retry/Catch match on (``StepFailed``, ``PolicyDenied``, ``PlanHashMismatch`` ...).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from pydantic import BaseModel

from taskrunner.composition import services
from taskrunner.engine.services import Services
from taskrunner.errors import ValidationFailed
from taskrunner.observability import annotate, logger, metrics, traced

P = TypeVar("P", bound=BaseModel)


def worker(model: type[P]) -> Callable[[Callable[[P, Services], Any]], Callable[[dict[str, Any], Any], Any]]:
    def wrap(use_case: Callable[[P, Services], Any]) -> Callable[[dict[str, Any], Any], Any]:
        @logger.inject_lambda_context(log_event=False, clear_state=True)
        @metrics.log_metrics
        @wraps(use_case)
        def handler(event: dict[str, Any], context: Any) -> Any:
            try:
                payload = parse(event=event, model=model)
            except ValidationError as exc:
                raise ValidationFailed(
                    f"invalid {model.__name__}: {exc.errors(include_input=False)}"
                ) from None
            with traced(model.__name__):
                annotate(runId=payload.runId)  # type: ignore[attr-defined]
                return use_case(payload, services())

        return handler

    return wrap
