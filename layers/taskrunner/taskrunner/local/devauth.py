"""Local development tokens: ES256 JWTs signed with a key under ``$TASKRUNNER_HOME/keys``.

The local HTTP server verifies these tokens the way the API Gateway JWT authorizer verifies real
ones (signature, ``exp``, ``iss``, ``aud``), so handlers see the same claims in both places.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from taskrunner.api.auth import TENANT_CLAIM, Unauthorized
from taskrunner.atomicfile import read_or_create
from taskrunner.errors import ConfigurationError, ValidationFailed
from taskrunner.keyfiles import taskrunner_home
from taskrunner.keys import TENANT_ID

ALGORITHM = "ES256"
DEFAULT_ISSUER = "taskrunner-local"
DEFAULT_AUDIENCE = "taskrunner"
DEFAULT_SUBJECT = "local-developer"
RESERVED_CLAIMS = frozenset({"iss", "aud", "exp", "iat", "nbf", "jti", "scope", TENANT_CLAIM})

_REMEDIATION = "Mint a new token with: taskrunner token --scopes packs.read --tenant <tenant>"
_lock = threading.Lock()
_keys: dict[Path, ec.EllipticCurvePrivateKey] = {}


def dev_key_path() -> Path:
    """``$TASKRUNNER_HOME/keys/jwt-dev.pem``."""
    return taskrunner_home() / "keys" / "jwt-dev.pem"


def _new_key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def signing_key() -> ec.EllipticCurvePrivateKey:
    """The local token signing key, created on first use."""
    path = dev_key_path().resolve()
    with _lock:
        cached = _keys.get(path)
        if cached is not None:
            return cached
        pem = read_or_create(path, _new_key_pem)  # a concurrent creator's key wins if it got there first
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ConfigurationError(
                f"{path} is not an EC P-256 private key.",
                remediation="Delete the file; a new development key is created on next use.",
            )
        _keys[path] = key
        return key


def public_key_pem() -> str:
    """PEM of the local verification key (for configuring other verifiers)."""
    return (
        signing_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def mint_token(
    scopes: Iterable[str],
    tenant: str,
    claims: Mapping[str, Any] | None = None,
    ttl_seconds: int = 3600,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
) -> str:
    """A signed development JWT with ``scope``, ``tenant_id``, ``sub`` and the extra ``claims``.

    ``claims`` may set ``sub`` and any custom claim (e.g. ``pack_run_id``) but not the registered
    or time claims, which come from the arguments. ``ttl_seconds`` may be negative (expired tokens).
    """
    TENANT_ID.check(tenant, "--tenant")  # exact: never trimmed
    extra = dict(claims or {})
    clashing = sorted(RESERVED_CLAIMS & extra.keys())
    if clashing:
        raise ValidationFailed(
            f"Claims {', '.join(clashing)} are set from the token options and cannot be overridden.",
            remediation="Use --scopes, --tenant and --ttl for these claims.",
        )
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": DEFAULT_SUBJECT,
        **extra,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl_seconds),
        "jti": uuid.uuid4().hex,
        TENANT_CLAIM: tenant,
        "scope": " ".join(dict.fromkeys(s.strip() for s in scopes if s.strip())),
    }
    return jwt.encode(payload, signing_key(), algorithm=ALGORITHM, headers={"typ": "JWT"})


def verify_token(
    token: str, *, issuer: str = DEFAULT_ISSUER, audience: str = DEFAULT_AUDIENCE
) -> dict[str, Any]:
    """The claims of a valid development token; ``Unauthorized`` saying exactly what is wrong."""
    es256_header(token, _REMEDIATION)
    return decode_es256(
        token,
        signing_key().public_key(),
        issuer=issuer,
        audience=audience,
        key_name="the local development key",
        remediation=_REMEDIATION,
    )


def es256_header(token: str, remediation: str) -> dict[str, Any]:
    """The unverified header of an ES256 JWT; ``Unauthorized`` for anything else (not a JWT, another ``alg``)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthorized("The token is malformed (not a JWT).", remediation=remediation) from None
    if header.get("alg") != ALGORITHM:
        raise Unauthorized(
            f"The token is signed with {header.get('alg')!r}; only {ALGORITHM} is accepted.",
            remediation=remediation,
        )
    return header


def decode_es256(
    token: str, key: Any, *, issuer: str, audience: str, key_name: str, remediation: str
) -> dict[str, Any]:
    """The claims of an ES256 JWT signed with ``key``, checked as API Gateway's JWT authorizer checks them
    (signature, ``iss``, ``aud``, ``exp``, ``nbf``); ``Unauthorized`` saying exactly what is wrong."""
    try:
        return dict(
            jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        )
    except jwt.ExpiredSignatureError:
        reason = "The token has expired."
    except jwt.InvalidSignatureError:
        reason = f"The token signature is not valid for {key_name}."
    except jwt.InvalidAudienceError:
        reason = f"The token audience is not '{audience}'."
    except jwt.InvalidIssuerError:
        reason = f"The token issuer is not '{issuer}'."
    except jwt.ImmatureSignatureError:
        reason = "The token is not valid yet (nbf/iat in the future)."
    except jwt.MissingRequiredClaimError as error:
        reason = f"The token has no '{error.claim}' claim."
    except jwt.PyJWTError as error:
        reason = f"The token is invalid: {error}."
    raise Unauthorized(reason, remediation=remediation)
