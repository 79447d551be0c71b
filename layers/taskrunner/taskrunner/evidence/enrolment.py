"""Approver key enrolment records: what the deployment signs about a key, and when that key may sign a decision.

The statement (payloadType ``application/vnd.taskrunner.approver-key+json``) is
``{tenantId, approver, keyId, publicKeyPem, label, enrolledAt, confirmedBy, confirmedAt, revokedAt, policy}``.
A key may sign decisions dated from its activation (``confirmedAt``, or ``enrolledAt`` when no confirmation
was required) until its ``revokedAt``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from taskrunner.evidence.hashing import json_failure
from taskrunner.timeutil import iso, parse_iso

_STRING_FIELDS = ("tenantId", "approver", "keyId", "publicKeyPem", "label", "enrolledAt", "policy")
_OPTIONAL_TIMES = ("confirmedAt", "revokedAt")


def parse_statement(payload: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    """The verified enrolment statement, or ``None`` with what is wrong with it."""
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        return None, [f"payload is not JSON: {json_failure(exc)}"]
    if not isinstance(document, dict):
        return None, ["payload is not a JSON object"]
    problems = [
        f"field {n!r} is missing or not a string"
        for n in _STRING_FIELDS
        if not isinstance(document.get(n), str)
    ]
    for name in (*_OPTIONAL_TIMES, "enrolledAt"):
        value = document.get(name)
        if value is None and name != "enrolledAt":
            continue
        try:
            parse_iso(str(value))
        except ValueError:
            problems.append(f"field {name!r} is not an ISO-8601 time: {str(value)[:40]!r}")
    if document.get("policy") == "confirm" and not (
        document.get("confirmedBy") and document.get("confirmedAt")
    ):
        problems.append("the policy required a confirmation but the record names no confirmedBy/confirmedAt")
    return (None, problems) if problems else (document, [])


def key_use_problems(
    statement: dict[str, Any], *, approver: str, tenant_id: str, decided_at: datetime
) -> list[str]:
    """Why the key of ``statement`` could not sign ``approver``'s decision in ``tenant_id`` at ``decided_at``."""
    key = str(statement.get("keyId", ""))[:16]
    problems = []
    if statement.get("tenantId") != tenant_id:
        problems.append(f"key {key} is enrolled for tenant {statement.get('tenantId')!r}, not {tenant_id!r}")
    if statement.get("approver") != approver:
        problems.append(f"key {key} is enrolled for approver {statement.get('approver')!r}, not {approver!r}")
    active_from = parse_iso(str(statement.get("confirmedAt") or statement["enrolledAt"]))
    if decided_at < active_from:
        problems.append(
            f"the decision is dated {iso(decided_at)}, before key {key} was active ({iso(active_from)})"
        )
    revoked = statement.get("revokedAt")
    if revoked is not None and decided_at >= parse_iso(str(revoked)):
        problems.append(f"the decision is dated {iso(decided_at)}, after key {key} was revoked ({revoked})")
    return problems
