"""Names fixed by the evidence bundle format: entry paths, DSSE payload types, schema versions."""

from __future__ import annotations

MANIFEST = "manifest.json"
MANIFEST_DSSE = "manifest.dsse.json"
PLAN = "plan.json"
INPUTS_LOCK = "inputs.lock"
OUTPUTS_DIR = "outputs/"
RUN_OUTPUTS = "outputs/outputs.json"
TRANSCRIPT = "transcripts/logs.ndjson"
APPROVALS_LEDGER = "approvals/ledger.jsonl"
APPROVER_KEYS = "approvals/keys.jsonl"  # enrolment records of the keys that signed the ledger (optional)
ATTESTATION = "attestation.dsse.json"
PACK_ENVELOPE = "pack/bundle.dsse.json"  # a registry pack's signed statement (optional)
PACK_SBOM = "pack/sbom.cdx.json"  # a registry pack's CycloneDX SBOM (optional)

REQUIRED_FILES = (MANIFEST, PLAN, INPUTS_LOCK, RUN_OUTPUTS, TRANSCRIPT, APPROVALS_LEDGER, ATTESTATION)
"""Entries every bundle holds (``manifest.dsse.json`` is required only under ``--require-dsse``)."""

UNHASHED_FILES = frozenset({MANIFEST, MANIFEST_DSSE})
"""Entries the manifest cannot list: itself and its own signature."""

BUNDLE_PAYLOAD_TYPE = "application/vnd.stellaops.pack-offline-bundle+json"
RUN_PAYLOAD_TYPE = "application/vnd.stellaops.pack-run+json"
APPROVAL_PAYLOAD_TYPE = "application/vnd.stellaops.pack-approval+json"
ENROLMENT_PAYLOAD_TYPE = "application/vnd.taskrunner.approver-key+json"
PACK_BUNDLE_PAYLOAD_TYPE = "application/vnd.taskrunner.pack-bundle+json"

BUNDLE_SCHEMA_VERSION = "stellaops.pack.offline-bundle.v1"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://stellaops.io/attestations/pack-run/v1"

TAR_MTIME = 0
TAR_MODE = 0o644
