"""Ports the engine depends on. Adapters live in ``taskrunner.aws`` (boto3; moto locally) and ``taskrunner.store``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from pydantic import JsonValue


@dataclass(frozen=True)
class StoredObject:
    """An object written to the artifact store."""

    key: str
    sha256: str  # hex
    size: int


class ArtifactStore(Protocol):
    """Run artifacts and evidence (S3 in the cloud, moto's S3 locally)."""

    def put_stream(self, key: str, stream: BinaryIO, media_type: str) -> StoredObject:
        """Upload ``stream`` in fixed-size chunks, hashing as it goes."""

    def put_bytes(self, key: str, data: bytes, media_type: str) -> StoredObject: ...

    def open(self, key: str) -> BinaryIO:
        """A readable stream of the object."""

    def presign(self, key: str, expires_seconds: int = 900) -> str: ...

    def location(self, key: str) -> str:
        """A stable URI for ``key`` (``s3://bucket/key``)."""


class WorkflowEngine(Protocol):
    """Step Functions."""

    def ensure_state_machine(self, name: str, definition: str) -> str:
        """Create the state machine ``name`` unless it exists (with ``definition``); return its ARN."""

    def delete_state_machine_if_idle(self, state_machine_arn: str, finishing_execution: str) -> bool:
        """Delete the state machine unless an execution other than ``finishing_execution`` runs; True if gone."""

    def start_execution(self, state_machine_arn: str, name: str, payload: Mapping[str, JsonValue]) -> str:
        """Start (or find the already started) execution ``name``; return its ARN."""

    def stop_execution(self, execution_arn: str, error: str, cause: str) -> None: ...

    def send_task_success(self, task_token: str, output: Mapping[str, JsonValue]) -> None: ...

    def send_task_failure(self, task_token: str, error: str, cause: str) -> None: ...

    def execution_status(self, execution_arn: str) -> str:
        """``RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED``, or ``DELETED`` once its machine was retired."""


class FunctionInvoker(Protocol):
    """Lambda: hand work to another function."""

    def invoke_async(self, function_arn: str, payload: Mapping[str, JsonValue]) -> None:
        """Queue an invocation (``InvocationType=Event``): Lambda runs it and retries it on failure."""


class Notifier(Protocol):
    """EventBridge."""

    def publish(self, detail_type: str, detail: Mapping[str, JsonValue]) -> None: ...


class SecretResolver(Protocol):
    def resolve(self, ref: str) -> str:
        """The value behind ``aws-secretsmanager:name#field``, ``aws-ssm:/path`` or ``env:NAME``."""
