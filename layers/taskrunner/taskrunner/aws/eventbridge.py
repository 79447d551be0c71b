"""EventBridge notifier: TaskRunner events on the configured bus, source ``stellaops.taskrunner``."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

SOURCE = "stellaops.taskrunner"


class EventBridgeNotifier:
    """The client is made on first use: only the functions that publish pay for it."""

    def __init__(self, events: Callable[[], Any], bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None:
        entry = {
            "Source": SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(dict(detail)),
            "EventBusName": self._bus,
        }
        result = self._events().put_events(Entries=[entry])
        if result.get("FailedEntryCount"):
            raise RuntimeError(f"EventBridge rejected {detail_type}: {result['Entries'][0].get('ErrorCode')}")
