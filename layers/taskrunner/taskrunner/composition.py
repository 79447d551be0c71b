"""The one place adapters are chosen: settings -> :class:`~taskrunner.engine.services.Services`."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Protocol

from taskrunner.config import Settings, load_settings
from taskrunner.engine.ports import ArtifactStore, WorkflowEngine
from taskrunner.engine.services import Services
from taskrunner.errors import ConfigurationError
from taskrunner.keyfiles import load_or_create_secret

if TYPE_CHECKING:
    from taskrunner.evidence.signing import EvidenceSigner


class StandInGuard(Protocol):
    """Authorizes the local stand-ins (files for S3 objects and secrets, key files for KMS) as AWS would."""

    def artifacts(self, store: ArtifactStore) -> ArtifactStore: ...

    def signer(self, signer: EvidenceSigner) -> EvidenceSigner: ...

    def approval_token_signer(self, signer: EvidenceSigner) -> EvidenceSigner: ...

    def redaction_key(self, load: Callable[[], bytes]) -> Callable[[], bytes]: ...


_LOCK = threading.Lock()
_SERVICES: dict[str, Services] = {}  # by AWS_LAMBDA_FUNCTION_NAME: one per function, as in AWS
_GUARD: StandInGuard | None = None

PLACEHOLDER_SETTINGS = {
    "VerifyPlanFunctionArn": "verify_plan_function_arn",
    "ExecuteStepFunctionArn": "execute_step_function_arn",
    "OpenGateFunctionArn": "open_gate_function_arn",
    "EvaluatePolicyFunctionArn": "evaluate_policy_function_arn",
    "SealEvidenceFunctionArn": "seal_evidence_function_arn",
}


def _redaction_key(settings: Settings) -> Callable[[], bytes]:
    """Reads the key on first use (a warm Lambda keeps it): handlers that never redact need no access."""
    arn = settings.redaction.key_secret_arn
    if not arn:
        load = cache(lambda: load_or_create_secret(settings.home / "keys" / "redaction.key"))
        return _GUARD.redaction_key(load) if _GUARD else load

    def from_secret() -> bytes:
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_secret(arn, max_age=3600)).encode("utf-8")

    return from_secret


def _public_url(settings: Settings) -> Callable[[], str | None]:
    """The configured base URL, else the SSM parameter's value read on first use (a link is best effort:
    a parameter that cannot be read leaves it out, with a warning)."""
    url, name = settings.api.public_url, settings.api.public_url_parameter
    if url or not name:
        return lambda: url

    @cache
    def from_parameter() -> str | None:
        from aws_lambda_powertools.utilities import parameters
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        from taskrunner.observability import logger

        try:
            return str(parameters.get_parameter(name, max_age=3600))
        except GetParameterError as exc:  # Powertools wraps every failure of the call in it
            logger.warning("cannot read the API URL parameter", extra={"parameter": name, "error": str(exc)})
            return None

    return from_parameter


def _required(value: str | None, env: str) -> str:
    if not value:
        raise ConfigurationError(
            f"{env} is not set", remediation=f"set {env} (the SAM template sets it in AWS)"
        )
    return value


def _artifact_store(settings: Settings) -> ArtifactStore:
    """S3 in the cloud; locally, objects stay beside the runs under the home (they outlive the process)."""
    if settings.local:
        from taskrunner.store.file_artifacts import FileArtifactStore

        store = FileArtifactStore(settings.home / "objects")
        return _GUARD.artifacts(store) if _GUARD else store
    from taskrunner.aws.clients import client
    from taskrunner.aws.s3_artifacts import S3ArtifactStore

    return S3ArtifactStore(
        client("s3"), _required(settings.aws.artifacts_bucket, "TASKRUNNER_AWS__ARTIFACTS_BUCKET")
    )


def workflow_engine(settings: Settings) -> WorkflowEngine:
    """Step Functions with this deployment's role and execution-log settings."""
    from taskrunner.aws.clients import client
    from taskrunner.aws.stepfunctions import StepFunctionsEngine

    aws = settings.aws
    return StepFunctionsEngine(
        client("stepfunctions"), aws.state_machine_role_arn or "", aws.state_machine_log_group_arn
    )


def build_services(settings: Settings, workflow: WorkflowEngine | None = None) -> Services:
    """The adapters ``settings`` choose; ``workflow`` replaces Step Functions (see ``taskrunner.local.decisions``).

    AWS clients are made on first use: a process that never publishes or invokes never builds their client.
    """
    from taskrunner.aws.clients import client
    from taskrunner.aws.eventbridge import EventBridgeNotifier
    from taskrunner.aws.lambda_invoker import LambdaInvoker
    from taskrunner.aws.secrets import SecretResolver
    from taskrunner.store.factory import open_store

    aws = settings.aws
    return Services(
        store=open_store(settings),
        artifacts=_artifact_store(settings),
        workflow=workflow or workflow_engine(settings),
        notifier=EventBridgeNotifier(lambda: client("events"), aws.event_bus_name),
        functions=LambdaInvoker(lambda: client("lambda")),
        secrets=SecretResolver(allow_env=settings.local),
        load_redaction_key=_redaction_key(settings),
        function_arns={name: getattr(aws, field) or "" for name, field in PLACEHOLDER_SETTINGS.items()},
        state_machine_prefix=aws.state_machine_prefix,
        signing_key_uri=settings.signing.key or "",
        environment="local" if settings.local else "aws",
        sealed_deployment=settings.sandbox.sealed,
        require_signed_packs=settings.packs.require_signed,
        load_public_url=_public_url(settings),
        guard_signer=_GUARD.signer if _GUARD else lambda signer: signer,
    )


def services() -> Services:
    """The function's services, built on first use (a warm Lambda reuses them).

    Keyed by ``AWS_LAMBDA_FUNCTION_NAME``: in AWS a process runs one function; the local runtime runs all
    of them in one process, each with its own environment, so each gets its own services too.
    """
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
    with _LOCK:
        if function not in _SERVICES:
            _SERVICES[function] = build_services(load_settings())
        return _SERVICES[function]


def guard_approval_token_signer(signer: EvidenceSigner) -> EvidenceSigner:
    """``signer`` (the approval-token key), authorized locally as the KMS calls it stands in for."""
    return _GUARD.approval_token_signer(signer) if _GUARD else signer


def use_stand_in_guard(guard: StandInGuard | None) -> None:
    """Authorize the local stand-ins of services built from now on (``None``: stop); forgets built services."""
    global _GUARD
    with _LOCK:
        _GUARD = guard
        _SERVICES.clear()


def reset_services(value: Services | None = None) -> None:
    """Forget every function's services; ``value`` becomes the services of the current one."""
    with _LOCK:
        _SERVICES.clear()
        if value is not None:
            _SERVICES[os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")] = value
