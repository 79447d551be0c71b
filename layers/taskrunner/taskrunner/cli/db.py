"""``taskrunner db``: MongoDB schema migrations, their status, and the file-store importer.

The commands use ``TASKRUNNER_STORAGE__MONGO__*`` (or the seed file) whatever the storage mode, so the
database can be prepared and backfilled before switching ``TASKRUNNER_STORAGE__MODE`` to ``mongo``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from taskrunner.cli.main import HELP_OPTIONS, JsonOpt, fail, print_json
from taskrunner.config import MongoSettings, load_settings
from taskrunner.errors import ConfigurationError, TaskRunnerError
from taskrunner.store.factory import collection_names, open_mongo_database
from taskrunner.store.file_store import FileRunStore
from taskrunner.timeutil import iso

if TYPE_CHECKING:  # pymongo loads with the first db command, not with every taskrunner command
    from pymongo.database import Database

    from taskrunner.store.mongo_names import CollectionNames

app = typer.Typer(
    help="Run-record database (MongoDB): migrations and file-store import.",
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
)


@contextmanager
def _reported() -> Iterator[None]:
    """Print a domain error (what and how to fix it) on stderr and exit 1, without a traceback."""
    from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

    from taskrunner.store.migrations import refusal

    try:
        yield
    except TaskRunnerError as exc:
        raise fail(exc) from None
    except ConnectionFailure as exc:
        raise fail(
            ConfigurationError(
                f"MongoDB is unreachable: {exc}",
                remediation="check TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING and the network path to it",
            )
        ) from None
    except OperationFailure as exc:
        raise fail(refusal(exc, "the operation")) from None
    except PyMongoError as exc:
        raise fail(
            ConfigurationError(f"MongoDB client error: {exc}", remediation="check the MongoDB settings")
        ) from None


def _database() -> tuple[Database[dict[str, Any]], CollectionNames, MongoSettings]:
    mongo = load_settings().storage.mongo
    return open_mongo_database(mongo), collection_names(mongo), mongo


@app.command()
def migrate(
    skip_validators: Annotated[
        bool,
        typer.Option(
            "--skip-validators",
            help="Create collections without $jsonSchema validators (servers with schema validation off).",
        ),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Create the collections, validators and indexes (unique first); safe to run again."""
    from taskrunner.store import migrations

    with _reported():
        db, names, mongo = _database()
        applied = migrations.migrate(
            db, names, validators=not skip_validators, log_ttl_seconds=mongo.log_ttl_seconds
        )
    if json_output:
        print_json({migration_id: [str(a) for a in actions] for migration_id, actions in applied.items()})
        return
    for migration_id, actions in applied.items():
        if not actions:
            typer.echo(f"{migration_id}: up to date")
            continue
        typer.echo(f"{migration_id}: applied {len(actions)} change(s)")
        for action in actions:
            typer.echo(f"  {action}")


@app.command()
def status(json_output: JsonOpt = False) -> None:
    """Show applied and missing migrations, and runs whose logs have gaps (text output)."""
    from taskrunner.store import migrations

    with _reported():
        db, names, mongo = _database()
        statuses = migrations.migration_status(db, names, log_ttl_seconds=mongo.log_ttl_seconds)
        log_lines = [] if json_output else _log_gap_lines(db, names)
    if json_output:
        print_json(
            [
                {
                    "id": s.id,
                    "appliedAt": iso(s.applied_at) if s.applied_at else None,
                    "pending": [str(a) for a in s.pending],
                }
                for s in statuses
            ]
        )
        return
    for state in statuses:
        applied = f"applied {iso(state.applied_at)}" if state.applied_at else "not applied"
        pending = f", {len(state.pending)} change(s) pending" if state.pending else ""
        typer.echo(f"{state.id}: {applied}{pending}")
        for action in state.pending:
            typer.echo(f"  pending: {action}")
    for line in log_lines:
        typer.echo(line)


def _log_gap_lines(db: Database[dict[str, Any]], names: CollectionNames) -> list[str]:
    """The log check of ``db status``: runs with unwritten gaps vs lost events (bounded scan)."""
    from taskrunner.store.log_audit import audit_logs

    if names.runs not in db.list_collection_names():
        return []
    audit = audit_logs(db, names)
    scope = f"newest {audit.scanned} runs" if audit.truncated else f"{audit.scanned} run(s)"
    lines = [
        f"logs ({audit.runs_collection}/{audit.logs_collection}, {scope}): "
        f"{audit.unwritten_runs} with unwritten gaps, {audit.lost_runs} with lost events"
    ]
    lines += [f"  {r.run_id}: {r.unwritten} unwritten, {r.lost} lost" for r in audit.examples]
    return lines


@app.command("import-fs")
def import_fs(
    directory: Annotated[
        Path,
        typer.Argument(
            help="File-store root (the TASKRUNNER_HOME holding runs/).", file_okay=False, exists=True
        ),
    ],
    json_output: JsonOpt = False,
) -> None:
    """Backfill every file-store run (state, logs, artifacts, approvals) into MongoDB; safe to run again."""
    from taskrunner.store import migrations
    from taskrunner.store.importer import import_file_store
    from taskrunner.store.mongo_store import MongoRunStore

    with _reported():
        if not (directory / "runs").is_dir():
            raise ConfigurationError(
                f"{directory} is not a file-store root (no runs/ directory in it)",
                remediation="pass the TASKRUNNER_HOME directory of the runs to import",
            )
        db, names, _ = _database()
        for state in migrations.migration_status(db, names):
            if state.applied_at is None:
                raise ConfigurationError(
                    f"migration {state.id} is not applied to the target database",
                    remediation="run `taskrunner db migrate` first",
                )
        report = import_file_store(FileRunStore(directory), MongoRunStore(db, names))
    if json_output:
        print_json(dataclasses.asdict(report))
        return
    typer.echo(
        f"runs: {report.runs_inserted} imported, {report.runs_updated} updated, "
        f"{report.runs_unchanged} unchanged; log events: {report.logs}; artifacts: {report.artifacts}; "
        f"approvals: {report.approvals}"
    )
