"""The ``ApprovalTokens`` JWT authorizer locally: approval tokens verified against the issuer's published JWKS.

As API Gateway does, the keys come from the JWKS route (invoked in-process), are cached, and fetched again
when a token names a ``kid`` the cache lacks; ``iss``, ``aud``, ``exp`` and ``nbf`` are checked. The issuer
is ``TASKRUNNER_APPROVAL_TOKENS__ISSUER`` when the runtime sets one, else the server's own base URL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from taskrunner.api.auth import Unauthorized
from taskrunner.engine.approval_tokens import AUDIENCE
from taskrunner.local.devauth import ALGORITHM, decode_es256, es256_header

_REMEDIATION = (
    "Exchange your identity token for an approval token: POST /api/runs/{runId}/gates/{gateId}/approval-token"
)


class JwksVerifier:
    """Verifies approval tokens with the keys ``fetch_jwks`` returns (a JWKS document)."""

    def __init__(self, fetch_jwks: Callable[[], Mapping[str, Any]], issuer: str | None = None) -> None:
        self._fetch = fetch_jwks
        self._issuer = issuer
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _key(self, kid: str) -> Any:
        with self._lock:
            if kid not in self._keys:
                document = self._fetch()
                self._keys = {
                    str(k["kid"]): jwt.PyJWK(dict(k), algorithm=ALGORITHM).key
                    for k in document.get("keys") or []
                    if isinstance(k, Mapping) and k.get("kid")
                }
            return self._keys.get(kid)

    def __call__(self, token: str, base_url: str) -> dict[str, Any]:
        issuer = self._issuer or base_url
        header = es256_header(token, _REMEDIATION)
        key = self._key(str(header.get("kid") or ""))
        if key is None:
            raise Unauthorized(
                f"The token's key id {str(header.get('kid'))[:70]!r} is not in the issuer's JWKS.",
                remediation=_REMEDIATION,
            )
        return decode_es256(
            token,
            key,
            issuer=issuer,
            audience=AUDIENCE,
            key_name="the issuer's key",
            remediation=_REMEDIATION,
        )


def jwks_from_proxy_result(result: Mapping[str, Any]) -> Mapping[str, Any]:
    """The JWKS of the JWKS route's Lambda proxy answer."""
    if result.get("statusCode") != 200:
        raise Unauthorized(
            f"The approval-token issuer's JWKS route answered {result.get('statusCode')}.",
            remediation="Check the issuer's key setting (TASKRUNNER_APPROVAL_TOKENS__KEY).",
        )
    document = json.loads(str(result.get("body") or "{}"))
    return document if isinstance(document, Mapping) else {}
