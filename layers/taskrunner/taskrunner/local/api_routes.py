"""The local API server's route table, read from ``template.yaml``'s HttpApi events."""

from __future__ import annotations

from typing import Any

from taskrunner.local.gateway import Route
from taskrunner.local.runtime import LocalRuntime


def api_routes(rt: LocalRuntime) -> list[Route]:
    """One route per HttpApi event; each invokes its function in-process exactly as Lambda would."""
    assert rt.aws is not None, "runtime not started"
    routes = []
    for fn in rt.aws.template.functions.values():
        for route in fn.routes:
            routes.append(
                Route(
                    route.method, route.path, tuple(route.scopes), not route.auth_none, _invoker(rt, fn.name)
                )
            )
    return routes


def _invoker(rt: LocalRuntime, function: str) -> Any:
    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        result = rt.invoke(function, event)
        if result.is_error:  # the server answers 500 and logs it, as API Gateway does
            raise RuntimeError(f"{function} failed: {result.payload[:2000]}")
        return result.json()

    return invoke
