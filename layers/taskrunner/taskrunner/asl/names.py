"""Step Functions names: state names inside a definition and the state machine's own name.

Both follow the Step Functions naming rules (1-80 characters, no whitespace, brackets, wildcards or
punctuation such as ``: / # $``). We keep to ``[A-Za-z0-9_-]``, the set CloudWatch logging accepts, so a
name is always usable as is. Names longer than 80 characters keep a readable prefix and end in a short
digest of the full name; a name already taken gets ``-2``, ``-3``... in the order names are claimed, which
the compiler keeps deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from taskrunner.canonical import sha256_hex

MAX_NAME_LENGTH = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_SAFE = re.compile(r"[A-Za-z0-9_-]+")


def sanitise_name(raw: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """``raw`` reduced to ``[A-Za-z0-9_-]`` and at most ``max_length`` characters (never empty)."""
    if len(raw) <= max_length and _SAFE.fullmatch(raw):
        return raw
    name = _UNSAFE.sub("_", raw).strip("_") or "state"
    if len(name) <= max_length:
        return name
    digest = sha256_hex(raw.encode("utf-8"))[:8]
    return f"{name[: max_length - len(digest) - 1].rstrip('_-')}-{digest}"


class StateNames:
    """Hands out unique, valid state names for one state machine definition."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._taken: set[str] = set(reserved)

    def claim(self, raw: str, suffix: str = "") -> str:
        """A free name derived from ``raw`` and ending in ``suffix``; the name is taken from then on."""
        name = sanitise_name(raw, max_length=MAX_NAME_LENGTH - len(suffix)) + suffix
        counter = 1
        while name in self._taken:
            counter += 1
            ending = f"-{counter}{suffix}"
            name = sanitise_name(raw, max_length=MAX_NAME_LENGTH - len(ending)) + ending
        self._taken.add(name)
        return name


MAX_PREFIX_LENGTH = 57  # leaves at least 8 characters of the pack name
DIGEST_LENGTH = 12


def state_machine_name(prefix: str, pack_name: str, deployed_definition: str) -> str:
    """``<prefix>-<pack name>-<sha256(deployed definition)[:12]>``, the pack part shortened to fit 80 characters.

    The digest covers the definition as deployed (function ARNs filled in), so machines of two stacks never
    share a name even when their prefixes do; the prefix keeps a stack's machines under one IAM pattern.
    """
    if not _SAFE.fullmatch(prefix) or len(prefix) > MAX_PREFIX_LENGTH:
        raise ValueError(f"state machine prefix {prefix!r} is not 1-{MAX_PREFIX_LENGTH} of [A-Za-z0-9_-]")
    suffix = "-" + sha256_hex(deployed_definition.encode("utf-8"))[:DIGEST_LENGTH]
    room = MAX_NAME_LENGTH - len(prefix) - 1 - len(suffix)
    pack = _UNSAFE.sub("-", pack_name).strip("-") or "pack"
    return f"{prefix}-{pack[:room].rstrip('-')}{suffix}"
