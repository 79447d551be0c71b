"""Loading a pack: parse (YAML/JSON/dict), validate every field and pack-wide rule, report all problems."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from taskrunner import keys
from taskrunner.pack import models
from taskrunner.pack.contracts import check_contracts
from taskrunner.pack.errors import ManifestError, Problem, problem
from taskrunner.pack.models import PackManifest
from taskrunner.pack.rules import check_rules
from taskrunner.pack.source import ParsedSource, Positions, Source, child_path, gc_paused, parse_source

_MISSING_HINTS = {
    "spec.sandbox": "declare spec.sandbox with mode and egressAllowlist, e.g. {mode: sealed, egressAllowlist: []}; "
    "packs without a sandbox are refused (fail-closed)",
    "spec.sandbox.mode": "set mode: sealed or mode: restricted (fail-closed)",
    "spec.sandbox.egressAllowlist": "list the hosts steps may reach, or [] for none (fail-closed)",
}
_PATTERN_HINTS = {
    keys.STEP_ID.pattern: keys.STEP_ID.hint,
    models.NAME_PATTERN: "use a plain identifier: letters, digits and '_', not starting with a digit",
    keys.PACK_NAME.pattern: keys.PACK_NAME.hint,
    keys.PACK_VERSION.pattern: keys.PACK_VERSION.hint + " (quote it in YAML)",
    models.REFERENCE_PATTERN: "use aws-secretsmanager:<id>[#key], aws-ssm:/<path> or env:<NAME>",
    models.EGRESS_PATTERN: "use a host name, host:port or *.domain (no scheme or path)",
    models.MODULE_PATTERN: "name a module such as noop, artifact.write or bundle.ingest",
}


_SHAPE_HINTS = {
    "run": "write e.g. run: {uses: noop}",
    "parallel": "write e.g. parallel: {steps: [{id: a, run: {uses: noop}}]}",
    "map": 'write e.g. map: {items: "{{ inputs.targets }}", step: {id: each, run: {uses: noop}}}',
    "gate.approval": "write e.g. gate.approval: {approval: <an id from spec.approvals>}",
    "gate.policy": "write e.g. gate.policy: {policy: <an id from spec.policies>}",
    "step": "write the step as a mapping with an id and one kind key, e.g. {id: a, run: {uses: noop}}",
    "steps": "list the steps, e.g. steps: [{id: a, run: {uses: noop}}]",
}


@dataclass(frozen=True)
class LoadedPack:
    """A valid pack: the parsed document, its models and where each node came from."""

    document: dict[str, Any]
    manifest: PackManifest
    positions: Positions
    file: str

    def problem(self, path: str, message: str, hint: str = "") -> Problem:
        """A problem at ``path`` in this pack, positioned when the source had positions."""
        return problem(self.file, path, message, hint, self.positions.locate(path))


def load_pack(source: Source, *, source_name: str | None = None) -> LoadedPack:
    """Parse and validate a pack; raise :class:`ManifestError` listing every problem at once."""
    with gc_paused():
        parsed = parse_source(source, source_name=source_name)
        manifest, problems = validate_document(parsed)
    if manifest is None or problems:
        raise ManifestError(problems, source=parsed.file)
    return LoadedPack(parsed.document, manifest, parsed.positions, parsed.file)


def validate_document(parsed: ParsedSource) -> tuple[PackManifest | None, list[Problem]]:
    """Apply the field models and the pack-wide rules to a parsed document."""
    document = parsed.document
    if not isinstance(document, dict):
        return None, [parsed.problem("", "a pack manifest must be a mapping", "start with apiVersion: ...")]
    manifest: PackManifest | None = None
    problems: list[Problem] = []
    try:
        manifest = PackManifest.model_validate(document)
    except ValidationError as exc:
        problems += [_problem(parsed, error) for error in exc.errors(include_url=False)]
    problems += [parsed.problem(path, message, hint) for path, message, hint in check_rules(document)]
    problems += [parsed.problem(path, message, hint) for path, message, hint in check_contracts(document)]
    return manifest, problems


def _problem(parsed: ParsedSource, error: ErrorDetails) -> Problem:
    loc = error["loc"]
    path = ""
    for part in loc:
        path = child_path(path, part if isinstance(part, int) else str(part))
    kind, ctx = error["type"], error.get("ctx") or {}
    message, hint = error["msg"], ""
    if kind == "missing":
        message, hint = "required field is missing", _MISSING_HINTS.get(path, f"add {loc[-1]}")
    elif kind == "extra_forbidden":
        allowed = _allowed_fields(loc[:-1])
        message = f"unknown field {loc[-1]!r}"
        hint = "remove it or fix its spelling" + (f"; allowed here: {', '.join(allowed)}" if allowed else "")
    elif kind == "pack_rule":
        hint = str(ctx.get("hint", ""))
    elif kind == "string_pattern_mismatch":
        message = f"{_shown(error['input'])} does not match {ctx.get('pattern')}"
        hint = _PATTERN_HINTS.get(str(ctx.get("pattern")), "")
    elif kind in ("model_type", "list_type") and _shape_field(loc) in _SHAPE_HINTS:
        shape = "a mapping of its fields" if kind == "model_type" else "a list"
        message = f"{_shape_field(loc)} must be {shape}, got {_shown(error['input'])}"
        hint = _SHAPE_HINTS[_shape_field(loc)]
    elif kind.endswith("_type") or kind.endswith("_parsing") or kind == "literal_error":
        message = f"{message}, got {_shown(error['input'])}"
        if kind == "string_type":
            hint = "quote the value"
    return parsed.problem(path, message, hint)


def _shape_field(loc: tuple[int | str, ...]) -> str:
    """The field named at ``loc``; an entry of a ``steps`` list is a ``step``."""
    if isinstance(loc[-1], int):
        return "step" if len(loc) > 1 and loc[-2] == "steps" else ""
    return str(loc[-1])


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_fields(loc: tuple[int | str, ...]) -> list[str]:
    """The field names (aliases) accepted by the model at ``loc`` in the manifest, if it can be found."""
    annotation: Any = PackManifest
    for part in loc:
        annotation = _descend(annotation, part)
        if annotation is None:
            return []
    model = _model_of(annotation)
    if model is None:
        return []
    return sorted(info.alias or name for name, info in model.model_fields.items())


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _descend(annotation: Any, part: int | str) -> Any:
    if isinstance(part, int):
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            return next(
                (d for a in typing.get_args(annotation) if (d := _descend(a, part)) is not None), None
            )
        return typing.get_args(annotation)[0] if origin is list else None
    model = _model_of(annotation)
    if model is None:
        return None
    for name, info in model.model_fields.items():
        if part in (name, info.alias):
            return info.annotation
    return None
