"""The ``taskrunner`` console script: the pack commands of ``cli.main`` plus every command group."""

import atexit
import os
import sys
import threading

from taskrunner.cli import approvals, db, keys, local, packs, runs, schema, token, verify
from taskrunner.cli.main import app

app.command("run")(local.run)
app.command("serve")(local.serve)
app.add_typer(runs.app, name="runs")
app.command("approve")(approvals.approve)
app.add_typer(approvals.app, name="approvals")
app.command("token")(token.token)
app.add_typer(keys.app, name="keys")
app.command("verify")(verify.verify)
app.add_typer(db.app, name="db")
app.add_typer(packs.app, name="packs")
app.command("schema")(schema.schema)

__all__ = ["app", "main"]


def main() -> None:
    """The console script: the app, then the end of the process without the interpreter's teardown.

    Tearing down an interpreter that held the local runtime (moto, the template, every module) takes longer
    than a short command itself (~0.7 s after a one-step ``run``): collecting every object and module the
    process is about to hand back anyway. Every file the commands write is fsynced before they return, so
    once the exit handlers ran and the output is flushed, the process ends at once. A command that left a
    non-daemon thread running gets the normal exit, which waits for it.
    """
    try:
        app()
        code: str | int | None = 0
    except SystemExit as exc:
        code = exc.code
    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
