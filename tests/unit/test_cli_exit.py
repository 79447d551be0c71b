"""The console script ends the process right after the command, keeping exit codes, output and threads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys, threading, time
from pathlib import Path
import taskrunner.cli.app as cli

def command():
    mode = sys.argv[1]
    print("out", flush=False)
    print("err", file=sys.stderr, flush=False)
    if mode == "thread":
        def late():
            time.sleep(0.3)
            Path(sys.argv[2]).write_text("done")
        threading.Thread(target=late).start()
    if mode == "message":
        raise SystemExit("refused: because")
    raise SystemExit(int(mode) if mode.isdigit() else 0)

cli.app = command
cli.main()
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_exit_codes_and_unflushed_output_survive_the_fast_exit() -> None:
    for code in (0, 1, 2):
        done = _run(str(code))
        assert (done.returncode, done.stdout, done.stderr) == (code, "out\n", "err\n")
    done = _run("message")
    assert (done.returncode, done.stderr) == (1, "err\nrefused: because\n")


def test_a_command_that_left_a_thread_running_exits_after_it(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    done = _run("thread", str(marker))
    assert done.returncode == 0
    assert marker.read_text() == "done"
