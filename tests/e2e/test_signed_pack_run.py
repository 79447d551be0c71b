"""A signed registry pack run end to end on the local runtime: submitted through the API handler as
``name@channel``, its evidence records the pack's digest, publisher key and SBOM and verifies offline (and
fails when they are tampered with); once revoked, the same submit fails closed naming the revocation."""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from conftest import PACKS, REPO
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from taskrunner.engine import registry
from taskrunner.engine.queries import evidence_verification  # what GET /api/runs/{runId}/evidence reports
from taskrunner.evidence.signing import generate_ed25519_keyfile, public_pem
from taskrunner.evidence.verify import verify_bundle
from taskrunner.keys import evidence_key

TENANT = "signed-tenant"


def create_run(rt: Any, pack_ref: str) -> tuple[int, dict[str, Any]]:
    event = copy.deepcopy(json.loads((REPO / "events" / "submit_run-create-run-pack-ref.json").read_text()))
    event["body"] = json.dumps({"packRef": pack_ref, "inputs": {"who": "registry"}})
    event["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = TENANT
    result = rt.invoke("submit_run", event)
    assert not result.is_error, result.payload
    reply = result.json()
    return int(reply["statusCode"]), json.loads(reply["body"])


def members(bundle: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def repack(files: dict[str, bytes], path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buffer.getvalue()))


def signing_public_pem(home: Path) -> str:
    key = load_pem_private_key((home / "keys" / "signing.pem").read_bytes(), password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return public_pem(key.public_key())


def test_a_signed_pack_runs_with_verified_evidence_and_fails_closed_once_revoked(
    runtime: Any, tmp_path: Path
) -> None:
    svc = runtime.svc
    publisher = generate_ed25519_keyfile(tmp_path / "publisher.pem")
    registry.trust_publisher(svc, TENANT, "release", publisher.public_key_pem)
    registry.revoke(svc, TENANT, publisher)
    bundle, sbom = registry.build_pack({"pack.yaml": (PACKS / "hello.yaml").read_bytes()})
    envelope = json.dumps(registry.sign_bundle(bundle, sbom, publisher)).encode()
    published = registry.publish(svc, TENANT, "hello", bundle, envelope, sbom)
    registry.promote(svc, TENANT, "hello", "1.0.0", "stable")

    status, created = create_run(runtime, "hello@stable")
    assert status == 202, created
    run = runtime.wait(created["runId"], timeout=60)
    assert run.status == "succeeded"
    assert run.packRelease == {
        "name": "hello",
        "version": "1.0.0",
        "digest": published.digest,
        "keyIds": [publisher.keyid],
    }

    with svc.artifacts.open(evidence_key(run.runId)) as stream:
        sealed = stream.read()
    files = members(sealed)
    pack = json.loads(files["manifest.json"])["pack"]
    assert pack["bundle"]["digest"] == published.digest
    assert pack["bundle"]["keyIds"] == [publisher.keyid]
    assert pack["sbom"] == "pack/sbom.cdx.json"
    assert files["pack/sbom.cdx.json"] == sbom
    assert files["pack/bundle.dsse.json"] == envelope

    path = tmp_path / "evidence.tar.gz"
    path.write_bytes(sealed)
    trusted = [signing_public_pem(runtime.home), publisher.public_key_pem]
    report = verify_bundle(path, trusted, require_dsse=True)
    assert (report.ok, report.failures) == (True, [])
    assert report.summary["packBundleDigest"] == published.digest

    unverified = verify_bundle(path, trusted[:1], require_dsse=True)  # the publisher key is not trusted
    assert not unverified.ok
    assert any(f.startswith("pack/bundle.dsse.json") for f in unverified.failures)

    manifest = json.loads(files["manifest.json"])
    manifest["pack"]["bundle"]["digest"] = "sha256:" + "0" * 64
    tampered = {n: d for n, d in files.items() if n != "manifest.dsse.json"}
    tampered["manifest.json"] = json.dumps(manifest).encode()
    repack(tampered, tmp_path / "tampered-digest.tar.gz")
    report = verify_bundle(tmp_path / "tampered-digest.tar.gz", trusted)
    assert f"manifest.json: pack.bundle.digest sha256:{'0' * 64} is not the signed one" in report.failures

    tampered = dict(files)
    tampered["pack/sbom.cdx.json"] = sbom.replace(b'"hello"', b'"hellx"')
    repack(tampered, tmp_path / "tampered-sbom.tar.gz")
    report = verify_bundle(tmp_path / "tampered-sbom.tar.gz", trusted, require_dsse=True)
    assert "pack/sbom.cdx.json: is not the SBOM signed with the pack" in report.failures

    assert evidence_verification(svc, TENANT, run.runId)["verified"] is True

    registry.revoke(svc, TENANT, publisher, pack="hello", version="1.0.0", reason="bad build")
    status, problem = create_run(runtime, "hello@stable")
    assert status == 409
    assert problem["code"] == "PackRevoked"
    assert "hello@1.0.0 is revoked for tenant signed-tenant: bad build" in problem["detail"]
    assert problem["remediation"]
    assert [r.runId for r in svc.store.list_runs(TENANT)[0]] == [run.runId]


def packs_call(
    rt: Any, sample: str, *, path: str, params: dict[str, str], body: Any = None, scope: str = "packs.write"
) -> tuple[int, dict[str, Any]]:
    event = copy.deepcopy(json.loads((REPO / "events" / f"{sample}.json").read_text()))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = params
    event["rawQueryString"] = ""
    event.pop("queryStringParameters", None)
    jwt = event["requestContext"]["authorizer"]["jwt"]
    jwt["claims"]["tenant_id"] = "api-tenant"
    jwt["claims"]["scope"] = scope
    jwt["scopes"] = [scope]
    if body is not None:
        event["body"] = json.dumps(body)
    result = rt.invoke("packs", event)
    assert not result.is_error, result.payload
    reply = result.json()
    return int(reply["statusCode"]), json.loads(reply["body"])


def test_the_registry_routes_publish_list_show_and_promote(runtime: Any, tmp_path: Path) -> None:
    svc = runtime.svc
    publisher = generate_ed25519_keyfile(tmp_path / "api-publisher.pem")
    registry.trust_publisher(svc, "api-tenant", "release", publisher.public_key_pem)
    registry.revoke(svc, "api-tenant", publisher)
    bundle, sbom = registry.build_pack({"pack.yaml": (PACKS / "hello.yaml").read_bytes()})
    body = {
        "bundle": base64.b64encode(bundle).decode(),
        "envelope": registry.sign_bundle(bundle, sbom, publisher),
        "sbom": base64.b64encode(sbom).decode(),
    }
    versions = {"path": "/api/packs/hello/versions", "params": {"packId": "hello"}}

    for missing, named in (("envelope", "signature envelope is missing"), ("sbom", "SBOM is missing")):
        status, problem = packs_call(runtime, "packs-publish", **versions, body={**body, missing: None})
        assert (status, problem["code"]) == (422, "PackRejected")
        assert named in problem["detail"]
    status, problem = packs_call(runtime, "packs-publish", **versions, body=body, scope="packs.read")
    assert status == 403
    status, problem = packs_call(runtime, "packs-versions", **versions, scope="packs.read")
    assert status == 404  # nothing was written

    status, published = packs_call(runtime, "packs-publish", **versions, body=body)
    assert status == 201, published
    assert published["digest"] == "sha256:" + hashlib.sha256(bundle).hexdigest()
    assert published["publisherKeyIds"] == [publisher.keyid]
    status, channels = packs_call(
        runtime,
        "packs-promote",
        path="/api/packs/hello/promote",
        params={"packId": "hello"},
        body={"version": "1.0.0", "channel": "beta"},
    )
    assert (status, channels) == (200, {"name": "hello", "channels": {"beta": "1.0.0"}})
    status, listed = packs_call(runtime, "packs", path="/api/packs", params={}, scope="packs.read")
    assert listed == {
        "items": [{"name": "hello", "versions": ["1.0.0"], "tags": [], "channels": {"beta": "1.0.0"}}]
    }
    status, shown = packs_call(
        runtime,
        "packs-version",
        path="/api/packs/hello/versions/1.0.0",
        params={"packId": "hello", "version": "1.0.0"},
        scope="packs.read",
    )
    assert status == 200, shown
    assert shown["digest"] == published["digest"]
    assert shown["envelope"] == body["envelope"]
    assert "name: hello" in shown["manifest"]
