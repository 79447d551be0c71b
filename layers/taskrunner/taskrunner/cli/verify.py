"""``taskrunner verify``: check an evidence bundle offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from taskrunner.cli.main import JsonOpt, fail, print_json
from taskrunner.errors import ConfigurationError, TaskRunnerError
from taskrunner.evidence.signing import load_trusted_key
from taskrunner.evidence.verify import VerificationReport, verify_bundle
from taskrunner.pack.limits import MAX_KEY_FILE_BYTES, read_at_most


def verify(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="The evidence bundle (.tar.gz).")],
    trust: Annotated[
        list[Path],
        typer.Option(
            "--trust", metavar="PUBKEY", help="A trusted public key (PEM file); repeat for several keys."
        ),
    ],
    require_dsse: Annotated[
        bool, typer.Option("--require-dsse", help="Fail unless the manifest is DSSE-signed too.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Verify BUNDLE: schema, file digests, planHash, every DSSE signature, bindings, redaction.

    Exits 0 when everything holds, 1 when anything fails (every failure is listed).
    """
    try:
        pems = [read_trusted_key(path) for path in trust]
        report = verify_bundle(bundle, pems, require_dsse=require_dsse)
    except TaskRunnerError as exc:
        raise fail(exc, code=2) from None
    if json_output:
        print_json(report.to_json())
    else:
        _print(report)
    if not report.ok:
        raise typer.Exit(1)


def read_trusted_key(path: Path) -> bytes:
    """The PEM public key in ``path``, refused early (naming the file) unless it is a usable key."""
    fix = "pass a PEM public key file, e.g. from 'taskrunner keys export-public'"
    try:
        data = read_at_most(path, MAX_KEY_FILE_BYTES)
    except OSError as exc:
        raise ConfigurationError(f"cannot read trusted key {path}: {exc.strerror}", remediation=fix) from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigurationError(
            f"trusted key {path} is larger than any key file ({MAX_KEY_FILE_BYTES:,} bytes)", remediation=fix
        )
    load_trusted_key(data, f"trusted key {path}")
    return data


def _print(report: VerificationReport) -> None:
    summary = report.summary
    if report.ok:
        signed = "signed manifest" if summary.get("manifestSigned") else "UNSIGNED manifest"
        typer.echo(
            f"OK {summary['bundle']}: run {summary.get('runId')} ({summary.get('outcome')}), "
            f"planHash {summary.get('planHash')}, {summary.get('files')} files, {signed}"
        )
        for warning in summary.get("warnings", []):
            typer.echo(f"warning: {warning}", err=True)
        return
    typer.echo(f"FAILED {summary['bundle']}: {len(report.failures)} problem(s)", err=True)
    for failure in report.failures:
        typer.echo(f"  - {failure}", err=True)
