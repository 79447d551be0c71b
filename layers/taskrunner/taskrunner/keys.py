"""Names users control, and the one joiner that turns them into object keys.

Every kind of name has one declared character set (ASCII only, matched in full: no ``..``, ``/``, ``\\``,
NUL, control characters, Unicode look-alikes or leading dots). Keys of the artifact store are built only by
:func:`object_key`, which refuses any segment outside :data:`KEY_SEGMENT`; the stores re-check every key
with :func:`check_key`, so a key not made by the joiner never reaches the disk or S3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from taskrunner.errors import ValidationFailed

STEP_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"  # step and gate ids, approval and policy ids
PACK_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,47}$"  # fits the state machine name taskrunner-<pack>-<hash>
SEMVER_PATTERN = (
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_ARTIFACT_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
ARTIFACT_NAME_PATTERN = rf"^{_ARTIFACT_SEGMENT}(/{_ARTIFACT_SEGMENT}){{0,7}}$"  # sub-paths: up to 8 segments
TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
APPROVER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$"  # e-mail-like token subjects
# One key segment: every name above fits, plus ``[]:`` of map children (``scan[2]::report``) and ``<>:``
# of a redacted secret in a templated artifact name.
KEY_SEGMENT_PATTERN = r"^[A-Za-z0-9<][A-Za-z0-9._@+:<>\[\]-]{0,254}$"
MAX_KEY_LENGTH = 1024  # S3's limit, in UTF-8 bytes (all key characters are ASCII)


class InvalidName(ValidationFailed):
    """A user-controlled name outside its declared character set."""

    code = "InvalidName"


@dataclass(frozen=True)
class NameKind:
    """One kind of name: what it is called, its character set and how to write a valid one."""

    label: str
    pattern: str
    hint: str

    def matches(self, value: object) -> bool:
        return isinstance(value, str) and re.fullmatch(self.pattern, value) is not None

    def check(self, value: object, where: str = "") -> str:
        """``value`` when it is a valid name of this kind; otherwise :class:`InvalidName` saying how to fix it."""
        if self.matches(value):
            return str(value)
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise InvalidName(
            f"{self.label} {shown}{' in ' + where if where else ''} is not valid",
            remediation=self.hint,
        )


STEP_ID = NameKind(
    "step id", STEP_ID_PATTERN, "start with a letter; then letters, digits, '_' or '-'; at most 64 characters"
)
PACK_NAME = NameKind(
    "pack name", PACK_NAME_PATTERN, "use lower-case letters, digits and '-', at most 48 characters"
)
PACK_VERSION = NameKind("pack version", SEMVER_PATTERN, 'use a semantic version such as "1.2.0"')
ARTIFACT_NAME = NameKind(
    "artifact name",
    ARTIFACT_NAME_PATTERN,
    "use letters, digits, '.', '_' and '-' (a letter or digit first), up to 128 per segment; "
    "sub-paths as a/b/c (at most 8 segments, never '..', no leading or trailing '/')",
)
TENANT_ID = NameKind(
    "tenant id",
    TENANT_ID_PATTERN,
    "use letters, digits, '.', '_' and '-' (a letter or digit first), at most 64 characters",
)
RUN_ID = NameKind("run id", RUN_ID_PATTERN, "use the runId returned when the run was submitted")
APPROVER = NameKind(
    "approver name",
    APPROVER_PATTERN,
    "use letters, digits and '.', '_', '@', '+', '-' (a letter or digit first), at most 128 characters",
)
PACK_FILE = NameKind(
    "packRef",
    ARTIFACT_NAME_PATTERN,
    "pass name@version (e.g. air-gap-import@1.2.0) or a key under packs/ such as packs/hello.yaml",
)
KEY_SEGMENT = NameKind(
    "object key segment", KEY_SEGMENT_PATTERN, "build keys with taskrunner.keys.object_key from valid names"
)


def object_key(prefix: str, *segments: str) -> str:
    """``prefix/segment/...``: every part a :data:`KEY_SEGMENT`, so the key cannot leave ``prefix``."""
    key = "/".join(KEY_SEGMENT.check(part, "an object key") for part in (prefix, *segments))
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidName(
            f"object key {key[:60]}... is longer than {MAX_KEY_LENGTH} characters",
            remediation="use shorter names",
        )
    return key


def check_key(key: str) -> str:
    """``key`` when :func:`object_key` could have built it; the stores call this before every access."""
    if not isinstance(key, str) or not key:
        raise InvalidName(f"object key {key!r} is not valid", remediation=KEY_SEGMENT.hint)
    prefix, *segments = key.split("/")
    return object_key(prefix, *segments)


def artifact_key(run_id: str, name: str) -> str:
    """``runs/<runId>/artifacts/<name>``; a sub-path name (``a/b``) becomes nested segments."""
    return object_key("runs", RUN_ID.check(run_id), "artifacts", *name.split("/"))


def evidence_key(run_id: str) -> str:
    return object_key("evidence", f"{RUN_ID.check(run_id)}.tar.gz")


def trust_key(tenant_id: str, approver: str) -> str:
    """``trust/<tenant>/<approver>.pem``: the public key trusted for an approver in a tenant."""
    return object_key("trust", TENANT_ID.check(tenant_id), f"{APPROVER.check(approver)}.pem")
