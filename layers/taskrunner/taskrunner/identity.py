"""Who is acting: an authenticated caller (subject, tenant, scopes, claims) and the errors of access control.

Neutral ground for the engine and the API: the engine decides with a :class:`Principal`, the API builds
one from the JWT authorizer context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from taskrunner.errors import TaskRunnerError


class Scope(StrEnum):
    """OAuth scopes of the TaskRunner API."""

    READ = "packs.read"
    WRITE = "packs.write"
    RUN = "packs.run"
    APPROVE = "packs.approve"
    ADMIN = "packs.admin"


KNOWN_SCOPES: frozenset[str] = frozenset(s.value for s in Scope)


class Unauthorized(TaskRunnerError):
    """No valid caller identity (missing or invalid token, missing tenant)."""

    code = "Unauthorized"
    status = 401


class Forbidden(TaskRunnerError):
    """The caller is known but lacks a scope or a required claim."""

    code = "Forbidden"
    status = 403


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    subject: str
    tenant_id: str
    scopes: frozenset[str]
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def claim(self, name: str) -> str | None:
        """A claim as a string (the form API Gateway passes), or None when absent."""
        value = self.claims.get(name)
        return None if value is None else str(value)
