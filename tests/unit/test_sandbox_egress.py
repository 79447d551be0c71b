"""Sealed-mode egress: http.request reaches only allowlisted hosts, and nothing when the deployment is sealed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from taskrunner.modules.base import ModuleContext, ModuleError, SandboxPolicy
from taskrunner.modules.http import http_request


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
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
