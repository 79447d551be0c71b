"""The caller of an API request: identity, tenant and scopes from the HTTP API JWT authorizer.

API Gateway (or the local server) has already verified the token; this module reads what the
authorizer passed in ``requestContext.authorizer.jwt`` and enforces scopes and claim bindings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from taskrunner.identity import KNOWN_SCOPES, Forbidden, Principal, Scope, Unauthorized
from taskrunner.keys import TENANT_ID

__all__ = [
    "KNOWN_SCOPES",
    "Forbidden",
    "Principal",
    "Scope",
    "Unauthorized",
    "principal_from_event",
    "require_any_scope",
    "require_claims",
    "require_scopes",
    "split_scopes",
]

TENANT_CLAIM = "tenant_id"


def split_scopes(value: Any) -> set[str]:
    """Scopes from a claim: ``"a b"``, ``["a", "b"]`` or API Gateway's stringified array ``"[a b]"``."""
    if value is None:
        return set()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        return {part for part in text.replace(",", " ").split() if part}
    if isinstance(value, Iterable):
        found: set[str] = set()
        for item in value:
            found |= split_scopes(item)
        return found
    return set()


def _jwt_context(event: Mapping[str, Any]) -> Mapping[str, Any]:
    context = event.get("requestContext") or {}
    authorizer = context.get("authorizer") if isinstance(context, Mapping) else None
    jwt_context = authorizer.get("jwt") if isinstance(authorizer, Mapping) else None
    if not isinstance(jwt_context, Mapping) or not isinstance(jwt_context.get("claims"), Mapping):
        raise Unauthorized(
            "The request carries no verified token (requestContext.authorizer.jwt is missing).",
            remediation="Send 'Authorization: Bearer <token>' to a route protected by the JWT authorizer.",
        )
    return jwt_context


def _tenant(claims: Mapping[str, Any]) -> str:
    """The tenant claim exactly as issued (never trimmed or case-folded); it must be a valid tenant id."""
    tenant = claims.get(TENANT_CLAIM)
    if tenant is None or tenant == "":
        raise Unauthorized(
            f"The token has no '{TENANT_CLAIM}' claim, so the request cannot be scoped to a tenant.",
            remediation=f"Use a token issued with a '{TENANT_CLAIM}' claim (locally: taskrunner token --tenant T).",
        )
    if not TENANT_ID.matches(tenant):
        raise Forbidden(
            f"The token claim '{TENANT_CLAIM}' ({str(tenant)[:70]!r}) is not a valid tenant id.",
            remediation=f"Use a token whose '{TENANT_CLAIM}' claim is a tenant id: {TENANT_ID.hint}.",
        )
    return str(tenant)


def principal_from_event(event: Any) -> Principal:
    """The caller of an API Gateway HTTP API (payload v2) event; ``Unauthorized`` when unknown.

    ``event`` is the raw event dict or a Powertools event object (its ``raw_event`` is used).
    """
    raw: Mapping[str, Any] = getattr(event, "raw_event", event)
    jwt_context = _jwt_context(raw)
    claims = dict(jwt_context["claims"])
    tenant = _tenant(claims)
    subject = str(claims.get("sub") or claims.get("client_id") or "")  # exact, like the tenant
    if not subject.strip():
        raise Unauthorized(
            "The token has no 'sub' claim, so the caller cannot be identified.",
            remediation="Use a token issued for a user or client (with a 'sub' claim).",
        )
    scopes = split_scopes(claims.get("scope"))
    scopes |= split_scopes(claims.get("scp"))
    scopes |= split_scopes(claims.get("scopes"))
    scopes |= split_scopes(jwt_context.get("scopes"))
    return Principal(subject=subject, tenant_id=tenant, scopes=frozenset(scopes), claims=claims)


def require_scopes(principal: Principal, *scopes: str) -> None:
    """Raise ``Forbidden`` naming every scope of ``scopes`` the caller lacks."""
    missing = [scope for scope in scopes if scope not in principal.scopes]
    if missing:
        names = ", ".join(f"'{scope}'" for scope in missing)
        raise Forbidden(
            f"The token lacks the required scope {names}.",
            remediation=f"Request a token that grants {names}.",
        )


def require_any_scope(principal: Principal, *scopes: str) -> None:
    """Raise ``Forbidden`` unless the caller holds at least one of ``scopes``."""
    if not principal.scopes & set(scopes):
        names = " or ".join(f"'{scope}'" for scope in scopes)
        raise Forbidden(
            f"The token grants neither {names}.", remediation=f"Request a token that grants {names}."
        )


def require_claims(principal: Principal, expected: Mapping[str, str]) -> None:
    """Raise ``Forbidden`` unless every claim in ``expected`` is present with exactly that value.

    Used for approval tokens, which are bound to one run, gate and plan
    (``pack_run_id``, ``pack_gate_id``, ``pack_plan_hash``).
    """
    for name, value in expected.items():
        actual = principal.claim(name)
        if actual is None:
            raise Forbidden(
                f"The token has no '{name}' claim; this operation requires a token bound to '{value}'.",
                remediation=f"Request a token with the claim {name}={value}.",
            )
        if actual != value:
            raise Forbidden(
                f"The token claim '{name}' is '{actual}' but this request is for '{value}'.",
                remediation=f"Request a token with the claim {name}={value}.",
            )
