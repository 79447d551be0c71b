"""The signed pack registry over the local artifact store: publish refuses every missing or wrong piece and
writes nothing; revocation of a version or of a publisher key makes resolving it fail closed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from taskrunner.engine import registry
from taskrunner.engine.packs import manifest_source
from taskrunner.engine.services import Services
from taskrunner.errors import Conflict, NotFound, TaskRunnerError
from taskrunner.evidence.signing import SslibEvidenceSigner, generate_ed25519_keyfile
from taskrunner.pack.bundle import build_bundle, bundle_digest, read_bundle

PACKS = Path(__file__).resolve().parents[2] / "examples" / "packs"
TENANT = "acme"


@pytest.fixture
def svc(tr_home: Path, monkeypatch: pytest.MonkeyPatch) -> Services:
    from taskrunner.composition import build_services
    from taskrunner.local.storage import local_settings

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    built: Services = build_services(local_settings())
    return built


@pytest.fixture
def publisher(svc: Services, tmp_path: Path) -> SslibEvidenceSigner:
    signer = generate_ed25519_keyfile(tmp_path / "publisher.pem")
    registry.trust_publisher(svc, TENANT, "release", signer.public_key_pem)
    registry.revoke(svc, TENANT, signer)  # the empty, signed revocation list
    return signer


def release(version: str = "1.0.0", extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    manifest = (PACKS / "hello.yaml").read_text().replace("version: 1.0.0", f"version: {version}")
    return {"pack.yaml": manifest.encode(), **(extra or {})}


def signed(signer: SslibEvidenceSigner, files: dict[str, bytes]) -> tuple[bytes, bytes, bytes]:
    bundle, sbom = registry.build_pack(files)
    envelope = json.dumps(registry.sign_bundle(bundle, sbom, signer)).encode()
    return bundle, envelope, sbom


def stored(home: Path) -> set[str]:
    objects = home / "objects"
    return (
        {str(p.relative_to(objects)) for p in objects.rglob("*") if p.is_file()}
        if objects.exists()
        else set()
    )


def test_bundle_and_sbom_are_deterministic_and_name_every_file() -> None:
    files = release(extra={"docs/README.md": b"how to run it"})
    bundle, sbom = registry.build_pack(files)
    assert (bundle, sbom) == registry.build_pack(dict(reversed(files.items())))
    assert read_bundle(bundle) == files
    components = {c["name"]: c for c in json.loads(sbom)["components"]}
    assert {"pack.yaml", "docs/README.md", "noop", "artifact.write"} <= set(components)
    assert components["docs/README.md"]["hashes"][0]["alg"] == "SHA-256"


def test_publish_verifies_and_stores_the_version(svc: Services, publisher: SslibEvidenceSigner) -> None:
    bundle, envelope, sbom = signed(publisher, release(extra={"docs/README.md": b"x"}))
    published = registry.publish(svc, TENANT, "hello", bundle, envelope, sbom)
    assert published.digest == bundle_digest(bundle)
    assert published.keyids == (publisher.keyid,)
    shown = registry.show(svc, TENANT, "hello", "1.0.0")
    assert shown["digest"] == published.digest
    assert shown["sbom"].endswith("hello/1.0.0/sbom.cdx.json")
    assert registry.list_packs(svc, TENANT) == [
        {"name": "hello", "versions": ["1.0.0"], "tags": [], "channels": {}}
    ]
    assert registry.publish(svc, TENANT, "hello", bundle, envelope, sbom) == published  # idempotent


def _other_key(tmp_path: Path) -> SslibEvidenceSigner:
    return generate_ed25519_keyfile(tmp_path / "stranger.pem")


def _tamper_sbom(sbom: bytes) -> bytes:
    doc = json.loads(sbom)
    doc["components"] = [c for c in doc["components"] if c["name"] != "pack.yaml"]
    return json.dumps(doc).encode()


Case = Callable[[Services, SslibEvidenceSigner, Path], tuple[bytes, bytes, bytes]]
CASES: dict[str, tuple[Case, str]] = {
    "signature absent": (lambda s, k, t: (signed(k, release())[0], b"", signed(k, release())[2]), "missing"),
    "signature not an envelope": (
        lambda s, k, t: (*signed(k, release())[:1], b"{}", signed(k, release())[2]),
        "does not verify",
    ),
    "signed by an untrusted key": (lambda s, k, t: signed(_other_key(t), release()), "does not verify"),
    "bundle digest mismatch": (
        lambda s, k, t: (signed(k, release("1.0.1"))[0], *signed(k, release())[1:]),
        "is not the one signed",
    ),
    "SBOM missing": (lambda s, k, t: (*signed(k, release())[:2], b""), "SBOM is missing"),
    "SBOM not CycloneDX": (lambda s, k, t: (*signed(k, release())[:2], b'{"bomFormat": "SPDX"}'), "SBOM"),
    "SBOM not the signed one": (
        lambda s, k, t: (*signed(k, release())[:2], _tamper_sbom(signed(k, release())[2])),
        "SBOM's sha256 is not the one signed",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_publish_refuses_each_missing_or_wrong_piece_and_writes_nothing(
    svc: Services, publisher: SslibEvidenceSigner, tmp_path: Path, tr_home: Path, case: str
) -> None:
    make, expected = CASES[case]
    bundle, envelope, sbom = make(svc, publisher, tmp_path)
    before = stored(tr_home)
    with pytest.raises(TaskRunnerError) as refused:
        registry.publish(svc, TENANT, "hello", bundle, envelope, sbom)
    assert expected in refused.value.message
    assert refused.value.remediation
    assert stored(tr_home) == before


def test_publish_refuses_an_sbom_that_does_not_list_the_files_even_when_signed(
    svc: Services, publisher: SslibEvidenceSigner, tr_home: Path
) -> None:
    bundle, sbom = registry.build_pack(release())
    sbom = _tamper_sbom(sbom)
    envelope = json.dumps(registry.sign_bundle(bundle, sbom, publisher)).encode()
    with pytest.raises(registry.PackRejected, match=r"does not list bundle file pack\.yaml"):
        registry.publish(svc, TENANT, "hello", bundle, envelope, sbom)
    assert not any(p.startswith("registry/acme/hello") for p in stored(tr_home))


def test_publish_needs_a_verifying_revocation_list_that_does_not_name_it(
    svc: Services, tmp_path: Path, tr_home: Path
) -> None:
    signer = generate_ed25519_keyfile(tmp_path / "publisher.pem")
    registry.trust_publisher(svc, TENANT, "release", signer.public_key_pem)
    pieces = signed(signer, release())
    with pytest.raises(registry.PackRejected, match="no revocation list"):
        registry.publish(svc, TENANT, "hello", *pieces)

    stranger = _other_key(tmp_path)
    registry.trust_publisher(svc, TENANT, "stranger", stranger.public_key_pem)
    registry.revoke(svc, TENANT, stranger)
    registry.trust_publisher(
        svc, TENANT, "stranger", signer.public_key_pem
    )  # the list's signer is no longer trusted
    with pytest.raises(registry.PackRejected, match="revocation list of tenant acme does not verify"):
        registry.publish(svc, TENANT, "hello", *pieces)

    registry.revoke(svc, TENANT, signer)
    registry.revoke(svc, TENANT, signer, pack="hello", version="1.0.0", reason="leaked credentials")
    before = stored(tr_home)
    with pytest.raises(registry.PackRevoked, match=r"hello@1.0.0 is revoked .*leaked credentials"):
        registry.publish(svc, TENANT, "hello", *pieces)
    assert stored(tr_home) == before


def test_publish_refuses_another_pack_id_and_a_changed_version(
    svc: Services, publisher: SslibEvidenceSigner
) -> None:
    with pytest.raises(registry.PackRejected, match="holds pack hello, not other"):
        registry.publish(svc, TENANT, "other", *signed(publisher, release()))
    registry.publish(svc, TENANT, "hello", *signed(publisher, release()))
    with pytest.raises(Conflict, match="already published with another digest"):
        registry.publish(svc, TENANT, "hello", *signed(publisher, release(extra={"notes.txt": b"new"})))


def _submit_source(svc: Services, ref: str) -> Any:
    return manifest_source(svc, None, ref, TENANT)


def test_a_revoked_version_fails_closed_at_submit(svc: Services, publisher: SslibEvidenceSigner) -> None:
    svc.require_signed_packs = True
    registry.publish(svc, TENANT, "hello", *signed(publisher, release()))
    registry.promote(svc, TENANT, "hello", "1.0.0", "stable")
    assert b"name: hello" in _submit_source(svc, "hello@1.0.0")
    assert _submit_source(svc, "hello@stable") == _submit_source(svc, "hello@1.0.0")
    registry.revoke(svc, TENANT, publisher, pack="hello", version="1.0.0", reason="CVE-2026-1")
    for ref in ("hello@1.0.0", "hello@stable"):
        with pytest.raises(
            registry.PackRevoked, match=r"hello@1\.0\.0 is revoked for tenant acme: CVE-2026-1"
        ):
            _submit_source(svc, ref)


def test_a_revoked_publisher_key_fails_closed_for_everything_it_signed(
    svc: Services, publisher: SslibEvidenceSigner, tmp_path: Path
) -> None:
    registry.publish(svc, TENANT, "hello", *signed(publisher, release()))
    operator = generate_ed25519_keyfile(tmp_path / "operator.pem")
    registry.trust_publisher(svc, TENANT, "operator", operator.public_key_pem)
    registry.revoke(svc, TENANT, operator, keyid=publisher.keyid, reason="key compromised")
    with pytest.raises(registry.PackRevoked, match=r"revoked publisher key .*key compromised"):
        _submit_source(svc, "hello@1.0.0")
    with pytest.raises(registry.PackRejected, match="revoked key cannot sign"):
        registry.revoke(svc, TENANT, publisher)


def test_a_stored_version_altered_after_publishing_fails_closed(
    svc: Services, publisher: SslibEvidenceSigner, tr_home: Path
) -> None:
    registry.publish(svc, TENANT, "hello", *signed(publisher, release()))
    other = build_bundle(release("1.0.1"))
    (tr_home / "objects/registry/acme/hello/1.0.0/bundle.tar.gz").write_bytes(other)
    with pytest.raises(registry.PackRejected, match="is not the one signed"):
        _submit_source(svc, "hello@1.0.0")


def test_signed_deployments_refuse_pack_files_and_unpublished_refs(svc: Services) -> None:
    svc.require_signed_packs = True
    with pytest.raises(registry.PackRejected, match="only signed packs") as refused:
        _submit_source(svc, "packs/hello.yaml")
    assert "taskrunner packs publish" in refused.value.remediation
    with pytest.raises(NotFound, match="not published for tenant acme"):
        _submit_source(svc, "hello@1.0.0")
    with pytest.raises(NotFound, match="no version of hello is promoted to beta"):
        _submit_source(svc, "hello@beta")


def test_promote_and_list_filters(svc: Services, publisher: SslibEvidenceSigner) -> None:
    registry.publish(svc, TENANT, "hello", *signed(publisher, release()))
    registry.publish(svc, TENANT, "hello", *signed(publisher, release("1.1.0")))
    assert registry.promote(svc, TENANT, "hello", "1.1.0", "edge") == {"edge": "1.1.0"}
    with pytest.raises(TaskRunnerError, match="not one of stable, edge, beta"):
        registry.promote(svc, TENANT, "hello", "1.1.0", "nightly")
    with pytest.raises(NotFound):
        registry.promote(svc, TENANT, "hello", "9.0.0", "stable")
    assert [p["versions"] for p in registry.list_packs(svc, TENANT, channel="edge")] == [["1.0.0", "1.1.0"]]
    assert registry.list_packs(svc, TENANT, channel="stable") == []
    assert registry.list_packs(svc, TENANT, tag="nope") == []
    assert registry.list_packs(svc, TENANT, name="other") == []
    assert registry.list_packs(svc, "other-tenant") == []


def test_revoke_refuses_half_a_version_and_a_malformed_list(
    svc: Services, publisher: SslibEvidenceSigner
) -> None:
    with pytest.raises(TaskRunnerError, match="needs both the pack and the version"):
        registry.revoke(svc, TENANT, publisher, version="1.0.0")
    envelope = registry.sign_envelope(
        b'{"tenant": "acme", "versions": {"hello": "1.0.0"}, "keys": []}',
        registry.REVOCATIONS_PAYLOAD_TYPE,
        [publisher],
    )
    svc.artifacts.put_bytes(
        "registry/acme/revocations.json", json.dumps(envelope).encode(), "application/json"
    )
    with pytest.raises(registry.PackRejected, match="has no list of versions"):
        registry.publish(svc, TENANT, "hello", *signed(publisher, release()))


@pytest.mark.parametrize(
    ("stored_file", "named"), [("bundle.dsse.json", "signature envelope"), ("sbom.cdx.json", "SBOM")]
)
def test_a_stored_version_missing_a_piece_fails_closed(
    svc: Services, publisher: SslibEvidenceSigner, tr_home: Path, stored_file: str, named: str
) -> None:
    registry.publish(svc, TENANT, "hello", *signed(publisher, release()))
    (tr_home / "objects/registry/acme/hello/1.0.0" / stored_file).unlink()
    with pytest.raises(registry.PackRejected, match=f"the {named} of hello@1.0.0 is missing"):
        _submit_source(svc, "hello@1.0.0")
