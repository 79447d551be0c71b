"""The step-module contract: what ``run.uses`` names and the executor calls."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

from taskrunner.redaction import Redactor


class ModuleError(Exception):
    """A step module failed. ``retryable`` failures are retried per the step's retry policy."""

    def __init__(
        self, message: str, *, retryable: bool = True, code: str = "ModuleError", remediation: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = code
        self.remediation = remediation


@dataclass(frozen=True)
class SandboxPolicy:
    """What a step may do. Egress is fail-closed: only allowlisted hosts, and none at all when ``air_gapped``
    (a deployment in sealed mode). ``mode`` is the pack's ``sandbox.mode``. Quotas bound CPU, memory and
    wall-clock time."""

    egress_allowlist: tuple[str, ...] = ()
    air_gapped: bool = False
    mode: Literal["sealed", "restricted"] = "sealed"
    cpu_seconds: int | None = None
    memory_mib: int | None = None
    wall_clock_seconds: int | None = None

    def allows_host(self, host: str) -> bool:
        """Exact host or ``*.suffix`` entries of the allowlist match."""
        if self.air_gapped:
            return False
        host = host.lower().rstrip(".")
        for entry in self.egress_allowlist:
            entry = entry.lower()
            if host == entry or (entry.startswith("*.") and host.endswith(entry[1:])):
                return True
        return False

    @property
    def sealed(self) -> bool:
        """A sealed pack or a sealed deployment: isolation is required, never optional."""
        return self.mode == "sealed" or self.air_gapped


@dataclass(frozen=True)
class ArtifactRef:
    """An artifact the step captured."""

    name: str
    sha256: str
    size: int
    media_type: str
    stored_path: str


class ArtifactSink(Protocol):
    """Where modules put files; the executor redacts secrets and records digests."""

    def write_bytes(self, name: str, data: bytes, media_type: str) -> ArtifactRef: ...

    def write_stream(self, name: str, stream: BinaryIO, media_type: str) -> ArtifactRef: ...


@dataclass
class ModuleContext:
    run_id: str
    tenant_id: str
    step_id: str
    attempt: int
    sandbox: SandboxPolicy
    workdir: Path
    artifacts: ArtifactSink
    log: Callable[[str, str, Mapping[str, str]], None]  # (level, message, metadata)
    timeout_seconds: int | None = None
    redactor: Redactor = field(default_factory=lambda: Redactor(()))  # for text a module cuts from raw output
    extra: dict[str, Any] = field(default_factory=dict)


class StepModule(Protocol):
    """``run(ctx, params) -> outputs``; raise :class:`ModuleError` on failure."""

    def __call__(self, ctx: ModuleContext, params: Mapping[str, Any]) -> dict[str, Any]: ...
