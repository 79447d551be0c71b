"""Input limits: how large and how deep a manifest, its inputs and its expressions may be.

Every limit is checked before the structure is processed further, so hostile input (deep nesting, alias
expansion, huge numbers or documents) is refused with a positioned problem instead of exhausting the stack,
the memory or the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # a pack manifest (YAML or JSON text), and an inputs file
MAX_DEPTH = 64  # nesting of mappings and sequences in a manifest or in the inputs
MAX_NODES = 2_000_000  # values after alias expansion ("billion laughs")
MAX_PLANNED_STEPS = 25_000  # steps of a plan, counting every expanded map child
MAX_NESTING_DEPTH = 8  # map and parallel steps inside one another
MAX_EXPRESSION_CHARS = 4096  # one {{ expression }}, a when condition or a policy expression
MAX_INTEGER_DIGITS = 400  # longer integer literals are refused (JSON numbers are doubles anyway)
MAX_KEY_FILE_BYTES = 64 * 1024  # a PEM key file (private or public)


def read_at_most(path: Path, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes of ``path``: more than ``limit`` means too large (``/dev/zero`` ends too)."""
    with path.open("rb") as stream:
        return stream.read(limit + 1)


class TooManyDigits(ValueError):
    """An integer literal longer than ``MAX_INTEGER_DIGITS`` (Python refuses over 4,300 digits anyway)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.message = f"an integer of {len(token.lstrip('-+')):,} digits is outside the JSON safe range"
        super().__init__(self.message)


def bounded_int(token: str) -> int:
    """``int(token)`` for a JSON or YAML integer literal, refusing absurdly long ones (``parse_int`` hook)."""
    if len(token) > MAX_INTEGER_DIGITS and len(token.lstrip("-+").replace("_", "")) > MAX_INTEGER_DIGITS:
        raise TooManyDigits(token)
    return int(token)


def size_problem(size: int) -> str:
    """What is wrong with a document of ``size`` bytes (more than the limit: it was not read further)."""
    if size > MAX_MANIFEST_BYTES + 1:
        return f"the document is {size:,} bytes; the limit is {MAX_MANIFEST_BYTES:,} bytes"
    return f"the document is larger than the limit of {MAX_MANIFEST_BYTES:,} bytes"


def depth_message() -> str:
    return f"nested more than {MAX_DEPTH} levels deep (the limit)"


def too_deep(value: Any, limit: int = MAX_DEPTH) -> list[str | int] | None:
    """The key path of the first mapping or sequence nested deeper than ``limit``, else None.

    Iterative, so it is safe on any depth Python can hold.
    """
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(value, 0, ())]
    while stack:
        node, depth, trail = stack.pop()
        if isinstance(node, Mapping):
            children: Any = node.items()
        elif isinstance(node, list | tuple):
            children = enumerate(node)
        else:
            continue
        if depth >= limit:
            return _flatten_trail(trail)
        for key, child in children:
            if isinstance(child, Mapping | list | tuple):
                stack.append((child, depth + 1, (trail, key)))
    return None


def _flatten_trail(trail: tuple[Any, ...]) -> list[str | int]:
    keys: list[str | int] = []
    while trail:
        trail, key = trail
        keys.append(key if isinstance(key, int) else str(key))
    return keys[::-1]
