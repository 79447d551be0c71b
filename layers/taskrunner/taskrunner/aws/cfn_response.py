"""Answering a CloudFormation custom resource request: a JSON document PUT to its presigned ``ResponseURL``.

CloudFormation waits for this answer (until the resource's ServiceTimeout), so every request must get one.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Mapping
from typing import Any, Literal

from taskrunner.observability import logger

Status = Literal["SUCCESS", "FAILED"]
MAX_REASON = 1_000  # the whole response must stay under CloudFormation's 4 KB
ATTEMPTS = 3


def response_body(
    request: Mapping[str, Any],
    status: Status,
    reason: str,
    physical_resource_id: str,
    data: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The response document for ``request``."""
    return {
        "Status": status,
        "Reason": reason[:MAX_REASON],
        "PhysicalResourceId": physical_resource_id,
        "StackId": request.get("StackId", ""),
        "RequestId": request.get("RequestId", ""),
        "LogicalResourceId": request.get("LogicalResourceId", ""),
        "NoEcho": False,
        "Data": dict(data or {}),
    }


def send(response_url: str, body: Mapping[str, Any], timeout: float = 4.0) -> bool:
    """PUT ``body`` to the presigned URL (retried); False, logged, when it could not be delivered."""
    if not response_url.startswith(("https://", "http://")):
        logger.error("custom resource response not sent: ResponseURL is not an http(s) URL")
        return False
    payload = json.dumps(body).encode()
    for attempt in range(1, ATTEMPTS + 1):
        # The URL is presigned for a PUT with an empty content type.
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            response_url, data=payload, method="PUT", headers={"Content-Type": ""}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
                if 200 <= answer.status < 300:
                    return True
                problem = f"HTTP {answer.status}"
        except OSError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        logger.warning(
            "custom resource response not delivered", extra={"attempt": attempt, "problem": problem}
        )
        time.sleep(min(2**attempt, 5) if attempt < ATTEMPTS else 0)
    logger.error("custom resource response could not be delivered; CloudFormation waits for its timeout")
    return False
