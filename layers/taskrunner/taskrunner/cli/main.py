"""The ``taskrunner`` command.

Exit codes: 0 success, 1 invalid pack or inputs (or another TaskRunner error; printed on stderr without a
traceback), 2 usage error. ``--json`` prints exactly one JSON document on stdout.

Commands live in the modules that own them; each command group is attached at the end of this file with
one ``app.add_typer(...)`` (or ``app.command(...)``) line.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from taskrunner import __version__
from taskrunner.errors import ConfigurationError, TaskRunnerError, ValidationFailed
from taskrunner.keyfiles import local_redaction_key
from taskrunner.pack.contracts import unchecked_modules
from taskrunner.pack.errors import InputsError, ManifestError, ProblemsError, render_problem
from taskrunner.pack.limits import MAX_MANIFEST_BYTES, bounded_int, read_at_most
from taskrunner.pack.loader import load_pack
from taskrunner.pack.source import parse_source
from taskrunner.plan.inputs_lock import build_inputs_lock, environment_secret_values
from taskrunner.plan.planner import PlanResult, build_plan

P = ParamSpec("P")
HELP_OPTIONS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}
R = TypeVar("R")

app = typer.Typer(
    name="taskrunner",
    help="Plan, simulate, compile and run Task Packs deterministically, with approvals and signed evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # never print tracebacks (or locals) to users
    rich_markup_mode=None,
    context_settings=HELP_OPTIONS,
)
stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


# -- shared helpers (usable by every command module) ------------------------------------------------


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn TaskRunner errors (and files that cannot be read or written) into :func:`fail` and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except TaskRunnerError as exc:
            raise fail(exc) from None
        except OSError as exc:
            what = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
            raise fail(TaskRunnerError(what, remediation="check the path and its permissions")) from None

    return wrapper


def fail(exc: TaskRunnerError, code: int = 1) -> typer.Exit:
    """Report ``exc`` on stderr (the one way every command reports an error); return the exit to raise.

    Prints ``error: <message>`` then every problem of a validation report, else ``hint: <remediation>``.
    """
    stderr.print(f"error: {exc.message}", markup=False, soft_wrap=True)
    if isinstance(exc, ProblemsError):
        for problem in exc.problem_list:
            stderr.print(f"  {render_problem(problem)}", markup=False, soft_wrap=True)
    elif exc.remediation:
        stderr.print(f"hint: {exc.remediation}", markup=False, soft_wrap=True)
    return typer.Exit(code)


def writable(path: Path, option: str = "'-o' / '--output'") -> Path:
    """``path``, once its directory is known to exist (refused before any work is done)."""
    parent = path.parent
    if not parent.is_dir():
        raise typer.BadParameter(f"cannot write {path}: directory {parent} does not exist", param_hint=option)
    if path.is_dir():
        raise typer.BadParameter(f"cannot write {path}: it is a directory", param_hint=option)
    return path


def read_json_object(path: Path, what: str, fields: Mapping[str, type]) -> dict[str, Any]:
    """The JSON object in ``path`` (at most the manifest size limit), holding every one of ``fields``.

    Anything else (unreadable, empty, not UTF-8, not JSON, nested too deeply, not an object, a field
    missing or of the wrong type) is a :class:`ValidationFailed` naming the file and how to fix it.
    """
    fix = f"pass the {what} file unchanged"
    data = read_at_most(path, MAX_MANIFEST_BYTES)
    if len(data) > MAX_MANIFEST_BYTES:
        raise ValidationFailed(
            f"{path} is larger than the limit of {MAX_MANIFEST_BYTES:,} bytes", remediation=fix
        )
    if not data.strip():
        raise ValidationFailed(f"{path} is empty", remediation=fix)
    try:
        document = json.loads(data.decode("utf-8"), parse_int=bounded_int)
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"{path} is not UTF-8 text (byte {exc.start})", remediation=fix) from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ValidationFailed(f"{path} is not valid JSON: {exc.msg} at {where}", remediation=fix) from None
    except RecursionError:
        raise ValidationFailed(f"{path} is nested too deeply to be a {what}", remediation=fix) from None
    except ValueError as exc:
        raise ValidationFailed(f"{path} is not valid JSON: {exc}", remediation=fix) from None
    if not isinstance(document, dict):
        got = type(document).__name__
        raise ValidationFailed(f"{path} must be a JSON object (a {what}), got a {got}", remediation=fix)
    bad = [name for name, kind in fields.items() if not isinstance(document.get(name), kind)]
    if bad:
        missing = ", ".join(f"{name} ({fields[name].__name__})" for name in bad)
        raise ValidationFailed(
            f"{path} has a missing field or a field of the wrong type: {missing}", remediation=fix
        )
    return document


def print_json(document: Any) -> None:
    """Write ``document`` as the one JSON document of the command's output."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``name=value`` pairs; a value is parsed as JSON when it is valid JSON, else kept as a string."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{pair!r} is not name=value", param_hint="'-i' / '--input'")
        try:
            values[name.strip()] = json.loads(raw)
        except ValueError:
            values[name.strip()] = raw
    return values


def read_inputs(pairs: list[str], inputs_file: Path | None) -> dict[str, Any]:
    """Inputs from ``--inputs FILE`` (a JSON or YAML object), overridden by ``-i name=value``."""
    values: dict[str, Any] = {}
    if inputs_file is not None:
        try:
            document = parse_source(inputs_file).document
        except ManifestError as exc:
            raise InputsError(exc.problem_list, source=f"file {inputs_file}") from None
        if not isinstance(document, dict):
            raise typer.BadParameter(
                "the inputs file must hold an object of name: value", param_hint="'--inputs'"
            )
        values.update(document)
    values.update(parse_assignments(pairs))
    return values


PackArg = Annotated[
    Path,
    typer.Argument(
        exists=True,
        dir_okay=False,
        readable=True,
        metavar="PACK",
        help="Pack manifest (YAML or JSON).",
        show_default=False,
    ),
]
InputOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input", "-i", metavar="NAME=VALUE", help="An input; VALUE is JSON when it parses, else text."
    ),
]
InputsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--inputs", exists=True, dir_okay=False, readable=True, help="JSON or YAML object of inputs."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def plan_from_cli(pack: Path, pairs: list[str] | None, inputs_file: Path | None) -> PlanResult:
    inputs = read_inputs(pairs or [], inputs_file)
    inputs_name = str(inputs_file) if inputs_file is not None else "<inputs>"
    return build_plan(pack, inputs, inputs_name=inputs_name)


def _version(value: bool) -> None:
    if value:
        stdout.print(f"taskrunner {__version__}", markup=False)
        raise typer.Exit()


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written (it may be replaced after the handler is set up)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """TaskRunner command line."""
    from taskrunner.observability import logger

    # Handlers log JSON lines (stdout in Lambda); at the command line stdout carries the command's own output.
    handler = logger.registered_handler
    if isinstance(handler, logging.StreamHandler):
        handler.setStream(_CurrentStderr())


# -- pack commands ---------------------------------------------------------------------------------


@app.command()
@handle_errors
def validate(pack: PackArg, json_output: JsonOpt = False) -> None:
    """Check a pack manifest; list every problem with file:line:column."""
    loaded = load_pack(pack)
    spec, meta = loaded.manifest.spec, loaded.manifest.metadata
    if json_output:
        print_json(
            {
                "pack": str(pack),
                "name": meta.name,
                "version": meta.version,
                "valid": True,
                "steps": len(spec.steps),
                "approvals": len(spec.approvals),
            }
        )
        return
    counts = (_count(len(spec.steps), "top-level step"), _count(len(spec.approvals), "approval"))
    stdout.print(f"{pack}: pack {meta.name} {meta.version} is valid ({', '.join(counts)})", markup=False)
    for name in unchecked_modules(loaded.document):
        stderr.print(
            f"warning: module {name!r} declares no contract, so its run.with and outputs cannot be checked "
            "before it runs",
            markup=False,
        )


@app.command()
@handle_errors
def plan(
    pack: PackArg, input_pairs: InputOpt = None, inputs: InputsFileOpt = None, json_output: JsonOpt = False
) -> None:
    """Resolve a pack and its inputs into a plan; print planHash, rngSeed, simulation and inputs.lock."""
    result = plan_from_cli(pack, input_pairs, inputs)
    secret_values = environment_secret_values(result.plan, os.environ)
    try:
        key = local_redaction_key()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read or create the local redaction key: {exc.strerror or exc}",
            remediation="set TASKRUNNER_HOME to a writable directory",
        ) from None
    lock = build_inputs_lock(result.plan, redaction_key=key, secret_values=secret_values)
    if json_output:
        print_json(
            {
                "planHash": result.plan_hash,
                "rngSeed": result.rng_seed,
                "plan": json.loads(result.plan_bytes),
                "simulation": result.simulation.to_dict(),
                "inputsLock": lock,
            }
        )
        return
    meta = result.plan.pack
    stdout.print(f"Plan for pack {meta.name} {meta.version}", markup=False)
    stdout.print(f"  pack digest  {meta.digest}", markup=False)
    stdout.print(f"  planHash     {result.plan_hash}", markup=False)
    stdout.print(f"  rngSeed      {result.rng_seed}", markup=False)
    stdout.print(
        _table("Inputs", ("name", "value"), ((k, text_value(v)) for k, v in result.plan.inputs.items()))
    )
    if lock["secrets"]:
        rows = ((name, entry["ref"], entry["value"]) for name, entry in lock["secrets"].items())
        stdout.print(_table("Secrets (inputs.lock)", ("name", "ref", "value"), rows))
    _print_simulation(result)


@app.command()
@handle_errors
def simulate(
    pack: PackArg, input_pairs: InputOpt = None, inputs: InputsFileOpt = None, json_output: JsonOpt = False
) -> None:
    """Show what a run would do: every step with pending, skipped, requires-approval or requires-policy."""
    result = plan_from_cli(pack, input_pairs, inputs)
    if json_output:
        print_json([step.to_dict() for step in result.simulation.steps])
        return
    _print_simulation(result)


@app.command(name="compile")
@handle_errors
def compile_command(
    pack: PackArg,
    input_pairs: InputOpt = None,
    inputs: InputsFileOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", dir_okay=False, help="Write the ASL definition here.")
    ] = None,
    limits: Annotated[
        bool, typer.Option("--limits", help="Also show the Step Functions limits report.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Compile a pack into its Step Functions (ASL) definition."""
    if output is not None:
        writable(output)
    compiled = plan_from_cli(pack, input_pairs, inputs).compiled
    if output is not None:
        output.write_bytes(compiled.definition_bytes)
    report = compiled.limits.to_dict()
    if json_output:
        print_json({"definition": compiled.definition, "limits": report})
        return
    if output is not None:
        stdout.print(
            f"wrote the {compiled.pack} definition (sha256 {compiled.digest[:12]}, "
            f"{len(compiled.definition_bytes)} bytes) to {output}",
            markup=False,
        )
    else:
        stdout.print(
            json.dumps(compiled.definition, indent=2, ensure_ascii=False), markup=False, soft_wrap=True
        )
    if limits:
        stdout.print(
            _table(
                f"Limits of {compiled.pack} (sha256 {compiled.digest[:12]})",
                ("measure", "value"),
                _flatten(report),
            )
        )


def _print_simulation(result: PlanResult) -> None:
    sim = result.simulation
    stdout.print(
        _table("Steps", ("step", "kind", "status"), ((s.stepId, s.kind, s.status) for s in sim.steps))
    )
    if sim.outputs:
        stdout.print(
            _table(
                "Outputs", ("name", "type", "from"), ((o["name"], o["type"], o["from"]) for o in sim.outputs)
            )
        )


def _table(title: str, columns: tuple[str, ...], rows: Iterator[tuple[str, ...]] | Any) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def text_value(value: Any) -> str:
    """A value as a person reads it: text as is, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from _flatten(child, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        for index, child in enumerate(value):
            yield from _flatten(child, f"{prefix}[{index}]")
    else:
        yield prefix, text_value(value) if not isinstance(value, str) else value


# Other command groups are attached in ``taskrunner.cli.app`` (the console script's entry point).
