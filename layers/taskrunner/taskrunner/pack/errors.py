"""Problems found in a pack or its inputs, reported all at once with file, line, column and JSON path."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypedDict

from taskrunner.errors import ValidationFailed


class Problem(TypedDict):
    """One problem: where it is (file, 1-based line/column when known, JSON path) and how to fix it."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str
    hint: str


def problem(
    file: str, path: str, message: str, hint: str = "", position: tuple[int, int] | None = None
) -> Problem:
    line, column = position if position else (None, None)
    return Problem(file=file, line=line, column=column, path=path, message=message, hint=hint)


def render_problem(p: Problem) -> str:
    """``file:line:col: path: message (hint: ...)``; unknown positions are left out."""
    where = p["file"]
    if p["line"] is not None:
        where += f":{p['line']}:{p['column']}"
    text = f"{where}: {p['path'] or '<document>'}: {p['message']}"
    return f"{text} (hint: {p['hint']})" if p["hint"] else text


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Drop exact duplicates and order by position (problems without one last), then path."""
    unique: dict[tuple[object, ...], Problem] = {}
    for p in problems:
        unique.setdefault((p["file"], p["line"], p["column"], p["path"], p["message"]), p)

    def key(p: Problem) -> tuple[float, float, str, str]:
        line = math.inf if p["line"] is None else p["line"]
        column = math.inf if p["column"] is None else p["column"]
        return (line, column, p["path"], p["message"])

    return sorted(unique.values(), key=key)


class ProblemsError(ValidationFailed):
    """A :class:`ValidationFailed` whose ``problems`` are :class:`Problem` dicts; ``str()`` lists them."""

    subject = "input"

    def __init__(self, problems: Iterable[Problem], *, source: str = "") -> None:
        ordered = sort_problems(problems)
        count = len(ordered)
        what = f"invalid {self.subject} {source}".strip()
        super().__init__(
            f"{what}: {count} problem{'s' if count != 1 else ''}",
            [dict(p) for p in ordered],
            remediation="fix every problem listed (each names the file, line, column and field) and retry",
        )
        self.problem_list: list[Problem] = ordered

    def __str__(self) -> str:
        return "\n".join(render_problem(p) for p in self.problem_list)


class ManifestError(ProblemsError):
    """The pack manifest is invalid (structure, references, expressions or plan-time evaluation)."""

    code = "InvalidPack"
    subject = "pack"


class ManifestTooLarge(ManifestError):
    """The manifest is over the size limit (it was not parsed)."""

    code = "ManifestTooLarge"
    status = 413


class PlanTooLarge(ManifestError):
    """The pack plans or compiles to more than the configured bounds or Step Functions accepts."""

    code = "PlanTooLarge"


class InputsError(ProblemsError):
    """The inputs supplied for a pack are invalid (unknown, missing, wrong type or schema)."""

    code = "InvalidInputs"
    subject = "inputs"
