"""The ``exec`` module: runs a program (argv, cwd, env, timeout) under the sandbox's quotas."""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from taskrunner.modules.base import ModuleContext, ModuleError, SandboxPolicy, require

_BASE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
_EXCERPT = 4096


def _limits(sandbox: SandboxPolicy) -> Callable[[], None] | None:
    if sandbox.cpu_seconds is None and sandbox.memory_mib is None:
        return None

    def apply() -> None:  # runs in the child before exec
        if sandbox.cpu_seconds is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (sandbox.cpu_seconds, sandbox.cpu_seconds))
        if sandbox.memory_mib is not None:
            cap = sandbox.memory_mib * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return apply


def _timeout(ctx: ModuleContext, params: Mapping[str, Any]) -> float | None:
    candidates = [params.get("timeout"), ctx.timeout_seconds, ctx.sandbox.wall_clock_seconds]
    values = [float(v) for v in candidates if isinstance(v, int | float) and v > 0]
    return min(values) if values else None


def _excerpt(path: Path, redact: Callable[[str], str]) -> str:
    """The first ``_EXCERPT`` characters, cut after redaction so no secret is split by the cut."""
    with path.open("rb") as fh:
        return redact(fh.read(2 * _EXCERPT).decode("utf-8", errors="replace"))[:_EXCERPT]


def exec_module(ctx: ModuleContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Runs ``argv`` with a scrubbed environment; stdout/stderr become the artifacts ``<step>.stdout|stderr``."""
    argv = require(params, "argv", list, "exec")
    if not argv or not all(isinstance(a, str) for a in argv):
        raise ModuleError("exec: argv must be a non-empty list of strings", retryable=False)
    extra_env = params.get("env") or {}
    if not isinstance(extra_env, dict):
        raise ModuleError("exec: env must be an object of strings", retryable=False)
    env = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
    env.update({str(k): str(v) for k, v in extra_env.items()})
    env["HOME"] = str(ctx.workdir)
    cwd = Path(str(params.get("cwd") or ctx.workdir))
    timeout = _timeout(ctx, params)
    with tempfile.TemporaryDirectory(dir=ctx.workdir) as tmp:
        out_path, err_path = Path(tmp, "stdout"), Path(tmp, "stderr")
        with out_path.open("wb") as out, err_path.open("wb") as err:
            try:
                proc = subprocess.run(
                    argv,
                    cwd=cwd,
                    env=env,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout,
                    preexec_fn=_limits(ctx.sandbox),
                    check=False,
                )
            except FileNotFoundError as exc:
                raise ModuleError(f"exec: program not found: {argv[0]}", retryable=False) from exc
            except subprocess.TimeoutExpired as exc:
                raise ModuleError(
                    f"exec: {argv[0]} exceeded its {timeout:g}s timeout", code="Timeout"
                ) from exc
        refs = {}
        for stream, path in (("stdout", out_path), ("stderr", err_path)):
            with path.open("rb") as fh:
                refs[stream] = ctx.artifacts.write_stream(f"{ctx.step_id}.{stream}", fh, "text/plain")
        result = {
            "exitCode": proc.returncode,
            "stdout": _excerpt(out_path, ctx.redact),
            "stderr": _excerpt(err_path, ctx.redact),
            "stdoutSha256": refs["stdout"].sha256,
            "stderrSha256": refs["stderr"].sha256,
        }
    if proc.returncode != 0:
        raise ModuleError(f"exec: {argv[0]} exited with status {proc.returncode}", code="NonZeroExit")
    return result
