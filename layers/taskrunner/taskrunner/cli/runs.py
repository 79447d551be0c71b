"""``taskrunner runs``: list, show, logs, artifacts, cancel, resume and export runs of the local store."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from taskrunner.cli.main import HELP_OPTIONS, JsonOpt, handle_errors, print_json, stderr, stdout, writable
from taskrunner.cli.progress import run_table
from taskrunner.store.log_gaps import GAP_EVENT_TYPE
from taskrunner.store.records import TERMINAL_RUN_STATUSES

app = typer.Typer(
    help="Runs in the local store (TASKRUNNER_HOME, or MongoDB when configured).",
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
)
RunArg = Annotated[str, typer.Argument(metavar="RUN", help="Run id.")]


def offline_services() -> Any:
    """Services over the local runtime's store (see ``taskrunner.local.storage``), for commands that do not
    run anything."""
    import os

    from taskrunner.composition import build_services
    from taskrunner.local.storage import local_settings

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return build_services(local_settings())


@app.command("list")
@handle_errors
def list_runs(
    tenant: Annotated[str, typer.Option(help="Tenant whose runs to list.")] = "local",
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    json_output: JsonOpt = False,
) -> None:
    """The tenant's runs, newest first."""
    from taskrunner.engine.queries import run_summary

    runs, _ = offline_services().store.list_runs(tenant, limit=limit, cursor=None)
    if json_output:
        print_json([run_summary(r) for r in runs])
        return
    for r in runs:
        stdout.print(f"{r.runId}  {r.packName}@{r.packVersion}  {r.status}", markup=False)


@app.command()
@handle_errors
def show(run_id: RunArg, json_output: JsonOpt = False) -> None:
    """A run with every step, attempt and pending gate."""
    from taskrunner.engine.queries import run_detail

    svc = offline_services()
    run = svc.store.get_run(run_id, None)
    if json_output:
        print_json(run_detail(svc, run.tenantId, run_id))
        return
    gates = {g.gateId: g for g in svc.store.list_gates(run_id)}
    stdout.print(run_table(run, gates, max_rows=10_000))


@app.command()
@handle_errors
def logs(
    run_id: RunArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
    after: Annotated[int, typer.Option(help="Start after this sequence.")] = 0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the events as one JSON array instead of NDJSON.")
    ] = False,
) -> None:
    """The run's log as NDJSON, one event per line; with --follow, until the run is over.

    Missing sequences show as a log.gap event in the output and a warning on stderr."""
    if json_output and follow:
        raise typer.BadParameter("--json prints one document; follow a log as NDJSON", param_hint="'--json'")
    store = offline_services().store
    if json_output:
        print_json([e.model_dump(mode="json", exclude_none=True) for e in store.read_logs(run_id, after)])
        return
    while True:
        for event in store.read_logs(run_id, after_sequence=after):
            sys.stdout.write(event.model_dump_json(exclude_none=True) + "\n")
            if event.eventType == GAP_EVENT_TYPE:
                stderr.print(f"warning: {event.message}", markup=False, soft_wrap=True)
            after = event.sequence
        sys.stdout.flush()
        run = store.get_run(run_id, None)
        if not follow or (run.sealed and not store.read_logs(run_id, after, 1)):
            return
        time.sleep(0.3)


@app.command()
@handle_errors
def artifacts(run_id: RunArg, json_output: JsonOpt = False) -> None:
    """Artifacts with sha256, size and where they are stored."""
    from taskrunner.engine.queries import jsonable

    items = [jsonable(a) for a in offline_services().store.list_artifacts(run_id)]
    if json_output:
        print_json(items)
        return
    for a in items:
        stdout.print(
            f"{a['name']}  sha256:{a.get('sha256')}  {a.get('size')} bytes  {a.get('storedPath')}",
            markup=False,
        )


@app.command()
@handle_errors
def cancel(run_id: RunArg, json_output: JsonOpt = False) -> None:
    """Cancel a pending or running run and seal its evidence."""
    from taskrunner.engine.lifecycle import cancel_run
    from taskrunner.local.decisions import local_decisions

    with local_decisions() as local:
        run = local.svc.store.get_run(run_id, None)
        run = cancel_run(local.svc, run.tenantId, run_id, requested_by="taskrunner runs cancel")
    if json_output:
        from taskrunner.engine.queries import run_summary

        print_json(run_summary(run))
        return
    stdout.print(f"run {run_id}: {run.status}", markup=False)


@app.command()
@handle_errors
def resume(run_id: RunArg, json_output: JsonOpt = False) -> None:
    """Resume a run in this process (finished steps are not re-run) and wait for it."""
    from taskrunner.cli.local import Unsealed, quiet_engine_logs, report, report_unsealed, unsealed_check
    from taskrunner.engine.lifecycle import resume_run
    from taskrunner.local.runtime import LocalRuntime

    quiet_engine_logs()
    with LocalRuntime(resume=False) as rt:
        run = rt.svc.store.get_run(run_id, None)
        resume_run(rt.svc, run.tenantId, run_id, force=True)
        try:
            final = rt.wait(run_id, on_tick=unsealed_check(rt, run_id))
        except Unsealed as exc:
            final = exc.run
            report_unsealed(exc)
        artifacts_ = rt.svc.store.list_artifacts(run_id)
    report(final, artifacts_, json_output)
    raise typer.Exit(0 if final.status == "succeeded" and final.evidence is not None else 1)


@app.command()
@handle_errors
def export(
    run_id: RunArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Bundle file to write.")],
    json_output: JsonOpt = False,
) -> None:
    """Write the run's evidence bundle (rebuilt from the store: the same bytes as the sealed one)."""
    from taskrunner.engine.evidence import export_bundle

    writable(output)
    svc = offline_services()
    run = svc.store.get_run(run_id, None)
    if run.status not in TERMINAL_RUN_STATUSES or not run.completedAt:
        raise typer.BadParameter(f"run {run_id} is {run.status}; evidence exists once it is finished")
    with output.open("wb") as out:
        digest = export_bundle(svc, run, out)
    if json_output:
        print_json({"runId": run_id, "path": str(output), "sha256": digest})
        return
    stdout.print(f"wrote the evidence bundle of run {run_id} to {output} ({digest})", markup=False)


@app.command()
@handle_errors
def slo(
    pack: Annotated[str | None, typer.Argument(metavar="[PACK]", help="Only this pack.")] = None,
    tenant: Annotated[str, typer.Option(help="Tenant whose runs to measure.")] = "local",
    json_output: JsonOpt = False,
) -> None:
    """Each pack's run and approval p95 (seconds) against its spec.slo; exit 1 when one is missed."""
    from dataclasses import asdict

    from taskrunner.engine.slo import slo_report
    from taskrunner.errors import NotFound
    from taskrunner.keys import PACK_NAME, TENANT_ID

    TENANT_ID.check(tenant, "--tenant")
    if pack is not None:
        PACK_NAME.check(pack, "the PACK argument")
    report = slo_report(offline_services().store, tenant, pack)
    if not report:
        which = f"of pack {pack} " if pack else ""
        raise NotFound(
            f"tenant {tenant} has no runs {which}to measure",
            remediation="check the pack name and --tenant (`taskrunner runs list` shows the runs)",
        )
    if json_output:
        print_json([{**asdict(row), "met": row.met} for row in report])
    else:
        for row in report:
            stdout.print(
                f"{row.pack}  run p95 {_seconds(row.runP95Seconds)} / SLO {_seconds(row.runSlo)}"
                f" ({row.runs} runs)  approval p95 {_seconds(row.approvalP95Seconds)} / SLO"
                f" {_seconds(row.approvalSlo)} ({row.approvals} approvals)  {'met' if row.met else 'MISSED'}",
                markup=False,
            )
    if not all(row.met for row in report):
        raise typer.Exit(1)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"
