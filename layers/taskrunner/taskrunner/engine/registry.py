"""The signed pack registry: publish, list, show, promote and revoke pack versions of a tenant.

A version is published as its bundle (``pack.yaml`` plus the files it names), a CycloneDX SBOM and a DSSE
envelope over an in-toto statement naming the bundle's and the SBOM's SHA-256, signed by a publisher key the
tenant trusts. Nothing is written unless every piece checks out, and the tenant's signed revocation list
(the revocation proof) exists, verifies and names neither the version nor a key that signed it. The same
checks run again every time a version is resolved for a run, so a later revocation fails closed.

Artifact store layout (every segment a checked name)::

    trust/<tenant>/publishers.json                     {"publishers": {name: PEM}}
    registry/<tenant>/revocations.json                 DSSE envelope of {"tenant", "versions", "keys"}
    registry/<tenant>/index.json                       {"packs": {name: {"versions": [...], "tags": [...]}}}
    registry/<tenant>/<pack>/channels.json             {"channels": {"stable": "1.2.0", ...}}
    registry/<tenant>/<pack>/<version>/bundle.tar.gz, bundle.dsse.json, sbom.cdx.json
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskrunner.canonical import canonical_bytes
from taskrunner.engine.services import Services
from taskrunner.errors import Conflict, NotFound, TaskRunnerError, ValidationFailed
from taskrunner.evidence.dsse import DsseError, sign_envelope, verify_envelope_detailed
from taskrunner.evidence.layout import STATEMENT_TYPE
from taskrunner.evidence.signing import EvidenceSigner, TrustedKey, load_trusted_key
from taskrunner.keys import PACK_NAME, PACK_VERSION, TENANT_ID, NameKind, object_key
from taskrunner.pack.bundle import MANIFEST_FILE, build_bundle, bundle_digest, read_bundle
from taskrunner.pack.contracts import used_modules
from taskrunner.pack.errors import ManifestError
from taskrunner.pack.loader import LoadedPack, load_pack

BUNDLE_PAYLOAD_TYPE = "application/vnd.taskrunner.pack-bundle+json"
REVOCATIONS_PAYLOAD_TYPE = "application/vnd.taskrunner.pack-revocations+json"
PREDICATE_TYPE = "https://taskrunner.dev/attestations/pack-bundle/v1"
CHANNELS = ("stable", "edge", "beta")
BUNDLE, ENVELOPE, SBOM = "bundle.tar.gz", "bundle.dsse.json", "sbom.cdx.json"
PUBLISHER = NameKind(
    "publisher name", r"^[a-z0-9][a-z0-9._-]{0,63}$", "use lower-case letters, digits, '.', '_' and '-'"
)
MAX_RECORD_BYTES = 16 * 1024 * 1024
_BUILD_HINT = "build and sign it with 'taskrunner packs build' and 'taskrunner packs sign'"


class PackRejected(TaskRunnerError):
    """A pack version (or a revocation list) fails its checks."""

    code = "PackRejected"
    status = 422


class PackRevoked(TaskRunnerError):
    """A pack version, or a key that signed it, is on the tenant's revocation list."""

    code = "PackRevoked"
    status = 409


@dataclass(frozen=True)
class VerifiedPack:
    """A registry version whose bundle, signature, SBOM and revocation status checked out."""

    name: str
    version: str
    digest: str
    keyids: tuple[str, ...]
    manifest: bytes
    sbom_location: str
    tags: tuple[str, ...]


# -- trust ---------------------------------------------------------------------------------------------


def trust_publisher(svc: Services, tenant: str, name: str, pem: str) -> str:
    """Trust the PEM public key ``pem`` as publisher ``name`` of ``tenant``; its key id."""
    key = load_trusted_key(pem, f"publisher key {name}")
    doc = _read_json(svc, _trust_key(tenant), {"publishers": {}})
    doc["publishers"][PUBLISHER.check(name, "trust-publisher")] = key.pem
    _write_json(svc, _trust_key(tenant), doc)
    return key.keyid


def publisher_keys(svc: Services, tenant: str) -> dict[str, TrustedKey]:
    """The tenant's trusted publisher keys by publisher name."""
    doc = _read_json(svc, _trust_key(tenant), {"publishers": {}})
    return {name: load_trusted_key(pem, f"publisher key {name}") for name, pem in doc["publishers"].items()}


# -- signing (publisher side) --------------------------------------------------------------------------


def build_pack(files: Mapping[str, bytes]) -> tuple[bytes, bytes]:
    """The bundle and the SBOM of a pack's files (``pack.yaml`` and the files it ships); the manifest must be
    a valid pack."""
    from taskrunner.pack.sbom import build_sbom  # cyclonedx loads only where the registry is used

    bundle = build_bundle(files)
    loaded = load_pack(files[MANIFEST_FILE], source_name=MANIFEST_FILE)
    meta = loaded.manifest.metadata
    return bundle, build_sbom(meta.name, meta.version, files, used_modules(loaded.document))


def bundle_statement(bundle: bytes, sbom: bytes) -> bytes:
    """The in-toto statement a publisher signs: the bundle's and the SBOM's SHA-256."""
    pack = _load(bundle)[1].manifest.metadata
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"{pack.name}@{pack.version}", "digest": {"sha256": _hex(bundle)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "name": pack.name,
            "version": pack.version,
            "sbom": {"path": SBOM, "sha256": _hex(sbom)},
        },
    }
    return canonical_bytes(statement)


def sign_bundle(bundle: bytes, sbom: bytes, signer: EvidenceSigner) -> dict[str, Any]:
    """The DSSE envelope over :func:`bundle_statement`."""
    return sign_envelope(bundle_statement(bundle, sbom), BUNDLE_PAYLOAD_TYPE, [signer])


# -- publish and verify --------------------------------------------------------------------------------


def publish(
    svc: Services, tenant: str, pack_id: str, bundle: bytes, envelope: bytes, sbom: bytes
) -> VerifiedPack:
    """Check every piece of a pack version and store it; nothing is written when any check fails."""
    TENANT_ID.check(tenant, "publish")
    for label, piece in (("bundle", bundle), ("signature envelope", envelope), ("SBOM", sbom)):
        if not piece:
            raise PackRejected(f"the pack's {label} is missing", remediation=_BUILD_HINT)
    PACK_NAME.check(pack_id, "the packId")
    verified = _verify(svc, tenant, bundle, envelope, sbom)
    if verified.name != pack_id:
        raise PackRejected(
            f"the bundle holds pack {verified.name}, not {pack_id}",
            remediation=f"publish it as {verified.name}, or fix metadata.name",
        )
    prefix = (tenant, verified.name, verified.version)
    try:
        existing = _read(svc, _record_key(*prefix, BUNDLE))
    except NotFound:
        existing = None
    if existing is not None:
        if bundle_digest(existing) != verified.digest:
            raise Conflict(
                f"{verified.name}@{verified.version} is already published with another digest",
                remediation="versions are immutable: publish a new version",
            )
        return verified
    svc.artifacts.put_bytes(_record_key(*prefix, SBOM), sbom, "application/vnd.cyclonedx+json")
    svc.artifacts.put_bytes(_record_key(*prefix, ENVELOPE), envelope, "application/json")
    svc.artifacts.put_bytes(
        _record_key(*prefix, BUNDLE), bundle, "application/gzip"
    )  # last: marks it published
    index = _read_json(svc, _index_key(tenant), {"packs": {}})
    entry = index["packs"].setdefault(verified.name, {"versions": [], "tags": []})
    entry["versions"] = sorted({*entry["versions"], verified.version})
    entry["tags"] = sorted({*entry["tags"], *verified.tags})
    _write_json(svc, _index_key(tenant), index)
    return verified


def verified_version(svc: Services, tenant: str, pack: str, version: str) -> VerifiedPack:
    """A published version, checked again: signature, digests, SBOM and the revocation list."""
    prefix = (TENANT_ID.check(tenant), PACK_NAME.check(pack), PACK_VERSION.check(version))
    try:
        bundle = _read(svc, _record_key(*prefix, BUNDLE))
    except NotFound:
        raise NotFound(
            f"pack {pack}@{version} is not published for tenant {tenant}",
            remediation="publish it with 'taskrunner packs publish', or list versions with 'taskrunner packs list'",
        ) from None
    envelope, sbom = (_read_or_empty(svc, _record_key(*prefix, name)) for name in (ENVELOPE, SBOM))
    for label, piece in (("signature envelope", envelope), ("SBOM", sbom)):
        if not piece:
            raise PackRejected(f"the {label} of {pack}@{version} is missing", remediation="publish it again")
    verified = _verify(svc, tenant, bundle, envelope, sbom)
    if (verified.name, verified.version) != (pack, version):
        raise PackRejected(f"the record of {pack}@{version} holds {verified.name}@{verified.version}")
    return verified


def resolve(svc: Services, tenant: str, ref: str) -> VerifiedPack:
    """``name@version`` or ``name@channel`` (stable, edge, beta) to a verified version."""
    name, _, target = ref.rpartition("@")
    PACK_NAME.check(name, f"packRef {ref!r}")
    if target in CHANNELS:
        channels = _read_json(svc, _channels_key(tenant, name), {"channels": {}})["channels"]
        if target not in channels:
            raise NotFound(
                f"no version of {name} is promoted to {target}",
                remediation=f"promote one with 'taskrunner packs promote {name} VERSION --channel {target}'",
            )
        target = channels[target]
    return verified_version(svc, tenant, name, PACK_VERSION.check(target, f"packRef {ref!r}"))


def read_pack_name(bundle: bytes) -> str:
    """The name of the pack in ``bundle`` ("" for no bundle: publishing then says it is missing)."""
    return _load(bundle)[1].manifest.metadata.name if bundle else ""


def _load(bundle: bytes) -> tuple[dict[str, bytes], LoadedPack]:
    try:
        files = read_bundle(bundle)
        return files, load_pack(files[MANIFEST_FILE], source_name=MANIFEST_FILE)
    except (ValidationFailed, ManifestError) as exc:
        raise PackRejected(f"the pack bundle is not valid: {exc}", remediation=_BUILD_HINT) from None


def _verify(svc: Services, tenant: str, bundle: bytes, envelope: bytes, sbom: bytes) -> VerifiedPack:
    files, pack = _load(bundle)
    meta = pack.manifest.metadata
    trusted = publisher_keys(svc, tenant)
    if not trusted:
        raise PackRejected(
            f"tenant {tenant} trusts no publisher key",
            remediation="trust one with 'taskrunner packs trust-publisher NAME KEY.pub.pem'",
        )
    try:
        checked = verify_envelope_detailed(envelope, list(trusted.values()), BUNDLE_PAYLOAD_TYPE)
        statement = json.loads(checked.payload)
    except (DsseError, ValueError) as exc:
        raise PackRejected(
            f"the signature of {meta.name}@{meta.version} does not verify: {exc}",
            remediation=f"sign the bundle with a publisher key tenant {tenant} trusts ({_BUILD_HINT})",
        ) from None
    digest = bundle_digest(bundle)
    subjects = statement.get("subject") if isinstance(statement, dict) else None
    signed_digests = [
        s.get("digest", {}).get("sha256")
        for s in subjects or []
        if isinstance(s, dict) and isinstance(s.get("digest"), dict)
    ]
    if signed_digests != [digest.removeprefix("sha256:")]:
        raise PackRejected(
            f"the bundle's digest {digest} is not the one signed for {meta.name}@{meta.version}",
            remediation="the bundle changed after signing; sign the bundle you publish",
        )
    predicate = statement.get("predicate") if isinstance(statement.get("predicate"), dict) else {}
    signed_sbom = predicate.get("sbom", {}) if isinstance(predicate.get("sbom"), dict) else {}
    if (predicate.get("name"), predicate.get("version")) != (meta.name, meta.version):
        raise PackRejected("the signed statement names another pack version", remediation=_BUILD_HINT)
    if signed_sbom.get("sha256") != _hex(sbom):
        raise PackRejected(
            f"the SBOM's sha256 is not the one signed for {meta.name}@{meta.version}",
            remediation="publish the SBOM that was signed with the bundle",
        )
    from taskrunner.pack.sbom import check_sbom  # cyclonedx loads only where the registry is used

    try:
        check_sbom(sbom, meta.name, meta.version, files)
    except ValidationFailed as exc:
        raise PackRejected(exc.message, remediation=exc.remediation) from None
    _check_not_revoked(svc, tenant, meta.name, meta.version, checked.keyids, trusted)
    return VerifiedPack(
        meta.name,
        meta.version,
        digest,
        checked.keyids,
        files[MANIFEST_FILE],
        svc.artifacts.location(_record_key(tenant, meta.name, meta.version, SBOM)),
        tuple(meta.tags),
    )


# -- revocations ---------------------------------------------------------------------------------------


def revocations(
    svc: Services, tenant: str, trusted: Mapping[str, TrustedKey] | None = None
) -> dict[str, Any]:
    """The tenant's verified revocation list; refuses one that is missing or does not verify."""
    keys = trusted if trusted is not None else publisher_keys(svc, tenant)
    try:
        raw = _read(svc, _revocations_key(tenant))
    except NotFound:
        raise PackRejected(
            f"tenant {tenant} has no revocation list, so revocation cannot be ruled out",
            remediation="create it with 'taskrunner packs revoke --init --key KEY'",
        ) from None
    return _verified_revocations(raw, keys, tenant)[0]


def _verified_revocations(
    raw: bytes | Mapping[str, Any], trusted: Mapping[str, TrustedKey], tenant: str
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A revocation list envelope's document and the trusted keys that signed it; refuses anything else."""
    try:
        verified = verify_envelope_detailed(raw, list(trusted.values()), REVOCATIONS_PAYLOAD_TYPE)
        document = json.loads(verified.payload)
    except (DsseError, ValueError) as exc:
        raise PackRejected(
            f"the revocation list of tenant {tenant} does not verify: {exc}",
            remediation="re-sign it with a trusted publisher key: 'taskrunner packs revoke --init --key KEY'",
        ) from None
    if not isinstance(document, dict) or document.get("tenant") != tenant:
        raise PackRejected(f"the revocation list is not the one of tenant {tenant}")
    for field in ("versions", "keys"):
        entries = document.get(field)
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise PackRejected(
                f"the revocation list of tenant {tenant} has no list of {field}",
                remediation="re-create it with 'taskrunner packs revoke --init --key KEY' and revoke again",
            )
    return document, verified.keyids


def extend_revocations(
    current: Mapping[str, Any] | None,
    tenant: str,
    *,
    pack: str | None = None,
    version: str | None = None,
    keyid: str | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """``current`` (none: an empty list) with a version or a key added: the document to sign."""
    TENANT_ID.check(tenant, "revoke")
    if (pack is None) != (version is None):
        raise ValidationFailed(
            "revoking a version needs both the pack and the version", remediation="name PACK@VERSION"
        )
    document: dict[str, Any] = {
        "tenant": tenant,
        "versions": list((current or {}).get("versions") or []),
        "keys": list((current or {}).get("keys") or []),
    }
    if pack is not None:
        entry = {
            "pack": PACK_NAME.check(pack),
            "version": PACK_VERSION.check(version or ""),
            "reason": reason,
        }
        document["versions"].append(entry)
    if keyid is not None:
        document["keys"].append({"keyid": keyid, "reason": reason})
    return document


def store_revocations(svc: Services, tenant: str, envelope: Mapping[str, Any]) -> dict[str, Any]:
    """Replace the tenant's revocation list with ``envelope`` if it verifies with a trusted publisher key that it
    does not revoke itself and keeps every entry of the current list (a revocation list only grows)."""
    TENANT_ID.check(tenant, "the revocation list")
    trusted = publisher_keys(svc, tenant)
    document, signers = _verified_revocations(envelope, trusted, tenant)
    revoked_keys = {str(entry.get("keyid")) for entry in document["keys"]}
    if revoked_keys.intersection(signers):
        raise PackRejected(
            "a revoked key cannot sign the revocation list", remediation="sign with another trusted key"
        )
    try:
        current: dict[str, Any] | None = revocations(svc, tenant, trusted)
    except PackRejected:  # none yet, or one no trusted key verifies any more: the verified new list wins
        current = None
    dropped = [
        entry
        for field in ("versions", "keys")
        for entry in (current or {}).get(field, [])
        if entry not in document[field]
    ]
    if dropped:
        raise PackRejected(
            f"the revocation list drops {len(dropped)} entr{'y' if len(dropped) == 1 else 'ies'} of the current one "
            f"(first: {json.dumps(dropped[0], sort_keys=True)[:200]}); revocations cannot be undone",
            remediation="fetch the current list (GET /api/packs/revocations), add to it, sign it and send it",
        )
    _write_json(svc, _revocations_key(tenant), envelope)
    return document


def revocation_envelope(svc: Services, tenant: str) -> dict[str, Any]:
    """The tenant's stored, signed revocation list as it is (NotFound when it has none)."""
    raw = _read(svc, _revocations_key(TENANT_ID.check(tenant, "the revocation list")))
    try:
        envelope = json.loads(raw)
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict):
        raise PackRejected(f"the stored revocation list of tenant {tenant} is not a JSON object")
    return envelope


def revoke(
    svc: Services,
    tenant: str,
    signer: EvidenceSigner,
    *,
    pack: str | None = None,
    version: str | None = None,
    keyid: str | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """Add a version or a key to the revocation list (none: create an empty list), re-sign and store it."""
    trusted = publisher_keys(svc, TENANT_ID.check(tenant, "revoke"))
    if signer.keyid not in {k.keyid for k in trusted.values()}:
        raise PackRejected(
            "the revocation list must be signed by a publisher key the tenant trusts",
            remediation="sign with a trusted key, or trust it with 'taskrunner packs trust-publisher'",
        )
    try:
        current: dict[str, Any] | None = revocations(svc, tenant, trusted)
    except PackRejected:
        if pack or keyid:
            raise
        current = None
    document = extend_revocations(current, tenant, pack=pack, version=version, keyid=keyid, reason=reason)
    return store_revocations(svc, tenant, sign_revocations(document, signer))


def sign_revocations(document: Mapping[str, Any], signer: EvidenceSigner) -> dict[str, Any]:
    """The DSSE envelope of a revocation list document."""
    return sign_envelope(canonical_bytes(dict(document)), REVOCATIONS_PAYLOAD_TYPE, [signer])


def _check_not_revoked(
    svc: Services,
    tenant: str,
    pack: str,
    version: str,
    keyids: Sequence[str],
    trusted: Mapping[str, TrustedKey],
) -> None:
    document = revocations(svc, tenant, trusted)
    for entry in document.get("versions", []):
        if (entry.get("pack"), entry.get("version")) == (pack, version):
            raise PackRevoked(
                f"{pack}@{version} is revoked for tenant {tenant}: {entry.get('reason') or 'no reason given'}",
                remediation="run another version; 'taskrunner packs list' shows them",
            )
    for entry in document.get("keys", []):
        if entry.get("keyid") in keyids:
            raise PackRevoked(
                f"{pack}@{version} is signed by revoked publisher key {str(entry.get('keyid'))[:16]}: "
                f"{entry.get('reason') or 'no reason given'}",
                remediation="re-sign the pack with a trusted key and publish a new version",
            )


# -- channels and listing ------------------------------------------------------------------------------


def promote(svc: Services, tenant: str, pack: str, version: str, channel: str) -> dict[str, str]:
    """Point ``channel`` of ``pack`` at a verified ``version``; the pack's channels."""
    if channel not in CHANNELS:
        raise ValidationFailed(f"channel {channel[:40]!r} is not one of {', '.join(CHANNELS)}")
    verified_version(svc, tenant, pack, version)
    doc = _read_json(svc, _channels_key(tenant, pack), {"channels": {}})
    doc["channels"][channel] = version
    _write_json(svc, _channels_key(tenant, pack), doc)
    return dict(doc["channels"])


def versions(svc: Services, tenant: str, pack: str) -> dict[str, Any]:
    """One pack's versions, tags and channels; NotFound when nothing of it is published."""
    for entry in list_packs(svc, tenant, name=PACK_NAME.check(pack)):
        return entry
    raise NotFound(f"pack {pack} is not published for tenant {tenant}", remediation="publish a version first")


def list_packs(
    svc: Services, tenant: str, *, name: str | None = None, tag: str | None = None, channel: str | None = None
) -> list[dict[str, Any]]:
    """The tenant's packs with their versions, tags and channels, filtered by name, tag or channel."""
    packs = _read_json(svc, _index_key(TENANT_ID.check(tenant)), {"packs": {}})["packs"]
    found = []
    for pack, entry in sorted(packs.items()):
        channels = _read_json(svc, _channels_key(tenant, pack), {"channels": {}})["channels"]
        if (
            (name and pack != name)
            or (tag and tag not in entry["tags"])
            or (channel and channel not in channels)
        ):
            continue
        found.append(
            {"name": pack, "versions": entry["versions"], "tags": entry["tags"], "channels": channels}
        )
    return found


def show(svc: Services, tenant: str, pack: str, version: str) -> dict[str, Any]:
    """A version's digest, signing keys, SBOM location and manifest; refuses one that no longer verifies."""
    verified = verified_version(svc, tenant, pack, version)
    return {
        "name": verified.name,
        "version": verified.version,
        "digest": verified.digest,
        "publisherKeyIds": list(verified.keyids),
        "sbom": verified.sbom_location,
        "bundle": svc.artifacts.location(_record_key(tenant, pack, version, BUNDLE)),
        "manifest": verified.manifest.decode("utf-8", "replace"),
        "envelope": json.loads(release_files(svc, tenant, pack, version)[0]),
    }


# -- storage -------------------------------------------------------------------------------------------


def release_files(svc: Services, tenant: str, pack: str, version: str) -> tuple[bytes, bytes]:
    """The stored DSSE envelope and SBOM of a published version (for the evidence of its runs)."""
    prefix = (TENANT_ID.check(tenant), PACK_NAME.check(pack), PACK_VERSION.check(version))
    return _read(svc, _record_key(*prefix, ENVELOPE)), _read(svc, _record_key(*prefix, SBOM))


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _trust_key(tenant: str) -> str:
    return object_key("trust", TENANT_ID.check(tenant), "publishers.json")


def _revocations_key(tenant: str) -> str:
    return object_key("registry", TENANT_ID.check(tenant), "revocations.json")


def _index_key(tenant: str) -> str:
    return object_key("registry", TENANT_ID.check(tenant), "index.json")


def _channels_key(tenant: str, pack: str) -> str:
    return object_key("registry", TENANT_ID.check(tenant), PACK_NAME.check(pack), "channels.json")


def _record_key(tenant: str, pack: str, version: str, file: str) -> str:
    return object_key("registry", tenant, pack, version, file)


def _read(svc: Services, key: str) -> bytes:
    with svc.artifacts.open(key) as body:
        return body.read(MAX_RECORD_BYTES)


def _read_or_empty(svc: Services, key: str) -> bytes:
    try:
        return _read(svc, key)
    except NotFound:
        return b""


def _read_json(svc: Services, key: str, default: dict[str, Any]) -> dict[str, Any]:
    try:
        document = json.loads(_read(svc, key))
    except NotFound:
        return default
    if not isinstance(document, dict):
        raise PackRejected(f"registry record {svc.artifacts.location(key)} is not a JSON object")
    return document


def _write_json(svc: Services, key: str, document: Mapping[str, Any]) -> None:
    svc.artifacts.put_bytes(key, canonical_bytes(dict(document)), "application/json")
