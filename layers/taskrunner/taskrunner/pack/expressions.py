"""Pack templating: ``{{ expr }}`` holds a JMESPath expression over the run context.

The context has the roots ``inputs``, ``steps`` (``steps.<id>.outputs``), ``item``, ``index``, ``run`` and
``secrets``. A string that is exactly one ``{{ }}`` yields the expression's typed value; any other string
interpolates text (strings as they are, other values as compact JSON). Secrets are resolved only by the
step executor, which calls :func:`render` with the full context; the planner calls :func:`resolve_static`,
which evaluates only expressions whose roots are all available at plan time.

A literal ``{{`` is written ``{{ '{{' }}``; :func:`escape` produces that form so a value substituted at plan
time is never re-interpreted as a template at run time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath.functions import Functions

from taskrunner.pack.limits import MAX_EXPRESSION_CHARS

ROOTS: frozenset[str] = frozenset({"inputs", "steps", "item", "index", "run", "secrets"})
WHOLE_CONTEXT = "@"  # pseudo-root: the expression reads the context itself (``@`` or ``*`` at the top)
_FUNCTIONS: frozenset[str] = frozenset(Functions.FUNCTION_TABLE)
_OPEN, _CLOSE = "{{", "}}"
_ESCAPED_OPEN = "{{ '{{' }}"

Reference = tuple[str, str | None]  # (root, first name under it), e.g. ("inputs", "bundlePath")


class ExpressionError(ValueError):
    """An expression or template does not parse, names an unknown root/function, or fails to evaluate."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True, eq=False)
class Expression:
    """A compiled JMESPath expression and what it reads from the context."""

    source: str
    references: frozenset[Reference]
    roots: frozenset[str]
    _compiled: Any = field(repr=False)

    def reads_only(self, available: frozenset[str]) -> bool:
        """True when every root the expression reads is in ``available``."""
        return self.roots <= available

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        try:
            return self._compiled.search(context)
        except jmespath_errors.JMESPathError as exc:
            raise ExpressionError(
                f"expression {self.source!r} failed: {exc}", "check the argument types of its functions"
            ) from exc


@lru_cache(maxsize=8192)
def compile_expression(source: str) -> Expression:
    """Parse ``source`` once (cached); refuse unknown roots and functions."""
    text = source.strip()
    if not text:
        raise ExpressionError("empty expression", "write a JMESPath expression such as inputs.name")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(
            f"expression of {len(text):,} characters is over the {MAX_EXPRESSION_CHARS:,}-character limit",
            "compute the value in a step, or split it into several expressions",
        )
    try:
        compiled = jmespath.compile(text)
    except RecursionError:
        raise ExpressionError(
            f"expression {text[:40]!r}... is nested too deeply", "remove redundant parentheses"
        ) from None
    except jmespath_errors.JMESPathError as exc:
        raise ExpressionError(
            f"expression {text!r} does not parse: {_syntax_detail(exc)}",
            'use JMESPath syntax; quote names that are not identifiers, e.g. steps."scan-all".outputs',
        ) from exc
    references: set[Reference] = set()
    _collect(cast(dict[str, Any], compiled.parsed), True, references)
    unknown = sorted(root for root, _ in references if root not in ROOTS and root != WHOLE_CONTEXT)
    if unknown:
        hint = "start the path with one of: " + ", ".join(sorted(ROOTS))
        if unknown[0] in {"null", "true", "false"}:
            hint = f"JMESPath literals are written in backticks: `{unknown[0]}`"
        raise ExpressionError(f"expression {text!r} reads unknown root {unknown[0]!r}", hint)
    return Expression(text, frozenset(references), frozenset(root for root, _ in references), compiled)


def _syntax_detail(exc: jmespath_errors.JMESPathError) -> str:
    detail = str(getattr(exc, "msg", "") or "")
    if not detail or detail == "Invalid jmespath expression":
        detail = str(exc).splitlines()[0].removeprefix("Invalid jmespath expression:").strip().rstrip(":")
    position = getattr(exc, "lex_position", None)
    return f"{detail} (at character {position + 1})" if isinstance(position, int) else detail


def _leading_field(node: dict[str, Any]) -> str | None:
    kind = node["type"]
    if kind == "field":
        return str(node["value"])
    if kind in {"subexpression", "index_expression", "projection", "value_projection", "filter_projection"}:
        return _leading_field(node["children"][0])
    return None


def _collect(node: dict[str, Any], at_root: bool, out: set[Reference]) -> None:
    """Gather the (root, name) references of ``node``; ``at_root`` = it is evaluated against the context."""
    kind = node["type"]
    children = node.get("children", [])
    if kind == "field":
        if at_root:
            out.add((str(node["value"]), None))
    elif kind in {"current", "identity"}:
        if at_root:
            out.add((WHOLE_CONTEXT, None))
    elif kind == "function_expression":
        if node["value"] not in _FUNCTIONS:
            raise ExpressionError(
                f"unknown function {node['value']}()",
                "see the JMESPath function list: jmespath.org/specification",
            )
        for child in children:
            _collect(child, at_root, out)
    elif kind == "subexpression":
        first, rest = children[0], children[1:]
        if first["type"] == "not_expression":  # (!x).y is always null: a misplaced negation
            raise ExpressionError(
                "'!' applies to the first name only, so the path after it always reads null",
                "wrap the whole path: !(inputs.flag) instead of !inputs.flag",
            )
        if at_root and first["type"] == "field":
            out.add((str(first["value"]), _leading_field(rest[0]) if rest else None))
        else:
            _collect(first, at_root, out)
        for child in rest:
            _collect(child, False, out)
    elif kind in {"index_expression", "projection", "value_projection", "filter_projection", "pipe"}:
        _collect(children[0], at_root, out)
        for child in children[1:]:
            _collect(child, False, out)
    elif kind == "expref":
        for child in children:
            _collect(child, False, out)
    else:  # comparator, and/or/not, flatten, multi-selects, key_val_pair, literal, index, slice
        for child in children:
            if isinstance(child, dict):
                _collect(child, at_root, out)


@dataclass(frozen=True, eq=False)
class Template:
    """A string split into literal text and expressions."""

    text: str
    parts: tuple[str | Expression, ...]
    expressions: tuple[Expression, ...] = field(init=False)
    roots: frozenset[str] = field(init=False)
    references: frozenset[Reference] = field(init=False)

    def __post_init__(self) -> None:
        expressions = tuple(p for p in self.parts if isinstance(p, Expression))
        object.__setattr__(self, "expressions", expressions)
        object.__setattr__(self, "roots", frozenset().union(*(e.roots for e in expressions)))
        object.__setattr__(self, "references", frozenset().union(*(e.references for e in expressions)))

    @property
    def single(self) -> Expression | None:
        """The expression when the whole string is exactly one ``{{ }}`` (typed value)."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Expression):
            return self.parts[0]
        return None

    def render(self, context: Mapping[str, Any]) -> Any:
        single = self.single
        if single is not None:
            return single.evaluate(context)
        return "".join(p if isinstance(p, str) else as_text(p.evaluate(context)) for p in self.parts)


def as_text(value: Any) -> str:
    """A value as template text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _find_close(text: str, start: int) -> int:
    """Index of the ``}}`` closing the template opened before ``start``, skipping quoted literals."""
    i, n = start, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"`":
            i += 1
            while i < n and text[i] != ch:
                i += 2 if text[i] == "\\" else 1
            if i >= n:
                raise ExpressionError(
                    f"unterminated {ch} quote in template {text!r}", f"close the {ch} quote before }}}}"
                )
        elif text.startswith(_CLOSE, i):
            return i
        i += 1
    raise ExpressionError(f"unclosed {{{{ in template {text!r}", "close the expression with }}")


@lru_cache(maxsize=8192)
def parse_template(text: str) -> Template:
    """Split ``text`` into literal text and compiled expressions (cached)."""
    parts: list[str | Expression] = []
    pos = 0
    while True:
        start = text.find(_OPEN, pos)
        if start < 0:
            break
        end = _find_close(text, start + 2)
        if start > pos:
            parts.append(text[pos:start])
        parts.append(compile_expression(text[start + 2 : end]))
        pos = end + 2
    if pos < len(text) or not parts:
        parts.append(text[pos:])
    return Template(text, tuple(parts))


def condition_expression(text: str) -> Expression:
    """A condition (``when``, policies, outputs) written bare or as exactly one ``{{ expr }}``."""
    stripped = text.strip()
    if stripped.startswith(_OPEN):
        single = parse_template(stripped).single
        if single is None:
            raise ExpressionError(
                f"condition {text!r} must be one expression",
                "write the bare expression, without text around it",
            )
        return single
    return compile_expression(stripped)


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    """Evaluate a condition or expression (``when``, a policy, an output's ``from``) over ``context``."""
    return condition_expression(source).evaluate(context)


def roots_of(value: Any) -> frozenset[str]:
    """Every root read by the templates in ``value`` (a string, or lists/dict values recursively)."""
    roots: frozenset[str] = frozenset()
    for _, text in iter_templates(value, ""):
        roots |= parse_template(text).roots
    return roots


def references_of(value: Any) -> frozenset[Reference]:
    """Every ``(root, first name)`` read by the templates in ``value`` (strings, lists/dict values recursively)."""
    references: frozenset[Reference] = frozenset()
    for _, text in iter_templates(value, ""):
        references |= parse_template(text).references
    return references


def iter_templates(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yield ``(json_path, string)`` for every string in ``value`` that contains ``{{``."""
    if isinstance(value, str):
        if _OPEN in value:
            yield path, value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from iter_templates(child, f"{path}.{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from iter_templates(child, f"{path}[{i}]")


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Resolve every template in ``value`` (strings, and lists/dict values recursively) over ``context``.

    This is the run-time form used by the step executor; the context may include ``secrets``.
    """
    if isinstance(value, str):
        return parse_template(value).render(context) if _OPEN in value else value
    if isinstance(value, dict):
        return {key: render(child, context) for key, child in value.items()}
    if isinstance(value, list):
        return [render(child, context) for child in value]
    return value


def resolve_static(value: Any, context: Mapping[str, Any], available: frozenset[str]) -> Any:
    """Resolve the strings whose expressions read only ``available`` roots; keep the others as written.

    A string is resolved whole or not at all. Resolved values are :func:`escape`-d, so rendering the result
    again at run time gives the same value (data from inputs never becomes a template).
    """
    if isinstance(value, str):
        if _OPEN not in value:
            return value
        template = parse_template(value)
        if not template.roots <= available:
            return value
        return escape(template.render(context))
    if isinstance(value, dict):
        return {key: resolve_static(child, context, available) for key, child in value.items()}
    if isinstance(value, list):
        return [resolve_static(child, context, available) for child in value]
    return value


def escape(value: Any) -> Any:
    """Make ``value`` template-safe: every ``{{`` in its strings becomes ``{{ '{{' }}``."""
    if isinstance(value, str):
        return value.replace(_OPEN, _ESCAPED_OPEN) if _OPEN in value else value
    if isinstance(value, dict):
        return {key: escape(child) for key, child in value.items()}
    if isinstance(value, list):
        return [escape(child) for child in value]
    return value


def truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, empty string/array/object are false; everything else true."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


@lru_cache(maxsize=8192)
def context_paths(expression: Expression) -> frozenset[tuple[str, ...]]:
    """The leading field paths ``expression`` reads from the context, e.g. ``("steps", "a", "outputs", "x")``."""
    found: set[tuple[str, ...]] = set()
    _paths(cast(dict[str, Any], expression._compiled.parsed), True, found)
    return frozenset(found)


def _leading_path(node: dict[str, Any]) -> tuple[str, ...]:
    kind = node["type"]
    if kind == "field":
        return (str(node["value"]),)
    if kind == "subexpression":
        path: tuple[str, ...] = ()
        for child in node["children"]:
            path += _leading_path(child)
            if child["type"] != "field":
                break
        return path
    if kind in {"index_expression", "projection", "value_projection", "filter_projection"}:
        return _leading_path(node["children"][0])
    return ()


def _paths(node: dict[str, Any], at_root: bool, out: set[tuple[str, ...]]) -> None:
    kind, children = node["type"], [c for c in node.get("children", []) if isinstance(c, dict)]
    if at_root and kind in {"field", "subexpression"}:
        out.add(_leading_path(node))
    if kind in {
        "subexpression",
        "index_expression",
        "projection",
        "value_projection",
        "filter_projection",
        "pipe",
    }:
        for i, child in enumerate(children):
            _paths(child, at_root and i == 0, out)
    else:
        for child in children:
            _paths(child, at_root and kind != "expref", out)
