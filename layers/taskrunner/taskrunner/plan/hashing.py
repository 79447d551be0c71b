"""planHash: ``"sha256:" + hex(sha256(JCS(plan)))``; the canonical bytes are stored as ``plan.json``.

:func:`jcs_bytes` produces exactly the bytes of :func:`taskrunner.canonical.canonical_bytes` (RFC 8785);
for documents made of plain JSON values it gets there through the C JSON encoder, which is much faster
on large plans, and it falls back to the reference implementation for anything it cannot prove equal.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from pydantic import ValidationError

from taskrunner.canonical import canonical_bytes, sha256_digest
from taskrunner.errors import ValidationFailed
from taskrunner.plan.document import Plan

_MAX_SAFE = 2**53 - 1
_NON_BMP = "[\U00010000-\U0010ffff]"  # UTF-16 key order differs from code-point order only here
# What JSON and JCS might print differently: a float token or a number of 16+ digits (the scan may also
# hit such text inside a string: harmless, the exact path runs) and non-BMP characters (key order).
_SUSPECT_NUMBER = re.compile(r"[:,\[]-?(?:\d+[.eE]|\d{16})")
_NON_BMP_RE = re.compile(_NON_BMP)


def jcs_bytes(document: Any) -> bytes:
    """RFC 8785 canonical JSON of a JSON document with string keys (equal to ``canonical_bytes``, faster).

    The C encoder's output already is canonical unless it holds floats, unsafe integers or non-BMP
    characters; a quick scan finds those, and only then are floats normalised or the reference
    implementation used.
    """
    try:
        text = _dumps(document)
    except (TypeError, ValueError, RecursionError):
        return canonical_bytes(document)  # raises its own, precise error
    if _suspect_number(text) or (not text.isascii() and _NON_BMP_RE.search(text)):
        normalised = _normalise(document)
        if normalised is _FALLBACK:
            return canonical_bytes(document)
        text = _dumps(normalised)
        if _NON_BMP_RE.search(text):
            return canonical_bytes(document)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: let the reference implementation report them
        return canonical_bytes(document)


def _suspect_number(text: str) -> bool:
    for match in _SUSPECT_NUMBER.finditer(text):
        at = match.start()
        if text[at] != ":" or (at > 0 and text[at - 1] == '"'):  # a value after a key, not "sha256:9e..."
            return True
    return False


def _dumps(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


class _Fallback:
    pass


_FALLBACK: Any = _Fallback()


def _normalise(value: Any) -> Any:
    """``value`` with floats in the forms JSON and JCS print alike, or ``_FALLBACK`` if that is not possible."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        return value if -_MAX_SAFE <= value <= _MAX_SAFE else _FALLBACK
    if kind is dict:
        out = {}
        for key, child in value.items():
            if type(key) is not str:
                return _FALLBACK
            child = _normalise(child)
            if child is _FALLBACK:
                return _FALLBACK
            out[key] = child
        return out
    if kind is list or kind is tuple:
        items = []
        for child in value:
            child = _normalise(child)
            if child is _FALLBACK:
                return _FALLBACK
            items.append(child)
        return items
    if kind is float:
        if not math.isfinite(value):
            return _FALLBACK
        if value.is_integer():  # JCS prints 2.0 as 2
            return int(value) if abs(value) <= _MAX_SAFE else _FALLBACK
        # Python and ECMAScript print the same shortest digits in plain notation for 1e-4 <= |x| < 2^53.
        return value if abs(value) >= 1e-4 else _FALLBACK
    return _FALLBACK


def document_digest(document: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``document`` (equal to ``canonical.digest_of``)."""
    return sha256_digest(jcs_bytes(document))


def canonical_plan_bytes(plan: Plan) -> bytes:
    """The bytes of ``plan.json``: RFC 8785 canonical JSON of the plan document."""
    document = plan.to_document()
    _integral_retries(document.get("failure", {}).get("retries"))
    _integral_step_retries(document.get("steps", []))
    return jcs_bytes(document)


def _integral_retries(retries: dict[str, Any] | None) -> None:
    """Write whole-number retry floats as ints (same JCS text; keeps the fast path for typical plans).

    Only called on the fresh dicts ``to_document`` built for the retry models.
    """
    if retries:
        for key, value in retries.items():
            if type(value) is float and value.is_integer() and abs(value) <= _MAX_SAFE:
                retries[key] = int(value)


def _integral_step_retries(steps: list[dict[str, Any]]) -> None:
    for step in steps:
        if step.get("kind") == "run":
            _integral_retries(step.get("retries"))
        elif "steps" in step:
            _integral_step_retries(step["steps"])


def plan_hash_of_bytes(data: bytes) -> str:
    """planHash of stored ``plan.json`` bytes."""
    return sha256_digest(data)


def plan_hash(plan: Plan) -> str:
    """planHash of a plan model."""
    return plan_hash_of_bytes(canonical_plan_bytes(plan))


def rng_seed(plan_hash_value: str) -> int:
    """The run's RNG seed: first 64 bits of ``sha256("rng:" + planHash)``."""
    return int(hashlib.sha256(b"rng:" + plan_hash_value.encode("utf-8")).hexdigest()[:16], 16)


def parse_plan(data: bytes) -> Plan:
    """Read stored ``plan.json`` bytes back into a :class:`Plan`, refusing non-canonical or invalid ones."""
    try:
        plan = Plan.model_validate_json(data)
    except ValidationError as exc:
        raise ValidationFailed(
            f"plan.json is not a valid plan: {exc.error_count()} problem(s)",
            [
                {"path": ".".join(map(str, e["loc"])), "message": e["msg"]}
                for e in exc.errors(include_url=False)
            ],
            remediation="re-create the plan from its pack and inputs",
        ) from None
    if canonical_plan_bytes(plan) != data:
        raise ValidationFailed(
            "plan.json is not in canonical form (RFC 8785)",
            remediation="store the bytes returned by the planner unchanged",
        )
    return plan
