"""DSSE v1: PAE, the spec's test vector, signing, and verification rules (keyid never trusted)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from taskrunner.errors import ConfigurationError, Conflict
from taskrunner.evidence.dsse import (
    DsseError,
    b64decode,
    pae,
    sign_envelope,
    verify_envelope,
    verify_envelope_detailed,
)
from taskrunner.evidence.signing import (
    file_signer,
    generate_ed25519_keyfile,
    key_id,
    load_trusted_key,
    load_trusted_keys,
    public_pem,
    signer_from_uri,
)

TYPE = "application/vnd.example+json"

# protocol.md "Test Vectors" (DSSE v1.0.0): ECDSA P-256 / SHA-256, deterministic (RFC 6979), raw r||s.
SPEC_TYPE = "http://example.com/HelloWorld"
SPEC_BODY = b"hello world"
SPEC_PAE = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
SPEC_X = 46950820868899156662930047687818585632848591499744589407958293238635476079160
SPEC_Y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
SPEC_D = 97358161215184420915383655311931858321456579547487070936769975997791359926199
SPEC_SIG = "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="
SPEC_ENVELOPE: dict[str, Any] = {
    "payload": "aGVsbG8gd29ybGQ=",
    "payloadType": "http://example.com/HelloWorld",
    "signatures": [{"sig": SPEC_SIG}],
}


class Rfc6979Signer:
    """ECDSA P-256 signer with deterministic nonces and raw r||s output, as the spec vector uses."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self._key = private_key

    @property
    def keyid(self) -> str:
        return key_id(self._key.public_key())

    @property
    def public_key_pem(self) -> str:
        return public_pem(self._key.public_key())

    def sign(self, data: bytes) -> bytes:
        der = self._key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def spec_public_pem() -> str:
    return public_pem(ec.EllipticCurvePublicNumbers(SPEC_X, SPEC_Y, ec.SECP256R1()).public_key())


@pytest.fixture
def signer(tmp_path: Path) -> Any:
    return generate_ed25519_keyfile(tmp_path / "a.pem")


@pytest.fixture
def other(tmp_path: Path) -> Any:
    return generate_ed25519_keyfile(tmp_path / "b.pem")


def b64(data: bytes) -> str:
    return base64.standard_b64encode(data).decode()


# --- PAE and the spec test vector ---------------------------------------------------------------


def test_pae_matches_the_spec_test_vector() -> None:
    assert pae(SPEC_TYPE, SPEC_BODY) == SPEC_PAE


def test_spec_test_vector_envelope_verifies_against_its_public_key() -> None:
    trusted = load_trusted_keys([spec_public_pem()])
    assert verify_envelope(SPEC_ENVELOPE, trusted, SPEC_TYPE) == SPEC_BODY


def test_signing_with_the_spec_key_reproduces_the_spec_signature() -> None:
    private_key = ec.derive_private_key(SPEC_D, ec.SECP256R1())
    envelope = sign_envelope(SPEC_BODY, SPEC_TYPE, [Rfc6979Signer(private_key)])
    assert envelope["payload"] == SPEC_ENVELOPE["payload"]
    assert [s["sig"] for s in envelope["signatures"]] == [SPEC_SIG]


def test_spec_vector_rejected_when_the_body_changes() -> None:
    tampered = {**SPEC_ENVELOPE, "payload": b64(b"hello world!")}
    with pytest.raises(DsseError, match="no signature verifies"):
        verify_envelope(tampered, load_trusted_keys([spec_public_pem()]), SPEC_TYPE)


@pytest.mark.parametrize(
    ("payload_type", "body", "expected"),
    [
        ("application/vnd.exämple+json", b"{}", "DSSEv1 29 application/vnd.exämple+json 2 {}".encode()),
        (TYPE, b"", b"DSSEv1 28 application/vnd.example+json 0 "),
        ("", b"x", b"DSSEv1 0  1 x"),
        (TYPE, b"\x00\xff", b"DSSEv1 28 application/vnd.example+json 2 \x00\xff"),
    ],
)
def test_pae_counts_utf8_bytes_and_keeps_empty_fields(
    payload_type: str, body: bytes, expected: bytes
) -> None:
    assert pae(payload_type, body) == expected


# --- base64 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+/+/Pj8=", b"\xfb\xff\xbf>?"),  # standard alphabet
        ("-_-_Pj8=", b"\xfb\xff\xbf>?"),  # URL-safe alphabet
        ("-_-_Pj8", b"\xfb\xff\xbf>?"),  # URL-safe, unpadded
        ("aGk", b"hi"),  # standard, unpadded
        ("", b""),
    ],
)
def test_b64decode_accepts_standard_and_url_safe_with_or_without_padding(text: str, expected: bytes) -> None:
    assert b64decode(text) == expected


@pytest.mark.parametrize("text", ["+_==", "aGk=x", "a", "aGk==", "aG k=", "aGk*"])
def test_b64decode_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError, match=r"alphabet|padding"):
        b64decode(text)


def test_url_safe_unpadded_envelope_verifies(signer: Any) -> None:
    body = b"\xfb\xff\xbf>?" * 7
    envelope = sign_envelope(body, TYPE, [signer])
    envelope["payload"] = base64.urlsafe_b64encode(body).decode().rstrip("=")
    envelope["signatures"][0]["sig"] = (
        base64.urlsafe_b64encode(base64.b64decode(envelope["signatures"][0]["sig"])).decode().rstrip("=")
    )
    assert "-" in envelope["payload"] or "_" in envelope["payload"]
    assert verify_envelope(envelope, load_trusted_keys([signer.public_key_pem]), TYPE) == body


# --- signing and verification -------------------------------------------------------------------


def test_sign_then_verify_returns_exactly_the_payload(signer: Any) -> None:
    envelope = sign_envelope(b'{"a":1}', TYPE, [signer])
    assert envelope["payloadType"] == TYPE
    assert envelope["signatures"][0]["keyid"] == signer.keyid
    assert base64.b64decode(envelope["payload"]) == b'{"a":1}'
    verified = verify_envelope_detailed(
        json.dumps(envelope), load_trusted_keys([signer.public_key_pem]), TYPE
    )
    assert (verified.payload, verified.keyids) == (b'{"a":1}', (signer.keyid,))


def test_ed25519_signatures_are_deterministic(signer: Any) -> None:
    assert sign_envelope(b"x", TYPE, [signer]) == sign_envelope(b"x", TYPE, [signer])


def test_keyid_is_ignored_a_wrong_hint_still_verifies(signer: Any) -> None:
    envelope = sign_envelope(b"x", TYPE, [signer])
    envelope["signatures"][0]["keyid"] = "not-the-key"
    assert verify_envelope(envelope, load_trusted_keys([signer.public_key_pem]), TYPE) == b"x"
    del envelope["signatures"][0]["keyid"]
    assert verify_envelope(envelope, load_trusted_keys([signer.public_key_pem]), TYPE) == b"x"


def test_keyid_of_a_trusted_key_does_not_make_an_untrusted_signature_valid(signer: Any, other: Any) -> None:
    envelope = sign_envelope(b"x", TYPE, [other])
    envelope["signatures"][0]["keyid"] = signer.keyid
    with pytest.raises(
        DsseError, match=r"no signature verifies against the trusted keys \(1 signature\(s\), 1"
    ):
        verify_envelope(envelope, load_trusted_keys([signer.public_key_pem]), TYPE)


def test_unknown_signature_and_envelope_fields_are_ignored(signer: Any) -> None:
    envelope = sign_envelope(b"x", TYPE, [signer])
    envelope["signatures"][0]["cert"] = "-----BEGIN CERTIFICATE-----"
    envelope["signatures"][0]["extension"] = {"kind": "x"}
    envelope["annotations"] = {"note": 1}
    assert verify_envelope(envelope, load_trusted_keys([signer.public_key_pem]), TYPE) == b"x"


def test_one_good_signature_among_bad_ones_verifies(signer: Any, other: Any) -> None:
    envelope = sign_envelope(b"x", TYPE, [other, signer])
    envelope["signatures"].insert(0, {"sig": b64(b"\x00" * 64)})
    verified = verify_envelope_detailed(envelope, load_trusted_keys([signer.public_key_pem]), TYPE)
    assert verified.keyids == (signer.keyid,)


def test_payload_type_must_match_even_when_the_signature_is_valid(signer: Any) -> None:
    envelope = sign_envelope(b"x", "application/vnd.other+json", [signer])
    with pytest.raises(DsseError, match=r"payloadType is 'application/vnd.other\+json', expected"):
        verify_envelope(envelope, load_trusted_keys([signer.public_key_pem]), TYPE)


def test_an_edited_payload_type_breaks_the_signature(signer: Any) -> None:
    envelope = sign_envelope(b"x", TYPE, [signer])
    envelope["payloadType"] = "application/vnd.other+json"
    with pytest.raises(
        DsseError, match=r"no signature verifies.*payloadType is 'application/vnd.other\+json'"
    ):
        verify_envelope(envelope, load_trusted_keys([signer.public_key_pem]), TYPE)


def test_threshold_counts_distinct_trusted_keys(signer: Any, other: Any) -> None:
    trusted = load_trusted_keys([signer.public_key_pem, other.public_key_pem])
    both = sign_envelope(b"x", TYPE, [signer, other])
    assert verify_envelope(both, trusted, TYPE, threshold=2) == b"x"
    twice = sign_envelope(b"x", TYPE, [signer])
    twice["signatures"].append(dict(twice["signatures"][0]))
    with pytest.raises(DsseError, match="only 1 of the required 2 trusted keys signed"):
        verify_envelope(twice, trusted, TYPE, threshold=2)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: "not json", "envelope is not valid JSON"),
        (lambda e: [e], "envelope is not a JSON object"),
        (lambda e: {**e, "payload": 5}, "'payload' is missing or not a string"),
        (lambda e: {k: v for k, v in e.items() if k != "payloadType"}, "'payloadType' is missing"),
        (lambda e: {**e, "signatures": []}, "envelope has no signatures"),
        (lambda e: {**e, "signatures": [{"keyid": "k"}]}, "signature #1 has no 'sig' string"),
        (lambda e: {**e, "signatures": [{"sig": "%%%"}]}, "signature #1 is not valid base64"),
        (lambda e: {**e, "payload": "a"}, "payload is not valid base64"),
    ],
)
def test_malformed_envelopes_are_rejected_with_the_reason(signer: Any, mutate: Any, message: str) -> None:
    envelope = mutate(sign_envelope(b"x", TYPE, [signer]))
    data = envelope if isinstance(envelope, str) else json.dumps(envelope)
    with pytest.raises(DsseError, match=message):
        verify_envelope(data, load_trusted_keys([signer.public_key_pem]), TYPE)


def test_without_trusted_keys_nothing_verifies(signer: Any) -> None:
    with pytest.raises(DsseError, match="no trusted keys"):
        verify_envelope(sign_envelope(b"x", TYPE, [signer]), [], TYPE)


def test_signing_needs_a_signer() -> None:
    with pytest.raises(DsseError, match="without a signer"):
        sign_envelope(b"x", TYPE, [])


def test_ecdsa_der_signatures_verify(tmp_path: Path) -> None:
    private_key = ec.generate_private_key(ec.SECP256R1())

    class DerSigner(Rfc6979Signer):
        def sign(self, data: bytes) -> bytes:
            return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    envelope = sign_envelope(b"x", TYPE, [DerSigner(private_key)])
    trusted = load_trusted_keys([public_pem(private_key.public_key())])
    assert trusted[0].algorithm == "ecdsa-p256"
    assert verify_envelope(envelope, trusted, TYPE) == b"x"


# --- key files and trusted keys -----------------------------------------------------------------


def test_generated_key_file_is_private_pkcs8_ed25519(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.pem"
    signer = generate_ed25519_keyfile(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert file_signer(path).keyid == signer.keyid
    spki = load_trusted_key(signer.public_key_pem)
    assert signer.keyid == spki.keyid == hashlib.sha256(_der(signer.public_key_pem)).hexdigest()


def test_generate_refuses_to_replace_a_key_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    first = generate_ed25519_keyfile(path)
    with pytest.raises(Conflict, match="already exists"):
        generate_ed25519_keyfile(path)
    assert file_signer(path).keyid == first.keyid
    assert generate_ed25519_keyfile(path, overwrite=True).keyid != first.keyid


def test_signer_from_uri_resolves_file_uris(tmp_path: Path) -> None:
    path = tmp_path / "dir with space" / "k.pem"
    signer = generate_ed25519_keyfile(path)
    assert signer_from_uri(path.as_uri()).keyid == signer.keyid
    assert signer_from_uri(f"file://localhost{path}").keyid == signer.keyid


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("/plain/path.pem", "unsupported signing key URI"),
        ("gcpkms://x", "unsupported signing key URI"),
        ("file://host/k.pem", "names a host"),
        ("file:///does/not/exist.pem", "does not exist"),
        ("awskms:///", "names no KMS key"),
    ],
)
def test_signer_from_uri_explains_bad_uris(uri: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        signer_from_uri(uri)
    assert info.value.remediation


def test_key_files_must_hold_unencrypted_ed25519_keys(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, PrivateFormat

    ecdsa = tmp_path / "ec.pem"
    ecdsa.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pw")
        )
    )
    with pytest.raises(ConfigurationError, match="is encrypted"):
        file_signer(ecdsa)
    from cryptography.hazmat.primitives.serialization import NoEncryption

    ecdsa.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    with pytest.raises(ConfigurationError, match="not an Ed25519 key"):
        file_signer(ecdsa)
    ecdsa.write_text("garbage")
    with pytest.raises(ConfigurationError, match="not a PEM private key"):
        file_signer(ecdsa)


def test_trusted_keys_reject_private_keys_and_unsupported_curves(signer: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is a private key"):
        load_trusted_key((tmp_path / "a.pem").read_bytes())
    p384 = public_pem(ec.generate_private_key(ec.SECP384R1()).public_key())
    with pytest.raises(ConfigurationError, match="only Ed25519 and ECDSA P-256"):
        load_trusted_key(p384, "trusted key p384.pem")
    with pytest.raises(ConfigurationError, match="trusted key #2 is not a PEM public key"):
        load_trusted_keys([signer.public_key_pem, "nope"])
    keys = load_trusted_keys([signer.public_key_pem, signer.public_key_pem])
    assert [k.keyid for k in keys] == [signer.keyid]


def test_a_signature_verifies_only_with_its_own_key(signer: Any) -> None:
    stranger = ed25519.Ed25519PrivateKey.generate().public_key()
    trusted = load_trusted_key(public_pem(stranger))
    assert trusted.verify(signer.sign(b"m"), b"m") is False
    assert load_trusted_key(signer.public_key_pem).verify(signer.sign(b"m"), b"m") is True


def _der(pem: str) -> bytes:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(pem.encode()).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
