"""``exec`` from the outside: the program sees only its declared environment and no other process, has no
network, and is stopped by each quota with a clear error; where it cannot be isolated a sealed pack refuses it."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from taskrunner.modules.base import ArtifactRef, ModuleContext, ModuleError, SandboxPolicy
from taskrunner.modules.isolation import isolation
from taskrunner.modules.process import exec_module

CANARY = "executor-canary-6b1f0e"


class MemorySink:
    """Keeps every artifact a module writes, for the test to read back."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def write_bytes(self, name: str, data: bytes, media_type: str) -> ArtifactRef:
        return self.write_stream(name, io.BytesIO(data), media_type)

    def write_stream(self, name: str, stream: BinaryIO, media_type: str) -> ArtifactRef:
        data = stream.read()
        self.files[name] = data
        return ArtifactRef(name, hashlib.sha256(data).hexdigest(), len(data), media_type, f"mem://{name}")


def run_exec(tmp_path: Path, sandbox: SandboxPolicy, **params: Any) -> tuple[dict[str, Any], MemorySink]:
    sink = MemorySink()
    ctx = ModuleContext(
        run_id="r",
        tenant_id="t",
        step_id="s",
        attempt=1,
        sandbox=sandbox,
        workdir=tmp_path,
        artifacts=sink,
        log=lambda *a: None,
    )
    return exec_module(ctx, params), sink


EXECUTOR = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from test_exec_sandbox import run_exec
from taskrunner.modules.base import SandboxPolicy
out, sink = run_exec(Path(sys.argv[2]), SandboxPolicy(mode=sys.argv[3]), **json.loads(sys.argv[4]))
print(json.dumps({"outputs": out, "files": {k: v.decode() for k, v in sink.files.items()}}))
"""


def run_in_fresh_executor(
    workdir: Path, mode: str, extra_env: dict[str, str], as_user: tuple[str, ...] = (), **params: Any
) -> dict[str, Any]:
    """``exec`` run by a new executor process (started by ``as_user``, e.g. ``setpriv``, if given) whose own
    (initial) environment holds a canary and credentials."""
    env = {**os.environ, "EXECUTOR_CANARY": CANARY, "AWS_SESSION_TOKEN": CANARY + "-token", **extra_env}
    script = [
        sys.executable,
        "-c",
        EXECUTOR,
        str(Path(__file__).parent),
        str(workdir),
        mode,
        json.dumps(params),
    ]
    done = subprocess.run(
        [*as_user, *script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert CANARY not in done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


needs_namespaces = pytest.mark.skipif(
    isolation().unavailable is not None, reason=f"no namespaces here: {isolation().unavailable}"
)

PROBES = [
    "tr '\\0' '\\n' </proc/$PPID/environ",
    "tr '\\0' '\\n' </proc/1/environ",
    "cat /proc/*/environ",
    "env",
    "ls /proc",
    "cat /proc/$PPID/cmdline",
    "umount /proc; ls /proc; cat /proc/*/environ",  # the host's /proc under the namespace's?
]


NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


@pytest.fixture(params=["root", "unprivileged"])
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, tuple[str, ...]]]:
    """Where the executor runs the step and how it is started: as this user, or as ``nobody`` (namespaces
    through an unprivileged user namespace)."""
    if request.param == "root":
        yield tmp_path, ()
        return
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to start an executor as nobody")
    workdir = Path(tempfile.mkdtemp(prefix="exec-nobody-"))
    workdir.chmod(0o777)
    try:
        yield workdir, NOBODY
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@needs_namespaces
def test_the_program_sees_only_its_declared_environment(executor: tuple[Path, tuple[str, ...]]) -> None:
    tmp_path, as_user = executor
    script = "; ".join(f"echo; echo '@@ {n}'; {p}" for n, p in enumerate(PROBES)) + "; true"
    result = run_in_fresh_executor(
        tmp_path, "sealed", {}, as_user, argv=["sh", "-c", script], env={"DECLARED": "yes"}
    )
    assert CANARY not in json.dumps(result)
    stdout = result["files"]["s.stdout"]
    sections = dict(part.split("\n", 1) for part in stdout.split("\n@@ ")[1:])
    assert "PATH=" in sections["0"]  # the probes really ran: the parent's environment is the clean one
    env = dict(line.split("=", 1) for line in sections["3"].splitlines())
    assert env.pop("PWD", None) in (None, str(tmp_path))
    env.pop("SHLVL", None)  # set by sh itself
    assert env == {"PATH": env["PATH"], "LANG": "C.UTF-8", "HOME": str(tmp_path), "DECLARED": "yes"}
    processes = [n for n in sections["4"].split() if n.isdigit()]
    assert len(processes) <= 4  # sh (PID 1), the probe shell and ls: none of the host's


@needs_namespaces
def test_the_program_has_no_network(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[Any] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # closed at the end of the test
            accepted.append(listener.accept())

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    code = (
        "import socket,sys\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "except OSError as e:\n"
        "    print('refused', e.errno)\n"
        "else:\n"
        "    print('connected')\n"
    )
    out, _ = run_exec(
        tmp_path,
        SandboxPolicy(mode="restricted", egress_allowlist=("127.0.0.1",)),
        argv=[sys.executable, "-c", code],
    )
    listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
    thread.join(5)
    listener.close()
    assert out["stdout"].startswith("refused")
    assert accepted == []


@needs_namespaces
def test_a_cpu_loop_is_stopped_at_cpu_seconds(tmp_path: Path) -> None:
    with pytest.raises(ModuleError) as failed:
        run_exec(
            tmp_path,
            SandboxPolicy(cpu_seconds=1, wall_clock_seconds=30),
            argv=["sh", "-c", "while :; do :; done"],
        )
    assert failed.value.code == "CpuQuotaExceeded"
    assert "cpuSeconds" in failed.value.message
    assert failed.value.retryable is False


@needs_namespaces
def test_a_memory_hog_is_stopped_at_memory_mib(tmp_path: Path) -> None:
    hog = "b = bytearray(256 * 1024 * 1024); print('allocated')"
    with pytest.raises(ModuleError) as failed:
        run_exec(tmp_path, SandboxPolicy(memory_mib=128), argv=[sys.executable, "-c", hog])
    assert failed.value.code == "NonZeroExit"
    assert "128 MiB" in failed.value.message
    assert "memoryMiB" in failed.value.message
    out, _ = run_exec(tmp_path, SandboxPolicy(memory_mib=512), argv=[sys.executable, "-c", hog])
    assert out["stdout"] == "allocated\n"  # the same program within its quota


@needs_namespaces
def test_a_sleep_is_stopped_at_wall_clock_seconds(tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    script = f"sleep 1; sleep 1; sleep 1; touch {marker}"
    with pytest.raises(ModuleError) as failed:
        run_exec(tmp_path, SandboxPolicy(wall_clock_seconds=1), argv=["sh", "-c", script])
    assert failed.value.code == "Timeout"
    assert "1s timeout" in failed.value.message
    time.sleep(2.5)
    assert not marker.exists()  # nothing of the program survived the kill


def without_namespaces(bin_dir: Path) -> str:
    """A PATH whose ``unshare`` fails as it does where namespaces are not allowed (AWS Lambda)."""
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "unshare").write_text(
        "#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n"
    )
    (bin_dir / "unshare").chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def test_where_namespaces_are_not_allowed_exec_is_refused_in_a_sealed_pack_and_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", without_namespaces(tmp_path / "bin"))
    for sandbox in (SandboxPolicy(mode="sealed"), SandboxPolicy(mode="restricted", air_gapped=True)):
        marker = tmp_path / "ran"
        with pytest.raises(ModuleError) as refused:
            run_exec(tmp_path, sandbox, argv=["touch", str(marker)])
        assert refused.value.code == "SandboxUnavailable"
        assert refused.value.retryable is False
        assert "Operation not permitted" in refused.value.message
        assert "unshare" in refused.value.message
        assert not marker.exists()


def test_a_restricted_pack_in_an_unsealed_deployment_runs_unisolated_with_a_clean_environment(
    tmp_path: Path,
) -> None:
    no_namespaces = {"PATH": without_namespaces(tmp_path / "bin")}
    result = run_in_fresh_executor(tmp_path, "restricted", no_namespaces, argv=["sh", "-c", "env"])
    assert CANARY not in result["outputs"]["stdout"]
    assert f"HOME={tmp_path}" in result["outputs"]["stdout"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"argv": ["no-such-program-x"]}, "program not found: no-such-program-x"),
        ({"argv": ["true"], "cwd": "/no/such/dir"}, "cwd /no/such/dir is not a directory"),
        ({"argv": []}, "exec parameter 'argv': List should have at least 1 item"),
        ({"argv": ["true"], "env": ["A=1"]}, "exec parameter 'env': Input should be a valid dictionary"),
    ],
)
def test_bad_parameters_get_a_clear_error(tmp_path: Path, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ModuleError) as failed:
        run_exec(tmp_path, SandboxPolicy(), **params)
    assert message in failed.value.message
    assert failed.value.retryable is False
