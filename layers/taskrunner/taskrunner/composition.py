"""The one place adapters are chosen: settings -> :class:`~taskrunner.engine.services.Services`."""

from __future__ import annotations

import threading

from taskrunner.config import Settings, load_settings
from taskrunner.engine.ports import ArtifactStore, WorkflowEngine
from taskrunner.engine.services import Services
from taskrunner.errors import ConfigurationError
from taskrunner.keyfiles import load_or_create_secret

_LOCK = threading.Lock()
_SERVICES: Services | None = None

PLACEHOLDER_SETTINGS = {
    "VerifyPlanFunctionArn": "verify_plan_function_arn",
    "ExecuteStepFunctionArn": "execute_step_function_arn",
    "OpenGateFunctionArn": "open_gate_function_arn",
    "EvaluatePolicyFunctionArn": "evaluate_policy_function_arn",
    "SealEvidenceFunctionArn": "seal_evidence_function_arn",
}


def _redaction_key(settings: Settings) -> bytes:
    arn = settings.redaction.key_secret_arn
    if not arn:
        return load_or_create_secret(settings.home / "keys" / "redaction.key")
    from aws_lambda_powertools.utilities import parameters

    return str(parameters.get_secret(arn, max_age=3600)).encode("utf-8")


def _required(value: str | None, env: str) -> str:
    if not value:
        raise ConfigurationError(
            f"{env} is not set", remediation=f"set {env} (the SAM template sets it in AWS)"
        )
    return value


def _artifact_store(settings: Settings) -> ArtifactStore:
    """S3 in the cloud; with the embedded file store, objects stay beside the runs (they outlive the process)."""
    if settings.storage.mode == "file":
        from taskrunner.store.file_artifacts import FileArtifactStore

        return FileArtifactStore(settings.home / "objects")
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


def build_services(settings: Settings) -> Services:
    from taskrunner.aws.clients import client
    from taskrunner.aws.eventbridge import EventBridgeNotifier
    from taskrunner.aws.secrets import SecretResolver
    from taskrunner.store.factory import open_store

    aws = settings.aws
    return Services(
        store=open_store(settings),
        artifacts=_artifact_store(settings),
        workflow=workflow_engine(settings),
        notifier=EventBridgeNotifier(client("events"), aws.event_bus_name),
        secrets=SecretResolver(allow_env=settings.storage.mode == "file"),
        redaction_key=_redaction_key(settings),
        function_arns={name: getattr(aws, field) or "" for name, field in PLACEHOLDER_SETTINGS.items()},
        state_machine_prefix=aws.state_machine_prefix,
        signing_key_uri=settings.signing.key or "",
        environment="local" if settings.storage.mode == "file" else "aws",
        sealed_deployment=settings.sandbox.sealed,
        public_url=settings.api.public_url,
    )


def services() -> Services:
    """Process-wide services, built on first use (a warm Lambda reuses them)."""
    global _SERVICES
    with _LOCK:
        if _SERVICES is None:
            _SERVICES = build_services(load_settings())
        return _SERVICES


def reset_services(value: Services | None = None) -> None:
    """Replace (or forget) the process-wide services: the local runtime and tests install their own."""
    global _SERVICES
    with _LOCK:
        _SERVICES = value
