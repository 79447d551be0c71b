"""The CLI's help: -h everywhere, plain text, --json on every data command, and the README reference in step."""

from __future__ import annotations

from pathlib import Path

import pytest
from taskrunner.cli.app import app
from taskrunner.cli.reference import BEGIN, END, command_contexts, reference, replace_block
from typer.testing import CliRunner

README = Path(__file__).resolve().parents[2] / "README.md"
COMMANDS = [ctx.command_path.split()[1:] for ctx in command_contexts()]
LEAVES = [ctx.command_path.split()[1:] for ctx in command_contexts() if not hasattr(ctx.command, "commands")]
NOT_DATA = {("serve",)}  # serves the API until stopped; prints only its URL


def test_every_command_is_listed() -> None:
    assert len(LEAVES) == 41
    assert ["runs", "cancel"] in LEAVES
    assert ["db", "status"] in LEAVES


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "taskrunner")
def test_dash_h_is_help_and_help_is_plain_text(path: list[str]) -> None:
    short = CliRunner().invoke(app, [*path, "-h"])
    long = CliRunner().invoke(app, [*path, "--help"])

    assert short.exit_code == 0, short.output
    assert short.output == long.output
    assert short.output.startswith("Usage: taskrunner")
    assert "-h, --help" in short.output
    assert "``" not in short.output  # no raw reStructuredText
    assert ":class:" not in short.output
    assert ":meth:" not in short.output


@pytest.mark.parametrize("path", [p for p in LEAVES if tuple(p) not in NOT_DATA], ids=" ".join)
def test_every_command_that_prints_data_takes_json(path: list[str]) -> None:
    assert "--json" in CliRunner().invoke(app, [*path, "--help"]).output


def test_the_readme_reference_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1
    assert text.count(END) == 1
    assert replace_block(text, reference()) == text, "run: python -m taskrunner.cli.reference README.md"


def test_replacing_the_block_keeps_the_rest_and_refuses_missing_markers() -> None:
    assert replace_block(f"a\n{BEGIN}\nold\n{END}\nb\n", "new\n") == f"a\n{BEGIN}\nnew\n{END}\nb\n"
    with pytest.raises(SystemExit, match="markers"):
        replace_block("no markers here", "new\n")
