"""Lambda invoker: asynchronous invocations of the deployment's functions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class LambdaInvoker:
    def __init__(self, lambda_client: Any) -> None:
        self._lambda = lambda_client

    def invoke_async(self, function_arn: str, payload: Mapping[str, Any]) -> None:
        self._lambda.invoke(
            FunctionName=function_arn,
            InvocationType="Event",
            Payload=json.dumps(dict(payload)).encode("utf-8"),
        )
