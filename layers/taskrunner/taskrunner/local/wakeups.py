"""Cross-process wake-ups: a process that changed a gate or run in the shared store tells the others to look.

Each running local runtime binds a Unix datagram socket ``<home>/run/relay-<pid>.sock`` (mode 0600; see
:func:`wakeup_dir` for a home whose path is too long for a socket) and
waits on it instead of sleeping; :func:`wake_runtimes` sends one empty datagram to every such socket and
removes the sockets nobody listens on any more (their process is gone). A datagram carries no data: the
receiver always reads the decision from the store, and its periodic poll still covers a missed wake-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taskrunner.engine.ports import WorkflowEngine
from taskrunner.errors import ConfigurationError

_SOCKET_NAME = re.compile(r"relay-[0-9]{1,10}\.sock")


_SOCKET_PATH_MAX = 107  # bytes in sockaddr_un.sun_path, less the terminating NUL


def wakeup_dir(home: Path) -> Path:
    """``<home>/run``, or where that would make a socket path too long, a private directory in the system temp
    directory named by the home's digest (every process using the home computes the same one)."""
    folder = home / "run"
    if len(os.fsencode(folder / "relay-4294967295.sock")) <= _SOCKET_PATH_MAX:
        return folder
    digest = hashlib.sha256(os.fsencode(home.resolve())).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"taskrunner-{os.getuid()}-{digest}"


def _private_dir(folder: Path) -> None:
    """Create ``folder`` (0700) or accept it only if this user owns it and nobody else may write to it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{folder} is not a private directory of this user")


class WakeupSocket:
    """This process's wake-up socket; :meth:`wait` returns early when another process wakes it."""

    def __init__(self, home: Path) -> None:
        folder = wakeup_dir(home)
        _private_dir(folder)
        self.path = folder / f"relay-{os.getpid()}.sock"
        self.path.unlink(missing_ok=True)  # a previous process with the same pid left it
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        old_umask = os.umask(0o177)
        try:
            self._sock.bind(str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True if woken. Drains queued wake-ups (one look covers them all)."""
        self._sock.settimeout(timeout)
        try:
            self._sock.recv(1)
        except TimeoutError:
            return False
        except OSError:  # closed while waiting
            return False
        self._sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                self._sock.recv(1)
        return True

    def wake(self) -> None:
        """Wake this socket's own waiter (used to stop it)."""
        _send(self.path)

    def close(self) -> None:
        self._sock.close()
        self.path.unlink(missing_ok=True)


def _send(path: Path) -> bool:
    """Send one empty datagram; False if nobody listens on ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.sendto(b"", str(path))
        except BlockingIOError:  # its queue is full: a wake-up is already pending there
            return True
        except (ConnectionRefusedError, FileNotFoundError):
            return False
    return True


def wake_runtimes(home: Path) -> int:
    """Wake every other local runtime using ``home``; returns how many were woken. Never raises."""
    own = f"relay-{os.getpid()}.sock"
    woken = 0
    try:
        entries = list(wakeup_dir(home).iterdir())
    except OSError:
        return 0
    for path in entries:
        if path.name == own or not _SOCKET_NAME.fullmatch(path.name):
            continue
        try:
            if _send(path):
                woken += 1
            else:
                path.unlink(missing_ok=True)  # its process is gone
        except OSError:
            continue
    return woken


class WakingWorkflow:
    """Step Functions as a process that changes gates and runs in the shared store sees it.

    Answering a task token or stopping an execution first wakes the other runtimes: the change is already in
    the store, and the runtime whose moto holds the execution (see ``GateRelay``) answers the token or stops
    the execution from it at once. With an ``engine`` (a process running a local runtime) the call then goes
    to this process's Step Functions too; without one (``approve``, ``approvals import``, ``runs cancel``)
    waking is the whole delivery, and an execution no runtime holds continues when one starts (it resumes
    every active run). Creating machines and starting executions need an engine.
    """

    def __init__(self, home: Path, engine: WorkflowEngine | None = None) -> None:
        self._home = home
        self._engine = engine

    def _local(self, operation: str) -> WorkflowEngine:
        if self._engine is None:
            raise ConfigurationError(
                f"{operation} needs a local runtime in this process",
                remediation="use 'taskrunner run' or 'taskrunner serve', which start one",
            )
        return self._engine

    def ensure_state_machine(self, name: str, definition: str) -> str:
        return self._local("creating a state machine").ensure_state_machine(name, definition)

    def delete_state_machine_if_idle(self, state_machine_arn: str, finishing_execution: str) -> bool:
        return self._local("deleting a state machine").delete_state_machine_if_idle(
            state_machine_arn, finishing_execution
        )

    def start_execution(self, state_machine_arn: str, name: str, payload: Mapping[str, Any]) -> str:
        return self._local("starting an execution").start_execution(state_machine_arn, name, payload)

    def stop_execution(self, execution_arn: str, error: str, cause: str) -> None:
        wake_runtimes(self._home)
        if self._engine is not None:
            self._engine.stop_execution(execution_arn, error, cause)

    def send_task_success(self, task_token: str, output: Mapping[str, Any]) -> None:
        wake_runtimes(self._home)
        if self._engine is not None:
            self._engine.send_task_success(task_token, output)

    def send_task_failure(self, task_token: str, error: str, cause: str) -> None:
        wake_runtimes(self._home)
        if self._engine is not None:
            self._engine.send_task_failure(task_token, error, cause)

    def execution_status(self, execution_arn: str) -> str:
        return self._local("reading an execution's status").execution_status(execution_arn)
