"""The declared character sets: matched in full, ASCII only, with a hint; and the manifest uses the same sets."""

from __future__ import annotations

import pytest
from taskrunner import keys
from taskrunner.pack.errors import ManifestError
from taskrunner.pack.loader import load_pack

KINDS = [keys.STEP_ID, keys.PACK_NAME, keys.PACK_VERSION, keys.ARTIFACT_NAME, keys.TENANT_ID, keys.RUN_ID]
KINDS += [keys.APPROVER, keys.KEY_SEGMENT]
VALID = {
    "step id": "scan-all_2",
    "pack name": "air-gap-import",
    "pack version": "1.2.0-rc.1+build.5",
    "artifact name": "reports/2026/summary.v1.json",
    "tenant id": "Acme.EU_1",
    "run id": "20261122T223015Z-9f2c4e1a",
    "approver name": "alice+ops@example.com",
    "object key segment": "scan[2]::report",
}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.label)
def test_each_kind_accepts_its_example_and_nothing_around_it(kind: keys.NameKind) -> None:
    good = VALID[kind.label]
    assert kind.check(good) == good
    for bad in (good + "\n", "\n" + good, " " + good, good + " ", good + "\x00", good + "/..", "../" + good):
        assert not kind.matches(bad), repr(bad)
    for bad in ("", ".", "..", ".hidden", "\uff0e\uff0e\uff0f", "x" * 1000, None, 7, [good]):
        assert not kind.matches(bad), repr(bad)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.label)
def test_a_refusal_says_what_where_and_how_to_fix(kind: keys.NameKind) -> None:
    with pytest.raises(keys.InvalidName) as caught:
        kind.check("../x", "spec.steps[0]")
    assert caught.value.message == f"{kind.label} '../x' in spec.steps[0] is not valid"
    assert caught.value.remediation == kind.hint
    assert (caught.value.status, caught.value.code) == (422, "InvalidName")


def test_versions_and_names_are_ascii_only() -> None:
    assert not keys.PACK_VERSION.matches("1.1\u0663.0")  # ARABIC-INDIC DIGIT THREE is a Unicode \d
    assert not keys.STEP_ID.matches("sc\u0430n")  # CYRILLIC SMALL LETTER A
    assert not keys.ARTIFACT_NAME.matches("r\u00e9sum\u00e9.txt")


def test_the_manifest_refuses_a_version_with_unicode_digits() -> None:
    manifest = {
        "apiVersion": "stellaops.io/pack.v1",
        "kind": "TaskPack",
        "metadata": {"name": "p", "version": "1.1\u0663.0"},
        "spec": {
            "sandbox": {"mode": "sealed", "egressAllowlist": []},
            "steps": [{"id": "a", "run": {"uses": "noop"}}],
        },
    }
    with pytest.raises(ManifestError, match=r"metadata\.version"):
        load_pack(manifest)


def test_object_keys_are_bounded() -> None:
    segment = "x" * 255
    with pytest.raises(keys.InvalidName, match="longer than 1024"):
        keys.object_key("runs", *[segment] * 5)
    assert keys.check_key("runs/r1/artifacts/a/b") == "runs/r1/artifacts/a/b"
