"""Steps are checked against their modules' contracts by validate/plan, and by the module itself at run time."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from taskrunner.cli.app import app
from taskrunner.modules import registry
from taskrunner.modules.base import ModuleContext, ModuleError, SandboxPolicy
from taskrunner.modules.builtins import bundle_ingest, sleep
from taskrunner.modules.process import exec_module
from taskrunner.pack import ManifestError, load_pack
from taskrunner.pack.contracts import unchecked_modules
from taskrunner.plan.planner import build_plan
from typer.testing import CliRunner

SUM = [{"name": "sum", "type": "string", "required": True}]


def pack(*steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stellaops.io/pack.v1",
        "kind": "TaskPack",
        "metadata": {"name": "contracts", "version": "1.0.0"},
        "spec": {
            "sandbox": {"mode": "restricted", "egressAllowlist": [], "cpuSeconds": 60, "memoryMiB": 1024},
            "steps": list(steps),
            **spec,
        },
    }


def run(step_id: str, uses: str, **with_: Any) -> dict[str, Any]:
    return {"id": step_id, "run": {"uses": uses, "with": with_}}


def problems(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    with pytest.raises(ManifestError) as info:
        load_pack(document)
    return [(p["path"], p["message"], p["hint"]) for p in info.value.problem_list]


def context(tmp_path: Path) -> ModuleContext:
    return ModuleContext(
        run_id="r",
        tenant_id="t",
        step_id="s",
        attempt=1,
        sandbox=SandboxPolicy(mode="restricted"),
        workdir=tmp_path,
        artifacts=None,  # type: ignore[arg-type]  # these modules fail before writing anything
        log=lambda level, message, meta: None,
    )


def test_an_unknown_module_is_refused_with_the_closest_name_and_the_list() -> None:
    [(path, message, hint)] = problems(pack(run("a", "http.get", url="https://example.com")))
    assert path == "spec.steps[0].run.uses"
    assert "'http.get'" in message
    assert "did you mean 'http.request'?" in hint
    assert all(name in hint for name in registry.BUILTINS)


@pytest.mark.parametrize(
    ("step", "path", "fragment"),
    [
        (
            run("a", "exec", command="make"),
            "spec.steps[0].run.with.command",
            "exec has no parameter 'command'",
        ),
        (run("a", "exec", command="make"), "spec.steps[0].run.with.argv", "exec requires parameter 'argv'"),
        (run("a", "exec", argv="make all"), "spec.steps[0].run.with.argv", "valid list"),
        (run("a", "exec", argv=["make", 3]), "spec.steps[0].run.with.argv[1]", "valid string"),
        (run("a", "sleep", seconds=-1), "spec.steps[0].run.with.seconds", "greater than or equal to 0"),
        (
            run("a", "http.request", url="https://x", expectStatus="200"),
            "spec.steps[0].run.with.expectStatus",
            "",
        ),
        (run("a", "artifact.write", content="x"), "spec.steps[0].run.with.name", "requires parameter 'name'"),
        (
            run("a", "bundle.ingest", path="/b.tar", sha="0"),
            "spec.steps[0].run.with.sha",
            "no parameter 'sha'",
        ),
    ],
)
def test_with_keys_are_checked_against_the_module(step: dict[str, Any], path: str, fragment: str) -> None:
    found = problems(pack(step))
    assert any(p == path and fragment in message and hint for p, message, hint in found), found


def test_a_misspelt_parameter_gets_a_did_you_mean() -> None:
    [(_, _, hint)] = problems(pack(run("a", "http.request", url="https://x", expectedStatus=200)))
    assert hint.startswith("did you mean 'expectStatus'?")


def test_a_run_time_template_is_checked_by_the_module_with_the_same_message(tmp_path: Path) -> None:
    document = pack(run("a", "noop", n="5"), run("b", "sleep", seconds="{{ steps.a.outputs.n }}"))
    build_plan(document, {})  # the value is known only when step a has run
    [(_, message, hint)] = problems(pack(run("b", "sleep", seconds="5")))
    with pytest.raises(ModuleError) as failed:
        sleep(context(tmp_path), {"seconds": "5"})
    assert failed.value.message == f"run.with.seconds: {message} (hint: {hint})"
    assert (failed.value.retryable, failed.value.code) == (False, "InvalidParameters")


def test_exec_reads_its_parameters_through_its_contract(tmp_path: Path) -> None:
    with pytest.raises(ModuleError) as failed:
        exec_module(context(tmp_path), {"command": "true"})
    assert "exec has no parameter 'command'" in failed.value.message


def test_an_input_template_is_checked_once_resolved_at_plan_time() -> None:
    inputs = [{"name": "wait", "type": "string", "default": "soon"}]
    document = pack(run("a", "sleep", seconds="{{ inputs.wait }}"), inputs=inputs)
    load_pack(document)  # not known before plan
    with pytest.raises(ManifestError) as info:
        build_plan(document, {})
    [found] = info.value.problem_list
    assert found["path"] == "spec.steps[0].run.with.seconds"
    assert "valid number, got a string" in found["message"]
    number = pack(run("a", "sleep", seconds="{{ inputs.wait }}"), inputs=[{"name": "wait", "type": "number"}])
    assert build_plan(number, {"wait": 0.5}).plan.steps[0].with_ == {"seconds": 0.5}


def test_map_items_are_checked_per_item() -> None:
    inputs = [{"name": "xs", "type": "array", "default": [1, "two"]}]
    template = run("wait", "sleep", seconds="{{ item }}")
    document = pack({"id": "m", "map": {"items": "{{ inputs.xs }}", "step": template}}, inputs=inputs)
    with pytest.raises(ManifestError) as info:
        build_plan(document, {})
    [found] = info.value.problem_list
    assert "map item 1" in found["message"]


@pytest.mark.parametrize(
    ("where", "document"),
    [
        (
            "spec.steps[1].run.with.v",
            pack(run("a", "exec", argv=["true"]), run("b", "noop", v="{{ steps.a.outputs.code }}")),
        ),
        (
            "spec.steps[1].when",
            {**pack(run("a", "noop", ok=True), {**run("b", "noop"), "when": "steps.a.outputs.okay"})},
        ),
        (
            "spec.outputs[0].from",
            pack(
                run("a", "artifact.write", name="r.txt"),
                outputs=[{"name": "o", "type": "file", "from": "steps.a.outputs.path"}],
            ),
        ),
        (
            "spec.policies[0].expression",
            pack(
                run("a", "http.request", url="https://x"),
                {"id": "g", "gate.policy": {"policy": "p"}},
                policies=[{"id": "p", "expression": "steps.a.outputs.statusCode == `200`"}],
            ),
        ),
        ("spec.steps[0].outputs[0]", pack({**run("a", "sleep", seconds=1), "outputs": ["slept"]})),
    ],
)
def test_output_references_are_checked_against_the_module(where: str, document: dict[str, Any]) -> None:
    found = problems(document)
    assert [p for p, _, hint in found if "outputs of" in hint] == [where], found


def test_declared_outputs_and_noop_echoes_are_accepted() -> None:
    document = pack(
        run("a", "noop", ok=True),
        {**run("b", "exec", argv=["true"]), "outputs": ["exitCode"], "when": "steps.a.outputs.ok"},
        run("c", "noop", code="{{ steps.b.outputs.exitCode }}", status="{{ steps.b.status }}"),
        outputs=[{"name": "o", "type": "value", "from": "steps.b.outputs.stdout"}],
    )
    load_pack(document)


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Installs a distribution with two ``taskrunner.modules`` plugins: one with a contract, one without."""
    (tmp_path / "demo_plugin.py").write_text(
        "from taskrunner.modules.contracts import Contract, Outputs, Params\n"
        "class EchoParams(Params):\n    text: str\n"
        "class EchoOutputs(Outputs):\n    echoed: str\n"
        "def echo(ctx, params):\n    return {'echoed': params['text']}\n"
        "echo.contract = Contract(EchoParams, EchoOutputs, 'Echoes text.')\n"
        "def loose(ctx, params):\n    return dict(params)\n"
    )
    info = tmp_path / "demo_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[taskrunner.modules]\ndemo.echo = demo_plugin:echo\ndemo.loose = demo_plugin:loose\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    for cached in (registry._plugins, registry._load_plugin):
        cached.cache_clear()
    yield tmp_path
    sys.modules.pop("demo_plugin", None)
    for cached in (registry._plugins, registry._load_plugin):
        cached.cache_clear()


@pytest.mark.usefixtures("plugins")
def test_a_plugin_contract_is_checked_and_a_plugin_without_one_is_accepted_unchecked() -> None:
    found = problems(pack(run("a", "demo.echo", txt="hi"), run("b", "noop", v="{{ steps.a.outputs.echo }}")))
    assert {p for p, _, _ in found} == {
        "spec.steps[0].run.with.txt",
        "spec.steps[0].run.with.text",
        "spec.steps[1].run.with.v",
    }
    loose = pack(run("a", "demo.loose", anything=1), run("b", "noop", v="{{ steps.a.outputs.whatever }}"))
    assert unchecked_modules(load_pack(loose).document) == ["demo.loose"]
    assert registry.resolve_module("demo.echo")(context(Path("/")), {"text": "x"}) == {"echoed": "x"}


def test_a_rejected_value_is_never_shown_in_the_message(tmp_path: Path) -> None:
    secret = "s3cr3t-" + "x" * 80  # a resolved secret may land in any parameter
    with pytest.raises(ModuleError) as failed:
        sleep(context(tmp_path), {"seconds": secret})
    assert "s3cr3t" not in failed.value.message
    assert "got a string" in failed.value.message


def test_validate_warns_that_a_plugin_without_a_contract_goes_unchecked(plugins: Path) -> None:
    path = plugins / "pack.yaml"
    path.write_text(json.dumps(pack(run("a", "demo.loose", anything=1), run("b", "demo.echo", text="hi"))))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0
    assert "is valid" in result.stdout
    assert result.stderr.strip() == (
        "warning: module 'demo.loose' declares no contract, so its run.with and outputs cannot be checked "
        "before it runs"
    )


def test_a_rule_over_several_parameters_is_checked_before_the_run() -> None:
    [(path, message, hint)] = problems(pack(run("a", "bundle.ingest", path="/in/b.tar")))
    assert path == "spec.steps[0].run.with"
    assert message == "bundle.ingest: checksumSha256 (or checksum) is required so the bundle can be verified"
    assert "checksumSha256" in hint
    load_pack(pack(run("a", "bundle.ingest", path="/in/b.tar", checksum="{{ inputs.sum }}"), inputs=SUM))


def test_the_whole_with_rule_gives_the_same_message_at_run_time(tmp_path: Path) -> None:
    with pytest.raises(ModuleError) as failed:
        bundle_ingest(context(tmp_path), {"path": "/in/b.tar", "checksum": ""})
    assert failed.value.message.startswith(
        "run.with: bundle.ingest: checksumSha256 (or checksum) is required so the bundle can be verified (hint: "
    )


@pytest.mark.parametrize(
    ("sandbox", "missing"),
    [
        ({"mode": "sealed", "egressAllowlist": []}, ["cpuSeconds", "memoryMiB"]),
        ({"mode": "restricted", "egressAllowlist": [], "cpuSeconds": 60}, ["memoryMiB"]),
        ({"mode": "sealed", "egressAllowlist": [], "memoryMiB": 256}, ["cpuSeconds"]),
    ],
)
def test_exec_without_the_sandbox_quotas_it_runs_under_is_refused(
    sandbox: dict[str, Any], missing: list[str]
) -> None:
    document = pack(run("build", "exec", argv=["make"]), run("note", "noop", v=1))
    document["spec"]["sandbox"] = sandbox

    found = problems(document)

    assert [(path, message.split(" is not declared")[0]) for path, message, _ in found] == [
        ("spec.sandbox", f"sandbox.{quota}") for quota in missing
    ]
    assert all("step(s) build (exec)" in message for _, message, _ in found)
    assert all(hint.startswith("declare it, e.g. sandbox: {") for _, _, hint in found)


def test_a_pack_without_exec_needs_no_quotas() -> None:
    document = pack(run("note", "noop", v=1))
    document["spec"]["sandbox"] = {"mode": "sealed", "egressAllowlist": []}
    assert load_pack(document).manifest.spec.sandbox.cpuSeconds is None
