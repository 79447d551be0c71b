"""Reading YAML or JSON text into a JSON-compatible document plus a JSON-path -> (line, column) map."""

from __future__ import annotations

import gc
import json
import math
import re
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from taskrunner.pack.errors import ManifestError, Problem, problem

MAX_NODES = 2_000_000  # guards against alias ("billion laughs") expansion
MAX_SAFE_INTEGER = 2**53 - 1  # RFC 8785 / JSON numbers are IEEE doubles
# 16+ digits may exceed MAX_SAFE_INTEGER (or sit inside a string): such documents are checked precisely.
_LONG_INTEGER = re.compile(r"\d{16}")
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """Safe loader that keeps dates as strings (a manifest is JSON data)."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


Source = str | bytes | Path | Mapping[str, Any]


class Positions:
    """1-based ``(line, column)`` of every node by JSON path (``spec.steps[0].id``).

    Built eagerly from a YAML walk, or lazily (only when a problem must be located) for JSON text.
    """

    def __init__(
        self,
        table: dict[str, tuple[int, int]] | None = None,
        factory: Callable[[], dict[str, tuple[int, int]]] | None = None,
    ) -> None:
        self._table = table
        self._factory = factory

    @property
    def table(self) -> dict[str, tuple[int, int]]:
        if self._table is None:
            self._table = self._factory() if self._factory else {}
        return self._table

    def __len__(self) -> int:
        return len(self.table)

    def get(self, path: str) -> tuple[int, int] | None:
        return self.table.get(path)

    def locate(self, path: str) -> tuple[int, int] | None:
        """Position of ``path``, else of its nearest ancestor that has one."""
        table = self.table
        while True:
            found = table.get(path)
            if found is not None or not path:
                return found
            path = parent_path(path)


def parent_path(path: str) -> str:
    """``a.b[2]`` -> ``a.b``; ``a.b`` -> ``a``; ``a`` -> ``""``."""
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def child_path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


@dataclass(frozen=True)
class ParsedSource:
    """A parsed document (a JSON-compatible value), where its nodes are, and the name used in errors."""

    document: Any
    positions: Positions
    file: str

    def problem(self, path: str, message: str, hint: str = "") -> Problem:
        return problem(self.file, path, message, hint, self.positions.locate(path))


def parse_source(source: Source, *, source_name: str | None = None) -> ParsedSource:
    """Parse YAML/JSON text, bytes, a file path or an already-parsed mapping (positions then unknown).

    Raises :class:`ManifestError` listing every syntax problem and every non-JSON value.
    """
    if isinstance(source, Mapping):
        return _from_mapping(source, source_name or "<manifest>")
    if isinstance(source, Path):
        name = source_name or str(source)
        try:
            raw: str | bytes = source.read_bytes()
        except OSError as exc:
            raise ManifestError(
                [problem(name, "", f"cannot read the file: {exc.strerror or exc}", "check the path")],
                source=name,
            ) from None
    else:
        name, raw = source_name or "<manifest>", source
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ManifestError(
                [problem(name, "", f"not UTF-8 text: {exc.reason} at byte {exc.start}", "save it as UTF-8")],
                source=name,
            ) from None
    return parse_text(raw, name)


def parse_text(text: str, name: str) -> ParsedSource:
    """Parse YAML (or JSON) ``text``; JSON objects keep JSON number semantics."""
    if text.lstrip().startswith(("{", "[")):
        try:
            document = _json_document(text, name)
        except _NotJson as exc:  # maybe YAML flow style; if that fails too, the JSON error is reported
            try:
                return _parse_yaml(text, name)
            except ManifestError:
                raise exc.error from None
        parsed = ParsedSource(document, Positions(factory=lambda: _json_positions(text)), name)
        _raise_if(parsed, [])
        return parsed
    return _parse_yaml(text, name)


class _NotJson(Exception):
    """JSON text that does not parse as JSON (it may still be YAML in flow style)."""

    def __init__(self, error: ManifestError) -> None:
        super().__init__(str(error))
        self.error = error


def _parse_yaml(text: str, name: str) -> ParsedSource:
    try:
        with gc_paused():
            loader = _Loader(text)
            try:
                node = loader.get_single_node()
                if node is None:
                    raise ManifestError(
                        [problem(name, "", "the document is empty", "write a manifest")], source=name
                    )
                builder = _Builder(loader)
                document = builder.value(node, "")
            finally:
                loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (mark.line + 1, mark.column + 1) if mark else None
        message = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise ManifestError(
            [problem(name, "", f"YAML error: {message}", "fix the YAML at this position", where)], source=name
        ) from None
    except yaml.YAMLError as exc:
        raise ManifestError([problem(name, "", f"YAML error: {exc}", "fix the YAML")], source=name) from None
    except RecursionError:
        raise ManifestError(
            [problem(name, "", "the document is nested too deeply", "flatten it")], source=name
        ) from None
    positions = Positions(builder.positions)
    parsed = ParsedSource(document, positions, name)
    _raise_if(
        parsed, [problem(name, path, msg, hint, positions.get(path)) for path, msg, hint in builder.problems]
    )
    return parsed


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building large acyclic trees (full collections would dominate)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _from_mapping(source: Mapping[str, Any], name: str) -> ParsedSource:
    """A private, plain-JSON copy of ``source`` (later changes to the caller's object cannot leak in)."""
    try:
        text = json.dumps(source, allow_nan=False)
        document = json.loads(text)
        exact = document == source and not _LONG_INTEGER.search(text)
    except (TypeError, ValueError, RecursionError):
        exact = False
    if not exact:  # something is not plain JSON: find and report every such value precisely
        _raise_if(ParsedSource(source, Positions(), name), [])
        document = json.loads(json.dumps(source))  # tuples, or integral keys already reported
    return ParsedSource(document, Positions(), name)


def _raise_if(parsed: ParsedSource, problems: list[Problem]) -> None:
    problems = problems + [parsed.problem(p, m, h) for p, m, h in json_problems(parsed.document, "")]
    if problems:
        raise ManifestError(problems, source=parsed.file)


def _json_document(text: str, name: str) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                raise ValueError(f"duplicate key {key!r}")
            result[key] = value
        return result

    def constant(token: str) -> Any:
        raise ValueError(f"{token} is not a JSON number")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        where = (exc.lineno, exc.colno)
        error = ManifestError(
            [problem(name, "", f"JSON syntax error: {exc.msg}", "fix the JSON syntax", where)], source=name
        )
        raise _NotJson(error) from None
    except (ValueError, RecursionError) as exc:
        raise ManifestError(
            [problem(name, "", f"invalid JSON: {exc}", "fix the JSON")], source=name
        ) from None


def _json_positions(text: str) -> dict[str, tuple[int, int]]:
    """Positions of JSON text, read through the YAML composer (best effort: empty if it cannot)."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return {}
            builder = _Builder(loader)
            builder.value(node, "")
            return builder.positions
        finally:
            loader.dispose()
    except (yaml.YAMLError, RecursionError):
        return {}


_SCALARS: dict[str, Callable[[Any, yaml.ScalarNode], Any]] = {
    "tag:yaml.org,2002:int": yaml.constructor.SafeConstructor.construct_yaml_int,
    "tag:yaml.org,2002:float": yaml.constructor.SafeConstructor.construct_yaml_float,
    "tag:yaml.org,2002:bool": yaml.constructor.SafeConstructor.construct_yaml_bool,
    "tag:yaml.org,2002:null": yaml.constructor.SafeConstructor.construct_yaml_null,
}


class _Builder:
    """Turns a composed YAML node tree into plain data in one pass, recording every node's position and
    every duplicate key (PyYAML silently keeps the last one)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.positions: dict[str, tuple[int, int]] = {}
        self.problems: list[tuple[str, str, str]] = []
        self._active: set[int] = set()
        self._budget = MAX_NODES

    def value(self, node: yaml.Node, path: str) -> Any:
        self._budget -= 1
        if self._budget < 0:
            raise yaml.YAMLError("the document is too large (check for runaway alias expansion)")
        mark = node.start_mark
        self.positions[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            tag = node.tag
            if tag == _STR:
                return node.value
            convert = _SCALARS.get(tag)
            return convert(self.loader, node) if convert else self.loader.construct_object(node, deep=True)
        if id(node) in self._active:
            raise yaml.YAMLError(f"recursive alias at {path or 'the document root'}")
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
                return [self.value(item, child_path(path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
                return self._mapping(node, path)
            return self.loader.construct_object(node, deep=True)  # explicit tags: !!set, !!binary, ...
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: str) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag != _MERGE and isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    where = child_path(path, str(key_node.value))
                    self.problems.append(
                        (where, f"duplicate key {key_node.value!r}", "keep one of the entries")
                    )
                seen.add(key_node.value)
        if any(key_node.tag == _MERGE for key_node, _ in node.value):
            self.loader.flatten_mapping(node)  # merged entries first; explicit keys override them
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _STR:
                key = key_node.value
            else:  # a non-string key: kept as constructed, reported by json_problems
                key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                raise yaml.YAMLError(f"unhashable mapping key at {path or 'the document root'}")
            result[key] = self.value(value_node, child_path(path, str(key)))
        return result


def json_problems(value: Any, path: str) -> Iterator[tuple[str, str, str]]:
    """``(path, message, hint)`` for every value that JSON (and RFC 8785) cannot represent."""
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            yield path, f"integer {value} is outside the JSON safe range (±2^53-1)", "quote it as a string"
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield path, f"{value} is not a JSON number", "use a finite number or a string"
    elif isinstance(value, dict):
        for key, child in value.items():
            if not isinstance(key, str):
                yield child_path(path, str(key)), f"key {key!r} is not a string", "quote the key"
            yield from json_problems(child, child_path(path, str(key)))
    elif isinstance(value, list | tuple):
        for index, child in enumerate(value):
            yield from json_problems(child, child_path(path, index))
    else:
        yield path, f"a {type(value).__name__} value is not JSON data", "quote it as a string"
