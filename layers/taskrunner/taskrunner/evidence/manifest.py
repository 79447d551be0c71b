"""The offline bundle manifest (``manifest.json``) and its JSON Schema."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from taskrunner.evidence import layout
from taskrunner.evidence.hashing import FileDigest
from taskrunner.plan.document import Plan
from taskrunner.plan.hashing import rng_seed

SCHEMA_RESOURCE = "packs-offline-bundle.schema.json"


@cache
def schema() -> dict[str, Any]:
    """The offline bundle manifest schema shipped with the package."""
    text = resources.files("taskrunner.evidence").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


def schema_problems(manifest: Any) -> list[str]:
    """Every schema violation of ``manifest``, each with the JSON path of the offending field."""
    return sorted(f"{e.json_path}: {e.message}" for e in _validator().iter_errors(manifest))


def build_manifest(
    *,
    plan: Plan,
    plan_hash: str,
    run_id: str,
    tenant_id: str,
    environment: str,
    outcome: str,
    approvals: int,
    requested_at: str,
    started_at: str | None,
    completed_at: str,
    created: str,
    timestamp_source: str,
    key_ids: Sequence[str],
    hashes: dict[str, FileDigest],
    pack_release: tuple[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The manifest document; ``hashes`` maps every other bundle path to its digest; ``pack_release`` is the
    registry bundle digest and publisher key ids of a pack run from the signed registry."""
    pack: dict[str, Any] = {"name": plan.pack.name, "version": plan.pack.version, "digest": plan.pack.digest}
    if pack_release is not None:
        pack["bundle"] = {
            "digest": pack_release[0],
            "envelope": layout.PACK_ENVELOPE,
            "payloadType": layout.PACK_BUNDLE_PAYLOAD_TYPE,
            "keyIds": sorted(pack_release[1]),
        }
        pack["sbom"] = layout.PACK_SBOM
    return {
        "schemaVersion": layout.BUNDLE_SCHEMA_VERSION,
        "pack": pack,
        "plan": {
            "hashAlgorithm": "sha256",
            "hash": plan_hash,
            "canonicalPlanPath": layout.PLAN,
            "inputsLock": layout.INPUTS_LOCK,
            "rngSeed": str(rng_seed(plan_hash)),
            "timestampSource": timestamp_source,
        },
        "evidence": {
            "runId": run_id,
            "outcome": outcome,
            "attestation": layout.ATTESTATION,
            "attestationPayloadType": layout.RUN_PAYLOAD_TYPE,
            "predicateType": layout.PREDICATE_TYPE,
            "approvalsLedger": layout.APPROVALS_LEDGER,
            "approvals": approvals,
            "transcript": layout.TRANSCRIPT,
            "outputs": layout.OUTPUTS_DIR,
            "runOutputs": layout.RUN_OUTPUTS,
            "requestedAt": requested_at,
            **({"startedAt": started_at} if started_at is not None else {}),
            "completedAt": completed_at,
        },
        "security": {
            "sandbox": plan.sandbox.model_dump(mode="json", exclude_none=True),
            "secretsRedactionPolicy": plan.security.secretsRedactionPolicy,
            "signatures": {
                "manifest": layout.MANIFEST_DSSE,
                "manifestPayloadType": layout.BUNDLE_PAYLOAD_TYPE,
                "keyIds": sorted(key_ids),
            },
        },
        "hashes": [
            {"path": path, "sha256": digest.sha256, "size": digest.size}
            for path, digest in sorted(hashes.items())
        ],
        "slo": plan.slo.model_dump(mode="json", exclude_none=True) if plan.slo else {},
        "tenant": tenant_id,
        "environment": environment,
        "created": created,
    }
