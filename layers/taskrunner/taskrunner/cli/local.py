"""``taskrunner run`` and ``taskrunner serve``: the SAM app on this machine, no AWS account, no Docker."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import typer
from rich.live import Live

from taskrunner.cli.gates import GateAnswerer, command_line_decisions
from taskrunner.cli.main import (
    InputOpt,
    InputsFileOpt,
    JsonOpt,
    PackArg,
    handle_errors,
    print_json,
    read_inputs,
    text_value,
)
from taskrunner.cli.main import stderr as console
from taskrunner.cli.progress import run_document, run_table
from taskrunner.pack.source import read_bounded

ApproveOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--approve",
        metavar="GATE[=APPROVER]",
        help="Approve GATE when it opens (as APPROVER, default 'local-approver'); repeat with distinct approvers "
        "for a gate that needs several.",
    ),
]
RejectOpt = Annotated[
    list[str] | None, typer.Option("--reject", metavar="GATE", help="Reject GATE when it opens.")
]
NoWaitOpt = Annotated[
    bool,
    typer.Option(
        "--no-wait",
        help="Without a terminal, cancel the run when a gate opens that the command line does not decide, "
        "instead of waiting for decisions from elsewhere until the gate expires.",
    ),
]


def quiet_engine_logs() -> None:
    """Keep moto's Step Functions interpreter from printing its internals on stderr.

    It logs every error a state catches (a failed step, a rejected gate) at ERROR level; with no logging
    configured Python prints those records, so a failing run would bury the command's own report. The run's
    logs and the report say what failed; a handler on the ``moto`` logger stops the fallback printing while
    records still propagate to any logging the caller configured.
    """
    engine = logging.getLogger("moto")
    if not any(isinstance(h, logging.NullHandler) for h in engine.handlers):
        engine.addHandler(logging.NullHandler())


class Unsealed(Exception):
    """The run's execution is over but the run was never sealed: waiting for its evidence would never end."""

    def __init__(self, run: Any, execution_status: str) -> None:
        super().__init__(run.runId)
        self.run = run
        self.execution_status = execution_status


def unsealed_check(rt: Any, run_id: str) -> Callable[[Any], None]:
    """An ``on_tick`` for :meth:`LocalRuntime.wait` raising :class:`Unsealed` once nothing will seal the run."""

    def check(snapshot: Any) -> None:
        if snapshot.evidence is not None or not snapshot.executionArn:
            return
        status = rt.svc.workflow.execution_status(snapshot.executionArn)
        if status == "RUNNING":
            return
        current = rt.svc.store.get_run(run_id, None)  # the seal may have landed since the snapshot
        if current.evidence is None and current.executionArn == snapshot.executionArn:
            raise Unsealed(current, status)

    return check


def report_unsealed(exc: Unsealed) -> None:
    console.print(
        f"run {exc.run.runId} is {exc.run.status} but its evidence was never sealed "
        f"(the engine's execution ended {exc.execution_status}); see 'taskrunner runs logs {exc.run.runId}'",
        markup=False,
        soft_wrap=True,
    )


@handle_errors
def run(
    pack: PackArg,
    inputs: InputOpt = None,
    inputs_file: InputsFileOpt = None,
    approve: ApproveOpt = None,
    reject: RejectOpt = None,
    no_wait: NoWaitOpt = False,
    json_output: JsonOpt = False,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
) -> None:
    """Run PACK end to end on this machine with live progress; exit 0 only when the run succeeded.

    A gate the command line does not decide is asked for at a terminal, one approval at a time; without
    a terminal the run waits for decisions from elsewhere (taskrunner approve RUN GATE --as NAME) until
    the gate expires, or stops at once with --no-wait or when the gate never expires.
    """
    from taskrunner.engine.submit import submit_run
    from taskrunner.local.runtime import TENANT, LocalRuntime

    values = read_inputs(inputs or [], inputs_file)
    manifest = read_bounded(pack, str(pack))
    quiet_engine_logs()
    with LocalRuntime(resume=False) as rt:
        submitted = submit_run(
            rt.svc,
            tenant_id=TENANT,
            manifest=manifest,
            inputs=values,
            source_name=str(pack),
        )
        run_id = submitted.run.runId
        interactive = console.is_terminal and not json_output
        live = Live(run_table(submitted.run), console=console, transient=True, refresh_per_second=8)
        with live if interactive else contextlib.nullcontext(live):
            decisions = command_line_decisions(approve or [], reject or [])
            answer = GateAnswerer(rt, run_id, decisions, live if interactive else None, wait=not no_wait)
            unsealed = unsealed_check(rt, run_id)

            def tick(snapshot: Any) -> None:
                gates = answer.gates(snapshot)
                live.update(run_table(snapshot, gates))
                answer(snapshot, gates)
                if answer.unanswerable:
                    raise _Unanswered(answer.unanswerable)
                unsealed(snapshot)

            try:
                final = rt.wait(run_id, timeout=timeout, on_tick=tick)
            except Unsealed as exc:
                final = exc.run
                report_unsealed(exc)
            except _Unanswered as exc:
                from taskrunner.engine.lifecycle import cancel_run

                final = cancel_run(rt.svc, TENANT, run_id, requested_by="taskrunner run")
                console.print(
                    f"gate(s) {', '.join(exc.gates)} need a decision: pass --approve GATE or --reject GATE",
                    markup=False,
                )
            gates = answer.gates(final)
        artifacts = rt.svc.store.list_artifacts(run_id)
    report(final, artifacts, json_output, gates)
    raise typer.Exit(0 if final.status == "succeeded" and final.evidence is not None else 1)


class _Unanswered(Exception):
    def __init__(self, gates: list[str]) -> None:
        super().__init__(gates)
        self.gates = gates


def report(run: Any, artifacts: list[Any], json_output: bool, gates: Mapping[str, Any] | None = None) -> None:
    """The run's outcome: one JSON document with ``--json``, else the step table and readable lines."""
    document = run_document(run, artifacts)
    if json_output:
        print_json(document)
        return
    from taskrunner.cli.main import stdout

    stdout.print(run_table(run, gates))
    stdout.print(f"run {run.runId}: {run.status}", markup=False)
    if run.error:
        stdout.print(f"error: {run.error.message} ({run.error.code})", markup=False, soft_wrap=True)
    for name, value in document["outputs"].items():
        stdout.print(f"output {name}: {text_value(value)}", markup=False, soft_wrap=True)
    for a in document["artifacts"]:
        stdout.print(f"artifact {a['name']}  sha256:{a['sha256']}  {a['size']} bytes", markup=False)
    if run.evidence:
        stdout.print(f"evidence {run.evidence['location']}  sha256:{run.evidence['sha256']}", markup=False)


@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 3000,
) -> None:
    """Serve the HTTP API with the same handlers; tokens from 'taskrunner token'; resumes unfinished runs."""
    from taskrunner.local.api_routes import api_routes
    from taskrunner.local.console_sign_in import sign_in_route
    from taskrunner.local.http_server import base_url, listen
    from taskrunner.local.http_server import serve as serve_http
    from taskrunner.local.runtime import LocalRuntime

    quiet_engine_logs()
    listener = listen(host, port)  # bound first: the functions' links (approval notifications) name this URL
    os.environ.setdefault("TASKRUNNER_API__PUBLIC_URL", base_url(listener))
    # whoever reaches the development sign-in gets a token: only on a loopback address
    local_only = ipaddress.ip_address(str(listener.getsockname()[0])).is_loopback
    os.environ["TASKRUNNER_CONSOLE__DEV_SIGN_IN"] = str(local_only).lower()
    with LocalRuntime() as rt:
        routes = [*api_routes(rt), *([sign_in_route()] if local_only else [])]
        server = serve_http(routes, host=host, port=port, listener=listener)
        console.print(f"TaskRunner API on {server.url} (resumed {len(rt.resumed)} run(s)); Ctrl-C stops")
        console.print(f"Web console on {server.url}/console/", markup=False)
        if not local_only:
            console.print(
                f"no development sign-in on {host} (not a loopback address): sign in with "
                "'taskrunner token' tokens or serve on 127.0.0.1",
                markup=False,
            )
        sys.stdout.write(server.url + "\n")
        sys.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
