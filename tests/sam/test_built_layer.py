"""Every built function (``sam build`` output), imported and invoked the way Lambda does, with every sample.

The interpreter sees only Lambda's sys.path - the function's build directory, the built layer and the standard
library (``python3.11 -S``) - and Lambda's environment: what Lambda sets for a function with active tracing
(AWS_XRAY_DAEMON_ADDRESS ...) plus the function's template environment, with ``!If [..., AWS::NoValue]`` values
as ``""`` the way ``sam local`` passes them (TASKRUNNER_API__PUBLIC_URL). AWS is a moto server on 127.0.0.1
and the run store the MongoDB wire server; both are reached through the template (LocalAwsEndpointUrl, the
MongoConnectionSecretArn secret).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sam_answers import SAMPLES, answer_of, failure, function_of, logged_errors
from sam_stack import BUILD_DIR, Stack, lambda_runtime_environment, mongo_server, moto_server, provision
from sam_tests import SKIP_UNLESS_MAKE_TEST

pytestmark = [SKIP_UNLESS_MAKE_TEST, pytest.mark.xdist_group("built-layer")]
PYTHON = Path(sys.base_prefix) / "bin" / "python3.11"  # the interpreter without this virtualenv
RUNNER = Path(__file__).with_name("lambda_invoke.py")
LAYER = BUILD_DIR / "TaskRunnerLayer"  # mounted at /opt in Lambda


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with moto_server("127.0.0.1") as endpoint, mongo_server("127.0.0.1") as mongo_uri:
        yield provision(endpoint, mongo_uri)


def isolated(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PYTHON), "-S", "-E", "-s", "-c", code], capture_output=True, text=True, env=env or {}, timeout=60
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
def test_built_function_answers_the_sample(stack: Stack, sample: Path) -> None:
    logical_id = function_of(sample)
    function = stack.template.functions[logical_id]
    env = {**lambda_runtime_environment(logical_id, function.memory_size), **stack.environment(logical_id)}
    started = time.monotonic()
    result = subprocess.run(
        [str(PYTHON), "-S", "-E", "-s", str(RUNNER), str(BUILD_DIR / logical_id), str(LAYER), str(sample)],
        capture_output=True,
        text=True,
        env=env,
        cwd=BUILD_DIR / logical_id,
        timeout=120,
    )
    print(f"{sample.name}: {time.monotonic() - started:.2f} s")
    assert result.returncode == 0, result.stderr[-3000:]
    answer = answer_of(result.stdout)
    problem = failure(answer)
    assert problem is None, f"{logical_id} with {sample.name}: {problem}; {logged_errors(result.stdout)}"
