"""Secrets in ``inputs.lock`` (built by ``taskrunner.plan.inputs_lock``): fingerprints or placeholders only.

The lock is a JSON object; its ``secrets`` member maps each secret name to an object with a ``value``
(``{"token": {"ref": "aws-ssm:/x", "value": "<redacted>"}}``, the planner's form) or directly to the
value (``{"token": "hmac-sha256:..."}``); a list of objects with ``name`` and ``value`` is accepted too.
Every other member (resolved non-secret inputs, refs) is left as is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from taskrunner.plan.inputs_lock import UNRESOLVED
from taskrunner.redaction import BLANK, RedactionPolicy, redacted_form

_FINGERPRINT = re.compile(r"hmac-sha256:[0-9a-f]{64}")
ALLOWED_FORMS = "'hmac-sha256:<64 hex>', '<redacted>' or '<unresolved>'"


def is_redacted(value: object) -> bool:
    """True for the only forms a secret may take in evidence."""
    return isinstance(value, str) and (value in (BLANK, UNRESOLVED) or bool(_FINGERPRINT.fullmatch(value)))


def _entries(secrets: Any) -> Iterator[tuple[str, Any, Any, str | None]]:
    """``(name, container, key, problem)`` per secret; ``container[key]`` holds its value."""
    if isinstance(secrets, Mapping):
        for name, entry in secrets.items():
            if isinstance(entry, Mapping):
                yield str(name), entry, "value", None if "value" in entry else "has no 'value'"
            else:
                yield str(name), secrets, name, None
    elif isinstance(secrets, list):
        for index, entry in enumerate(secrets):
            if not isinstance(entry, Mapping):
                yield f"#{index + 1}", None, None, "is not an object"
                continue
            name = str(entry.get("name", f"#{index + 1}"))
            yield name, entry, "value", None if "value" in entry else "has no 'value'"
    else:
        yield "", None, None, "the 'secrets' member is neither an object nor a list"


def lock_problems(lock: Any) -> list[str]:
    """Every way ``lock`` could carry secret material (empty when it is clean)."""
    if not isinstance(lock, Mapping):
        return ["inputs.lock is not a JSON object"]
    if "secrets" not in lock:
        return []
    problems = []
    for name, container, key, problem in _entries(lock["secrets"]):
        label = f"secret {name!r}" if name else "inputs.lock"
        if problem:
            problems.append(f"{label} {problem}")
        elif not is_redacted(container[key]):
            problems.append(f"{label} is not redacted: its value must be {ALLOWED_FORMS}")
    return problems


def redact_lock(lock: Mapping[str, Any], policy: RedactionPolicy, key: bytes) -> dict[str, Any]:
    """A copy of ``lock`` with every secret value not yet in a redacted form replaced per ``policy``.

    Non-string values are blanked (they cannot be fingerprinted as text).
    """
    copy = _deep_copy(lock)
    if "secrets" not in copy:
        return copy
    for _, container, entry_key, problem in _entries(copy["secrets"]):
        if problem or is_redacted(container[entry_key]):
            continue
        value = container[entry_key]
        container[entry_key] = redacted_form(value, policy, key) if isinstance(value, str) else BLANK
    return copy


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_copy(v) for v in value]
    return value
