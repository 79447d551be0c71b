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
from taskrunner.local.aws import LocalAws
from taskrunner.local.moto_caches import (
    CLIENT_MODULE,
    CLIENT_MODULES,
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


def test_a_definition_parsed_in_one_process_is_loaded_not_parsed_in_the_next(tmp_path: Path) -> None:
    """The parse is kept on disk: a later runtime (a new process, a new moto) runs it without parsing."""
    kept = tmp_path / "asl"
    with LocalAws(TEMPLATE, stack_name="kept", parameters={"Greeting": "hi"}, cache_dir=tmp_path) as aws:
        machine = _machine(aws)
        assert _run(aws, machine, 1)["status"] == "SUCCEEDED"
        assert _parser().__dict__["parse"].__func__.parses == 1
    assert len([p for p in kept.iterdir() if not p.name.startswith(".")]) == 1
    with LocalAws(TEMPLATE, stack_name="kept", parameters={"Greeting": "hi"}, cache_dir=tmp_path) as aws:
        machine = _machine(aws)  # same definition text: same function ARNs in a new moto
        result = _run(aws, machine, 7)
        assert result["status"] == "SUCCEEDED"
        assert json.loads(result["output"])["event"]["n"] == 7
        assert _parser().__dict__["parse"].__func__.parses == 0


def test_a_kept_parse_not_written_under_the_directory_key_is_parsed_again(tmp_path: Path) -> None:
    """A forged or damaged entry is never unpickled: the tag is checked first, and a miss re-parses."""
    import pickle

    from taskrunner.local.parsed_definitions import ParsedDefinitions

    parsed: list[str] = []

    def parse(definition: str) -> tuple[Any, Any]:
        parsed.append(definition)
        return ({"program": definition}, "tree")

    disk = ParsedDefinitions(tmp_path / "asl", "5.x")
    assert ParseCache(parse, disk=disk)("a") == ({"program": "a"}, None)  # the tree is never kept
    (entry,) = [p for p in (tmp_path / "asl").iterdir() if not p.name.startswith(".")]
    assert ParseCache(parse, disk=disk)("a") == ({"program": "a"}, None)
    assert parsed == ["a"]

    class Boom:
        def __reduce__(self) -> tuple[Any, ...]:
            return (exec, ("raise SystemExit('unpickled a forged entry')",))

    entry.write_bytes(b"\0" * 32 + pickle.dumps(Boom()))  # a pickle with a wrong tag
    assert ParseCache(parse, disk=disk)("a") == ({"program": "a"}, None)
    entry.write_bytes(entry.read_bytes()[:40])  # torn: right length prefix, wrong tag
    assert ParseCache(parse, disk=disk)("a") == ({"program": "a"}, None)
    assert parsed == ["a", "a", "a"]
    assert ParsedDefinitions(tmp_path / "asl", "6.x").load("a") is None  # another moto: another key
    assert oct((tmp_path / "asl").stat().st_mode & 0o777) == "0o700"
    assert oct((tmp_path / "asl" / ".key").stat().st_mode & 0o777) == "0o600"


def test_kept_values_are_bounded(tmp_path: Path) -> None:
    from taskrunner.local.home_cache import HomeCache

    cache = HomeCache(tmp_path, "5.x", keep=3)
    for n in range(6):
        cache.save(str(n), b"%d" % n)
        time.sleep(0.01)
    assert [cache.load(str(n)) for n in range(6)] == [None, None, None, b"3", b"4", b"5"]


def test_moto_batch_is_imported_when_first_used_not_at_start() -> None:
    """Start-up skips moto's Batch/EC2 backends (~0.8 s); the backend is still there when asked for."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from taskrunner.local.moto_imports import defer_moto_batch\n"
        "defer_moto_batch()\n"
        "import moto.stepfunctions.parser.asl.parse.asl_parser\n"
        "from moto.batch.utils import JobStatus\n"
        "assert 'moto.ec2' not in sys.modules and 'moto.batch.models' not in sys.modules\n"
        "from moto.backends import get_backend\n"
        "backend = get_backend('batch')['123456789012']['us-east-1']\n"
        "assert type(backend).__name__ == 'BatchBackend', type(backend)\n"
        "import moto.batch\n"
        "assert moto.batch.batch_backends is get_backend('batch')\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr


def test_deferring_refuses_a_moto_batch_package_that_does_more_than_re_export(tmp_path: Path) -> None:
    from taskrunner.errors import ConfigurationError
    from taskrunner.local.moto_imports import _exports

    init = tmp_path / "__init__.py"
    init.write_text('"""Batch."""\nfrom .models import batch_backends  # noqa: F401\n')
    assert _exports(init) == {"batch_backends": "moto.batch.models"}
    init.write_text("from .models import batch_backends\nregister_things()\n")
    with pytest.raises(ConfigurationError, match="does more than re-export"):
        _exports(init)


def test_every_moto_module_that_parses_jsonpaths_parses_each_path_once() -> None:
    """A moto upgrade that adds a JSONPath parser import fails here until JSONPATH_MODULES lists it."""
    import moto
    from taskrunner.local.moto_caches import JSONPATH_MODULES

    root = Path(moto.__file__).parent / "stepfunctions"
    importers = {
        "moto.stepfunctions." + ".".join(path.relative_to(root).with_suffix("").parts)
        for path in root.rglob("*.py")
        if "from jsonpath_ng" in path.read_text(encoding="utf-8") and " import parse" in path.read_text()
    }
    assert importers == set(JSONPATH_MODULES)
    module = importlib.import_module("moto.stepfunctions.parser.asl.utils.json_path")
    original = module.parse
    with moto_caches_installed():
        first = module.parse("$.runId")
        assert module.parse("$.runId") is first
        assert module.extract_json("$.runId", {"runId": "r-1"}) == "r-1"
        assert module.extract_json("$.runId", {"runId": "r-2"}) == "r-2"  # the tree keeps no data
        with moto_caches_installed():  # nested: still one cache, restored by the outer block
            assert module.parse("$.runId") is first
        assert module.parse("$.runId") is first
    assert module.parse is original


def test_the_sam_translation_is_kept_per_home_and_redone_when_the_template_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskrunner.local import roles
    from taskrunner.local.template import IntrinsicResolver, LocalValues, load_template

    template = load_template(TEMPLATE)
    values = LocalValues(
        region="us-east-1",
        account_id="123456789012",
        stack_name="kept",
        parameters={"Greeting": "hi"},
        refs={},
        attributes={},
    )
    resolver = IntrinsicResolver(template, values)
    translated = roles.translate(template, resolver, "us-east-1", tmp_path)

    def refuse(*args: Any) -> Any:
        raise AssertionError("translated again")

    with monkeypatch.context() as patched:
        patched.setattr(roles, "_run_translator", refuse)
        assert roles.translate(template, resolver, "us-east-1", tmp_path) == translated
        with pytest.raises(AssertionError, match="translated again"):
            roles.translate(template, resolver, "eu-west-1", tmp_path)  # another region: another key
    changed = tmp_path / "template.yaml"
    changed.write_text(TEMPLATE.read_text().replace("Timeout: ", "Timeout: 1", 1))
    other = load_template(changed)
    assert roles.translate(other, IntrinsicResolver(other, values), "us-east-1", tmp_path) != translated


def test_a_moto_whose_jsonpath_parse_changed_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from taskrunner.errors import ConfigurationError

    json_path = importlib.import_module("moto.stepfunctions.parser.asl.utils.json_path")
    monkeypatch.setattr(json_path, "parse", lambda path, debug=None: None)
    with pytest.raises(ConfigurationError, match=r"no longer imports parse from jsonpath_ng\.ext"):
        verify_moto_caches_seam()
    monkeypatch.delattr(json_path, "parse")
    with pytest.raises(ConfigurationError, match="no longer imports parse"):
        verify_moto_caches_seam()
