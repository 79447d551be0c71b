"""Secrets with quotes, backslashes, newlines, non-ASCII and astral characters, ``</script>`` and 8 KiB of text,
used by every builtin module and placed across every cut the executor makes (the 8 KiB ``exec`` excerpt, the
64 KiB ``http.request`` body, the redacting reader's 64 KiB reads and the 1 MiB stream chunks): no piece of
any of them, in any encoding the project writes, is in a stored byte, the evidence bundle, the process output
or an API answer. And an ``exec`` step sees nothing of the executor's own environment."""

from __future__ import annotations

import json
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import submit
from taskrunner.keys import evidence_key
from taskrunner.modules.isolation import isolation
from taskrunner.streams import CHUNK_SIZE
from test_http_api import Api, read_url, user_token
from test_run_cli import taskrunner
from test_secret_canary import bundle_places, home_places, moto_places

EXCERPT_BYTES = 8192
HTTP_BODY_CUT = 64 * 1024


def secret_values() -> list[str]:
    """Each value starts and ends with 16 random hex digits: any 12-character piece at either end is its own."""
    middles = [
        '"quoted" \\"',
        "\\back\\slash\\\\",
        "\nnew\nline\r\n\t",
        "-caf\u00e9-\u00fc\u00df-\u4e2d\u6587-",
        "-\U0001f600-\U00010348-",
        "</script><script>alert('x')</script>",
        "'mixed\"\\\u00e9\U0001f600\n</script>",
        "L" * 8200,  # longer than the excerpt by itself
    ]
    return [uuid.uuid4().hex[:16] + middle + uuid.uuid4().hex[:16] for middle in middles]


def needles(secrets: list[str]) -> list[bytes]:
    return [piece.encode() for s in secrets for piece in (s[:12], s[-12:])]


# ------------------------------------------------------------------------------------------ the pack
PRINT_FORMS = """
import json, sys
secrets = sys.argv[1:]
for s in secrets:
    for form in (s, json.dumps(s), json.dumps(s, ensure_ascii=False), repr(s)):
        print("form:", form)
"""
STRADDLE = """
import json, os, sys
excerpt, chunk = int(sys.argv[1]), int(sys.argv[2])
secret = os.environ["S"]

def straddled(edges, forms):
    data, written = b"", 0
    for edge, form in zip(edges, forms):
        data += b"x" * (edge - len(form) // 2 - len(data)) + form
    return data

raw, escaped = secret.encode(), json.dumps(secret).encode()
sys.stdout.buffer.write(straddled((excerpt, 65536, 2 * 65536, chunk, 2 * chunk), (raw, *[escaped] * 4)))
sys.stderr.buffer.write(straddled((excerpt,), (json.dumps(secret, ensure_ascii=False).encode(),)))
"""


def matrix_pack(count: int, server: str, bundle_dir: Path, bundle_sha: str) -> str:
    ref = [f"{{{{ secrets.s{i} }}}}" for i in range(count)]
    header_safe = [0, 1, 5]  # HTTP headers carry no line breaks and no characters outside Latin-1
    steps: list[dict[str, Any]] = [
        {
            "id": "echo",
            "run": {"uses": "noop", "with": {f"v{i}": ref[i] for i in range(count)}},
            "outputs": [f"v{i}" for i in range(count)],
        },
        {
            "id": "doc",
            "run": {
                "uses": "artifact.write",
                "with": {"name": "doc.json", "content": {"all": ref, "nested": {"s": ref[6]}}},
            },
        },
        {
            "id": "text",
            "run": {"uses": "artifact.write", "with": {"name": "text.txt", "content": " | ".join(ref)}},
        },
        {"id": "forms", "run": {"uses": "exec", "with": {"argv": [sys.executable, "-c", PRINT_FORMS, *ref]}}},
        {
            "id": "call",
            "run": {
                "uses": "http.request",
                "with": {
                    "url": f"{server}/echo",
                    "headers": {f"X-S{i}": ref[i] for i in header_safe},
                    "json": {"all": ref},
                },
            },
        },
        {"id": "bodycut", "run": {"uses": "http.request", "with": {"url": f"{server}/edge", "body": ref[4]}}},
        {
            "id": "ingest",
            "continueOnError": True,  # a secret is no valid file name: refused, and its error searched
            "run": {
                "uses": "bundle.ingest",
                "with": {"path": f"{bundle_dir}/{ref[3]}.tar", "checksumSha256": bundle_sha},
            },
        },
        {
            "id": "missing",
            "continueOnError": True,
            "run": {
                "uses": "bundle.ingest",
                "with": {"path": f"/nonexistent/{ref[6]}.tar", "checksumSha256": "0" * 64},
            },
        },
        {"id": "noprogram", "continueOnError": True, "run": {"uses": "exec", "with": {"argv": [ref[2]]}}},
    ]
    for i in range(count):
        steps.append(
            {
                "id": f"name{i}",
                "continueOnError": True,  # refused like ingest
                "run": {"uses": "artifact.write", "with": {"name": f"n{i}-{ref[i]}.txt", "content": ref[i]}},
            }
        )
        steps.append(
            {
                "id": f"edge{i}",
                "run": {
                    "uses": "exec",
                    "with": {
                        "argv": [sys.executable, "-c", STRADDLE, str(EXCERPT_BYTES), str(CHUNK_SIZE)],
                        "env": {"S": ref[i]},
                    },
                },
            }
        )
    manifest = {
        "apiVersion": "stellaops.io/pack.v1",
        "kind": "TaskPack",
        "metadata": {"name": "secret-matrix", "version": "1.0.0"},
        "spec": {
            "secrets": [{"name": f"s{i}", "ref": f"env:MATRIX_S{i}"} for i in range(count)],
            # exec is isolated wherever namespaces work; a restricted pack also runs where they do not
            "sandbox": {
                "mode": "restricted",
                "egressAllowlist": ["127.0.0.1"],
                "cpuSeconds": 60,
                "memoryMiB": 1024,
            },
            "security": {"secretsRedactionPolicy": "hash"},
            "steps": steps,
            "outputs": [{"name": "echoed", "type": "value", "from": "steps.echo.outputs"}],
        },
    }
    return json.dumps(manifest)


class _Echo(BaseHTTPRequestHandler):
    """``/echo``: the request's headers and JSON body as JSON; ``/edge``: the body placed across the 64 KiB cut.
    (A server that re-encodes what it got, e.g. escapes it twice, writes a form no redactor can know.)"""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/echo":
            payload = json.dumps({"headers": dict(self.headers), "body": json.loads(body)}).encode()
            content_type = "application/json"
        else:
            payload = b"x" * (HTTP_BODY_CUT - len(body) // 2) + body + b"y" * 100
            content_type = "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def echo_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def unsealed_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local runtime whose deployment is not sealed, so http.request may reach the allowlisted loopback."""
    from support.clock import fast_clock
    from taskrunner.local.runtime import LocalRuntime

    home = tmp_path_factory.mktemp("matrix-home")
    saved = {k: os.environ.get(k) for k in ("TASKRUNNER_HOME", "TASKRUNNER_SANDBOX__SEALED")}
    os.environ.update({"TASKRUNNER_HOME": str(home), "TASKRUNNER_SANDBOX__SEALED": "false"})
    try:
        with fast_clock(0.01), LocalRuntime(home) as rt:
            yield rt
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def api_answers(rt: Any, tenant: str, run_id: str) -> Iterator[tuple[str, bytes]]:
    from taskrunner.local.api_routes import api_routes
    from taskrunner.local.http_server import serve

    server = serve(api_routes(rt), port=0, poll_interval=0.05).start()
    try:
        api, token = Api(server.url), user_token(tenant)
        for path, accept in [
            (f"/api/runs/{run_id}", "application/json"),
            (f"/api/runs/{run_id}/logs?limit=5000", "application/json"),
            (f"/api/runs/{run_id}/logs", "application/x-ndjson"),
            (f"/api/runs/{run_id}/logs", "text/event-stream"),
            (f"/api/runs/{run_id}/artifacts", "application/json"),
            (f"/api/runs/{run_id}/evidence", "application/json"),
            ("/api/runs", "application/json"),
        ]:
            reply = api.get(path, token, headers={"Accept": accept})
            assert reply.status == 200, (path, reply.body)
            yield f"GET {path} ({accept})", reply.body
            if path.endswith("/artifacts"):
                for artifact in reply.json()["items"]:
                    if artifact.get("url"):
                        yield f"download {artifact['name']}", read_url(artifact["url"])
    finally:
        server.shutdown()


def leaks(secrets: list[str], places: Iterator[tuple[str, bytes]]) -> list[str]:
    """Where a piece of a secret is, with the bytes around it (secret number, start or end piece)."""
    found = []
    for where, data in places:
        for n, piece in enumerate(needles(secrets)):
            at = data.find(piece)
            if at >= 0:
                found.append(
                    f"{where}: secret {n // 2} {'end' if n % 2 else 'start'}: {data[at - 40 : at + 40]!r}"
                )
    return found


def test_no_piece_of_any_secret_is_written_anywhere(
    unsealed_runtime: Any,
    echo_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    import hashlib

    rt = unsealed_runtime
    secrets = secret_values()
    for i, value in enumerate(secrets):
        monkeypatch.setenv(f"MATRIX_S{i}", value)
    bundle = tmp_path / f"{secrets[3]}.tar"  # the staged name, metadata and outputs carry the secret
    bundle.write_bytes(b"bundle bytes\n")
    checksum = hashlib.sha256(bundle.read_bytes()).hexdigest()
    manifest = matrix_pack(len(secrets), echo_server, tmp_path, checksum)
    tenant = f"t-{uuid.uuid4().hex[:10]}"

    run = rt.wait(submit(rt, manifest, tenant=tenant).runId, timeout=120)

    failed = {s.stepId: s.error for s in run.steps if s.status != "succeeded"}
    # no secret here is a valid artifact or file name: those steps are refused (their errors are searched too)
    refused_names = {"ingest", *(f"name{i}" for i in range(len(secrets)))}
    assert set(failed) == {"missing", "noprogram", *refused_names}, failed  # every other step really ran
    assert {failed[step].code for step in refused_names} == {"InvalidName"}  # type: ignore[union-attr]
    edge = run.step("edge0").outputs
    assert edge["stdout"].startswith("x" * 100)  # the excerpt ends inside the straddling secret
    with rt.svc.artifacts.open(evidence_key(run.runId)) as stream:
        places = list(bundle_places(stream.read()))
    places += list(home_places(rt.home)) + list(moto_places(rt)) + list(api_answers(rt, tenant, run.runId))
    out, err = capfd.readouterr()
    places.append(("process output", (out + err).encode()))
    found = leaks(secrets, iter(places))
    assert found == [], "\n".join(found)
    assert sum(len(data) for _, data in places) > 10 * CHUNK_SIZE  # the straddling outputs were all searched


EXECUTOR_PROBE = """
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: executor-probe, version: 1.0.0}
spec:
  sandbox: {mode: sealed, egressAllowlist: [], cpuSeconds: 60, memoryMiB: 1024}
  steps:
    - id: probe
      run:
        uses: exec
        with:
          argv: [sh, -c, "tr '\\\\0' '\\\\n' </proc/$PPID/environ; cat /proc/1/environ; cat /proc/*/environ; env; echo probed"]
"""


@pytest.mark.skipif(isolation().unavailable is not None, reason="exec cannot be isolated on this host")
def test_exec_sees_nothing_of_the_executor_environment(tmp_path: Path) -> None:
    canary = f"executor-canary-{uuid.uuid4().hex}"
    pack = tmp_path / "probe.yaml"
    pack.write_text(EXECUTOR_PROBE, encoding="utf-8")
    home = tmp_path / "home"
    env = {"EXECUTOR_CANARY": canary, "AWS_SESSION_TOKEN": canary}  # as Lambda's role credentials would be
    ran = taskrunner(home, "run", str(pack), "--json", env=env)
    assert ran.code == 0, ran.stderr
    sealed = next(home.rglob(f"evidence/{ran.document()['runId']}.tar.gz")).read_bytes()
    stdout = next(home.rglob("probe.stdout")).read_text()
    assert stdout.rstrip().endswith("probed")  # the probe ran to its end
    assert "LANG=C.UTF-8" in stdout  # it read environments: only the clean one
    places = [("cli output", (ran.stdout + ran.stderr).encode())]
    places += list(home_places(home)) + list(bundle_places(sealed))
    assert [where for where, data in places if canary.encode() in data] == []
