"""``taskrunner token``: mint a local development JWT for ``taskrunner serve``."""

from __future__ import annotations

from typing import Annotated

import typer

from taskrunner.api.auth import KNOWN_SCOPES
from taskrunner.cli.main import JsonOpt, fail, print_json
from taskrunner.errors import TaskRunnerError
from taskrunner.local.devauth import mint_token


def parse_scopes(text: str) -> list[str]:
    """``"packs.read, packs.run"`` -> ``["packs.read", "packs.run"]``; unknown scopes are refused."""
    scopes = [s.strip() for s in text.replace(" ", ",").split(",") if s.strip()]
    if not scopes:
        raise typer.BadParameter("give at least one scope", param_hint="--scopes")
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    if unknown:
        raise typer.BadParameter(
            f"unknown scope {', '.join(unknown)}; known scopes: {', '.join(sorted(KNOWN_SCOPES))}",
            param_hint="--scopes",
        )
    return scopes


def parse_claims(pairs: list[str]) -> dict[str, str]:
    """``["pack_run_id=r1", ...]`` -> ``{"pack_run_id": "r1"}`` (values are strings)."""
    claims: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--claim")
        claims[name.strip()] = value
    return claims


def token(
    scopes: Annotated[
        str,
        typer.Option(
            "--scopes",
            help="Comma-separated scopes: packs.read,packs.write,packs.run,packs.approve,packs.admin.",
        ),
    ],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the token acts for (the tenant_id claim).")],
    claim: Annotated[
        list[str] | None,
        typer.Option(
            "--claim",
            help="Extra claim NAME=VALUE, repeatable (e.g. sub=alice; approval tokens come from the "
            "approval-token route, not from here).",
        ),
    ] = None,
    ttl: Annotated[int, typer.Option("--ttl", min=1, help="Lifetime in seconds.")] = 3600,
    json_output: JsonOpt = False,
) -> None:
    """Print a development JWT for the local API (signed with the key in $TASKRUNNER_HOME/keys)."""
    try:
        jwt_text = mint_token(parse_scopes(scopes), tenant, parse_claims(claim or []), ttl_seconds=ttl)
    except TaskRunnerError as error:
        raise fail(error, code=2) from None
    if json_output:
        print_json({"token": jwt_text, "tenant": tenant, "expiresIn": ttl})
        return
    typer.echo(jwt_text)
