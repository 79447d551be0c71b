"""The caches at moto's Step Functions seam: pinned signatures, one parse per definition, one client per service."""

from __future__ import annotations

import importlib
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from taskrunner.errors import ConfigurationError
from taskrunner.local.aws import LocalAws
from taskrunner.local.moto_caches import (
    CLIENT_MODULE,
    CLIENT_MODULES,
    JSONPATH_MODULE,
    PARSER_MODULE,
    ParseCache,
    moto_caches_installed,
    verify_moto_caches_seam,
)

pytestmark = pytest.mark.xdist_group("local_seam")  # one moto runtime per process

TEMPLATE = Path(__file__).resolve().parents[1] / "fixtures" / "local_app" / "template.yaml"
LAMBDA_MODULE = "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils"


def _parser() -> Any:
    return importlib.import_module(PARSER_MODULE).AmazonStateLanguageParser


def _moto_builder() -> Any:
    return importlib.import_module(CLIENT_MODULE).boto_client_for


def test_the_patched_functions_have_the_signatures_the_caches_were_built_for() -> None:
    verify_moto_caches_seam()


def test_every_moto_module_that_builds_clients_is_patched() -> None:
    """A moto upgrade that adds a caller of boto_client_for fails here until CLIENT_MODULES lists it."""
    import moto

    root = Path(moto.__file__).parent
    importers = {
        "moto." + ".".join(path.relative_to(root).with_suffix("").parts)
        for path in root.rglob("*.py")
        if "import boto_client_for" in path.read_text(encoding="utf-8")
    }
    assert importers == set(CLIENT_MODULES)
    assert all(importlib.import_module(name).boto_client_for is _moto_builder() for name in CLIENT_MODULES)


def test_clients_are_one_per_region_and_service_even_when_created_concurrently() -> None:
    module = importlib.import_module(LAMBDA_MODULE)
    with moto_caches_installed():
        barrier = threading.Barrier(8)
        made: list[Any] = []

        def get() -> None:
            barrier.wait()
            made.append(module.boto_client_for(region="eu-west-1", service="lambda", state_credentials=None))

        threads = [threading.Thread(target=get) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({id(client) for client in made}) == 1
        other = module.boto_client_for(region="eu-west-1", service="sqs")
        assert other is not made[0]
        assert other.meta.service_model.service_name == "sqs"
        assert module.boto_client_for(region="us-east-2", service="lambda").meta.region_name == "us-east-2"
    assert module.boto_client_for is _moto_builder()


def _machine(aws: LocalAws) -> str:
    definition = {
        "StartAt": "Work",
        "States": {
            "Work": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": aws.function_arns["work"], "Payload": {"n.$": "$.n"}},
                "OutputPath": "$.Payload",
                "End": True,
            }
        },
    }
    sfn = aws.client("stepfunctions")
    return str(
        sfn.create_state_machine(
            name=f"m-{uuid.uuid4().hex[:8]}",
            definition=json.dumps(definition),
            roleArn=aws.state_machine_role_arn,
        )["stateMachineArn"]
    )


def _run(aws: LocalAws, machine: str, n: int) -> dict[str, Any]:
    sfn = aws.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=machine, name=f"e-{n}", input=json.dumps({"n": n}))[
        "executionArn"
    ]
    deadline = time.monotonic() + 10
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution did not finish"
        time.sleep(0.02)
    return dict(described)


@pytest.mark.parametrize("enforce_iam", [True, False])
def test_a_definition_is_parsed_once_for_all_its_executions(enforce_iam: bool) -> None:
    original = _parser().__dict__["parse"]
    with LocalAws(
        TEMPLATE, stack_name="caches", parameters={"Greeting": "hi"}, enforce_iam=enforce_iam
    ) as aws:
        cache = _parser().__dict__["parse"].__func__
        assert isinstance(cache, ParseCache)
        before = cache.parses
        machine = _machine(aws)
        results = [_run(aws, machine, n) for n in range(3)]
        assert [r["status"] for r in results] == ["SUCCEEDED"] * 3
        assert [json.loads(r["output"])["event"]["n"] for r in results] == [0, 1, 2]  # each its own input
        assert cache.parses - before == 1  # parsed when the machine was created, never again per execution
        lambda_clients = importlib.import_module(LAMBDA_MODULE).boto_client_for
        assert lambda_clients is not _moto_builder()
    assert _parser().__dict__["parse"] is original
    assert importlib.import_module(LAMBDA_MODULE).boto_client_for is _moto_builder()


def test_the_parse_cache_keeps_the_most_recently_used_definitions() -> None:
    parsed: list[str] = []

    def parse(definition: str) -> tuple[Any, Any]:
        parsed.append(definition)
        return (definition, None)

    cache = ParseCache(parse, size=2)
    for definition in ["a", "b", "a", "c", "a", "b"]:
        assert cache(definition) == (definition, None)
    assert parsed == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came
    assert len(cache) == 2


def test_each_jsonpath_is_parsed_once_while_installed() -> None:
    json_path = importlib.import_module(JSONPATH_MODULE)
    moto_parse = json_path.parse
    with moto_caches_installed():
        cache = json_path.parse
        assert isinstance(cache, ParseCache)
        before = cache.parses
        data = {"runId": "r-1", "nested": {"items": [1, 2, 3]}}
        for _ in range(3):
            assert json_path.extract_json("$.runId", data) == "r-1"
            assert json_path.extract_json("$.nested.items[1]", data) == 2
            assert json_path.extract_json("$.nested.items[*]", data) == [1, 2, 3]
        assert json_path.extract_json("$.runId", {"runId": "r-2"}) == "r-2"  # a parsed path holds no data
        assert cache.parses - before == 3
        with pytest.raises(json_path.NoSuchJsonPathError):
            json_path.extract_json("$.missing", data)
    assert json_path.parse is moto_parse


def test_a_moto_whose_jsonpath_parse_changed_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    json_path = importlib.import_module(JSONPATH_MODULE)
    monkeypatch.setattr(json_path, "parse", lambda path, debug=None, strict=True: None)
    with pytest.raises(ConfigurationError, match=r"json_path\.parse has parameters"):
        verify_moto_caches_seam()
    monkeypatch.delattr(json_path, "parse")
    with pytest.raises(ConfigurationError, match="no longer parses paths"):
        verify_moto_caches_seam()
