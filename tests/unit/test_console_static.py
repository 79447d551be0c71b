"""The console function's answers: files by exact name only, the CSP, config.json from the settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from taskrunner.api.console import answer, config_document, load_static, security_headers
from taskrunner.config import ConsoleSettings, console_settings

STATIC = Path(__file__).resolve().parents[2] / "functions" / "console" / "static"
FILES = load_static(STATIC)
LOCAL = ConsoleSettings()
OIDC = ConsoleSettings(oidc_issuer="https://login.example.com/tenant-a/", oidc_client_id="console-client")


def get(path: str, settings: ConsoleSettings = LOCAL, **headers: str) -> dict[str, Any]:
    return answer({"rawPath": path, "headers": headers}, FILES, settings)


def test_every_shipped_file_is_servable_and_nothing_else() -> None:
    shipped = {p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file()}
    assert set(FILES) == shipped
    assert {"index.html", "app.js", "api.js", "console.css"} <= shipped


def test_index_and_modules_reference_only_same_origin_files() -> None:
    index = (STATIC / "index.html").read_text(encoding="utf-8")
    assert "<script>" not in index
    assert "style=" not in index
    for name, file in FILES.items():
        text = file.body.decode("utf-8")
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), name
        assert "innerHTML" not in text, name  # pages are built from elements, text stays text


def test_csp_allows_the_issuer_origin_only_with_an_oidc_client() -> None:
    local = security_headers(ConsoleSettings())["Content-Security-Policy"]
    cloud = security_headers(OIDC)["Content-Security-Policy"]
    assert "connect-src 'self';" in local
    assert "connect-src 'self' https://login.example.com;" in cloud
    for policy in (local, cloud):
        assert "default-src 'self'" in policy
        assert "unsafe" not in policy


def test_config_document_offers_oidc_when_a_client_id_is_set() -> None:
    assert config_document(ConsoleSettings(dev_sign_in=True)) == {"signIn": {"oidc": None, "dev": True}}
    assert config_document(OIDC) == {
        "signIn": {
            "oidc": {
                "issuer": "https://login.example.com/tenant-a/",
                "clientId": "console-client",
                "scopes": ["openid", "packs.read", "packs.run", "packs.approve"],
            },
            "dev": False,
        }
    }
    served = get("/console/config.json", OIDC)
    assert json.loads(served["body"]) == config_document(OIDC)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKRUNNER_CONSOLE__OIDC_ISSUER", "https://idp.example.com")
    monkeypatch.setenv("TASKRUNNER_CONSOLE__OIDC_CLIENT_ID", "abc")
    monkeypatch.setenv("TASKRUNNER_CONSOLE__OIDC_SCOPES", "openid packs.read")
    assert config_document(console_settings())["signIn"]["oidc"] == {
        "issuer": "https://idp.example.com",
        "clientId": "abc",
        "scopes": ["openid", "packs.read"],
    }


def test_root_serves_index_and_etag_revalidates() -> None:
    first = get("/console")
    assert first["statusCode"] == 200
    assert first["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert get("/console/", **{"If-None-Match": first["headers"]["ETag"]})["statusCode"] == 304


@pytest.mark.parametrize(
    "path", ["/console/../app.js", "/console/%2e%2e%2fapp.py", "/console/APP.JS", "/console/app"]
)
def test_other_names_are_404_problems(path: str) -> None:
    reply = get(path)
    assert reply["statusCode"] == 404
    assert reply["headers"]["Content-Type"] == "application/problem+json"
