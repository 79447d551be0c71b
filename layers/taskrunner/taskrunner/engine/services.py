"""The bundle of adapters a use case needs, built once per process by ``taskrunner.composition``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from taskrunner.engine.ports import ArtifactStore, FunctionInvoker, Notifier, SecretResolver, WorkflowEngine
from taskrunner.errors import TaskRunnerError
from taskrunner.modules.base import SandboxPolicy
from taskrunner.plan.document import Sandbox, SecretRef
from taskrunner.store.port import RunStore
from taskrunner.timeutil import utc_now

if TYPE_CHECKING:
    from taskrunner.evidence.signing import EvidenceSigner


@dataclass
class Services:
    store: RunStore
    artifacts: ArtifactStore
    workflow: WorkflowEngine
    notifier: Notifier
    functions: FunctionInvoker
    secrets: SecretResolver
    load_redaction_key: Callable[[], bytes]  # read on first use: only what redacts needs the secret
    function_arns: Mapping[str, str]  # ASL placeholder name -> ARN
    state_machine_prefix: str = "taskrunner"  # names of this deployment's state machines start with it
    signing_key_uri: str = ""  # file:///path or awskms:///alias/name
    environment: str = "aws"  # recorded in evidence: aws | local
    sealed_deployment: bool = True  # deployment in sealed mode: no egress at all, allowlists ignored
    require_signed_packs: bool = False  # a packRef runs only as a verified registry version
    load_public_url: Callable[[], str | None] = field(default=lambda: None)  # the API's base URL, for links
    clock: Callable[[], datetime] = field(default=utc_now)
    guard_signer: Callable[[EvidenceSigner], EvidenceSigner] = field(default=lambda signer: signer)

    @property
    def public_url(self) -> str | None:
        """The API's base URL (no trailing slash), or None where the deployment does not know it."""
        url = self.load_public_url()
        return url.rstrip("/") if url else None

    @property
    def redaction_key(self) -> bytes:
        """HMAC key for secret fingerprints (the redaction-key secret in AWS)."""
        return self.load_redaction_key()

    def secret_values(self, refs: Iterable[SecretRef], *, strict: bool = True) -> dict[str, str]:
        """Values of the plan's secrets by name; not ``strict``: unresolvable ones are left out."""
        values: dict[str, str] = {}
        for secret in refs:
            try:
                values[secret.name] = self.secrets.resolve(secret.ref)
            except TaskRunnerError:
                if strict:
                    raise
        return values

    def sandbox_for(self, sandbox: Sandbox) -> SandboxPolicy:
        return SandboxPolicy(
            egress_allowlist=tuple(sandbox.egressAllowlist),
            air_gapped=self.sealed_deployment,
            mode=sandbox.mode,
            cpu_seconds=sandbox.cpuSeconds,
            memory_mib=sandbox.memoryMiB,
            wall_clock_seconds=sandbox.wallClockSeconds,
        )
