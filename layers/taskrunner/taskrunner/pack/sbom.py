"""The CycloneDX SBOM of a pack version: the step modules it uses and the bundle's files with their hashes.

Written and read with ``cyclonedx-python-lib`` (CycloneDX 1.6 JSON, checked against the schema on reading).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

from cyclonedx.model import HashAlgorithm, HashType
from cyclonedx.model.bom import Bom
from cyclonedx.model.bom_ref import BomRef
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from taskrunner.errors import ValidationFailed

MODULE_PREFIX = "module:"
FILE_PREFIX = "file:"
_HINT = "generate the SBOM with 'taskrunner packs build'"


def build_sbom(name: str, version: str, files: Mapping[str, bytes], modules: Iterable[str]) -> bytes:
    """CycloneDX JSON for pack ``name@version``: one ``file`` component per bundle file, one ``library``
    component per step module."""
    bom = Bom()
    bom.metadata.component = Component(
        name=name, version=version, type=ComponentType.APPLICATION, bom_ref=BomRef(f"pack:{name}@{version}")
    )
    for path in sorted(files):
        sha256 = hashlib.sha256(files[path]).hexdigest()
        bom.components.add(
            Component(
                name=path,
                type=ComponentType.FILE,
                bom_ref=BomRef(FILE_PREFIX + path),
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=sha256)],
            )
        )
    for module in sorted(set(modules)):
        bom.components.add(
            Component(name=module, type=ComponentType.LIBRARY, bom_ref=BomRef(MODULE_PREFIX + module))
        )
    bom.register_dependency(bom.metadata.component, list(bom.components))
    document = json.loads(JsonV1Dot6(bom).output_as_string())
    for volatile in ("serialNumber",):
        document.pop(volatile, None)
    document["metadata"].pop("timestamp", None)  # the same pack gives the same SBOM
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def check_sbom(sbom: bytes, name: str, version: str, files: Mapping[str, bytes]) -> None:
    """Refuse an SBOM that is not valid CycloneDX, describes another pack, or misses or misstates a file."""
    try:
        text = sbom.decode("utf-8")
        failure = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailed(f"the SBOM is not CycloneDX 1.6 JSON: {exc}", remediation=_HINT) from None
    if failure is not None:
        reason = str(getattr(failure.data, "message", "schema violation"))[:300]
        raise ValidationFailed(f"the SBOM is not valid CycloneDX 1.6: {reason}", remediation=_HINT)
    try:
        bom = Bom.from_json(json.loads(text))  # type: ignore[attr-defined]
    except Exception as exc:  # the library raises assorted errors on documents it cannot map
        raise ValidationFailed(f"the SBOM cannot be read: {exc}", remediation=_HINT) from None
    subject = bom.metadata.component
    if subject is None or (subject.name, subject.version) != (name, version):
        described = f"{subject.name}@{subject.version}" if subject else "nothing"
        raise ValidationFailed(f"the SBOM describes {described}, not {name}@{version}", remediation=_HINT)
    listed = {
        c.name: {h.content for h in c.hashes if h.alg == HashAlgorithm.SHA_256}
        for c in bom.components
        if c.type == ComponentType.FILE
    }
    for path, content in sorted(files.items()):
        if hashlib.sha256(content).hexdigest() not in listed.get(path, set()):
            raise ValidationFailed(
                f"the SBOM does not list bundle file {path} with its sha256", remediation=_HINT
            )
