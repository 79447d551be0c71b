"""``taskrunner packs``: build, sign, publish, list, show, promote, verify, revoke and trust-publisher against
the local registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from taskrunner.cli.app import app
from typer.testing import CliRunner

PACKS = Path(__file__).resolve().parents[2] / "examples" / "packs"
runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["packs", *args])


@pytest.fixture
def keys(tr_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("TASKRUNNER_SIGNING__KEY", "TASKRUNNER_CONFIG_FILE", "TASKRUNNER_STORAGE__MODE"):
        monkeypatch.delenv(name, raising=False)
    found = {}
    for name in ("publisher", "stranger"):
        made = runner.invoke(app, ["keys", "generate", "--out", str(tmp_path / f"{name}.pem"), "--json"])
        assert made.exit_code == 0, made.output
        (tmp_path / f"{name}.pub.pem").write_text(json.loads(made.output)["publicKeyPem"])
        found[name] = (tmp_path / f"{name}.pem").as_uri()
        found[f"{name}.pub"] = str(tmp_path / f"{name}.pub.pem")
    return found


def test_build_sign_publish_promote_verify_revoke(keys: dict[str, str], tmp_path: Path) -> None:
    release = tmp_path / "release"
    (tmp_path / "pack.yaml").write_text((PACKS / "hello.yaml").read_text())
    (tmp_path / "NOTES.md").write_text("release notes")
    built = invoke(
        "build", str(tmp_path / "pack.yaml"), "--file", "NOTES.md", "--out", str(release), "--json"
    )
    assert built.exit_code == 0, built.output
    digest = json.loads(built.output)["digest"]
    assert invoke("sign", str(release), "--key", keys["publisher"]).exit_code == 0

    refused = invoke("publish", str(release))
    assert refused.exit_code == 1
    assert "trusts no publisher key" in refused.output
    assert invoke("trust-publisher", "release", keys["publisher.pub"]).exit_code == 0
    refused = invoke("publish", str(release))
    assert "no revocation list" in refused.output
    assert "packs revoke --init" in refused.output
    assert invoke("revoke", "--init", "--key", keys["publisher"]).exit_code == 0

    published = invoke("publish", str(release), "--json")
    assert published.exit_code == 0, published.output
    assert json.loads(published.output) == {"published": "hello@1.0.0", "digest": digest}
    assert invoke("promote", "hello", "1.0.0", "--channel", "stable").exit_code == 0
    listed = json.loads(invoke("list", "--channel", "stable", "--json").output)
    assert listed == [{"name": "hello", "versions": ["1.0.0"], "tags": [], "channels": {"stable": "1.0.0"}}]
    shown = json.loads(invoke("show", "hello", "1.0.0", "--json").output)
    assert shown["digest"] == digest
    assert "name: hello" in shown["manifest"]
    verified = invoke("verify", "hello@stable", "--json")
    assert json.loads(verified.output)["digest"] == digest

    revoked = invoke("revoke", "hello@1.0.0", "--key", keys["publisher"], "--reason", "bad release")
    assert revoked.exit_code == 0, revoked.output
    failed = invoke("verify", "hello@stable")
    assert failed.exit_code == 1
    assert "hello@1.0.0 is revoked for tenant local: bad release" in failed.output


def test_publish_names_the_missing_signature_and_an_untrusted_signer(
    keys: dict[str, str], tmp_path: Path
) -> None:
    release = tmp_path / "release"
    assert invoke("build", str(PACKS / "hello.yaml"), "--out", str(release)).exit_code == 0
    assert invoke("trust-publisher", "release", keys["publisher.pub"]).exit_code == 0
    assert invoke("revoke", "--init", "--key", keys["publisher"]).exit_code == 0
    missing = invoke("publish", str(release))
    assert missing.exit_code == 1
    assert "signature envelope is missing" in missing.output
    assert invoke("sign", str(release), "--key", keys["stranger"]).exit_code == 0
    untrusted = invoke("publish", str(release))
    assert "does not verify" in untrusted.output
    assert invoke("list", "--json").output.strip() == "[]"
    nothing = invoke("revoke", "--key", keys["publisher"])
    assert nothing.exit_code == 1
    assert "nothing to revoke" in nothing.output
    malformed = invoke("revoke", "hello", "--key", keys["publisher"])
    assert malformed.exit_code == 1
    assert "is not PACK@VERSION" in malformed.output
