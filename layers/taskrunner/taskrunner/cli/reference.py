"""The README's CLI reference, generated from the commands themselves.

``python -m taskrunner.cli.reference`` prints it; ``python -m taskrunner.cli.reference README.md`` rewrites the
block between ``<!-- cli:begin -->`` and ``<!-- cli:end -->`` in that file.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import typer
from typer.core import TyperGroup

from taskrunner.cli.app import app

BEGIN, END = "<!-- cli:begin -->", "<!-- cli:end -->"
WIDTH = 100


def command_contexts() -> Iterator[typer.Context]:
    """A context for the ``taskrunner`` group and every command under it, in the order help lists them."""
    root = typer.main.get_command(app)
    top = typer.Context(
        root, info_name="taskrunner", terminal_width=WIDTH, max_content_width=WIDTH, **root.context_settings
    )

    def walk(ctx: typer.Context) -> Iterator[typer.Context]:
        yield ctx
        group = ctx.command
        if isinstance(group, TyperGroup):
            for name in group.list_commands(ctx):
                child = group.get_command(ctx, name)
                if child is not None and not child.hidden:
                    yield from walk(
                        typer.Context(child, info_name=name, parent=ctx, **child.context_settings)
                    )

    yield from walk(top)


def reference() -> str:
    """Every command's ``--help``, each under a heading naming the command."""
    sections = []
    for ctx in command_contexts():
        sections.append(f"#### `{ctx.command_path}`\n\n```text\n{ctx.get_help().rstrip()}\n```\n")
    return "\n".join(sections)


def replace_block(document: str, block: str) -> str:
    """``document`` with the text between the markers replaced by ``block``."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"error: the markers {BEGIN} and {END} are missing\nhint: add both, in that order")
    return f"{document[: start + len(BEGIN)]}\n{block}{document[end:]}"


def main(argv: list[str]) -> None:
    if not argv:
        sys.stdout.write(reference())
        return
    readme = Path(argv[0])
    readme.write_text(replace_block(readme.read_text(encoding="utf-8"), reference()), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
