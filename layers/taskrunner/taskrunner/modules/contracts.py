"""Step-module contracts: the parameters (``run.with``) and outputs a module declares, as pydantic models.

``validate``/``plan`` check a pack against them and the module reads its parameters through them at run time
(:func:`parse_params`), so both report a bad parameter with the same message.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from taskrunner.modules.base import ModuleError

ParamProblem = tuple[str, str, str]  # (parameter path under run.with, message, hint)
P = TypeVar("P", bound=BaseModel)


class Params(BaseModel):
    """Base of a module's parameters: unknown keys refused, no type coercion (``"5"`` is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Outputs(BaseModel):
    """Base of a module's outputs (documentation and ``steps.<id>.outputs.<name>`` checks)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Contract:
    """What a module takes and gives. ``outputs`` None: the outputs are the parameters themselves (noop)."""

    params: type[BaseModel]
    outputs: type[BaseModel] | None
    summary: str
    quotas: tuple[str, ...] = ()  # spec.sandbox fields a pack must declare to use the module (fail-closed)

    def output_names(self, with_: Mapping[str, Any]) -> frozenset[str]:
        """The outputs a step with these parameters may produce."""
        if self.outputs is None:
            return frozenset(str(key) for key in with_)
        return _declared(self.outputs)

    def parameter_names(self) -> list[str]:
        return field_names(self.params)


def field_names(model: type[BaseModel]) -> list[str]:
    """The keys ``model`` reads (aliases where set), in declaration order."""
    return [info.alias or name for name, info in model.model_fields.items()]


@cache
def _declared(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(field_names(model))


def did_you_mean(name: str, known: Collection[str]) -> str:
    """``did you mean 'x'? `` for the closest of ``known``, or nothing."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def param_problems(
    module: str, model: type[BaseModel], params: Mapping[str, Any], skip: Collection[str] = ()
) -> list[ParamProblem]:
    """Every way ``params`` breaks ``model``; parameters named in ``skip`` (known only later) are not judged."""
    try:
        model.model_validate(dict(params))
    except ValidationError as exc:
        return [p for p in _problems(module, model, exc) if p[0].split(".")[0].split("[")[0] not in skip]
    return []


def parse_params(module: str, model: type[P], params: Mapping[str, Any]) -> P:
    """``params`` as ``model``, or a non-retryable error naming the first bad parameter and how to fix it."""
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        where, message, hint = _problems(module, model, exc)[0]
        raise ModuleError(
            f"run.with{'.' + where if where else ''}: {message} (hint: {hint})",
            retryable=False,
            code="InvalidParameters",
        ) from None


def _problems(module: str, model: type[BaseModel], exc: ValidationError) -> list[ParamProblem]:
    """Unknown parameters first (a misspelt key also makes the intended one look missing)."""
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    return [_problem(module, model, e) for e in errors]


def _problem(module: str, model: type[BaseModel], error: ErrorDetails) -> ParamProblem:
    loc = error["loc"]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    names = field_names(model)
    listing = f"parameters of {module}: {', '.join(names) or 'none'}"
    kind = error["type"]
    if not loc:  # a rule over several parameters
        return "", f"{module}: {error['msg']}", listing
    if kind == "missing":
        return where, f"{module} requires parameter {where!r}", f"add run.with.{where}; {listing}"
    if kind == "extra_forbidden" and len(loc) == 1:
        return where, f"{module} has no parameter {where!r}", did_you_mean(where, names) + listing
    field = str(loc[0]) if loc else ""
    info = next((i for n, i in model.model_fields.items() if field in (n, i.alias)), None)
    described = info.description if info is not None and info.description else listing
    return (
        where,
        f"{module} parameter {where!r}: {error['msg']}, got {_json_type(error['input'])}",
        described,
    )


def _json_type(value: Any) -> str:
    """The JSON type of a value, never the value: a run-time value may hold a secret."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string")):
        if isinstance(value, kind):
            return name
    return "an array" if isinstance(value, list | tuple) else "an object"
