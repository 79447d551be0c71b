"""Wake-up sockets: a sender reaches every live runtime's socket, and clears those whose process is gone."""

from __future__ import annotations

import socket
import stat
import threading
from pathlib import Path

import pytest
from taskrunner.errors import ConfigurationError
from taskrunner.local.wakeups import WakeupSocket, WakingWorkflow, wake_runtimes, wakeup_dir


def test_a_waiting_socket_is_woken_by_another_sender(tmp_path: Path) -> None:
    inbox = WakeupSocket(tmp_path)
    try:
        assert stat.S_IMODE(inbox.path.stat().st_mode) == 0o600
        assert inbox.wait(0.01) is False  # nothing sent yet
        woken: list[bool] = []
        waiter = threading.Thread(target=lambda: woken.append(inbox.wait(30)))
        waiter.start()
        # wake_runtimes skips this process's own socket; a second socket stands for another process
        other = wakeup_dir(tmp_path) / "relay-1.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind(str(other))
            listener.settimeout(5)
            assert wake_runtimes(tmp_path) == 1
            assert listener.recv(1) == b""
        inbox.wake()
        waiter.join(5)
        assert woken == [True]
    finally:
        inbox.close()
    assert not inbox.path.exists()


def test_dead_sockets_are_removed_and_other_files_left_alone(tmp_path: Path) -> None:
    folder = wakeup_dir(tmp_path)
    folder.mkdir(parents=True)
    dead = folder / "relay-2.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as gone:
        gone.bind(str(dead))  # bound, then closed: nobody listens any more
    unrelated = folder / "notes.txt"
    unrelated.write_text("keep")

    assert wake_runtimes(tmp_path) == 0
    assert not dead.exists()
    assert unrelated.read_text() == "keep"


def test_no_run_directory_wakes_nobody(tmp_path: Path) -> None:
    assert wake_runtimes(tmp_path / "missing") == 0


def test_a_home_too_long_for_a_socket_path_uses_a_private_directory_of_its_own(tmp_path: Path) -> None:
    home = tmp_path / ("h" * 120)
    inbox = WakeupSocket(home)
    try:
        folder = inbox.path.parent
        assert folder == wakeup_dir(home) != home / "run"
        assert len(str(inbox.path).encode()) <= 107
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert wakeup_dir(tmp_path / ("h" * 120)) == folder  # every process using the home finds it
        assert wakeup_dir(tmp_path / ("g" * 120)) != folder
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind(str(folder / "relay-1.sock"))
            listener.settimeout(5)
            assert wake_runtimes(home) == 1
            assert listener.recv(1) == b""
    finally:
        inbox.close()
        (inbox.path.parent / "relay-1.sock").unlink(missing_ok=True)
        inbox.path.parent.rmdir()


def test_a_shared_temp_directory_another_user_could_write_is_refused(tmp_path: Path) -> None:
    home = tmp_path / ("x" * 120)
    folder = wakeup_dir(home)
    folder.mkdir(mode=0o700)
    folder.chmod(0o777)
    try:
        with pytest.raises(PermissionError):
            WakeupSocket(home)
    finally:
        folder.rmdir()


def test_without_an_engine_answers_and_stops_are_delivered_by_waking_the_runtimes(tmp_path: Path) -> None:
    workflow = WakingWorkflow(tmp_path)
    other = wakeup_dir(tmp_path) / "relay-3.sock"  # another process's runtime
    other.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as runtime:
        runtime.bind(str(other))
        runtime.settimeout(5)
        workflow.send_task_success("token-1", {"gateId": "review", "status": "approved"})
        assert runtime.recv(1) == b""
        workflow.send_task_failure("token-2", "RunCancelled", "run r was cancelled")
        assert runtime.recv(1) == b""
        workflow.stop_execution("arn:aws:states:us-east-1:123456789012:execution:m:r", "RunCancelled", "x")
        assert runtime.recv(1) == b""


def test_without_an_engine_nothing_is_started(tmp_path: Path) -> None:
    workflow = WakingWorkflow(tmp_path)
    with pytest.raises(ConfigurationError, match="starting an execution needs a local runtime") as refused:
        workflow.start_execution("arn:aws:states:us-east-1:123456789012:stateMachine:m", "r", {})
    assert "taskrunner run" in (refused.value.remediation or "")
    with pytest.raises(ConfigurationError, match="creating a state machine needs a local runtime"):
        workflow.ensure_state_machine("m", "{}")
