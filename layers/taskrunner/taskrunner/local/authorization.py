"""IAM enforcement for the local runtime: each AWS call a handler makes is authorized against its role.

The in-process runner sets the calling function (:func:`acting_as`) around every handler invocation; a
botocore handler on every client created while :meth:`Authorizer.installed` is active maps the call to
IAM (:mod:`taskrunner.local.aws_requests`), evaluates the role's policies (:mod:`taskrunner.local.iam`)
and answers a denied call with the error AWS returns (``AccessDenied`` for S3, ``AccessDeniedException``
otherwise, HTTP 403) without sending it. Calls outside any handler (the CLI as operator, moto itself) are
not checked, except Step Functions' own Lambda invocations, which run as the state machine's role.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from taskrunner.errors import ConfigurationError
from taskrunner.local.aws_requests import AwsCall, ResourceLookup, iam_requests
from taskrunner.local.iam import Request, evaluate
from taskrunner.local.roles import Role, TemplateRoles

_DENIED = "taskrunner.local.iam.denied"
_PRINCIPAL_KEY = "taskrunner.local.iam.principal"
_ASL_LAMBDA_MODULE = "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils"


@dataclass(frozen=True)
class Principal:
    """An assumed role session: a function (session name) running as its execution role."""

    role: Role
    session: str
    account_id: str

    @property
    def arn(self) -> str:
        return f"arn:aws:sts::{self.account_id}:assumed-role/{self.role.name}/{self.session}"


_CURRENT: ContextVar[Principal | None] = ContextVar("taskrunner_local_principal", default=None)


def current_principal() -> Principal | None:
    return _CURRENT.get()


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """AWS calls in this block (and in contexts copied from it) are authorized as ``principal``."""
    token = _CURRENT.set(principal)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def denial(principal: Principal, request: Request, *, explicit: bool, service: str) -> dict[str, Any]:
    """The parsed error response AWS returns for a denied request."""
    resource = f'"{request.resource}"' if service == "s3" else request.resource
    reason = (
        "with an explicit deny in an identity-based policy"
        if explicit
        else f"because no identity-based policy allows the {request.action} action"
    )
    return {
        "Error": {
            "Code": "AccessDenied" if service == "s3" else "AccessDeniedException",
            "Message": f"User: {principal.arn} is not authorized to perform: {request.action} "
            f"on resource: {resource} {reason}",
        },
        "ResponseMetadata": {
            "RequestId": (request_id := str(uuid.uuid4())),
            "HTTPStatusCode": 403,
            "HTTPHeaders": {"x-amzn-requestid": request_id},
        },
    }


class Authorizer:
    """Authorizes requests of template functions (and the state machine role) against their policies."""

    def __init__(self, lookup: ResourceLookup) -> None:
        self._roles = TemplateRoles({}, {})
        self._functions: dict[str, str] = {}
        self._lookup = lookup

    def configure(self, roles: TemplateRoles, functions: Mapping[str, str]) -> None:
        """Use the template's roles; ``functions`` maps function names to logical ids."""
        self._roles, self._functions = roles, dict(functions)

    def principal(self, function_name: str) -> Principal | None:
        """The session a function's handler runs as (None: not a template function)."""
        logical_id = self._functions.get(function_name)
        if logical_id is None or logical_id not in self._roles.function_roles:
            return None
        return Principal(self._roles.for_function(logical_id), function_name, self._lookup.account_id)

    def denied(self, principal: Principal, requests: list[Request], service: str) -> dict[str, Any] | None:
        """The error response for the first request the principal may not make, else None."""
        for request in requests:
            context = {**self._global_context(principal), **request.context}
            decision = evaluate(principal.role.policies, replace(request, context=context))
            if decision != "allow":
                return denial(principal, request, explicit=decision == "explicit-deny", service=service)
        return None

    def _global_context(self, principal: Principal) -> dict[str, str]:
        """The global condition keys AWS sets on every request of an assumed-role session over TLS."""
        return {
            "aws:SecureTransport": "true",
            "aws:RequestedRegion": self._lookup.region,
            "aws:PrincipalAccount": principal.account_id,
            "aws:PrincipalArn": principal.role.arn,
            "aws:PrincipalType": "AssumedRole",
        }

    def check(self, request: Request, service: str, operation: str) -> None:
        """Raise the ClientError AWS would for the current principal; no principal: not checked."""
        principal = current_principal()
        if principal is None:
            return
        response = self.denied(principal, [request], service)
        if response is not None:
            raise ClientError(response, operation)

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Check every client created in this block; Step Functions invokes Lambda as its role."""
        import botocore.handlers

        handlers = [("before-parameter-build", self._before_parameter_build), ("before-call", _before_call)]
        botocore.handlers.BUILTIN_HANDLERS.extend(handlers)
        restore_asl = self._patch_asl_lambda_client()
        try:
            yield
        finally:
            restore_asl()
            for handler in handlers:
                botocore.handlers.BUILTIN_HANDLERS.remove(handler)

    # -- botocore events
    def _before_parameter_build(
        self, params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        principal = context.get(_PRINCIPAL_KEY) or current_principal()
        if principal is None:
            return
        service = model.service_model.signing_name or model.service_model.endpoint_prefix
        requests = iam_requests(AwsCall(service, model.name, params), self._lookup)
        context[_DENIED] = self.denied(principal, requests, service)

    def _patch_asl_lambda_client(self) -> Any:
        """moto's ASL engine asks for its Lambda client per task with the state's role credentials:
        answer with one client per (region, service, role) that calls as that role."""
        import importlib

        module: Any = importlib.import_module(_ASL_LAMBDA_MODULE)
        original = module.boto_client_for
        clients: dict[tuple[str, str, str], Any] = {}
        lock = threading.Lock()

        def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            role_arn = str(getattr(state_credentials, "role_arn", "") or "")
            client = clients.get((region, service, role_arn))
            if client is not None:
                return client
            role = self._roles.by_arn(role_arn)
            if role is None:
                raise ConfigurationError(
                    f"state machine role {getattr(state_credentials, 'role_arn', None)!r} is not in the template",
                    remediation="Create state machines with the template's StateMachineRole.",
                )
            with lock:  # creating a client is not thread-safe; using one is
                if (region, service, role_arn) not in clients:
                    client = original(region=region, service=service, state_credentials=state_credentials)
                    principal = Principal(role, "states", self._lookup.account_id)
                    client.meta.events.register_first(
                        "before-parameter-build", partial(_as_principal, principal)
                    )
                    clients[(region, service, role_arn)] = client
                return clients[(region, service, role_arn)]

        module.boto_client_for = boto_client_for

        def restore() -> None:
            module.boto_client_for = original

        return restore


def _as_principal(principal: Principal, context: dict[str, Any], **_: Any) -> None:
    context[_PRINCIPAL_KEY] = principal


def _before_call(context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
    """Answer a denied call with AWS's 403 error instead of sending it."""
    from botocore.awsrequest import AWSResponse

    response = context.get(_DENIED)
    if response is None:
        return None
    return AWSResponse("https://local.invalid/", 403, {}, None), response
