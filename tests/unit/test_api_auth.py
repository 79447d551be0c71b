"""Caller identity, tenant and scopes from API Gateway HTTP API JWT authorizer context."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from taskrunner.api.auth import (
    KNOWN_SCOPES,
    Forbidden,
    Principal,
    Scope,
    Unauthorized,
    principal_from_event,
    require_claims,
    require_scopes,
    split_scopes,
)
from taskrunner.errors import TaskRunnerError


def event(claims: dict[str, Any] | None, scopes: list[str] | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"http": {"method": "GET", "path": "/api/runs"}, "requestId": "r"}
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims, "scopes": scopes}}
    return {"version": "2.0", "rawPath": "/api/runs", "headers": {}, "requestContext": context}


def test_principal_reads_subject_tenant_and_space_separated_scope() -> None:
    principal = principal_from_event(
        event({"sub": "alice", "tenant_id": "acme", "scope": "packs.read packs.run", "exp": "1700000000"})
    )
    assert principal.subject == "alice"
    assert principal.tenant_id == "acme"
    assert principal.scopes == frozenset({"packs.read", "packs.run"})
    assert principal.claim("exp") == "1700000000"
    assert principal.claim("missing") is None


@pytest.mark.parametrize(
    ("claims", "jwt_scopes", "expected"),
    [
        ({"scp": ["packs.read", "packs.approve"]}, None, {"packs.read", "packs.approve"}),
        ({"scp": "[packs.read packs.approve]"}, None, {"packs.read", "packs.approve"}),  # API GW stringified
        ({"scopes": ["packs.write"]}, None, {"packs.write"}),
        ({}, ["packs.run"], {"packs.run"}),
        ({"scope": "packs.read"}, ["packs.run"], {"packs.read", "packs.run"}),
        ({}, None, set()),
    ],
)
def test_scopes_come_from_every_claim_form(
    claims: dict[str, Any], jwt_scopes: list[str] | None, expected: set[str]
) -> None:
    principal = principal_from_event(event({"sub": "s", "tenant_id": "t", **claims}, jwt_scopes))
    assert principal.scopes == frozenset(expected)


def test_client_id_is_the_subject_of_machine_tokens() -> None:
    principal = principal_from_event(event({"client_id": "ci-bot", "tenant_id": "t"}))
    assert principal.subject == "ci-bot"


def test_powertools_event_object_is_accepted() -> None:
    raw = event({"sub": "bob", "tenant_id": "acme", "scope": "packs.read"})
    assert principal_from_event(APIGatewayProxyEventV2(raw)).subject == "bob"


def test_missing_authorizer_context_is_unauthorized() -> None:
    with pytest.raises(Unauthorized) as caught:
        principal_from_event(event(None))
    assert caught.value.status == 401
    assert caught.value.code == "Unauthorized"
    assert "Authorization: Bearer" in caught.value.remediation


@pytest.mark.parametrize("tenant", [None, ""])
def test_missing_tenant_is_unauthorized(tenant: str | None) -> None:
    claims: dict[str, Any] = {"sub": "alice", "scope": "packs.read"}
    if tenant is not None:
        claims["tenant_id"] = tenant
    with pytest.raises(Unauthorized, match="tenant_id"):
        principal_from_event(event(claims))


@pytest.mark.parametrize(
    "tenant",
    ["   ", " acme ", "acme ", "ACME\u0000", "acme\n", "a/../b", "..", "\uff41cme", 7, ["acme"], "a" * 65],
)
def test_a_tenant_claim_is_exact_and_valid_or_forbidden(tenant: object) -> None:
    """Never trimmed or normalised: a claim that is not a valid tenant id as issued is refused (403)."""
    with pytest.raises(Forbidden, match="'tenant_id'") as caught:
        principal_from_event(event({"sub": "alice", "tenant_id": tenant, "scope": "packs.read"}))
    assert caught.value.status == 403


def test_a_tenant_claim_keeps_its_case() -> None:
    principal = principal_from_event(event({"sub": "alice", "tenant_id": "Acme.EU_1", "scope": "packs.read"}))
    assert principal.tenant_id == "Acme.EU_1"


def test_missing_subject_is_unauthorized() -> None:
    with pytest.raises(Unauthorized, match="'sub'"):
        principal_from_event(event({"tenant_id": "acme"}))


def test_require_scopes_names_each_missing_scope() -> None:
    principal = Principal("alice", "acme", frozenset({"packs.read"}), {})
    require_scopes(principal, Scope.READ)
    with pytest.raises(Forbidden) as caught:
        require_scopes(principal, Scope.READ, Scope.RUN, Scope.APPROVE)
    assert caught.value.status == 403
    assert caught.value.code == "Forbidden"
    assert "'packs.run'" in caught.value.message
    assert "'packs.approve'" in caught.value.message
    assert "'packs.read'" not in caught.value.message


def test_require_claims_binds_approval_tokens() -> None:
    principal = Principal("alice", "acme", frozenset(), {"pack_run_id": "run-1", "pack_gate_id": "review"})
    require_claims(principal, {"pack_run_id": "run-1", "pack_gate_id": "review"})
    with pytest.raises(Forbidden, match=r"'pack_run_id' is 'run-1'.*'run-2'"):
        require_claims(principal, {"pack_run_id": "run-2"})
    with pytest.raises(Forbidden, match="no 'pack_plan_hash' claim"):
        require_claims(principal, {"pack_plan_hash": "sha256:abc"})


def test_errors_are_domain_errors_and_scopes_are_the_known_set() -> None:
    assert issubclass(Unauthorized, TaskRunnerError)
    assert issubclass(Forbidden, TaskRunnerError)
    assert (
        frozenset({"packs.read", "packs.write", "packs.run", "packs.approve", "packs.admin"}) == KNOWN_SCOPES
    )
    assert split_scopes("packs.read,packs.run") == {"packs.read", "packs.run"}
