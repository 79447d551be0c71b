"""The approval-token issuer as the API sees it: its URL, its signing key, the :class:`TokenIssuer`."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from taskrunner.composition import guard_approval_token_signer
from taskrunner.config import load_settings
from taskrunner.engine.approval_tokens import TokenIssuer

if TYPE_CHECKING:
    from taskrunner.evidence.signing import EvidenceSigner

JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"


@cache
def token_signer(key_uri: str) -> EvidenceSigner:
    """The EC P-256 signer ``key_uri`` names (a key file is created on first use); kept per process."""
    from taskrunner.evidence.signing import ensure_p256_keyfile, signer_from_uri  # the crypto stack

    return signer_from_uri(key_uri, file=ensure_p256_keyfile)


def configured_signer() -> EvidenceSigner:
    """The signer of ``TASKRUNNER_APPROVAL_TOKENS__KEY`` for this call (locally: authorized as KMS would be)."""
    return guard_approval_token_signer(token_signer(load_settings().approval_tokens.key or ""))


def issuer_url(event: Mapping[str, Any]) -> str:
    """``TASKRUNNER_APPROVAL_TOKENS__ISSUER``, else the request's own base URL (``https://<domainName>``; the
    scheme of ``X-Forwarded-Proto`` when the gateway names one)."""
    configured = load_settings().approval_tokens.issuer
    if configured:
        return configured
    context = event.get("requestContext") or {}
    headers = event.get("headers") or {}
    scheme = str(headers.get("x-forwarded-proto") or "https").split(",")[0].strip()
    return f"{scheme}://{context.get('domainName') or headers.get('host') or 'localhost'}"


def token_issuer(event: Mapping[str, Any]) -> TokenIssuer:
    """Who signs this request's approval tokens, per the settings."""
    return TokenIssuer(issuer_url(event), configured_signer, load_settings().approval_tokens.ttl_seconds)
