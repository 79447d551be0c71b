"""GET /.well-known/jwks.json and /.well-known/openid-configuration (the approval_issuer function): the keys
approval tokens are signed with and the issuer's discovery document. Public; cacheable for five minutes."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from taskrunner.api.issuer import DISCOVERY_PATH, JWKS_PATH, configured_signer, issuer_url
from taskrunner.api.models import JwksOut, OpenIdConfigurationOut
from taskrunner.api.problems import PUBLIC_REQUEST_PROBLEMS, problem_responses
from taskrunner.identity import Scope

router = Router()  # also on the TaskRunner API (and in its OpenAPI document)
discovery = Router()  # only on the issuer's own API
CACHE_CONTROL = {"Cache-Control": "public, max-age=300"}
TOKEN_CLAIMS = [
    "iss", "aud", "sub", "tenant_id", "scope", "pack_run_id", "pack_gate_id", "pack_plan_hash",
    "iat", "nbf", "exp", "jti",
]  # fmt: skip


@router.get(
    JWKS_PATH,
    summary="The public keys approval tokens are signed with (JWKS)",
    responses={200: {"description": "The JSON Web Key Set"}, **problem_responses(*PUBLIC_REQUEST_PROBLEMS)},
)
def jwks() -> Response[JwksOut]:
    from taskrunner.evidence.jws import jwks as key_set

    body = JwksOut.model_validate(key_set(configured_signer()))
    return Response(200, "application/json", body, headers=CACHE_CONTROL)


@discovery.get(
    DISCOVERY_PATH,
    summary="Discovery document of the approval-token issuer",
    responses={
        200: {"description": "The issuer and its JWKS URL"},
        **problem_responses(*PUBLIC_REQUEST_PROBLEMS),
    },
)
def openid_configuration() -> Response[OpenIdConfigurationOut]:
    issuer = issuer_url(discovery.current_event.raw_event)
    document = OpenIdConfigurationOut(
        issuer=issuer,
        jwks_uri=issuer + JWKS_PATH,
        id_token_signing_alg_values_supported=["ES256"],
        scopes_supported=[Scope.APPROVE.value],
        claims_supported=TOKEN_CLAIMS,
    )
    return Response(200, "application/json", document, headers=CACHE_CONTROL)
