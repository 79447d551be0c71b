"""The bundle of adapters a use case needs, built once per process by ``taskrunner.composition``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskrunner.engine.ports import ArtifactStore, Notifier, SecretResolver, WorkflowEngine
from taskrunner.modules.base import SandboxPolicy
from taskrunner.timeutil import utc_now


@dataclass
class Services:
    store: Any  # taskrunner.store.port.RunStore
    artifacts: ArtifactStore
    workflow: WorkflowEngine
    notifier: Notifier
    secrets: SecretResolver
    redaction_key: bytes
    function_arns: Mapping[str, str]  # ASL placeholder name -> ARN
    signing_key_uri: str = ""  # file:///path or awskms:///alias/name
    environment: str = "aws"  # recorded in evidence: aws | local
    sealed_deployment: bool = True  # deployment in sealed mode: no egress at all, allowlists ignored
    public_url: str | None = None
    clock: Callable[[], datetime] = field(default=utc_now)

    def sandbox_for(self, sandbox: Mapping[str, Any]) -> SandboxPolicy:
        return SandboxPolicy(
            egress_allowlist=tuple(sandbox.get("egressAllowlist") or ()),
            air_gapped=self.sealed_deployment,
            cpu_seconds=sandbox.get("cpuSeconds"),
            memory_mib=sandbox.get("memoryMiB"),
            wall_clock_seconds=sandbox.get("wallClockSeconds"),
        )
