"""Offline verification of an evidence bundle: integrity, signatures, bindings, redaction.

Every check runs and every failure is listed. A DSSE payload is parsed only after its signature has
verified against a trusted key; checks that depend on a payload that did not verify are skipped
(the signature failure is already reported).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskrunner import __version__
from taskrunner.canonical import canonical_bytes, digest_of
from taskrunner.errors import ConfigurationError
from taskrunner.evidence import layout
from taskrunner.evidence.approvals import approval_problems
from taskrunner.evidence.archive import ArchiveScan, scan_archive
from taskrunner.evidence.attestation import statement_problems
from taskrunner.evidence.dsse import DsseError, envelope_keyids, verify_envelope_detailed
from taskrunner.evidence.enrolment import key_use_problems, parse_statement
from taskrunner.evidence.hashing import FileDigest, json_failure
from taskrunner.evidence.lock_redaction import lock_problems
from taskrunner.evidence.manifest import schema_problems
from taskrunner.evidence.signing import TrustedKey, load_trusted_key, load_trusted_keys
from taskrunner.plan.hashing import plan_hash_of_bytes, rng_seed
from taskrunner.timeutil import parse_iso


@dataclass(frozen=True)
class VerificationReport:
    """``ok`` only when ``failures`` is empty; ``summary`` describes what was checked."""

    ok: bool
    failures: list[str]
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "failures": self.failures, "summary": self.summary}


def verify_bundle(
    path: Path, trusted_pems: Sequence[bytes | str], require_dsse: bool = False
) -> VerificationReport:
    """Verify the bundle at ``path`` against the trusted public keys (PEM).

    With ``require_dsse`` the manifest must be signed (``manifest.dsse.json``); without it an unsigned
    manifest is accepted, but every envelope present must still verify. Raises
    :class:`~taskrunner.errors.ConfigurationError` when a trusted key cannot be parsed.
    """
    return _Verifier(path, load_trusted_keys(trusted_pems), require_dsse).run()


@dataclass
class _Verifier:
    path: Path
    trusted: list[TrustedKey]
    require_dsse: bool
    failures: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def fail(self, where: str, message: str) -> None:
        self.failures.append(f"{where}: {message}")

    def run(self) -> VerificationReport:
        self.summary.update(
            bundle=str(self.path),
            verifier=f"taskrunner {__version__}",
            trustedKeys=[key.keyid for key in self.trusted],
            requireDsse=self.require_dsse,
        )
        scan = scan_archive(self.path)
        self.failures.extend(scan.problems)
        self.summary["files"] = len(scan.digests)
        for name in layout.REQUIRED_FILES:
            if name not in scan.digests:
                self.fail(name, "missing from the bundle")

        manifest = self._manifest(scan)
        if manifest is not None:
            self._hashes(manifest, scan.digests)
        plan = self._plan(scan, manifest)
        statement = self._attestation(scan)
        if statement is not None:
            self._statement(statement, manifest, plan, scan.digests)
        self._ledger(scan, manifest, statement)
        self._inputs_lock(scan)
        if manifest is not None and "bundle" in manifest["pack"]:
            self._pack_release(manifest["pack"], scan)
        return VerificationReport(not self.failures, self.failures, self.summary)

    def _envelope(
        self, where: str, data: bytes, payload_type: str, keys: list[TrustedKey] | None = None
    ) -> bytes | None:
        """The verified payload of an envelope (against ``keys``, by default the trusted keys), or None after
        recording why it did not verify."""
        try:
            verified = verify_envelope_detailed(data, self.trusted if keys is None else keys, payload_type)
        except DsseError as exc:
            self.fail(where, exc.message)
            return None
        self.summary.setdefault("signedBy", {})[where] = list(verified.keyids)
        return verified.payload

    def _pack_release(self, pack: dict[str, Any], scan: ArchiveScan) -> None:
        """A registry pack: its statement verifies against a trusted (publisher) key and names the recorded
        bundle digest, the pack's name and version, and the SBOM in the bundle."""
        envelope, sbom = scan.contents.get(layout.PACK_ENVELOPE), scan.contents.get(layout.PACK_SBOM)
        if envelope is None or sbom is None:
            self.fail(layout.MANIFEST, "pack.bundle is recorded but the pack envelope or SBOM is missing")
            return
        payload = self._envelope(layout.PACK_ENVELOPE, envelope, layout.PACK_BUNDLE_PAYLOAD_TYPE)
        statement = self._json(layout.PACK_ENVELOPE, payload) if payload is not None else None
        if not isinstance(statement, dict):
            return
        subjects = statement.get("subject")
        signed = [s.get("digest", {}).get("sha256") for s in subjects or [] if isinstance(s, dict)]
        if signed != [pack["bundle"]["digest"].removeprefix("sha256:")]:
            self.fail(layout.MANIFEST, f"pack.bundle.digest {pack['bundle']['digest']} is not the signed one")
        predicate = statement.get("predicate")
        predicate = predicate if isinstance(predicate, dict) else {}
        if (predicate.get("name"), predicate.get("version")) != (pack["name"], pack["version"]):
            self.fail(layout.PACK_ENVELOPE, f"names another pack than {pack['name']}@{pack['version']}")
        signed_sbom = predicate.get("sbom")
        if (
            not isinstance(signed_sbom, dict)
            or signed_sbom.get("sha256") != scan.digests[layout.PACK_SBOM].sha256
        ):
            self.fail(layout.PACK_SBOM, "is not the SBOM signed with the pack")
        self.summary["packBundleDigest"] = pack["bundle"]["digest"]

    def _json(self, where: str, data: bytes) -> Any:
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            self.fail(where, f"is not valid JSON: {json_failure(exc)}")
            return None

    def _manifest(self, scan: ArchiveScan) -> dict[str, Any] | None:
        data = scan.contents.get(layout.MANIFEST)
        envelope = scan.contents.get(layout.MANIFEST_DSSE)
        self.summary["manifestSigned"] = envelope is not None
        if envelope is None:
            if self.require_dsse:
                self.fail(layout.MANIFEST_DSSE, "missing: --require-dsse needs a signed manifest")
                return None
            if data is not None:
                self.summary["warnings"] = ["the manifest is not signed (no manifest.dsse.json)"]
        else:
            payload = self._envelope(layout.MANIFEST_DSSE, envelope, layout.BUNDLE_PAYLOAD_TYPE)
            if payload is None:
                return None
            if data is not None and payload != data:
                self.fail(layout.MANIFEST, "differs from the manifest signed in manifest.dsse.json")
                return None
        if data is None:
            return None
        manifest = self._json(layout.MANIFEST, data)
        if manifest is None:
            return None
        problems = schema_problems(manifest)
        for problem in problems:
            self.fail(layout.MANIFEST, f"schema: {problem}")
        if problems:
            return None
        self.summary.update(
            runId=manifest["evidence"]["runId"],
            tenant=manifest["tenant"],
            planHash=manifest["plan"]["hash"],
            outcome=manifest["evidence"]["outcome"],
        )
        result: dict[str, Any] = manifest
        return result

    def _hashes(self, manifest: dict[str, Any], files: dict[str, FileDigest]) -> None:
        listed: dict[str, dict[str, Any]] = {}
        for entry in manifest["hashes"]:
            name = entry["path"]
            if name in listed:
                self.fail(layout.MANIFEST, f"hashes lists {name} more than once")
            elif name in layout.UNHASHED_FILES:
                self.fail(layout.MANIFEST, f"hashes must not list {name}")
            listed[name] = entry
        for name, entry in listed.items():
            actual = files.get(name)
            if name in layout.UNHASHED_FILES:
                continue
            if actual is None:
                if name not in layout.REQUIRED_FILES:  # required files are reported missing already
                    self.fail(name, "listed in the manifest but missing from the bundle")
                continue
            if actual.sha256 != entry["sha256"]:
                self.fail(name, f"sha256 {actual.sha256} does not match the manifest ({entry['sha256']})")
            if actual.size != entry["size"]:
                self.fail(name, f"size {actual.size} does not match the manifest ({entry['size']})")
        for name in sorted(set(files) - set(listed) - layout.UNHASHED_FILES):
            self.fail(name, "is not listed in the manifest")

    def _plan(self, scan: ArchiveScan, manifest: dict[str, Any] | None) -> dict[str, Any] | None:
        data = scan.contents.get(layout.PLAN)
        if manifest is not None:
            plan_hash = manifest["plan"]["hash"]
            expected_seed = str(rng_seed(plan_hash))
            if manifest["plan"]["rngSeed"] != expected_seed:
                self.fail(
                    layout.MANIFEST,
                    f"plan.rngSeed {manifest['plan']['rngSeed']} is not derived from planHash (expected {expected_seed})",
                )
        if data is None:
            return None
        recomputed = plan_hash_of_bytes(data)
        self.summary["planHashRecomputed"] = recomputed
        if manifest is None or recomputed != manifest["plan"]["hash"]:
            if manifest is not None:
                self.fail(
                    layout.PLAN,
                    f"planHash {recomputed} recomputed from plan.json does not match the manifest's "
                    f"{manifest['plan']['hash']}",
                )
            return None
        plan = self._json(layout.PLAN, data)
        if not isinstance(plan, dict):
            if plan is not None:
                self.fail(layout.PLAN, "is not a JSON object")
            return None
        if canonical_bytes(plan) != data:
            self.fail(layout.PLAN, "is not RFC 8785 canonical JSON, so its hash is not the planHash")
        if plan.get("pack") != _pack_identity(manifest):
            self.fail(
                layout.PLAN,
                f"pack {plan.get('pack')} does not match the manifest's {_pack_identity(manifest)}",
            )
        return plan

    def _attestation(self, scan: ArchiveScan) -> dict[str, Any] | None:
        data = scan.contents.get(layout.ATTESTATION)
        if data is None:
            return None
        payload = self._envelope(layout.ATTESTATION, data, layout.RUN_PAYLOAD_TYPE)
        if payload is None:
            return None
        statement = self._json(layout.ATTESTATION, payload)
        if statement is None:
            return None
        problems = statement_problems(statement)
        for problem in problems:
            self.fail(layout.ATTESTATION, problem)
        return None if problems else statement

    def _statement(
        self,
        statement: dict[str, Any],
        manifest: dict[str, Any] | None,
        plan: dict[str, Any] | None,
        files: dict[str, FileDigest],
    ) -> None:
        where = layout.ATTESTATION
        predicate = statement["predicate"]
        subjects: dict[str, str] = {}
        for subject in statement["subject"]:
            subjects[subject["name"]] = "sha256:" + str(subject["digest"].get("sha256"))
        outputs = {
            name: digest.digest for name, digest in files.items() if name.startswith(layout.OUTPUTS_DIR)
        }
        for name in sorted(set(subjects) | set(outputs)):
            if name not in outputs:
                self.fail(where, f"subject {name} is not in the bundle")
            elif name not in subjects:
                self.fail(name, "is not a subject of the attestation")
            elif subjects[name] != outputs[name]:
                self.fail(
                    name, f"digest {outputs[name]} does not match the attestation subject ({subjects[name]})"
                )
        if predicate["outputDigests"] != subjects:
            self.fail(where, "predicate.outputDigests does not match the subject list")
        for name, field_name in (
            (layout.INPUTS_LOCK, "inputsLockDigest"),
            (layout.APPROVALS_LEDGER, "approvalsLedgerDigest"),
        ):
            actual = files.get(name)
            if actual is not None and actual.digest != predicate[field_name]:
                self.fail(
                    where,
                    f"predicate.{field_name} {predicate[field_name]} does not match {name} ({actual.digest})",
                )
        if plan is not None:
            inputs_digest = digest_of(plan.get("inputs", {}))
            if predicate["inputsDigest"] != inputs_digest:
                self.fail(where, f"predicate.inputsDigest does not match the plan's inputs ({inputs_digest})")
        if manifest is None:
            return
        evidence = manifest["evidence"]
        for label, attested, expected in (
            ("runId", predicate["runId"], evidence["runId"]),
            ("tenantId", predicate["tenantId"], manifest["tenant"]),
            ("planHash", predicate["planHash"], manifest["plan"]["hash"]),
            ("pack", predicate["pack"], _pack_identity(manifest)),
            ("outcome", predicate["outcome"], evidence["outcome"]),
            ("requestedAt", predicate["requestedAt"], evidence["requestedAt"]),
            ("startedAt", predicate.get("startedAt"), evidence.get("startedAt")),
            ("completedAt", predicate["completedAt"], evidence["completedAt"]),
        ):
            if attested != expected:
                self.fail(where, f"predicate.{label} {attested!r} does not match the manifest ({expected!r})")

    def _enrolled_keys(self, scan: ArchiveScan) -> dict[str, list[tuple[TrustedKey, dict[str, Any]]]]:
        """The approver keys the deployment enrolled, by key id, from verified ``approvals/keys.jsonl`` lines."""
        enrolled: dict[str, list[tuple[TrustedKey, dict[str, Any]]]] = {}
        for number, line in enumerate(_lines(scan.contents.get(layout.APPROVER_KEYS, b"")), start=1):
            where = f"{layout.APPROVER_KEYS} line {number}"
            payload = self._envelope(where, line, layout.ENROLMENT_PAYLOAD_TYPE)
            if payload is None:
                continue
            statement, problems = parse_statement(payload)
            try:
                key = load_trusted_key(statement["publicKeyPem"], "publicKeyPem") if statement else None
            except ConfigurationError as exc:
                problems, key = [exc.message], None
            if key is not None and statement is not None and key.keyid != statement["keyId"]:
                problems.append(
                    f"keyId {statement['keyId'][:16]} is not the id of its publicKeyPem ({key.keyid[:16]})"
                )
            for problem in problems:
                self.fail(where, problem)
            if key is not None and statement is not None and not problems:
                enrolled.setdefault(key.keyid, []).append((key, statement))  # one key, several approvers
        self.summary["enrolledKeys"] = sorted(enrolled)
        return enrolled

    def _ledger(
        self, scan: ArchiveScan, manifest: dict[str, Any] | None, statement: dict[str, Any] | None
    ) -> None:
        data = scan.contents.get(layout.APPROVALS_LEDGER)
        if data is None:
            return
        binding = _binding(manifest, statement)
        enrolled = self._enrolled_keys(scan)
        lines = _lines(data)
        verified = 0
        for number, line in enumerate(lines, start=1):
            where = f"{layout.APPROVALS_LEDGER} line {number}"
            named = _named_keys(line, enrolled)
            payload = self._envelope(where, line, layout.APPROVAL_PAYLOAD_TYPE, [k for k, _ in named] or None)
            if payload is None:
                continue
            verified += 1
            if binding is None:
                continue
            problems = approval_problems(
                payload, run_id=binding[0], plan_hash=binding[1], tenant_id=binding[2]
            )
            if not problems and named:
                problems = _enrolment_problems(payload, named, binding[2])
            for problem in problems:
                self.fail(where, problem)
        self.summary["approvals"] = {"entries": len(lines), "verified": verified}
        if manifest is not None and manifest["evidence"]["approvals"] != len(lines):
            self.fail(
                layout.MANIFEST,
                f"evidence.approvals is {manifest['evidence']['approvals']} but the ledger holds {len(lines)} entries",
            )

    def _inputs_lock(self, scan: ArchiveScan) -> None:
        data = scan.contents.get(layout.INPUTS_LOCK)
        if data is None:
            return
        lock = self._json(layout.INPUTS_LOCK, data)
        if lock is None:
            return
        for problem in lock_problems(lock):
            self.fail(layout.INPUTS_LOCK, problem)


def _pack_identity(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's pack name, version and digest (without a registry pack's bundle and SBOM)."""
    return {k: manifest["pack"][k] for k in ("name", "version", "digest")}


def _binding(
    manifest: dict[str, Any] | None, statement: dict[str, Any] | None
) -> tuple[str, str, str] | None:
    """``(runId, planHash, tenantId)`` approvals must carry, from whichever signed document verified."""
    if manifest is not None:
        return manifest["evidence"]["runId"], manifest["plan"]["hash"], manifest["tenant"]
    if statement is not None:
        predicate = statement["predicate"]
        return predicate["runId"], predicate["planHash"], predicate["tenantId"]
    return None


def _lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def _named_keys(
    line: bytes, enrolled: dict[str, list[tuple[TrustedKey, dict[str, Any]]]]
) -> list[tuple[TrustedKey, dict[str, Any]]]:
    """The enrolled keys a ledger envelope's ``keyid`` labels name (none: it is verified with ``--trust`` keys)."""
    try:
        envelope = json.loads(line)
    except (ValueError, RecursionError):
        return []
    return (
        [entry for k in envelope_keyids(envelope) for entry in enrolled.get(k, [])]
        if isinstance(envelope, dict)
        else []
    )


def _enrolment_problems(
    payload: bytes, named: list[tuple[TrustedKey, dict[str, Any]]], tenant_id: str
) -> list[str]:
    """Why none of the enrolled keys could have signed this decision when it says it was made."""
    decision = json.loads(payload)
    try:
        decided_at = parse_iso(decision["decidedAt"])
    except ValueError:
        return [f"decidedAt {decision['decidedAt'][:40]!r} is not an ISO-8601 time"]
    problems: list[str] = []
    for _, statement in named:
        found = key_use_problems(
            statement, approver=decision["approver"], tenant_id=tenant_id, decided_at=decided_at
        )
        if not found:
            return []
        problems += found
    return problems
