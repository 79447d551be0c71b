"""ES256 JSON Web Signatures over an :class:`~taskrunner.evidence.signing.EvidenceSigner`, and its JWKS.

The signer is an EC P-256 key (a PEM file or AWS KMS ``ECC_NIST_P256``); both return DER ECDSA signatures,
which JWS encodes as raw ``r || s`` (RFC 7518 section 3.4). The key id (``kid``) is the signer's key id.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from taskrunner.errors import ConfigurationError
from taskrunner.evidence.signing import EvidenceSigner

ALGORITHM = "ES256"
_COORDINATE_BYTES = 32


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _p256_public_key(signer: EvidenceSigner) -> ec.EllipticCurvePublicKey:
    key = load_pem_public_key(signer.public_key_pem.encode("ascii"))
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigurationError(
            f"the token signing key {signer.keyid[:16]} is not an EC P-256 key; ES256 needs one",
            remediation="use an ECC_NIST_P256 SIGN_VERIFY KMS key or an EC P-256 PEM key file",
        )
    return key


def raw_signature(der: bytes) -> bytes:
    """A DER ECDSA signature as JWS wants it: ``r || s``, 32 bytes each."""
    r, s = decode_dss_signature(der)
    return r.to_bytes(_COORDINATE_BYTES, "big") + s.to_bytes(_COORDINATE_BYTES, "big")


def sign_jwt(signer: EvidenceSigner, claims: Mapping[str, Any]) -> str:
    """A compact ES256 JWS of ``claims`` with header ``{"alg": "ES256", "typ": "JWT", "kid": <key id>}``."""
    _p256_public_key(signer)
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": signer.keyid}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        for part in (header, dict(claims))
    )
    signature = raw_signature(signer.sign(signing_input.encode("ascii")))
    return f"{signing_input}.{b64url(signature)}"


def jwk(signer: EvidenceSigner) -> dict[str, str]:
    """The public JWK of ``signer`` (``kid`` = its key id)."""
    numbers = _p256_public_key(signer).public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(_COORDINATE_BYTES, "big")),
        "y": b64url(numbers.y.to_bytes(_COORDINATE_BYTES, "big")),
        "kid": signer.keyid,
        "use": "sig",
        "alg": ALGORITHM,
    }


def jwks(signer: EvidenceSigner) -> dict[str, list[dict[str, str]]]:
    """The JSON Web Key Set publishing ``signer``'s public key."""
    return {"keys": [jwk(signer)]}
