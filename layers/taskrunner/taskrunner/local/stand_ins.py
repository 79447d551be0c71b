"""The local stand-ins authorized as the AWS calls they replace.

Locally, files under ``TASKRUNNER_HOME/objects`` stand in for the artifacts bucket, an Ed25519 key file for
the KMS signing key and a key file for the redaction-key secret. :class:`StandInAuthorization` (installed
into :mod:`taskrunner.composition` by the local runtime) checks each use against the calling function's
role exactly as the call it replaces: ``s3:GetObject``/``s3:PutObject`` on ``arn:aws:s3:::<bucket>/<key>``,
``kms:GetPublicKey``/``kms:Sign`` on the signing key (and on the approval-token key), ``secretsmanager:GetSecretValue``
on the secret.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from botocore.exceptions import ClientError

from taskrunner.engine.ports import ArtifactStore, StoredObject
from taskrunner.errors import TaskRunnerError
from taskrunner.evidence.signing import EvidenceSigner
from taskrunner.local.authorization import Authorizer
from taskrunner.local.iam import Request


class StandInAuthorization:
    """A :class:`taskrunner.composition.StandInGuard` over the template's resources."""

    def __init__(
        self,
        authorizer: Authorizer,
        *,
        bucket: str | None,
        signing_key_arn: str | None,
        redaction_secret_arn: str | None,
        approval_token_key_arn: str | None = None,
    ) -> None:
        """``None``: the template has no such resource, and the stand-in is not checked."""
        self._authorizer = authorizer
        self._bucket = bucket
        self._signing_key_arn = signing_key_arn
        self._redaction_secret_arn = redaction_secret_arn
        self._approval_token_key_arn = approval_token_key_arn

    def artifacts(self, store: ArtifactStore) -> ArtifactStore:
        if self._bucket is None:
            return store
        return AuthorizedArtifactStore(store, self._authorizer, self._bucket)

    def signer(self, signer: EvidenceSigner) -> EvidenceSigner:
        return self._kms_key(signer, self._signing_key_arn)

    def approval_token_signer(self, signer: EvidenceSigner) -> EvidenceSigner:
        return self._kms_key(signer, self._approval_token_key_arn)

    def _kms_key(self, signer: EvidenceSigner, key_arn: str | None) -> EvidenceSigner:
        if key_arn is None:
            return signer
        self._authorizer.check(Request("kms:GetPublicKey", key_arn), "kms", "GetPublicKey")
        return AuthorizedSigner(signer, self._authorizer, key_arn)

    def redaction_key(self, load: Callable[[], bytes]) -> Callable[[], bytes]:
        secret = self._redaction_secret_arn
        if secret is None:
            return load

        def authorized() -> bytes:
            request = Request("secretsmanager:GetSecretValue", secret)
            self._authorizer.check(request, "secretsmanager", "GetSecretValue")
            return load()

        return authorized


class AuthorizedArtifactStore:
    """An artifact store whose reads and writes need s3:GetObject / s3:PutObject on the object."""

    def __init__(self, inner: ArtifactStore, authorizer: Authorizer, bucket: str) -> None:
        self._inner = inner
        self._authorizer = authorizer
        self._bucket = bucket

    def _check(self, action: str, key: str) -> None:
        request = Request(f"s3:{action}", f"arn:aws:s3:::{self._bucket}/{key}")
        self._authorizer.check(request, "s3", action)

    def put_stream(self, key: str, stream: BinaryIO, media_type: str) -> StoredObject:
        self._check("PutObject", key)
        return self._inner.put_stream(key, stream, media_type)

    def put_bytes(self, key: str, data: bytes, media_type: str) -> StoredObject:
        self._check("PutObject", key)
        return self._inner.put_bytes(key, data, media_type)

    def open(self, key: str) -> BinaryIO:
        self._check("GetObject", key)
        return self._inner.open(key)

    def presign(self, key: str, expires_seconds: int = 900) -> str:
        return self._inner.presign(key, expires_seconds)  # signing a URL calls nothing, as with S3

    def location(self, key: str) -> str:
        return self._inner.location(key)


class AuthorizedSigner:
    """An evidence signer whose signatures need kms:Sign on the signing key."""

    def __init__(self, inner: EvidenceSigner, authorizer: Authorizer, key_arn: str) -> None:
        self._inner = inner
        self._authorizer = authorizer
        self._key_arn = key_arn

    @property
    def keyid(self) -> str:
        return self._inner.keyid

    @property
    def public_key_pem(self) -> str:
        return self._inner.public_key_pem

    def sign(self, data: bytes) -> bytes:
        try:
            self._authorizer.check(Request("kms:Sign", self._key_arn), "kms", "Sign")
        except ClientError as exc:  # what the KMS signer reports for a failed kms:Sign
            raise TaskRunnerError(
                f"signing with KMS key {self._key_arn} failed: {exc}",
                code="SigningFailed",
                remediation="check that the key exists and that the caller may use it to sign",
            ) from exc
        return self._inner.sign(data)
