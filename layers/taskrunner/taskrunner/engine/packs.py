"""Where a submitted pack comes from: the request's manifest, or a pack stored under ``packs/`` by reference."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskrunner.engine import registry
from taskrunner.engine.services import Services
from taskrunner.errors import NotFound, ValidationFailed
from taskrunner.keys import PACK_FILE, PACK_NAME, PACK_VERSION, InvalidName, object_key
from taskrunner.pack.limits import MAX_MANIFEST_BYTES

if TYPE_CHECKING:
    from taskrunner.pack.source import Source


def pack_key(pack_ref: str) -> str:
    """``name@version`` -> ``packs/name/version.yaml``; a path ending in .yaml/.yml/.json stays under packs/."""
    if pack_ref.endswith((".yaml", ".yml", ".json")):
        path = PACK_FILE.check(pack_ref.removeprefix("packs/"), "packRef")
        return object_key("packs", *path.split("/"))
    name, at, version = pack_ref.rpartition("@")
    if not at:
        raise InvalidName(
            f"packRef {pack_ref[:80]!r} is not name@version or a .yaml path", remediation=PACK_FILE.hint
        )
    where = f"packRef {pack_ref!r}"
    return object_key("packs", PACK_NAME.check(name, where), f"{PACK_VERSION.check(version, where)}.yaml")


def manifest_source(
    svc: Services, manifest: Source | None, pack_ref: str | None, tenant_id: str = "default"
) -> Source:
    """The manifest text/object to plan (see :func:`pack_source`)."""
    return pack_source(svc, manifest, pack_ref, tenant_id)[0]


def pack_source(
    svc: Services, manifest: Source | None, pack_ref: str | None, tenant_id: str = "default"
) -> tuple[Source, registry.VerifiedPack | None]:
    """The manifest to plan and, for a registry pack, its verified version: given inline, a verified version
    of the tenant's pack registry (``name@version``, ``name@channel``), or, where signed packs are not
    required, a file under ``packs/``."""
    if pack_ref is None:
        if manifest is None:
            raise ValidationFailed(
                "neither a manifest nor a packRef was given",
                remediation="give the pack manifest or a packRef",
            )
        return manifest, None
    _, at, target = pack_ref.rpartition("@")
    if at and not pack_ref.endswith((".yaml", ".yml", ".json")):
        try:
            verified = registry.resolve(svc, tenant_id, pack_ref)
            return verified.manifest, verified
        except NotFound:
            if svc.require_signed_packs or not PACK_VERSION.matches(target):
                raise
    elif svc.require_signed_packs:
        raise registry.PackRejected(
            f"packRef {pack_ref[:80]!r} names an unsigned pack file; this deployment runs only signed packs",
            remediation="publish the pack with 'taskrunner packs publish' and submit name@version or name@channel",
        )
    key = pack_key(pack_ref)
    try:
        body = svc.artifacts.open(key)
    except NotFound as exc:
        raise NotFound(
            f"pack {pack_ref} not found at {svc.artifacts.location(key)}",
            remediation="upload the pack manifest there, or submit the manifest inline",
        ) from exc
    with body:
        return body.read(MAX_MANIFEST_BYTES + 1), None  # the parser refuses more, and text that is not UTF-8
