"""The local API server's route table, read from ``template.yaml``'s HttpApi events.

Each route is verified by its authorizer, named in the template: ``TaskRunnerJwt`` (development identity
tokens, ``taskrunner.local.devauth``) or ``ApprovalTokens`` (this deployment's approval tokens, verified with
the JWKS its issuer route publishes).
"""

from __future__ import annotations

from typing import Any

from taskrunner.api.issuer import JWKS_PATH
from taskrunner.errors import ConfigurationError
from taskrunner.local.approval_auth import JwksVerifier, jwks_from_proxy_result
from taskrunner.local.gateway import Route, Verify, build_event, identity_token
from taskrunner.local.runtime import LocalRuntime

IDENTITY_AUTHORIZER = "TaskRunnerJwt"
APPROVAL_AUTHORIZER = "ApprovalTokens"
ISSUER_SETTING = "TASKRUNNER_APPROVAL_TOKENS__ISSUER"


def api_routes(rt: LocalRuntime) -> list[Route]:
    """One route per HttpApi event; each invokes its function in-process exactly as Lambda would."""
    assert rt.aws is not None, "runtime not started"
    verifiers = _verifiers(rt)
    routes = []
    for fn in rt.aws.template.functions.values():
        for route in fn.routes:
            verify = verifiers.get(route.authorizer, identity_token)
            if route.authorizer and route.authorizer not in verifiers:
                raise ConfigurationError(
                    f"{rt.aws.template.path.name}: route {route.route_key} of {fn.logical_id} uses the authorizer "
                    f"{route.authorizer!r}, which the local runtime does not know",
                    remediation=f"Use {IDENTITY_AUTHORIZER} (identity tokens) or {APPROVAL_AUTHORIZER} "
                    "(approval tokens), or Authorizer: NONE.",
                )
            routes.append(
                Route(
                    route.method,
                    route.path,
                    tuple(route.scopes),
                    not route.auth_none,
                    _invoker(rt, fn.name),
                    verify,
                )
            )
    return routes


def _verifiers(rt: LocalRuntime) -> dict[str, Verify]:
    assert rt.aws is not None
    jwks_function = next(
        (
            fn.name
            for route, fn in rt.aws.template.routes()
            if (route.method, route.path) == ("GET", JWKS_PATH)
        ),
        None,
    )
    verifiers: dict[str, Verify] = {IDENTITY_AUTHORIZER: identity_token}
    if jwks_function is not None:
        invoke = _invoker(rt, jwks_function)

        def fetch_jwks() -> Any:
            event = build_event(
                method="GET",
                raw_path=JWKS_PATH,
                raw_query="",
                headers=[("host", "localhost")],
                body=b"",
                route_key=f"GET {JWKS_PATH}",
                path_parameters={},
                source_ip="127.0.0.1",
                claims=None,
            )
            return jwks_from_proxy_result(invoke(event))

        issuers = {env.get(ISSUER_SETTING) for env in rt.aws.function_environments.values()} - {None}
        verifiers[APPROVAL_AUTHORIZER] = JwksVerifier(fetch_jwks, next(iter(issuers), None))
    return verifiers


def _invoker(rt: LocalRuntime, function: str) -> Any:
    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        result = rt.invoke(function, event)
        if result.is_error:  # the server answers 500 and logs it, as API Gateway does
            raise RuntimeError(f"{function} failed: {result.payload[:2000]}")
        return result.json()

    return invoke
