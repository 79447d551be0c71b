"""Where a submitted pack comes from: the request's manifest, or a pack stored under ``packs/`` by reference."""

from __future__ import annotations

import re
from typing import Any

from taskrunner.engine.services import Services
from taskrunner.errors import NotFound, ValidationFailed
from taskrunner.pack.limits import MAX_MANIFEST_BYTES

_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]*)(@(?P<version>[A-Za-z0-9._+-]+))?$")


def pack_key(pack_ref: str) -> str:
    """``name@version`` -> ``packs/name/version.yaml``; a key ending in .yaml/.yml/.json is used as is."""
    if pack_ref.endswith((".yaml", ".yml", ".json")):
        return pack_ref if pack_ref.startswith("packs/") else f"packs/{pack_ref}"
    match = _REF.match(pack_ref)
    if not match or not match["version"]:
        raise ValidationFailed(
            f"packRef '{pack_ref}' is not name@version or a packs/ key",
            remediation="pass e.g. 'air-gap-import@1.2.0' or 'packs/hello.yaml'",
        )
    return f"packs/{match['name']}/{match['version']}.yaml"


def manifest_source(svc: Services, manifest: Any, pack_ref: str | None) -> Any:
    """The manifest text/object to plan: given inline, or read from the artifact store."""
    if pack_ref is None:
        return manifest
    key = pack_key(pack_ref)
    try:
        body = svc.artifacts.open(key)
    except NotFound as exc:
        raise NotFound(
            f"pack {pack_ref} not found at {svc.artifacts.location(key)}",
            remediation="upload the pack manifest there, or submit the manifest inline",
        ) from exc
    with body:
        return body.read(MAX_MANIFEST_BYTES + 1)  # the parser refuses more, and text that is not UTF-8
