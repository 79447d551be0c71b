"""The AWS KMS evidence signer (ECC_NIST_P256, SHA-256 digest signing) against moto's KMS.

moto 5.2.5 ignores ``MessageType=DIGEST``: it hashes the 32-byte digest again and signs that, so a
digest signature from moto does not verify the way one from AWS does. The ``kms`` fixture makes moto
sign digests as AWS does (and records every Sign call); ``test_moto_behaviour_digest_is_hashed_again``
pins the gap so a moto upgrade that fixes it fails loudly and the patch can go.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import load_der_public_key
from moto import mock_aws
from moto.kms.responses import KmsResponse
from taskrunner.cli.keys import app as keys_app
from taskrunner.errors import ConfigurationError, TaskRunnerError
from taskrunner.evidence.approvals import ApprovalDecision
from taskrunner.evidence.attestation import StepSummary
from taskrunner.evidence.bundle import ArtifactSource, BundleInput, write_bundle
from taskrunner.evidence.dsse import sign_envelope, verify_envelope
from taskrunner.evidence.signing import kms_signer, load_trusted_key, public_pem, signer_from_uri
from taskrunner.evidence.verify import verify_bundle
from taskrunner.plan.document import Plan
from taskrunner.plan.hashing import plan_hash
from typer.testing import CliRunner

ALIAS = "alias/taskrunner-evidence"
_PREHASH = {"ECDSA_SHA_256": hashes.SHA256(), "ECDSA_SHA_384": hashes.SHA384()}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("kms")


@pytest.fixture
def sign_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Make moto sign ``MessageType=DIGEST`` requests as AWS KMS does; record every Sign request."""
    calls: list[dict[str, Any]] = []
    original = KmsResponse.sign

    def sign(self: KmsResponse) -> str:
        request = {
            name: self._get_param(name) for name in ("KeyId", "Message", "MessageType", "SigningAlgorithm")
        }
        calls.append(request)
        if request["MessageType"] != "DIGEST":
            return str(original(self))
        key = self.kms_backend.describe_key(request["KeyId"])
        algorithm = request["SigningAlgorithm"]
        signature = key.private_key.private_key.sign(  # type: ignore[attr-defined]  # moto ECDSAPrivateKey
            request["Message"], ec.ECDSA(Prehashed(_PREHASH[algorithm]))
        )
        return json.dumps(
            {
                "KeyId": key.arn,
                "Signature": base64.b64encode(signature).decode(),
                "SigningAlgorithm": algorithm,
            }
        )

    monkeypatch.setattr(KmsResponse, "sign", sign)
    return calls


@pytest.fixture
def kms(aws: Any, sign_calls: list[dict[str, Any]]) -> Any:
    key_id = aws.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    aws.create_alias(AliasName=ALIAS, TargetKeyId=key_id)
    return aws


def kms_public_pem(client: Any, key: str = ALIAS) -> str:
    return public_pem(load_der_public_key(client.get_public_key(KeyId=key)["PublicKey"]))


def test_kms_signer_signs_the_sha256_digest_with_ecdsa(kms: Any, sign_calls: list[dict[str, Any]]) -> None:
    signer = signer_from_uri(f"awskms:///{ALIAS}")
    data = b"pae bytes " * 1000  # larger than KMS's 4 KiB RAW message limit
    signature = signer.sign(data)
    assert sign_calls == [
        {
            "KeyId": ALIAS,
            "Message": hashlib.sha256(data).digest(),
            "MessageType": "DIGEST",
            "SigningAlgorithm": "ECDSA_SHA_256",
        }
    ]
    trusted = load_trusted_key(signer.public_key_pem)
    assert trusted.algorithm == "ecdsa-p256"
    assert trusted.verify(signature, data)
    assert not trusted.verify(signature, data + b"!")


def test_public_key_and_keyid_come_from_kms(kms: Any) -> None:
    signer = signer_from_uri(f"awskms:///{ALIAS}")
    der = kms.get_public_key(KeyId=ALIAS)["PublicKey"]
    assert signer.public_key_pem == kms_public_pem(kms)
    assert signer.keyid == hashlib.sha256(der).hexdigest()


def test_key_id_arn_and_two_slash_uris_name_the_same_key(kms: Any) -> None:
    metadata = kms.describe_key(KeyId=ALIAS)["KeyMetadata"]
    expected = signer_from_uri(f"awskms:///{ALIAS}").keyid
    for uri in (f"awskms://{ALIAS}", f"awskms:///{metadata['KeyId']}", f"awskms:///{metadata['Arn']}"):
        assert signer_from_uri(uri).keyid == expected


def test_kms_signed_envelope_verifies_against_the_exported_public_key(kms: Any) -> None:
    signer = signer_from_uri(f"awskms:///{ALIAS}")
    payload = json.dumps({"big": "x" * 8000}).encode()
    envelope = sign_envelope(payload, "application/vnd.example+json", [signer])
    trusted = [load_trusted_key(kms_public_pem(kms))]
    assert verify_envelope(envelope, trusted, "application/vnd.example+json") == payload


def test_kms_signed_bundle_verifies(kms: Any, tmp_path: Path) -> None:
    signer = signer_from_uri(f"awskms:///{ALIAS}")
    plan = Plan.model_validate(
        {
            "pack": {"name": "hello", "version": "1.0.0", "digest": "sha256:" + "c" * 64},
            "inputs": {},
            "sandbox": {"mode": "sealed", "egressAllowlist": []},
            "steps": [{"kind": "gate.approval", "id": "review", "approval": "ok", "expiresAfterSeconds": 60}],
        }
    )
    stamp = "2026-05-06T07:08:09.000Z"
    decision = ApprovalDecision("run-k", "review", plan_hash(plan), "t", "approve", "", "ops", stamp)
    spec = BundleInput(
        run_id="run-k",
        tenant_id="t",
        environment="aws:eu-west-1",
        plan=plan,
        plan_hash=plan_hash(plan),
        inputs_lock={"inputs": {}},
        outcome="succeeded",
        requested_at=stamp,
        started_at=stamp,
        completed_at=stamp,
        created=stamp,
        steps=[StepSummary("review", "approved", 1)],
        signers=[signer],
        artifacts=[ArtifactSource("report.txt", io.BytesIO(b"all good\n"))],
        approvals=[decision],
    )
    bundle = tmp_path / "bundle.tar.gz"
    with bundle.open("wb") as out:
        write_bundle(spec, out)
    report = verify_bundle(bundle, [kms_public_pem(kms)], require_dsse=True)
    assert (report.ok, report.failures) == (True, [])
    assert set(report.summary["signedBy"]) == {
        "manifest.dsse.json",
        "attestation.dsse.json",
        "approvals/ledger.jsonl line 1",
    }


@pytest.mark.parametrize(
    ("spec", "usage", "message"),
    [
        ("ECC_NIST_P384", "SIGN_VERIFY", "cannot use KMS key"),
        ("ECC_SECG_P256K1", "SIGN_VERIFY", "is not an ECC_NIST_P256 key"),
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "cannot use KMS key"),
    ],
)
def test_only_p256_signing_keys_are_accepted(aws: Any, spec: str, usage: str, message: str) -> None:
    key_id = aws.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]
    with pytest.raises(ConfigurationError, match=message) as info:
        kms_signer(key_id)
    assert "ECC_NIST_P256" in (info.value.remediation + info.value.message)


def test_a_missing_alias_is_a_configuration_error(aws: Any) -> None:
    with pytest.raises(ConfigurationError, match="cannot use KMS key 'alias/nope'") as info:
        signer_from_uri("awskms:///alias/nope")
    assert "kms:GetPublicKey" in info.value.remediation


def test_a_signing_failure_is_reported_without_a_traceback(kms: Any) -> None:
    signer = signer_from_uri(f"awskms:///{ALIAS}")
    kms.delete_alias(AliasName=ALIAS)
    with pytest.raises(
        TaskRunnerError, match="signing with KMS key alias/taskrunner-evidence failed"
    ) as info:
        signer.sign(b"x")
    assert info.value.code == "SigningFailed"


def test_export_public_prints_the_kms_public_key(kms: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    result = runner.invoke(keys_app, ["export-public", "--key", f"awskms:///{ALIAS}"])
    assert result.exit_code == 0, result.output
    assert result.stdout == kms_public_pem(kms)
    monkeypatch.setenv("TASKRUNNER_SIGNING__KEY", f"awskms:///{ALIAS}")
    assert runner.invoke(keys_app, ["export-public"]).stdout == kms_public_pem(kms)


def test_moto_behaviour_digest_is_hashed_again(aws: Any) -> None:
    key_id = aws.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    public_key = load_der_public_key(aws.get_public_key(KeyId=key_id)["PublicKey"])
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    digest = hashlib.sha256(b"message").digest()
    signature = aws.sign(
        KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"
    )["Signature"]
    public_key.verify(signature, digest, ec.ECDSA(hashes.SHA256()))  # moto: sha256(digest) was signed
