"""The ``exec`` module: runs a program (argv, cwd, env, timeout) isolated and under the sandbox's quotas.

The program sees only a minimal environment (``PATH``, ``LANG=C.UTF-8``, ``HOME`` = the step's work directory)
plus the step's declared ``env``. Where Linux namespaces are available it also sees no other process and has
no network (:mod:`taskrunner.modules.isolation`); where they are not, a sealed pack or a sealed deployment
refuses to run it.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from taskrunner.modules.base import ModuleContext, ModuleError, SandboxPolicy
from taskrunner.modules.contracts import Contract, Outputs, Params, parse_params
from taskrunner.modules.isolation import MINIMAL_PATH, Isolation, isolation
from taskrunner.redaction import Redactor, decode_window

EXCERPT_CHARS = 4096
EXCERPT_BYTES = 8192
"""``stdout``/``stderr`` outputs: at most this many characters of the first this many bytes (whole output:
the ``<step>.stdout|stderr`` artifacts)."""


Scalar = str | int | float | bool


class ExecParams(Params):
    argv: list[str] = Field(
        min_length=1, description="the program and its arguments: a non-empty list of strings"
    )
    cwd: str | None = Field(None, description="working directory (default: the step's own empty directory)")
    env: dict[str, Scalar] | None = Field(
        None, description="extra environment variables: an object of strings"
    )
    timeout: float | None = Field(
        None, gt=0, description="seconds before the program is killed (a number > 0)"
    )


class ExecOutputs(Outputs):
    exitCode: int
    stdout: str
    stderr: str
    stdoutSha256: str
    stderrSha256: str


def _limits(sandbox: SandboxPolicy) -> Callable[[], None] | None:
    if sandbox.cpu_seconds is None and sandbox.memory_mib is None:
        return None

    def apply() -> None:  # runs in the child before exec; inherited by everything it starts
        if sandbox.cpu_seconds is not None:  # SIGXCPU at the quota, SIGKILL a second later
            resource.setrlimit(resource.RLIMIT_CPU, (sandbox.cpu_seconds, sandbox.cpu_seconds + 1))
        if sandbox.memory_mib is not None:
            cap = sandbox.memory_mib * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return apply


def _timeout(ctx: ModuleContext, params: ExecParams) -> float | None:
    candidates = [params.timeout, ctx.timeout_seconds, ctx.sandbox.wall_clock_seconds]
    values = [float(v) for v in candidates if isinstance(v, int | float) and v > 0]
    return min(values) if values else None


def _excerpt(path: Path, redactor: Redactor) -> str:
    """The start of an output, redacted before it is cut; a cut never leaves the beginning of a secret."""
    with path.open("rb") as fh:
        data = fh.read(EXCERPT_BYTES + 1)
    cut = len(data) > EXCERPT_BYTES
    return redactor.clip(decode_window(data[:EXCERPT_BYTES], cut=cut), EXCERPT_CHARS, cut=cut)


def _isolation(sandbox: SandboxPolicy) -> Isolation:
    found = isolation()
    if found.unavailable and sandbox.sealed:
        raise ModuleError(
            f"exec: the program cannot be isolated on this host ({found.unavailable}), and a sealed "
            "pack or deployment never runs it unisolated; run the pack with the local runtime on a Linux host "
            "where 'unshare' works (root, or unprivileged user namespaces enabled), or do the work with "
            "http.request/artifact.write steps",
            retryable=False,
            code="SandboxUnavailable",
        )
    return found


def _environment(ctx: ModuleContext, declared: Mapping[str, Any]) -> dict[str, str]:
    env = {"PATH": MINIMAL_PATH, "LANG": "C.UTF-8", "HOME": str(ctx.workdir)}
    env.update({str(k): str(v) for k, v in declared.items()})
    return env


def _check_program(program: str, cwd: Path, env: Mapping[str, str]) -> None:
    if not cwd.is_dir():
        raise ModuleError(f"exec: cwd {cwd} is not a directory", retryable=False)
    found = os.access(cwd / program, os.X_OK) if "/" in program else shutil.which(program, path=env["PATH"])
    if not found:
        raise ModuleError(
            f"exec: program not found: {program} (looked in PATH={env['PATH']}; set env.PATH or use a full path)",
            retryable=False,
        )


def _run(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    outputs: tuple[Any, Any],
    ctx: ModuleContext,
    timeout: float | None,
) -> int:
    """The program's exit status (negative: the signal that killed it); killed whole at the timeout."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=outputs[0],
        stderr=outputs[1],
        stdin=subprocess.DEVNULL,
        preexec_fn=_limits(ctx.sandbox),
        start_new_session=True,
    )
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # unshare (its namespace dies with it) or the program's group
        proc.wait()
        raise


def _failure(program: str, status: int, sandbox: SandboxPolicy) -> ModuleError:
    killed_by = -status if status < 0 else status - 128 if status > 128 else 0
    if sandbox.cpu_seconds is not None and killed_by in (signal.SIGXCPU, signal.SIGKILL):
        return ModuleError(
            f"exec: {program} exceeded its CPU quota of {sandbox.cpu_seconds}s (spec.sandbox.cpuSeconds)",
            retryable=False,
            code="CpuQuotaExceeded",
        )
    hint = (
        f" (its address space is limited to {sandbox.memory_mib} MiB by spec.sandbox.memoryMiB)"
        if sandbox.memory_mib is not None
        else ""
    )
    return ModuleError(f"exec: {program} exited with status {status}{hint}", code="NonZeroExit")


def exec_module(ctx: ModuleContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Runs ``argv`` isolated; stdout/stderr become the artifacts ``<step>.stdout|stderr``."""
    parsed = parse_params("exec", ExecParams, params)
    argv = parsed.argv
    found = _isolation(ctx.sandbox)
    env = _environment(ctx, parsed.env or {})
    cwd = Path(parsed.cwd or ctx.workdir)
    _check_program(argv[0], cwd, env)
    with tempfile.TemporaryDirectory(dir=ctx.workdir) as tmp:
        out_path, err_path = Path(tmp, "stdout"), Path(tmp, "stderr")
        with out_path.open("wb") as out, err_path.open("wb") as err:
            timeout = _timeout(ctx, parsed)
            try:
                status = _run([*found.prefix, *argv], cwd, env, (out, err), ctx, timeout)
            except subprocess.TimeoutExpired:
                raise ModuleError(
                    f"exec: {argv[0]} exceeded its {timeout:g}s timeout "
                    "(the smallest of with.timeout, timeoutSeconds and spec.sandbox.wallClockSeconds)",
                    code="Timeout",
                ) from None
        refs = {}
        for stream, path in (("stdout", out_path), ("stderr", err_path)):
            with path.open("rb") as fh:
                refs[stream] = ctx.artifacts.write_stream(f"{ctx.step_id}.{stream}", fh, "text/plain")
        result = {
            "exitCode": status,
            "stdout": _excerpt(out_path, ctx.redactor),
            "stderr": _excerpt(err_path, ctx.redactor),
            "stdoutSha256": refs["stdout"].sha256,
            "stderrSha256": refs["stderr"].sha256,
        }
    if status != 0:
        raise _failure(argv[0], status, ctx.sandbox)
    return result


EXEC = Contract(
    ExecParams,
    ExecOutputs,
    "Runs a program isolated, under the CPU and memory quotas of `spec.sandbox`; stdout/stderr become the "
    "artifacts `<step>.stdout|stderr` (their first 4,096 characters are outputs).",
    quotas=("cpuSeconds", "memoryMiB"),
)
