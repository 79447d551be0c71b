"""Every built function (``sam build`` output), imported and invoked the way Lambda does, with every sample.

The interpreter sees only Lambda's sys.path - the function's build directory, the built layer and the standard
library (``python3.11 -S``) - and Lambda's environment: what Lambda sets for a function with active tracing
(AWS_XRAY_DAEMON_ADDRESS ...) plus the function's template environment, with ``!If [..., AWS::NoValue]`` values
as ``""`` the way ``sam local`` passes them (TASKRUNNER_API__PUBLIC_URL). AWS is a moto server on 127.0.0.1
and the run store the MongoDB wire server; both are reached through the template (LocalAwsEndpointUrl, the
MongoConnectionSecretArn secret). Each function gets one interpreter (a cold start, then warm invocations).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sam_answers import SAMPLES, answers_of, failure, function_of, logged_errors
from sam_stack import BUILD_DIR, Stack, lambda_runtime_environment, moto_server, provision
from sam_tests import SKIP_UNLESS_MAKE_TEST
from support.mongo_wire import mongo_server

pytestmark = [SKIP_UNLESS_MAKE_TEST, pytest.mark.xdist_group("built-layer")]
PYTHON = Path(sys.base_prefix) / "bin" / "python3.11"  # the interpreter without this virtualenv
RUNNER = Path(__file__).with_name("lambda_invoke.py")
LAYER = BUILD_DIR / "TaskRunnerLayer"  # mounted at /opt in Lambda


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with moto_server("127.0.0.1") as endpoint, mongo_server("127.0.0.1") as mongo_uri:
        yield provision(endpoint, mongo_uri)


@pytest.fixture(scope="module")
def invoked(stack: Stack) -> Callable[[str], tuple[dict[str, Any], str]]:
    """``invoked(logical_id)``: the function's answer per sample name, and its log (invoked once, on demand)."""
    done: dict[str, tuple[dict[str, Any], str]] = {}

    def invoke(logical_id: str) -> tuple[dict[str, Any], str]:
        if logical_id not in done:
            samples = [s for s in SAMPLES if function_of(s) == logical_id]
            function = stack.template.functions[logical_id]
            env = {
                **lambda_runtime_environment(logical_id, function, BUILD_DIR / logical_id),
                **stack.environment(logical_id),
            }
            started = time.monotonic()
            result = subprocess.run(
                [str(PYTHON), "-S", "-E", "-s", str(RUNNER), str(BUILD_DIR / logical_id), str(LAYER)]
                + [str(s) for s in samples],
                capture_output=True,
                text=True,
                env=env,
                cwd=BUILD_DIR / logical_id,
                timeout=120,
            )
            print(f"{logical_id}: {len(samples)} invocations in {time.monotonic() - started:.2f} s")
            assert result.returncode == 0, result.stderr[-3000:]
            answers = answers_of(result.stdout)
            assert len(answers) == len(samples), result.stdout[-3000:]
            done[logical_id] = ({s.name: a for s, a in zip(samples, answers, strict=True)}, result.stdout)
        return done[logical_id]

    return invoke


def isolated(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PYTHON), "-S", "-E", "-s", "-c", code], capture_output=True, text=True, env={}, timeout=60
    )


def test_the_layer_alone_holds_the_runtime_dependencies() -> None:
    """The built layer imports the package; nothing from the dev or local extras is reachable."""
    code = (
        f"import sys; sys.path[:0] = [{str(LAYER / 'python')!r}]\n"
        "import importlib.util as u, taskrunner.api.http\n"
        "print(sorted(m for m in ('moto', 'mongomock_ng', 'pytest', 'typer') if u.find_spec(m)))"
    )
    result = isolated(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_built_function_answers_the_sample(invoked: Callable[[str], Any], sample: Path) -> None:
    logical_id = function_of(sample)
    answers, log = invoked(logical_id)
    problem = failure(answers[sample.name])
    assert problem is None, f"{logical_id} with {sample.name}: {problem}; {logged_errors(log)}"
