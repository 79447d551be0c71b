"""Schemathesis against a running ``taskrunner serve``: positive and negative phases, bounded in time.

The API must answer every generated request (valid or not, with or without a token) without a 5xx,
with a status its OpenAPI documents and a body that matches the documented schema. ``serve`` runs as
its own process in a fresh TASKRUNNER_HOME holding one finished run of the hello pack, so the run
routes have a real run to read (and to refuse to cancel, resume or approve).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PACKS, REPO

BIN = Path(sys.executable).parent
MAX_EXAMPLES = 25
# The schema cannot say which cursors the API issued or which manifests plan: such requests are
# schema-valid yet rightly refused with 422, so positive_data_acceptance cannot hold here.
EXCLUDED_CHECKS = "positive_data_acceptance"


def call(method: str, url: str, token: str, body: bytes | None = None) -> dict[str, object]:
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        document: dict[str, object] = json.loads(response.read())
        return document


def served_url(server: subprocess.Popen[bytes], log_path: Path) -> str:
    """The URL ``serve`` prints on a line of its own once it listens."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        for line in log_path.read_text(encoding="utf-8").splitlines():
            if line.startswith("http://127.0.0.1:"):
                return line.strip()
        time.sleep(0.1)
    raise AssertionError(f"serve did not start:\n{log_path.read_text(encoding='utf-8')[-4000:]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str, dict[str, str]]]:
    """(url, token, runId of a finished run, environment) of a ``taskrunner serve`` process."""
    home = tmp_path_factory.mktemp("fuzz-home")
    env = {**os.environ, "TASKRUNNER_HOME": str(home)}
    scopes = "packs.read,packs.run,packs.approve"
    token = subprocess.run(
        [BIN / "taskrunner", "token", "--scopes", scopes, "--tenant", "t1"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    log_path = home / "serve.log"  # handlers log every request: a file, so that no pipe fills up
    log = log_path.open("w")
    server = subprocess.Popen(
        [BIN / "taskrunner", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = served_url(server, log_path)
        body = json.dumps({"manifest": (PACKS / "hello.yaml").read_text(encoding="utf-8")}).encode()
        run_id = str(call("POST", f"{url}/api/runs", token, body)["runId"])
        deadline = time.monotonic() + 60
        while call("GET", f"{url}/api/runs/{run_id}", token)["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, "the hello run did not finish"
            time.sleep(0.2)
        yield url, token, run_id, env
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_schemathesis_finds_no_server_error_and_no_nonconformance(
    served: tuple[str, str, str, dict[str, str]], tmp_path: Path
) -> None:
    url, token, run_id, env = served
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\n"path.runId" = "{run_id}"\n', encoding="utf-8")
    report = tmp_path / "report.json"
    har = tmp_path / "requests.har"
    command = [
        str(BIN / "st"),
        "--config-file",
        str(config),
        "run",
        f"{url}/.well-known/openapi",
        "--url",
        url,
        "--header",
        f"Authorization: Bearer {token}",
        "--mode",
        "all",  # positive and negative
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--report",
        "json,har",
        "--report-json-path",
        str(report),
        "--report-har-path",
        str(har),
    ]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )  # ~25 s on 2 cores

    summary = json.loads(report.read_text(encoding="utf-8"))
    requests = len(json.loads(har.read_text(encoding="utf-8"))["log"]["entries"])
    failures = {f["code"]: f["count"] for f in summary["failures"]}
    print(f"schemathesis: {requests} requests, {summary['test_cases']['generated']} test cases, ", end="")
    print(f"failures {failures or 0}, errors {len(summary['errors'])}, seed {summary['seed']}")
    assert (failures, summary["errors"], done.returncode) == ({}, [], 0), done.stdout[-6000:]
    assert summary["operations"]["tested"] == summary["operations"]["total"] >= 10
    assert requests >= 10 * MAX_EXAMPLES


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"manifest": "\\ud800"}', "application/json", 400),
        (b'{"manifest": "\xff"}', "application/json", 400),
        (b'{"manifest": 1' + b"9" * 4301 + b"}", "application/json", 400),
        (b"[" * 50_000 + b"]" * 50_000, "application/json", 400),
        (b"\x00\x01\xfe binary", None, 400),
        (b"--b\r\n\r\nx\r\n--b--", "multipart/form-data", 415),
    ],
    ids=["lone-surrogate", "not-utf8", "huge-int", "deep", "binary", "multipart-no-boundary"],
)
def test_the_real_handler_refuses_unreadable_bodies(
    served: tuple[str, str, str, dict[str, str]], body: bytes, content_type: str | None, status: int
) -> None:
    url, token, _, _ = served
    host, port = url.removeprefix("http://").split(":")
    head = ["POST /api/runs HTTP/1.1", f"Host: {host}", f"Authorization: Bearer {token}"]
    head += [f"Content-Type: {content_type}"] if content_type else []
    head += [f"Content-Length: {len(body)}", "", ""]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall("\r\n".join(head).encode() + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        document = json.loads(response.read())
    assert (response.status, response.getheader("Content-Type")) == (status, "application/problem+json")
    assert document["code"] == ("MalformedBody" if status == 400 else "UnsupportedMediaType")
    assert document["remediation"]
