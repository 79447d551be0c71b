"""``taskrunner packs publish|list|show|promote --api``: the same verbs against the HTTP API (``taskrunner
serve``), the tenant taken from the token; refusals print the API's detail and hint and exit 1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from taskrunner.cli.app import app
from taskrunner.engine import registry
from taskrunner.evidence.signing import generate_ed25519_keyfile
from taskrunner.local.api_routes import api_routes
from taskrunner.local.devauth import mint_token
from taskrunner.local.http_server import serve
from typer.testing import CliRunner

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")
PACKS = Path(__file__).resolve().parents[2] / "examples" / "packs"
TENANT = "packs-api-tenant"
runner = CliRunner()


@pytest.fixture(scope="module")
def api_url(runtime: Any) -> Iterator[str]:
    server = serve(api_routes(runtime), port=0, poll_interval=0.05).start()
    try:
        yield server.url
    finally:
        server.shutdown()


def packs(api_url: str, token: str, *args: str) -> Any:
    return runner.invoke(app, ["packs", *args, "--api", api_url, "--token", token])


def release_signed_by(tmp_path: Path, key_uri: str) -> tuple[Path, str]:
    release = tmp_path / "release"
    built = runner.invoke(app, ["packs", "build", str(PACKS / "hello.yaml"), "--out", str(release), "--json"])
    assert built.exit_code == 0, built.output
    assert runner.invoke(app, ["packs", "sign", str(release), "--key", key_uri]).exit_code == 0
    return release, json.loads(built.stdout)["digest"]


def test_publish_list_show_promote_over_the_api(runtime: Any, api_url: str, tmp_path: Path) -> None:
    publisher = generate_ed25519_keyfile(tmp_path / "publisher.pem")
    registry.trust_publisher(runtime.svc, TENANT, "release", publisher.public_key_pem)
    registry.revoke(runtime.svc, TENANT, publisher)
    writer = mint_token(["packs.read", "packs.write"], TENANT)
    reader = mint_token(["packs.read"], TENANT)
    release, digest = release_signed_by(tmp_path, (tmp_path / "publisher.pem").as_uri())

    published = packs(api_url, writer, "publish", str(release), "--json")
    assert published.exit_code == 0, published.output
    assert json.loads(published.stdout) == {"published": "hello@1.0.0", "digest": digest}
    assert registry.versions(runtime.svc, TENANT, "hello")["versions"] == ["1.0.0"]

    promoted = packs(api_url, writer, "promote", "hello", "1.0.0", "--channel", "stable", "--json")
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.stdout) == {"channels": {"stable": "1.0.0"}}

    listed = packs(api_url, reader, "list", "--channel", "stable", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == registry.list_packs(runtime.svc, TENANT, channel="stable")
    assert json.loads(listed.stdout)[0]["channels"] == {"stable": "1.0.0"}
    assert json.loads(packs(api_url, reader, "list", "--channel", "beta", "--json").stdout) == []
    text = packs(api_url, reader, "list")
    assert "hello\t1.0.0\tchannels: stable=1.0.0" in text.output

    shown = packs(api_url, reader, "show", "hello", "1.0.0", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["digest"] == digest
    assert json.loads(shown.stdout)["publisherKeyIds"] == [publisher.keyid]
    assert "name: hello" in json.loads(shown.stdout)["manifest"]

    forbidden = packs(api_url, reader, "promote", "hello", "1.0.0", "--channel", "edge")
    assert forbidden.exit_code == 1
    assert "answered 403" in forbidden.output
    assert registry.versions(runtime.svc, TENANT, "hello")["channels"] == {"stable": "1.0.0"}


def test_refusals_print_the_problem_and_write_nothing(runtime: Any, api_url: str, tmp_path: Path) -> None:
    tenant = "packs-api-refusals"
    trusted = generate_ed25519_keyfile(tmp_path / "trusted.pem")
    generate_ed25519_keyfile(tmp_path / "stranger.pem")
    registry.trust_publisher(runtime.svc, tenant, "release", trusted.public_key_pem)
    registry.revoke(runtime.svc, tenant, trusted)
    writer = mint_token(["packs.read", "packs.write"], tenant)
    release, _ = release_signed_by(tmp_path, (tmp_path / "stranger.pem").as_uri())

    untrusted = packs(api_url, writer, "publish", str(release))
    assert untrusted.exit_code == 1
    assert "answered 422" in untrusted.output
    assert "does not verify" in untrusted.output
    assert registry.list_packs(runtime.svc, tenant) == []

    (release / registry.ENVELOPE).unlink()
    unsigned = packs(api_url, writer, "publish", str(release))
    assert unsigned.exit_code == 1
    assert "signature envelope is missing" in unsigned.output

    missing = packs(api_url, writer, "show", "hello", "9.9.9")
    assert missing.exit_code == 1
    assert "answered 404" in missing.output

    tokenless = runner.invoke(app, ["packs", "list", "--api", api_url], env={"TASKRUNNER_TOKEN": ""})
    assert tokenless.exit_code == 1
    assert "--api needs a token" in tokenless.output
    assert registry.list_packs(runtime.svc, tenant) == []


def call(api_url: str, method: str, path: str, token: str, body: Any) -> tuple[int, dict[str, Any]]:
    """One JSON request to the local API: (status, decoded body)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        api_url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_revoking_over_the_api_makes_submits_fail_closed(runtime: Any, api_url: str, tmp_path: Path) -> None:
    tenant = "packs-api-revoke"
    publisher = generate_ed25519_keyfile(tmp_path / "publisher.pem")
    key_uri = (tmp_path / "publisher.pem").as_uri()
    registry.trust_publisher(runtime.svc, tenant, "release", publisher.public_key_pem)
    writer = mint_token(["packs.read", "packs.write"], tenant)

    assert packs(api_url, writer, "revoke", "hello@1.0.0", "--key", key_uri).exit_code == 1  # no list yet
    created = packs(api_url, writer, "revoke", "--init", "--key", key_uri, "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout) == {"tenant": tenant, "versions": [], "keys": []}
    release, _ = release_signed_by(tmp_path, key_uri)
    assert packs(api_url, writer, "publish", str(release)).exit_code == 0
    submitter = mint_token(["packs.run"], tenant)
    submit = {"packRef": "hello@1.0.0", "inputs": {"who": "registry"}}
    assert call(api_url, "POST", "/api/runs", submitter, submit)[0] == 202

    revoked = packs(
        api_url, writer, "revoke", "hello@1.0.0", "--key", key_uri, "--reason", "bad build", "--json"
    )
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.stdout)["versions"] == [
        {"pack": "hello", "version": "1.0.0", "reason": "bad build"}
    ]
    status, problem = call(api_url, "POST", "/api/runs", submitter, submit)
    assert (status, problem["code"]) == (409, "PackRevoked")
    assert "bad build" in problem["detail"]


def test_the_revocation_route_refuses_a_list_that_shrinks_or_is_not_trusted(
    runtime: Any, api_url: str, tmp_path: Path
) -> None:
    tenant = "packs-api-shrink"
    publisher = generate_ed25519_keyfile(tmp_path / "publisher.pem")
    stranger = generate_ed25519_keyfile(tmp_path / "stranger.pem")
    registry.trust_publisher(runtime.svc, tenant, "release", publisher.public_key_pem)
    registry.revoke(runtime.svc, tenant, publisher)
    registry.revoke(runtime.svc, tenant, publisher, pack="hello", version="0.9.0", reason="old")
    before = registry.revocation_envelope(runtime.svc, tenant)
    writer = mint_token(["packs.read", "packs.write"], tenant)

    def put(envelope: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return call(api_url, "PUT", "/api/packs/revocations", writer, envelope)

    empty = registry.extend_revocations(None, tenant)
    shrunk = put(registry.sign_revocations(empty, publisher))
    assert shrunk[0] == 422
    assert "drops 1 entry" in shrunk[1]["detail"]
    grown = registry.extend_revocations(registry.revocations(runtime.svc, tenant), tenant, keyid="ab" * 32)
    untrusted = put(registry.sign_revocations(grown, stranger))
    assert untrusted[0] == 422
    assert "does not verify" in untrusted[1]["detail"]
    other = put(registry.sign_revocations({**grown, "tenant": "someone-else"}, publisher))
    assert other[0] == 422
    assert registry.revocation_envelope(runtime.svc, tenant) == before  # nothing written
    assert put(registry.sign_revocations(grown, publisher))[0] == 200
    assert registry.revocations(runtime.svc, tenant)["keys"] == [{"keyid": "ab" * 32, "reason": ""}]
