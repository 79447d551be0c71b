"""Local development JWTs: key creation, minting, verification failures and the token command."""

from __future__ import annotations

import base64
import json
import stat
import time
from pathlib import Path

import jwt
import pytest
import typer
from cryptography.hazmat.primitives.asymmetric import ec
from taskrunner.api.auth import Unauthorized
from taskrunner.cli.token import token
from taskrunner.errors import ValidationFailed
from taskrunner.local import devauth
from typer.testing import CliRunner


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TASKRUNNER_HOME", str(tmp_path))
    return tmp_path


def test_key_is_created_once_with_owner_only_permissions(home: Path) -> None:
    path = home / "keys" / "jwt-dev.pem"
    assert not path.exists()
    first = devauth.mint_token(["packs.read"], "acme")
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_bytes()
    assert content.startswith(b"-----BEGIN PRIVATE KEY-----")
    second = devauth.mint_token(["packs.read"], "acme")
    assert path.read_bytes() == content
    assert devauth.verify_token(first)["tenant_id"] == devauth.verify_token(second)["tenant_id"] == "acme"
    assert "BEGIN PUBLIC KEY" in devauth.public_key_pem()


def test_mint_and_verify_round_trip() -> None:
    text = devauth.mint_token(
        ["packs.read", "packs.approve"], "acme", {"pack_run_id": "run-1", "sub": "alice"}, ttl_seconds=60
    )
    header = jwt.get_unverified_header(text)
    assert header["alg"] == "ES256"
    claims = devauth.verify_token(text)
    assert claims["scope"] == "packs.read packs.approve"
    assert claims["tenant_id"] == "acme"
    assert claims["sub"] == "alice"
    assert claims["pack_run_id"] == "run-1"
    assert (claims["iss"], claims["aud"]) == ("taskrunner-local", "taskrunner")
    assert 55 <= claims["exp"] - time.time() <= 61


def test_default_subject() -> None:
    assert devauth.verify_token(devauth.mint_token(["packs.read"], "t"))["sub"] == devauth.DEFAULT_SUBJECT


def test_expired_token_is_refused() -> None:
    with pytest.raises(Unauthorized, match="expired"):
        devauth.verify_token(devauth.mint_token(["packs.read"], "acme", ttl_seconds=-5))


def test_token_from_another_key_has_a_bad_signature() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    claims = {
        "iss": "taskrunner-local",
        "aud": "taskrunner",
        "sub": "x",
        "iat": now,
        "exp": now + 60,
        "tenant_id": "acme",
        "scope": "packs.read",
    }
    forged = jwt.encode(claims, other, algorithm="ES256")
    with pytest.raises(Unauthorized, match="signature"):
        devauth.verify_token(forged)


def test_tampered_payload_has_a_bad_signature() -> None:
    header, payload, signature = devauth.mint_token(["packs.read"], "acme").split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["tenant_id"] = "someone-else"
    forged_payload = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthorized, match="signature"):
        devauth.verify_token(f"{header}.{forged_payload}.{signature}")


def test_wrong_audience_and_issuer_are_named() -> None:
    with pytest.raises(Unauthorized, match="audience is not 'taskrunner'"):
        devauth.verify_token(devauth.mint_token(["packs.read"], "acme", audience="someone-else"))
    with pytest.raises(Unauthorized, match="issuer is not 'taskrunner-local'"):
        devauth.verify_token(devauth.mint_token(["packs.read"], "acme", issuer="https://evil.example"))


def test_other_algorithms_and_garbage_are_refused() -> None:
    now = int(time.time())
    hs = jwt.encode({"sub": "x", "exp": now + 60}, "k" * 32, algorithm="HS256")
    with pytest.raises(Unauthorized, match="HS256"):
        devauth.verify_token(hs)
    with pytest.raises(Unauthorized, match="malformed"):
        devauth.verify_token("not-a-jwt")


def test_missing_required_claim_is_named() -> None:
    now = int(time.time())
    claims = {"iss": "taskrunner-local", "aud": "taskrunner", "iat": now, "exp": now + 60}  # no sub
    text = jwt.encode(claims, devauth.signing_key(), algorithm="ES256")
    with pytest.raises(Unauthorized, match="'sub'"):
        devauth.verify_token(text)


def test_reserved_claims_cannot_be_overridden() -> None:
    with pytest.raises(ValidationFailed, match="exp, tenant_id"):
        devauth.mint_token(["packs.read"], "acme", {"tenant_id": "other", "exp": 1})
    with pytest.raises(ValidationFailed, match="tenant"):
        devauth.mint_token(["packs.read"], " ")


# --- taskrunner token ---------------------------------------------------------------------------


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(token)
    return app


def test_token_command_prints_a_verifiable_token() -> None:
    result = CliRunner().invoke(
        cli(),
        [
            "--scopes",
            "packs.read,packs.approve",
            "--tenant",
            "acme",
            "--claim",
            "pack_run_id=run-7",
            "--claim",
            "pack_plan_hash=sha256:abc=def",
            "--ttl",
            "120",
        ],
    )
    assert result.exit_code == 0, result.output
    claims = devauth.verify_token(result.stdout.strip())
    assert claims["scope"] == "packs.read packs.approve"
    assert claims["pack_run_id"] == "run-7"
    assert claims["pack_plan_hash"] == "sha256:abc=def"
    assert claims["exp"] - claims["iat"] == 120


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scopes", "pack.read", "--tenant", "acme"], "unknown scope pack.read"),
        (["--scopes", "packs.read", "--tenant", "acme", "--claim", "novalue"], "NAME=VALUE"),
        (["--scopes", "packs.read", "--tenant", "acme", "--claim", "exp=1"], "cannot be overridden"),
    ],
)
def test_token_command_rejects_bad_options(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 2
    assert message in result.output
    assert result.stdout.count(".") < 2  # no token printed
