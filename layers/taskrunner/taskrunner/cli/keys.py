"""``taskrunner keys``: create the local evidence signing key and print public keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from taskrunner.cli.main import HELP_OPTIONS, JsonOpt, fail, print_json
from taskrunner.config import load_settings
from taskrunner.errors import TaskRunnerError
from taskrunner.evidence.signing import default_key_path, generate_ed25519_keyfile, signer_from_uri

SIGNING_KEY_ENV = "TASKRUNNER_SIGNING__KEY"

app = typer.Typer(help="Evidence signing keys.", no_args_is_help=True, context_settings=HELP_OPTIONS)


@app.command()
def generate(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="PATH",
            help="Where to write the key [default: $TASKRUNNER_HOME/keys/signing.pem].",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key file.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Generate an Ed25519 signing key (PKCS#8 PEM, mode 0600)."""
    path = out or default_key_path()
    try:
        signer = generate_ed25519_keyfile(path, overwrite=force)
    except TaskRunnerError as exc:
        raise fail(exc) from None
    if json_output:
        print_json({"path": str(path), "keyid": signer.keyid, "publicKeyPem": signer.public_key_pem})
        return
    typer.echo(f"Created signing key {path}")
    typer.echo(f"keyid: {signer.keyid}")
    if out is not None:
        typer.echo(f"Use it with: export {SIGNING_KEY_ENV}={path.resolve().as_uri()}")
    typer.echo("Publish the public key with: taskrunner keys export-public > signing.pub.pem")


@app.command("export-public")
def export_public(
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            metavar="URI",
            help=f"Signing key URI (file:///path or awskms:///alias/name) [default: ${SIGNING_KEY_ENV} "
            "or the local key file].",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Print the PEM public key of a signing key on stdout."""
    try:
        signer = signer_from_uri(key or str(load_settings().signing.key))
    except TaskRunnerError as exc:
        raise fail(exc) from None
    if json_output:
        print_json({"keyid": signer.keyid, "publicKeyPem": signer.public_key_pem})
        return
    typer.echo(signer.public_key_pem, nl=False)
