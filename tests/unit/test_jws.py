"""ES256 JWS over the evidence signers: raw r||s signatures, the JWK of the key, the P-256 key file."""

from __future__ import annotations

import os
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from taskrunner.errors import ConfigurationError
from taskrunner.evidence.jws import jwk, jwks, raw_signature, sign_jwt
from taskrunner.evidence.signing import (
    ensure_p256_keyfile,
    generate_ed25519_keyfile,
    p256_file_signer,
    signer_from_uri,
)


def test_a_der_signature_becomes_32_byte_r_and_s() -> None:
    assert raw_signature(encode_dss_signature(1, 2**255 + 7)) == (1).to_bytes(32, "big") + (
        2**255 + 7
    ).to_bytes(32, "big")


def test_the_key_file_is_created_once_0600_and_its_tokens_verify_with_its_jwk(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "approval-issuer.pem"
    signer = ensure_p256_keyfile(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert ensure_p256_keyfile(path).keyid == signer.keyid  # the same key on the next use
    assert signer_from_uri(path.as_uri(), file=p256_file_signer).keyid == signer.keyid

    token = sign_jwt(signer, {"sub": "alice", "aud": "taskrunner-approvals"})

    assert jwks(signer) == {"keys": [jwk(signer)]}
    key = jwt.PyJWK(jwk(signer)).key
    assert jwt.decode(token, key, algorithms=["ES256"], audience="taskrunner-approvals") == {
        "sub": "alice",
        "aud": "taskrunner-approvals",
    }
    assert jwt.get_unverified_header(token)["kid"] == signer.keyid
    other = jwt.PyJWK(jwk(ensure_p256_keyfile(tmp_path / "other.pem"))).key
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other, algorithms=["ES256"], audience="taskrunner-approvals")


def test_an_ed25519_or_other_curve_key_is_refused_for_es256(tmp_path: Path) -> None:
    ed = generate_ed25519_keyfile(tmp_path / "ed.pem")
    with pytest.raises(ConfigurationError, match="not an EC P-256 key"):
        sign_jwt(ed, {"sub": "alice"})
    with pytest.raises(ConfigurationError, match="not an EC P-256 key"):
        p256_file_signer(tmp_path / "ed.pem")
    p384 = tmp_path / "p384.pem"
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    p384.write_bytes(
        ec.generate_private_key(ec.SECP384R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    os.chmod(p384, 0o600)
    with pytest.raises(ConfigurationError, match="not an EC P-256 key"):
        p256_file_signer(p384)
