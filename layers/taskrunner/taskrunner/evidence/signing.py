"""Evidence signers and trusted public keys.

Signers: Ed25519 PEM key files (``file:///path``, the local default) and AWS KMS ``ECC_NIST_P256``
keys (``awskms:///alias/name``; the SHA-256 digest is sent with ``MessageType=DIGEST``). Both wrap
``securesystemslib`` signers. Verification accepts Ed25519 and ECDSA P-256 public keys (PEM).

A key id is the hex SHA-256 of the DER SubjectPublicKeyInfo: anyone holding the PEM can compute it.
It only labels signatures; no decision is ever based on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import AWSSigner, CryptoSigner, Signature, Signer, SSlibKey

from taskrunner.atomicfile import create_once, read_or_create, write_atomic
from taskrunner.errors import ConfigurationError, Conflict, TaskRunnerError
from taskrunner.keyfiles import taskrunner_home
from taskrunner.pack.limits import MAX_KEY_FILE_BYTES, read_at_most

KMS_SCHEME = "ecdsa-sha2-nistp256"
_URI_HELP = "use file:///absolute/path/to/key.pem or awskms:///alias/name"


@runtime_checkable
class EvidenceSigner(Protocol):
    """Signs bytes; exposes the key id and the PEM public key verifiers need."""

    @property
    def keyid(self) -> str: ...

    @property
    def public_key_pem(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


class SslibEvidenceSigner:
    """An :class:`EvidenceSigner` backed by a ``securesystemslib`` signer."""

    def __init__(self, signer: Signer, public_key_pem: str, description: str) -> None:
        self._signer = signer
        self._public_key_pem = public_key_pem
        self.description = description

    @property
    def keyid(self) -> str:
        return self._signer.public_key.keyid

    @property
    def public_key_pem(self) -> str:
        return self._public_key_pem

    def sign(self, data: bytes) -> bytes:
        try:
            return bytes.fromhex(self._signer.sign(data).signature)
        except TaskRunnerError:
            raise
        except Exception as exc:  # KMS/network errors surface as botocore exceptions
            raise TaskRunnerError(
                f"signing with {self.description} failed: {exc}",
                code="SigningFailed",
                remediation="check that the key exists and that the caller may use it to sign",
            ) from exc

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description} keyid={self.keyid[:16]}>"


def public_pem(key: PublicKeyTypes) -> str:
    """PEM SubjectPublicKeyInfo of ``key``."""
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def key_id(key: PublicKeyTypes) -> str:
    """Hex SHA-256 of the DER SubjectPublicKeyInfo of ``key``."""
    return hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def file_signer(path: Path) -> SslibEvidenceSigner:
    """Signer for an unencrypted PKCS#8 Ed25519 PEM private key file."""
    private_key = _private_key_file(path)
    if not isinstance(private_key, ed25519.Ed25519PrivateKey):
        raise ConfigurationError(
            f"signing key file {path} holds a {type(private_key).__name__}, not an Ed25519 key",
            remediation="generate an Ed25519 key with 'taskrunner keys generate'",
        )
    return _crypto_signer(private_key, path)


def p256_file_signer(path: Path) -> SslibEvidenceSigner:
    """Signer for an unencrypted PKCS#8 ECDSA P-256 PEM private key file (DER signatures)."""
    private_key = _private_key_file(path)
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
        private_key.curve, ec.SECP256R1
    ):
        raise ConfigurationError(
            f"key file {path} holds a {type(private_key).__name__}, not an EC P-256 key",
            remediation="use an EC P-256 PEM private key (a missing file is created with a new key)",
        )
    return _crypto_signer(private_key, path)


def _crypto_signer(
    private_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey, path: Path
) -> SslibEvidenceSigner:
    public_key = private_key.public_key()
    signer = CryptoSigner(private_key, SSlibKey.from_crypto(public_key, key_id(public_key)))
    return SslibEvidenceSigner(signer, public_pem(public_key), f"key file {path}")


def _private_key_file(path: Path) -> PrivateKeyTypes:
    try:
        data = read_at_most(path, MAX_KEY_FILE_BYTES)
    except FileNotFoundError:
        raise ConfigurationError(
            f"signing key file {path} does not exist",
            remediation="create one with 'taskrunner keys generate' or point TASKRUNNER_SIGNING__KEY at it",
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read signing key file {path}: {exc.strerror}") from exc
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigurationError(
            f"signing key file {path} is larger than any key file ({MAX_KEY_FILE_BYTES:,} bytes)",
            remediation="generate a key with 'taskrunner keys generate'",
        )
    try:
        private_key = load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigurationError(
            f"signing key file {path} is encrypted",
            remediation="TaskRunner key files are unencrypted PKCS#8 PEM protected by file permissions (0600)",
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigurationError(
            f"signing key file {path} is not a PEM private key: {exc}",
            remediation="generate a key with 'taskrunner keys generate'",
        ) from exc
    return private_key


def kms_signer(kms_key_id: str) -> SslibEvidenceSigner:
    """Signer for an AWS KMS ``ECC_NIST_P256`` key (key id, ARN, alias name or alias ARN)."""
    try:
        _, imported = AWSSigner.import_(kms_key_id, KMS_SCHEME)
        public_key = load_pem_public_key(imported.keyval["public"].encode("ascii"))
    except Exception as exc:  # botocore errors, unsupported key specs
        raise ConfigurationError(
            f"cannot use KMS key {kms_key_id!r} for signing: {exc}",
            remediation="the key must exist, be an ECC_NIST_P256 SIGN_VERIFY key, and the caller needs "
            "kms:GetPublicKey and kms:Sign on it",
        ) from exc
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise ConfigurationError(
            f"KMS key {kms_key_id!r} is not an ECC_NIST_P256 key",
            remediation="create the signing key with KeySpec=ECC_NIST_P256, KeyUsage=SIGN_VERIFY",
        )
    sslib_key = SSlibKey(key_id(public_key), imported.keytype, imported.scheme, dict(imported.keyval))
    return SslibEvidenceSigner(
        AWSSigner(kms_key_id, sslib_key), public_pem(public_key), f"KMS key {kms_key_id}"
    )


def signer_from_uri(
    uri: str, file: Callable[[Path], SslibEvidenceSigner] | None = None
) -> SslibEvidenceSigner:
    """The signer a key URI names: ``file:///path`` (read by ``file``, default :func:`file_signer`) or
    ``awskms:///alias/name``."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ConfigurationError(
                f"signing key URI {uri!r} names a host ({parsed.netloc!r})", remediation=_URI_HELP
            )
        if not parsed.path:
            raise ConfigurationError(f"signing key URI {uri!r} has no path", remediation=_URI_HELP)
        return (file or file_signer)(Path(unquote(parsed.path)))
    if parsed.scheme == "awskms":
        kms_key_id = unquote(parsed.netloc + parsed.path).lstrip("/")
        if not kms_key_id:
            raise ConfigurationError(f"signing key URI {uri!r} names no KMS key", remediation=_URI_HELP)
        return kms_signer(kms_key_id)
    raise ConfigurationError(f"unsupported signing key URI {uri!r}", remediation=_URI_HELP)


def default_key_path() -> Path:
    """``$TASKRUNNER_HOME/keys/signing.pem``."""
    return taskrunner_home() / "keys" / "signing.pem"


def ensure_p256_keyfile(path: Path) -> SslibEvidenceSigner:
    """The signer of the EC P-256 key at ``path``, created on first use (mode 0600); concurrent first users
    share one key."""
    read_or_create(path, _new_p256_pem)
    return p256_file_signer(path)


def _new_p256_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )


def _new_ed25519_pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )


def generate_ed25519_keyfile(path: Path, *, overwrite: bool = False) -> SslibEvidenceSigner:
    """Create a new Ed25519 key at ``path`` (PKCS#8 PEM, mode 0600) and return its signer.

    Refuses to replace an existing key unless ``overwrite``: signatures made with it would no longer
    verify against the published public key.
    """
    exists = Conflict(
        f"signing key file {path} already exists",
        remediation="keep it, choose another --out path, or pass --force to replace it",
    )
    if path.exists() and not overwrite:
        raise exists
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if overwrite:
        write_atomic(path, _new_ed25519_pem())
    elif not create_once(path, _new_ed25519_pem()):
        raise exists
    return file_signer(path)


def ensure_ed25519_keyfile(path: Path) -> SslibEvidenceSigner:
    """The signer of the Ed25519 key at ``path``, created on first use; concurrent first users share one key."""
    read_or_create(path, _new_ed25519_pem)
    return file_signer(path)


@dataclass(frozen=True)
class TrustedKey:
    """A public key signatures are verified against (Ed25519 or ECDSA P-256)."""

    keyid: str
    algorithm: str
    pem: str
    _key: SSlibKey = field(repr=False, compare=False)

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when ``signature`` over ``message`` verifies with this key.

        ECDSA signatures are DER (as KMS returns them) or raw ``r || s`` (IEEE P1363).
        """
        for candidate in self._encodings(signature):
            try:
                self._key.verify_signature(Signature(self.keyid, candidate.hex()), message)
            except UnverifiedSignatureError:
                continue
            return True
        return False

    def _encodings(self, signature: bytes) -> list[bytes]:
        if self.algorithm == "ecdsa-p256" and len(signature) == 64:
            raw = encode_dss_signature(int.from_bytes(signature[:32]), int.from_bytes(signature[32:]))
            return [signature, raw]
        return [signature]


def load_trusted_key(pem: bytes | str, source: str = "trusted key") -> TrustedKey:
    """Parse one PEM public key; ``source`` names it in errors."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    if b"PRIVATE KEY-----" in data:
        raise ConfigurationError(
            f"{source} is a private key",
            remediation="pass the public key only: 'taskrunner keys export-public > signing.pub.pem'",
        )
    try:
        key = load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigurationError(
            f"{source} is not a PEM public key: {exc}",
            remediation="export it with 'taskrunner keys export-public'",
        ) from exc
    if isinstance(key, ed25519.Ed25519PublicKey):
        algorithm = "ed25519"
    elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        algorithm = "ecdsa-p256"
    else:
        raise ConfigurationError(
            f"{source} is a {type(key).__name__}; only Ed25519 and ECDSA P-256 keys are supported"
        )
    keyid = key_id(key)
    return TrustedKey(keyid, algorithm, public_pem(key), SSlibKey.from_crypto(key, keyid))


def load_trusted_keys(pems: Iterable[bytes | str]) -> list[TrustedKey]:
    """Parse PEM public keys, dropping duplicates (the same key listed twice counts once)."""
    keys: dict[str, TrustedKey] = {}
    for index, pem in enumerate(pems, start=1):
        key = load_trusted_key(pem, f"trusted key #{index}")
        keys.setdefault(key.keyid, key)
    return list(keys.values())
