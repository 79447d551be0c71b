"""Approval tokens signed with an AWS KMS ``ECC_NIST_P256`` key (moto): ES256 from KMS's DER signatures, and
the JWKS built from kms:GetPublicKey verifies them (the setting the template gives the deployed functions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest
import test_kms_signer
from cryptography.hazmat.primitives.serialization import load_der_public_key
from taskrunner.api.http import new_app
from taskrunner.api.issuer import token_signer
from taskrunner.api.routes import issuer
from taskrunner.evidence.jws import jwk, sign_jwt
from taskrunner.evidence.signing import key_id
from test_kms_signer import ALIAS

REPO = Path(__file__).resolve().parents[2]
URI = f"awskms:///{ALIAS}"
aws, kms, sign_calls = test_kms_signer.aws, test_kms_signer.kms, test_kms_signer.sign_calls  # fixtures


@pytest.fixture
def kms_setting(kms: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TASKRUNNER_APPROVAL_TOKENS__KEY", URI)
    token_signer.cache_clear()
    yield kms
    token_signer.cache_clear()


def test_a_kms_signed_token_verifies_with_the_jwks_of_kms_get_public_key(
    kms_setting: Any, sign_calls: list[dict[str, Any]]
) -> None:
    event = json.loads((REPO / "events" / "approval_issuer-jwks.json").read_text(encoding="utf-8"))
    answer = new_app(issuer.router, issuer.discovery).resolve(event, None)  # type: ignore[arg-type]
    assert answer["statusCode"] == 200, answer
    [published] = json.loads(answer["body"])["keys"]
    public_key = load_der_public_key(kms_setting.get_public_key(KeyId=ALIAS)["PublicKey"])
    assert published["kid"] == key_id(public_key)
    assert sign_calls == []  # publishing the keys needs kms:GetPublicKey only

    claims = {
        "iss": "https://issuer.example.com",
        "aud": "taskrunner-approvals",
        "sub": "alice",
        "exp": 4102444800,
    }
    token = sign_jwt(token_signer(URI), claims)

    assert [c["SigningAlgorithm"] for c in sign_calls] == ["ECDSA_SHA_256"]
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "typ": "JWT", "kid": published["kid"]}
    assert len(jwt.api_jws.base64url_decode(token.rsplit(".", 1)[1])) == 64  # raw r || s, not DER
    decoded = jwt.decode(
        token, jwt.PyJWK(published).key, algorithms=["ES256"], audience="taskrunner-approvals"
    )
    assert decoded == claims
    assert jwk(token_signer(URI)) == published
