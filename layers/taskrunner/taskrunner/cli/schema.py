"""``taskrunner schema``: the pack JSON Schema for editors, or the builtin modules' contracts as Markdown."""

from __future__ import annotations

from typing import Annotated

import typer

from taskrunner.cli.main import JsonOpt
from taskrunner.modules.docs import modules_markdown
from taskrunner.plan.schemas import pack_schema, schema_text


def schema(
    markdown: Annotated[
        bool,
        typer.Option("--markdown", help="Print the builtin modules' parameters and outputs as Markdown."),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Print the pack manifest's JSON Schema (each run.with checked by its module's contract) on stdout."""
    if markdown and json_output:
        raise typer.BadParameter("--markdown and --json print different documents: pass one of them")
    typer.echo(modules_markdown() if markdown else schema_text(pack_schema()), nl=False)
