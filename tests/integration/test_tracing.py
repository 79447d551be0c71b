"""Active tracing as Lambda runs it (``Tracing: Active``): a handler in a fresh interpreter with the variables
Lambda sets, sending its segments to a UDP socket standing in for the X-Ray daemon."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LIST_RUNS = REPO / "events" / "get_run-list-runs.json"
TRACE_ROOT = "1-6740f2a0-1a2b3c4d5e6f7a8b9c0d1e2f"
INVOKE = """
import importlib.util, json, sys, types
spec = importlib.util.spec_from_file_location("app", "app.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from taskrunner.observability import tracer
context = types.SimpleNamespace(
    function_name="get_run", function_version="$LATEST", memory_limit_in_mb=512, aws_request_id="req-1",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:get_run",
)
with open(sys.argv[1], encoding="utf-8") as f:
    response = module.handler(json.load(f), context)
active = tracer()
print(json.dumps({"tracer": f"{type(active).__module__}.{type(active).__name__}", "response": response}))
"""


@pytest.fixture
def daemon() -> Iterator[socket.socket]:
    """A UDP socket on 127.0.0.1 where the X-Ray SDK sends segment documents."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        yield sock


def invoke_get_run(
    tmp_path: Path,
    daemon_address: str,
    trace_header: str | None = f"Root={TRACE_ROOT};Parent=53995c3f42cd8ad8;Sampled=1",
) -> dict[str, Any]:
    """``GET /api/runs`` through functions/get_run/app.py with the environment of a traced Lambda."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKRUNNER_", "AWS_", "POWERTOOLS_"))}
    env.update(
        {
            "LAMBDA_TASK_ROOT": str(REPO / "functions" / "get_run"),
            "AWS_LAMBDA_FUNCTION_NAME": "get_run",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_XRAY_DAEMON_ADDRESS": daemon_address,
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "POWERTOOLS_SERVICE_NAME": "taskrunner",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "TASKRUNNER_HOME": str(tmp_path / "home"),
        }
    )
    if trace_header is not None:
        env["_X_AMZN_TRACE_ID"] = trace_header
    out = subprocess.run(
        [sys.executable, "-c", INVOKE, str(LIST_RUNS)],
        cwd=REPO / "functions" / "get_run",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def segments(sock: socket.socket) -> Iterator[dict[str, Any]]:
    """Segment documents received until the socket has been quiet for its timeout."""
    while True:
        try:
            packet = sock.recv(65536).decode()
        except TimeoutError:
            return
        header, _, body = packet.partition("\n")
        assert json.loads(header) == {"format": "json", "version": 1}
        yield json.loads(body)
        sock.settimeout(0.5)


def test_a_traced_handler_answers_and_sends_its_subsegment_with_annotations(
    tmp_path: Path, daemon: socket.socket
) -> None:
    result = invoke_get_run(tmp_path, f"127.0.0.1:{daemon.getsockname()[1]}")

    assert result["tracer"] == "aws_lambda_powertools.tracing.tracer.Tracer"
    assert result["response"]["statusCode"] == 200
    assert json.loads(result["response"]["body"])["items"] == []
    handler_segments = [s for s in segments(daemon) if s.get("name") == "## GET /api/runs"]
    assert len(handler_segments) == 1
    segment = handler_segments[0]
    assert segment["trace_id"] == TRACE_ROOT
    assert segment["parent_id"] == "53995c3f42cd8ad8"
    assert segment["annotations"]["tenantId"] == "tenant-a"


@pytest.mark.parametrize(
    "trace_header",
    [f"Root={TRACE_ROOT};Parent=53995c3f42cd8ad8;Sampled=1", f"Root={TRACE_ROOT};Sampled=0", None],
    ids=["sampled", "not-sampled", "no-trace-header"],
)
def test_an_unreachable_daemon_or_a_missing_trace_only_loses_the_segments(
    tmp_path: Path, trace_header: str | None
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed below: nothing listens there during the call

    result = invoke_get_run(tmp_path, f"127.0.0.1:{port}", trace_header)

    assert result["tracer"] == "aws_lambda_powertools.tracing.tracer.Tracer"
    assert result["response"]["statusCode"] == 200
