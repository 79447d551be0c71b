"""Sealed-mode egress: http.request reaches only allowlisted hosts, and nothing when the deployment is sealed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from taskrunner.modules.base import ModuleContext, ModuleError, SandboxPolicy
from taskrunner.modules.http import http_request

SEEN: list[tuple[str, str, str]] = []  # (method, path, Host) of every request the server received
AUTHORIZATION: dict[str, str | None] = {}  # path -> the Authorization header it came with


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        SEEN.append((self.command, self.path, self.headers.get("Host", "")))
        AUTHORIZATION[self.path] = self.headers.get("Authorization")
        if self.path.startswith("/redirect/"):
            hops, _, target = self.path.removeprefix("/redirect/").partition("/")
            location = f"/redirect/{int(hops) - 1}/{target}" if int(hops) > 1 else unquote(target)
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"hello": "world"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ping"
    httpd.shutdown()


def context(tmp_path: Path, sandbox: SandboxPolicy) -> ModuleContext:
    return ModuleContext(
        run_id="r",
        tenant_id="t",
        step_id="call",
        attempt=1,
        sandbox=sandbox,
        workdir=tmp_path,
        artifacts=None,
        log=lambda *a: None,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("allowlist", "host", "allowed"),
    [
        ((), "example.com", False),
        (("example.com",), "example.com", True),
        (("example.com",), "EXAMPLE.com.", True),
        (("example.com",), "api.example.com", False),
        (("*.example.com",), "api.example.com", True),
        (("*.example.com",), "example.com", False),
        (("*.example.com",), "evilexample.com", False),
    ],
)
def test_allowlist_matching(allowlist: tuple[str, ...], host: str, allowed: bool) -> None:
    assert SandboxPolicy(egress_allowlist=allowlist).allows_host(host) is allowed
    assert SandboxPolicy(egress_allowlist=allowlist, air_gapped=True).allows_host(host) is False


def test_an_allowlisted_host_is_reached(server: str, tmp_path: Path) -> None:
    out = http_request(context(tmp_path, SandboxPolicy(egress_allowlist=("127.0.0.1",))), {"url": server})
    assert out["status"] == 200
    assert out["json"] == {"hello": "world"}


@pytest.mark.parametrize(
    ("sandbox", "reason"),
    [
        (SandboxPolicy(egress_allowlist=()), "egressAllowlist"),
        (SandboxPolicy(egress_allowlist=("localhost",)), "egressAllowlist"),
        (SandboxPolicy(egress_allowlist=("127.0.0.1",), air_gapped=True), "sealed"),
    ],
)
def test_egress_outside_the_sandbox_is_refused_without_a_request(
    server: str, tmp_path: Path, sandbox: SandboxPolicy, reason: str
) -> None:
    with pytest.raises(ModuleError) as refused:
        http_request(context(tmp_path, sandbox), {"url": server})
    assert refused.value.code == "EgressDenied"
    assert refused.value.retryable is False
    assert reason in refused.value.message


def redirect(server: str, target: str, hops: int = 1) -> str:
    return server.replace("/ping", f"/redirect/{hops}/{quote(target, safe='')}")


def test_redirects_within_the_allowlist_are_followed(server: str, tmp_path: Path) -> None:
    allowed = SandboxPolicy(egress_allowlist=("127.0.0.1",))
    out = http_request(context(tmp_path, allowed), {"url": redirect(server, server, hops=3)})
    assert out["status"] == 200
    assert out["url"] == server


def test_a_redirect_to_a_host_outside_the_allowlist_is_refused_before_any_request(
    server: str, tmp_path: Path
) -> None:
    elsewhere = server.replace("127.0.0.1", "localhost") + "?leaked"  # the same server, another name
    SEEN.clear()
    with pytest.raises(ModuleError) as refused:
        http_request(
            context(tmp_path, SandboxPolicy(egress_allowlist=("127.0.0.1",))),
            {"url": redirect(server, elsewhere)},
        )
    assert refused.value.code == "EgressDenied"
    assert "'localhost'" in refused.value.message
    assert [path for _, path, _ in SEEN if "leaked" in path and not path.startswith("/redirect")] == []


def test_credentials_do_not_follow_a_redirect_to_another_host(server: str, tmp_path: Path) -> None:
    sandbox = SandboxPolicy(egress_allowlist=("127.0.0.1", "localhost"))
    elsewhere = server.replace("127.0.0.1", "localhost") + "?other-host"
    start = redirect(server, elsewhere)
    params = {"url": start, "headers": {"Authorization": "Bearer for-127.0.0.1"}}
    assert http_request(context(tmp_path, sandbox), params)["status"] == 200
    assert AUTHORIZATION[urlsplit(start).path] == "Bearer for-127.0.0.1"
    assert AUTHORIZATION["/ping?other-host"] is None


def test_too_many_redirects_fail_clearly(server: str, tmp_path: Path) -> None:
    with pytest.raises(ModuleError) as failed:
        http_request(
            context(tmp_path, SandboxPolicy(egress_allowlist=("127.0.0.1",))),
            {"url": redirect(server, server, hops=9)},
        )
    assert failed.value.code == "TooManyRedirects"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.10.1/",
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
    ],
)
def test_link_local_and_metadata_addresses_are_never_contacted(url: str, tmp_path: Path) -> None:
    host = url.split("//")[1].split("/")[0].strip("[]")
    with pytest.raises(ModuleError) as refused:
        http_request(context(tmp_path, SandboxPolicy(egress_allowlist=(host,))), {"url": url, "timeout": 1})
    assert refused.value.code == "EgressDenied"
    assert "link-local or instance-metadata" in refused.value.message


def test_a_redirect_to_the_metadata_address_is_refused(server: str, tmp_path: Path) -> None:
    sandbox = SandboxPolicy(egress_allowlist=("127.0.0.1", "169.254.169.254"))
    with pytest.raises(ModuleError) as refused:
        http_request(context(tmp_path, sandbox), {"url": redirect(server, "http://169.254.169.254/latest/")})
    assert refused.value.code == "EgressDenied"


RESOLVING = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from test_sandbox_egress import context
from taskrunner.modules.base import ModuleError, SandboxPolicy
from taskrunner.modules.http import http_request
sandbox = SandboxPolicy(egress_allowlist=("metadata.example.test", "api.example.test"))
results = {}
for url in sys.argv[2:]:
    try:
        results[url] = http_request(context(Path("."), sandbox), {"url": url, "timeout": 2})["status"]
    except ModuleError as exc:
        results[url] = exc.code + ": " + exc.message
print(json.dumps(results))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root to bind /etc/hosts")
def test_a_name_is_checked_by_the_address_it_resolves_to_and_connected_to_that_address(
    server: str, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("169.254.169.254 metadata.example.test\n127.0.0.1 api.example.test\n")
    port = server.split(":")[2].split("/")[0]
    urls = ["http://metadata.example.test/latest/meta-data/", f"http://api.example.test:{port}/ping"]
    SEEN.clear()
    done = subprocess.run(  # /etc/hosts replaced for this process only (a private mount namespace)
        [
            "unshare",
            "--mount",
            "sh",
            "-c",
            f'mount --bind {hosts} /etc/hosts && exec "$@"',
            "sh",
            sys.executable,
            "-c",
            RESOLVING,
            str(Path(__file__).parent),
            *urls,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    results = json.loads(done.stdout)
    assert results[urls[0]].startswith("EgressDenied")
    assert "resolves to 169.254.169.254" in results[urls[0]]
    assert results[urls[1]] == 200
    assert ("GET", "/ping", f"api.example.test:{port}") in SEEN  # connected to the resolved address, named


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` and its key, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_https_is_verified_against_the_url_host_while_connecting_to_the_resolved_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssl

    cert, key = self_signed(tmp_path, "localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    try:
        sandbox = SandboxPolicy(egress_allowlist=("localhost", "127.0.0.1"))
        with pytest.raises(ModuleError) as untrusted:  # the system trust store does not know this certificate
            http_request(context(tmp_path, sandbox), {"url": f"https://localhost:{port}/ping"})
        assert untrusted.value.code == "RequestFailed"
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        out = http_request(context(tmp_path, sandbox), {"url": f"https://localhost:{port}/ping"})
        assert out["json"] == {"hello": "world"}
        with pytest.raises(ModuleError) as mismatch:  # the certificate names localhost, not 127.0.0.1
            http_request(context(tmp_path, sandbox), {"url": f"https://127.0.0.1:{port}/ping"})
        assert "127.0.0.1" in mismatch.value.message
    finally:
        httpd.shutdown()
