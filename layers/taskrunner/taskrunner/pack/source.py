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

from taskrunner.pack.errors import ManifestError, ManifestTooLarge, Problem, problem
from taskrunner.pack.limits import (
    MAX_DEPTH,
    MAX_MANIFEST_BYTES,
    MAX_NODES,
    TooManyDigits,
    bounded_int,
    depth_message,
    read_at_most,
    size_problem,
    too_deep,
)

MAX_SAFE_INTEGER = 2**53 - 1  # RFC 8785 / JSON numbers are IEEE doubles
# 16+ digits may exceed MAX_SAFE_INTEGER (or sit inside a string): such documents are checked precisely.
_LONG_INTEGER = re.compile(r"\d{16}")
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
_INT = "tag:yaml.org,2002:int"
_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPENS = (
    yaml.FlowSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.BlockMappingStartToken,
)
_CLOSES = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)
_START = (1, 1)  # where document-wide problems (size, encoding, emptiness) are reported
# A JSON string or a bracket: what a depth scan of JSON text looks at.
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


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
        raw: str | bytes = read_bounded(source, name)
    else:
        name, raw = source_name or "<manifest>", source
    if isinstance(raw, bytes):
        data = raw
        _check_size(len(data), name)
        try:
            raw = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            where = _byte_position(data, exc.start)
            message = f"not UTF-8 text: {exc.reason} at byte {exc.start}"
            raise ManifestError(
                [problem(name, "", message, "save it as UTF-8", where)], source=name
            ) from None
    return parse_text(raw, name)


def read_bounded(path: Path, name: str) -> bytes:
    """The bytes of ``path``, refusing anything over the manifest size limit without reading all of it."""
    try:
        data = read_at_most(path, MAX_MANIFEST_BYTES)
    except OSError as exc:
        message = f"cannot read the file: {exc.strerror or exc}"
        raise ManifestError([problem(name, "", message, "check the path", _START)], source=name) from None
    _check_size(len(data), name)
    return data


def _check_size(size: int, name: str) -> None:
    if size > MAX_MANIFEST_BYTES:
        hint = "split the pack, or move large data into inputs or artifacts"
        raise ManifestTooLarge([problem(name, "", size_problem(size), hint, _START)], source=name)


def _byte_position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column in characters) of byte ``offset`` of UTF-8 ``data``."""
    start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, len(data[start:offset].decode("utf-8", "replace")) + 1


def _text_position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of character ``offset`` of ``text``."""
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


def parse_text(text: str, name: str) -> ParsedSource:
    """Parse YAML (or JSON) ``text``; JSON objects keep JSON number semantics."""
    if len(text) > MAX_MANIFEST_BYTES // 4:  # cheap: only long texts can exceed the byte limit
        _check_size(len(text.encode("utf-8", "surrogatepass")), name)
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
            _check_yaml_depth(text)  # the C composer recurses: refuse deep nesting before composing
            loader = _Loader(text)
            try:
                node = loader.get_single_node()
                if node is None:
                    raise ManifestError(
                        [problem(name, "", "the document is empty", "write a manifest", _START)], source=name
                    )
                if "*" in text:  # aliases may expand the document: bound it before building anything
                    _check_expansion(node)
                builder = _Builder(loader)
                document = builder.value(node, "", 1)
            finally:
                loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (mark.line + 1, mark.column + 1) if mark else _START
        message = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        hint = exc.note or "fix the YAML at this position"
        raise ManifestError([problem(name, "", f"YAML error: {message}", hint, where)], source=name) from None
    except yaml.reader.ReaderError as exc:
        offset = exc.position
        if _BaseLoader is yaml.SafeLoader:  # the pure-Python reader counts characters, libyaml bytes
            where = _text_position(text, offset)
        else:
            where = _byte_position(text.encode("utf-8", "surrogatepass"), offset)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"character #x{code:04x} is not allowed in YAML ({exc.reason})"
        hint = "remove it, or write it as an escape such as \\x00 inside a double-quoted string"
        raise ManifestError([problem(name, "", message, hint, where)], source=name) from None
    except yaml.YAMLError as exc:
        raise ManifestError(
            [problem(name, "", f"YAML error: {exc}", "fix the YAML", _START)], source=name
        ) from None
    except RecursionError:
        raise ManifestError(
            [problem(name, "", depth_message(), "flatten the document", _START)], source=name
        ) from None
    positions = Positions(builder.positions)
    parsed = ParsedSource(document, positions, name)
    _raise_if(
        parsed, [problem(name, path, msg, hint, positions.get(path)) for path, msg, hint in builder.problems]
    )
    return parsed


def _check_yaml_depth(text: str) -> None:
    """Scan (without composing) and refuse collections nested deeper than ``MAX_DEPTH``."""
    scanner = _Loader(text)
    depth = 0
    try:
        while (token := scanner.get_token()) is not None:
            if isinstance(token, _OPENS):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _marked(depth_message(), token.start_mark)
            elif isinstance(token, _CLOSES):
                depth -= 1
    finally:
        scanner.dispose()


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose aliases expand to more than ``MAX_NODES`` values (or that is cyclic)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.SequenceNode | yaml.MappingNode):
            if id(node) in active:
                raise _marked("recursive alias", node.start_mark, "remove the cycle")
            active.add(id(node))
            children = (
                node.value if isinstance(node, yaml.SequenceNode) else [v for kv in node.value for v in kv]
            )
            for child in children:
                total += size(child)
                if total > MAX_NODES:
                    message = f"the document expands to more than {MAX_NODES:,} values (the limit)"
                    raise _marked(message, node.start_mark, "check for runaway alias expansion")
            active.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root)


def _marked(message: str, mark: Any, hint: str = "flatten the document") -> yaml.MarkedYAMLError:
    return yaml.MarkedYAMLError(problem=message, problem_mark=mark, note=hint)


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
    deep = too_deep(source)
    if deep is not None:
        path = _path_of(deep)
        raise ManifestError([problem(name, path, depth_message(), "flatten the document")], source=name)
    try:
        text = json.dumps(source, allow_nan=False)
        _check_size(len(text), name)
        document = json.loads(text)
        exact = document == source and not _LONG_INTEGER.search(text)
    except (TypeError, ValueError, RecursionError):
        exact = False
    if not exact:  # something is not plain JSON: find and report every such value precisely
        _raise_if(ParsedSource(source, Positions(), name), [])
        document = json.loads(json.dumps(source))  # tuples, or integral keys already reported
    return ParsedSource(document, Positions(), name)


def _path_of(keys: list[str | int]) -> str:
    path = ""
    for key in keys:
        path = child_path(path, key)
    return path


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
        raise _BadNumber(token, f"{token} is not a JSON number", "use a finite number or a string")

    try:
        document = json.loads(text, object_pairs_hook=pairs, parse_constant=constant, parse_int=bounded_int)
    except json.JSONDecodeError as exc:
        where = (exc.lineno, exc.colno)
        error = ManifestError(
            [problem(name, "", f"JSON syntax error: {exc.msg}", "fix the JSON syntax", where)], source=name
        )
        raise _NotJson(error) from None
    except (_BadNumber, TooManyDigits) as exc:
        where = _text_position(text, max(text.find(exc.token), 0))
        hint = exc.hint if isinstance(exc, _BadNumber) else "quote it as a string"
        raise ManifestError([problem(name, "", exc.message, hint, where)], source=name) from None
    except RecursionError:
        _raise_json_too_deep(text, name)
        raise ManifestError(
            [problem(name, "", depth_message(), "flatten the document", _START)], source=name
        ) from None
    except ValueError as exc:  # a duplicate key: the YAML reading of the same text locates every duplicate
        _parse_yaml(text, name)
        raise ManifestError(
            [problem(name, "", f"invalid JSON: {exc}", "fix the JSON", _START)], source=name
        ) from None
    if too_deep(document) is not None:
        _raise_json_too_deep(text, name)
    return document


class _BadNumber(ValueError):
    def __init__(self, token: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.token, self.message, self.hint = token, message, hint


def _raise_json_too_deep(text: str, name: str) -> None:
    """Refuse JSON text nested deeper than ``MAX_DEPTH``, at the bracket that goes too deep."""
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        lexeme = match.group()
        if lexeme in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                where = _text_position(text, match.start())
                problems = [problem(name, "", depth_message(), "flatten the document", where)]
                raise ManifestError(problems, source=name)
        elif lexeme in "]}":
            depth -= 1


def _json_positions(text: str) -> dict[str, tuple[int, int]]:
    """Positions of JSON text, read through the YAML composer (best effort: empty if it cannot)."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return {}
            builder = _Builder(loader)
            builder.value(node, "", 1)
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

    def value(self, node: yaml.Node, path: str, depth: int) -> Any:
        self._budget -= 1
        mark = node.start_mark
        if self._budget < 0:
            message = f"the document expands to more than {MAX_NODES:,} values (the limit)"
            raise _marked(message, mark, "check for runaway alias expansion")
        self.positions[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            tag = node.tag
            if tag == _STR:
                return node.value
            if tag == _INT:
                try:
                    bounded_int(node.value)
                except TooManyDigits as exc:
                    self.problems.append((path, exc.message, "quote it as a string"))
                    return None
                except ValueError:
                    pass  # another YAML integer form (0x1f, 0o17, 1_000, 190:20:30)
            convert = _SCALARS.get(tag)
            return self._construct(node, convert)
        if depth > MAX_DEPTH:
            raise _marked(depth_message(), mark, "flatten the document (aliases count at their use)")
        if id(node) in self._active:
            raise _marked(f"recursive alias at {path or 'the document root'}", mark, "remove the cycle")
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
                return [self.value(item, child_path(path, i), depth + 1) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
                return self._mapping(node, path, depth)
            return self._construct(node)  # explicit tags: !!set, !!binary, ...
        finally:
            self._active.discard(id(node))

    def _construct(
        self, node: yaml.Node, convert: Callable[[Any, yaml.ScalarNode], Any] | None = None
    ) -> Any:
        """A value PyYAML builds (tagged or typed scalars); a value it cannot build is a positioned error."""
        try:
            if convert is not None and isinstance(node, yaml.ScalarNode):
                return convert(self.loader, node)
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise
        except Exception as exc:
            message = f"cannot read {node.tag.rpartition(':')[2] or 'this'} value {_clip(str(node.value))!r}"
            raise _marked(
                f"{message}: {_clip(str(exc))}", node.start_mark, "fix or quote the value"
            ) from None

    def _mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict[Any, Any]:
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
                key = self._construct(key_node)
            if not isinstance(key, Hashable):
                raise _marked("a mapping key must be a string", key_node.start_mark, "quote the key")
            result[key] = self.value(value_node, child_path(path, str(key)), depth + 1)
        return result


def _clip(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


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
