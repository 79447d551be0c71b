"""The README's step-module tables are the ones generated from the modules' contract models."""

from __future__ import annotations

from pathlib import Path

from taskrunner.cli.app import app
from taskrunner.modules.docs import BEGIN, END, modules_markdown
from taskrunner.modules.registry import BUILTINS
from typer.testing import CliRunner

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_block_equals_the_generated_tables() -> None:
    text = README.read_text(encoding="utf-8")
    block = text[text.index(BEGIN) : text.index(END) + len(END)] + "\n"
    assert block == modules_markdown(), "regenerate with: .venv/bin/taskrunner schema --markdown"


def test_every_builtin_parameter_and_output_is_listed() -> None:
    generated = modules_markdown()
    for name, module in BUILTINS.items():
        assert module.contract is not None
        names = [*module.contract.parameter_names(), *module.contract.output_names({})]
        assert all(f"`{key}`" in generated for key in names), name
        assert f"| `{name}` |" in generated


def test_schema_markdown_prints_the_tables() -> None:
    result = CliRunner().invoke(app, ["schema", "--markdown"])
    assert result.exit_code == 0
    assert result.output == modules_markdown()
