"""A run sealed with the template's KMS signing key (``awskms:///alias/...``, ECDSA P-256) under moto.

The local runtime normally signs with an Ed25519 key file; here that override is dropped, so the functions
get ``TASKRUNNER_SIGNING__KEY`` from template.yaml exactly as in AWS: the SigningKeyAlias of the SigningKey
that LocalAws provisions in moto. moto 5.2.5 hashes a ``MessageType=DIGEST`` message again before signing
(pinned in test_kms_signer.py), so ``KmsResponse.sign`` is made to sign digests as AWS KMS does.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from conftest import PACKS, submit
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key
from moto.kms.responses import KmsResponse
from support.clock import fast_clock
from taskrunner.cli.app import app as cli
from taskrunner.evidence.signing import public_pem
from taskrunner.evidence.verify import verify_bundle
from taskrunner.keys import evidence_key
from taskrunner.local import aws as local_aws
from taskrunner.local.runtime import LocalRuntime
from typer.testing import CliRunner

ALIAS = f"alias/{local_aws.DEFAULT_STACK_NAME}-evidence-signing"  # template: alias/${AWS::StackName}-evidence-signing


class KmsRuntime:
    def __init__(self, rt: LocalRuntime, sign_calls: list[dict[str, Any]]) -> None:
        self.rt = rt
        self.sign_calls = sign_calls

    def public_key_der(self) -> bytes:
        assert self.rt.aws is not None
        der: bytes = self.rt.aws.client("kms").get_public_key(KeyId=ALIAS)["PublicKey"]
        return der


@pytest.fixture(scope="module")
def kms_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsRuntime]:
    home = tmp_path_factory.mktemp("kms-runtime-home")
    calls: list[dict[str, Any]] = []
    original = KmsResponse.sign

    def sign(self: KmsResponse) -> str:
        request = {name: self._get_param(name) for name in ("KeyId", "MessageType", "SigningAlgorithm")}
        calls.append(request)
        if request["MessageType"] != "DIGEST":
            return str(original(self))
        key = self.kms_backend.describe_key(request["KeyId"])
        digest = self._get_param("Message")
        assert isinstance(digest, bytes)
        assert len(digest) == 32
        signature = key.private_key.private_key.sign(  # type: ignore[attr-defined]  # moto ECDSAPrivateKey
            digest, ec.ECDSA(Prehashed(hashes.SHA256()))
        )
        return json.dumps(
            {
                "KeyId": key.arn,
                "Signature": base64.b64encode(signature).decode(),
                "SigningAlgorithm": request["SigningAlgorithm"],
            }
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TASKRUNNER_HOME", str(home))
        patch.delitem(local_aws.LOCAL_RUNTIME_DEFAULTS, "TASKRUNNER_SIGNING__KEY")
        patch.setattr(KmsResponse, "sign", sign)
        with fast_clock(0.01), LocalRuntime(home) as rt:
            yield KmsRuntime(rt, calls)


def test_run_sealed_with_kms_verifies_with_the_kms_public_key(
    kms_runtime: KmsRuntime, tmp_path: Path
) -> None:
    rt = kms_runtime.rt
    assert rt.aws is not None
    assert rt.aws.environment["TASKRUNNER_SIGNING__KEY"] == f"awskms:///{ALIAS}"
    before = len(kms_runtime.sign_calls)

    run = rt.wait(submit(rt, PACKS / "hello.yaml", {"who": "kms"}).runId, timeout=60)
    assert run.status == "succeeded"

    calls = kms_runtime.sign_calls[before:]
    assert calls == [{"KeyId": ALIAS, "MessageType": "DIGEST", "SigningAlgorithm": "ECDSA_SHA_256"}] * 2
    assert not (rt.home / "keys" / "signing.pem").exists()  # no local key file was created or used

    with rt.svc.artifacts.open(evidence_key(run.runId)) as stream:
        sealed = stream.read()
    assert hashlib.sha256(sealed).hexdigest() == run.evidence["sha256"]
    bundle = tmp_path / "bundle.tar.gz"
    bundle.write_bytes(sealed)

    der = kms_runtime.public_key_der()
    kms_pem = public_pem(load_der_public_key(der))
    report = verify_bundle(bundle, [kms_pem], require_dsse=True)
    assert (report.ok, report.failures) == (True, [])
    assert report.summary["signedBy"] == {
        "manifest.dsse.json": [hashlib.sha256(der).hexdigest()],
        "attestation.dsse.json": [hashlib.sha256(der).hexdigest()],
    }
    assert report.summary["outcome"] == "succeeded"

    other = ed25519.Ed25519PrivateKey.generate().public_key()
    refused = verify_bundle(bundle, [public_pem(other)], require_dsse=True)
    assert not refused.ok
    assert any(f.startswith("attestation.dsse.json") for f in refused.failures)

    # ECDSA signatures differ per signing: only exporting the sealed bundle reproduces its bytes
    out = tmp_path / "export.tar.gz"
    result = CliRunner().invoke(cli, ["runs", "export", run.runId, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == sealed
    assert len(kms_runtime.sign_calls) == before + 2

    # without the sealed bundle, the export is rebuilt and signed again by KMS, and still verifies
    stored = Path(unquote(urlparse(run.evidence["location"]).path))
    stored.unlink()
    try:
        result = CliRunner().invoke(cli, ["runs", "export", run.runId, "-o", str(out)])
        assert result.exit_code == 0, result.output
    finally:
        stored.write_bytes(sealed)
    assert len(kms_runtime.sign_calls) == before + 4
    rebuilt = verify_bundle(out, [kms_pem], require_dsse=True)
    assert (rebuilt.ok, rebuilt.failures) == (True, [])
    assert rebuilt.summary["runId"] == run.runId


def test_kms_public_key_is_ecdsa_p256(kms_runtime: KmsRuntime) -> None:
    key = load_der_public_key(kms_runtime.public_key_der())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == kms_runtime.public_key_der()
