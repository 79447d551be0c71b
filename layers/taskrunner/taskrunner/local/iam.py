"""IAM identity-policy evaluation, as AWS does it for one principal's request.

A request is allowed only if some statement allows it and no statement denies it: an explicit ``Deny``
wins over any ``Allow``, and without a matching ``Allow`` the request is implicitly denied. A statement
matches when its ``Action`` (or ``NotAction``), ``Resource`` (or ``NotResource``) and every ``Condition``
match. Action names match case-insensitively, resources case-sensitively; ``*`` and ``?`` are wildcards
in both. Condition operators not implemented here make their statement unmatchable for an ``Allow`` and
matching for a ``Deny``, so an unknown operator always fails closed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

Decision = Literal["allow", "explicit-deny", "implicit-deny"]
Policy = Mapping[str, Any]  # an IAM policy document {"Version", "Statement": [...]}


@dataclass(frozen=True)
class Request:
    """One authorization request: the IAM action, the resource ARN and the request context keys."""

    action: str
    resource: str
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)


def evaluate(policies: Iterable[Policy], request: Request) -> Decision:
    """The decision of the identity policies ``policies`` for ``request``."""
    allowed = False
    for policy in policies:
        for statement in _statements(policy):
            if not _matches(statement, request):
                continue
            if statement.get("Effect") == "Deny":
                return "explicit-deny"
            if statement.get("Effect") == "Allow":
                allowed = True
    return "allow" if allowed else "implicit-deny"


def _statements(policy: Policy) -> list[Mapping[str, Any]]:
    statements = policy.get("Statement") or []
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return [str(value)]


def _matches(statement: Mapping[str, Any], request: Request) -> bool:
    deny = statement.get("Effect") == "Deny"
    if "Action" in statement:
        if not any(action_matches(p, request.action) for p in _as_list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(action_matches(p, request.action) for p in _as_list(statement["NotAction"])):
            return False
    else:
        return False
    if "Resource" in statement:
        if not any(resource_matches(p, request.resource) for p in _as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(resource_matches(p, request.resource) for p in _as_list(statement["NotResource"])):
            return False
    else:
        return False
    return conditions_match(statement.get("Condition") or {}, request.context, unknown=deny)


# ------------------------------------------------------------------------------------------ matching
@lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """``*`` = any run of characters, ``?`` = one character, everything else literal."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"(?s:{body})\\Z", re.IGNORECASE if ignore_case else 0)


def action_matches(pattern: str, action: str) -> bool:
    """``s3:Get*`` matches ``s3:GetObject``; service prefix and name compare case-insensitively."""
    return bool(_glob(pattern, True).match(action))


def resource_matches(pattern: str, arn: str) -> bool:
    """``arn:aws:s3:::bucket/runs/*`` matches ``arn:aws:s3:::bucket/runs/r1/a.txt``; case-sensitive."""
    return pattern == "*" or bool(_glob(pattern, False).match(arn))


def _arn_like(pattern: str, value: str) -> bool:
    """ArnLike: the six colon-separated ARN parts match one by one (the last part keeps its colons)."""
    wanted, actual = pattern.split(":", 5), value.split(":", 5)
    if len(wanted) != 6 or len(actual) != 6:
        return False
    return all(_glob(w, False).match(a) for w, a in zip(wanted, actual, strict=True))


def _bool(pattern: str, value: str) -> bool:
    return pattern.lower() == value.lower()


_MATCHERS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda p, v: p == v,
    "StringEqualsIgnoreCase": lambda p, v: p.lower() == v.lower(),
    "StringLike": lambda p, v: bool(_glob(p, False).match(v)),
    "ArnEquals": _arn_like,
    "ArnLike": _arn_like,
    "Bool": _bool,
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def conditions_match(
    condition: Mapping[str, Mapping[str, Any]],
    context: Mapping[str, str | Sequence[str]],
    *,
    unknown: bool = False,
) -> bool:
    """True if every operator's every key matches (AND); a key matches any of its values (OR).

    Context keys compare case-insensitively. A missing key fails a positive operator and passes a negated
    one (and any ``...IfExists`` operator); ``Null`` tests presence. ``unknown`` is the result for an
    operator this evaluator does not implement.
    """
    keys = {name.lower(): value for name, value in context.items()}
    for operator, tests in condition.items():
        for key, expected in tests.items():
            result = _condition(operator, _as_list(expected), keys.get(key.lower()))
            if result is None:
                return unknown
            if not result:
                return False
    return True


def _condition(operator: str, expected: list[str], present: str | Sequence[str] | None) -> bool | None:
    """One operator on one key; None when the operator is not implemented."""
    if operator == "Null":
        return any(_bool(e, "true") for e in expected) == (present is None)
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    quantifier, _, base = base.rpartition(":")
    negated = base in _NEGATED
    matcher = _MATCHERS.get(_NEGATED.get(base, base))
    if matcher is None or quantifier not in ("", "ForAnyValue", "ForAllValues"):
        return None
    if present is None:
        return if_exists or negated or quantifier == "ForAllValues"
    values = [present] if isinstance(present, str) else list(present)

    def value_matches(value: str) -> bool:
        hit = any(matcher(pattern, value) for pattern in expected)
        return not hit if negated else hit

    if quantifier == "ForAllValues":
        return all(value_matches(v) for v in values)
    return any(value_matches(v) for v in values)
