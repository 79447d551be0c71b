"""The real SAM CLI: every built function invoked with every sample through ``sam local start-lambda``, and a
``sam local start-api`` smoke, in containers of the local Lambda base image (``make lambda-image``).

SAM CLI attaches its containers to a Docker network by name but never to the host network, so the moto and
MongoDB wire servers listen on the gateway of an ``--internal`` Docker network made for the test: reachable
from this machine and its containers only. ``--env-vars`` gives the functions the provisioned resource names
and AWS_ENDPOINT_URL (the template's LocalAwsEndpointUrl wiring), and the store is found through the
MongoConnectionSecretArn secret, as in AWS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from sam_answers import SAMPLES, failure, function_of
from sam_stack import (
    BUILD_DIR,
    CREDENTIALS,
    REGION,
    REPO,
    Stack,
    moto_server,
    provision,
)
from sam_tests import SKIP_UNLESS_MAKE_TEST
from support.mongo_wire import free_port, mongo_server

pytestmark = [SKIP_UNLESS_MAKE_TEST, pytest.mark.xdist_group("sam-local")]
SAM = REPO / ".venv-sam" / "bin" / "sam"
IMAGE = "public.ecr.aws/lambda/python:3.11-x86_64"


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def network() -> Iterator[tuple[str, str]]:
    """An internal Docker network: (name, gateway address)."""
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        pytest.fail(f"the image {IMAGE} is missing: run `make lambda-image` (Docker must be running)")
    name = f"taskrunner-sam-{uuid.uuid4().hex[:8]}"
    docker("network", "create", "--internal", name)
    try:
        yield name, docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", name)
    finally:  # SAM CLI may leave warm containers behind when it is slow to stop: those on this network go too
        attached = docker("network", "inspect", "-f", "{{range $id, $c := .Containers}}{{$id}} {{end}}", name)
        if attached.split():
            docker("rm", "-f", *attached.split())
        docker("network", "rm", name)


@pytest.fixture(scope="module")
def stack(network: tuple[str, str]) -> Iterator[Stack]:
    _, gateway = network
    with moto_server(gateway) as endpoint, mongo_server(gateway) as mongo_uri:
        yield provision(endpoint, mongo_uri)


@dataclass
class SamLocal:
    """A running ``sam local start-lambda`` or ``start-api`` on 127.0.0.1."""

    url: str
    process: subprocess.Popen[str]
    log: Path


def sam_command(command: str, stack: Stack, network: str, port: int, env_vars: Path, warm: str) -> list[str]:
    overrides = " ".join(f"{key}={value}" for key, value in stack.parameters.items())
    return [
        *(str(SAM), "local", command, "--template", str(BUILD_DIR / "template.yaml")),
        *("--host", "127.0.0.1", "--port", str(port), "--skip-pull-image", "--docker-network", network),
        *("--warm-containers", warm, "--env-vars", str(env_vars), "--parameter-overrides", overrides),
    ]


@pytest.fixture(scope="module")
def env_vars(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``--env-vars``: the resolved template environment per function, NoValue variables left to SAM (``""``).

    SAM CLI resolves neither resource references nor ``Fn::If`` in environment variables (both become ``""``),
    and ``--env-vars`` may only replace variables the template declares: hence AWS_ENDPOINT_URL in the template.
    """
    variables = {
        logical_id: {k: v for k, v in stack.environment(logical_id).items() if v}
        for logical_id in stack.template.functions
    }
    path = tmp_path_factory.mktemp("sam") / "env.json"
    path.write_text(json.dumps(variables), encoding="utf-8")
    return path


def start_sam(command: str, stack: Stack, network: str, env_vars: Path, log: Path, warm: str) -> SamLocal:
    port = free_port("127.0.0.1")
    env = {**os.environ, **CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "SAM_CLI_TELEMETRY": "0"}
    with log.open("w") as out:
        process = subprocess.Popen(
            sam_command(command, stack, network, port, env_vars, warm),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)  # any HTTP answer means it listens
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_sam(process)
                pytest.fail(f"sam local {command} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
    return SamLocal(url, process, log)


def stop_sam(process: subprocess.Popen[str]) -> None:
    """Ctrl-C, as a user would: SAM CLI then removes its warm containers."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def start_lambda(
    stack: Stack, network: tuple[str, str], env_vars: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SamLocal]:
    log = tmp_path_factory.mktemp("sam") / "start-lambda.log"
    started = time.monotonic()
    sam = start_sam("start-lambda", stack, network[0], env_vars, log, "EAGER")  # every container at once
    print(f"sam local start-lambda: {time.monotonic() - started:.2f} s to start the containers")
    yield sam
    stop_sam(sam.process)


@pytest.fixture(scope="module")
def lambda_client(start_lambda: SamLocal) -> Any:
    config = Config(read_timeout=120, retries={"max_attempts": 0})
    return boto3.client(
        "lambda",
        endpoint_url=start_lambda.url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_sam_local_function_answers_the_sample(
    lambda_client: Any, start_lambda: SamLocal, sample: Path
) -> None:
    logical_id = function_of(sample)
    started = time.monotonic()
    response = lambda_client.invoke(FunctionName=logical_id, Payload=sample.read_bytes())
    answer = json.loads(response["Payload"].read() or b"null")
    print(f"sam local invoke {logical_id} {sample.name}: {time.monotonic() - started:.2f} s")
    problem = failure(answer)
    assert problem is None, (
        f"{logical_id} with {sample.name}: {problem}\n{start_lambda.log.read_text()[-3000:]}"
    )


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_sam_local_start_api_serves_the_routes(
    stack: Stack, network: tuple[str, str], env_vars: Path, tmp_path: Path
) -> None:
    sam = start_sam("start-api", stack, network[0], env_vars, tmp_path / "start-api.log", "LAZY")
    try:
        status, _, document = http_get(f"{sam.url}/.well-known/openapi")
        assert status == 200
        assert document["openapi"].startswith("3.1")
        assert "/api/runs" in document["paths"]

        # SAM local skips the JWT authorizer: the handler's own check sees no verified claims and refuses.
        status, headers, problem = http_get(f"{sam.url}/api/runs", {"Authorization": "Bearer not-checked"})
        assert status == 401
        assert headers["Content-Type"].startswith("application/problem+json")
        assert problem["status"] == 401
        assert problem["remediation"]
    finally:
        stop_sam(sam.process)
