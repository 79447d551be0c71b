"""Lambda invoker: asynchronous invocations of the deployment's functions."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any


class LambdaInvoker:
    """The client is made on first use: only the functions that invoke others pay for it."""

    def __init__(self, lambda_client: Callable[[], Any]) -> None:
        self._lambda = lambda_client

    def invoke_async(self, function_arn: str, payload: Mapping[str, Any]) -> None:
        self._lambda().invoke(
            FunctionName=function_arn,
            InvocationType="Event",
            Payload=json.dumps(dict(payload)).encode("utf-8"),
        )
