"""Field rules of the pack manifest (DESIGN §2): shapes, patterns, kinds, sandbox, durations, inputs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from taskrunner.pack import ManifestError, Problem, load_pack
from taskrunner.pack.models import duration_seconds


def base(**spec: Any) -> dict[str, Any]:
    """A minimal valid manifest; ``spec`` entries replace or extend its spec."""
    document: dict[str, Any] = {
        "apiVersion": "stellaops.io/pack.v1",
        "kind": "TaskPack",
        "metadata": {"name": "probe", "version": "1.0.0"},
        "spec": {
            "sandbox": {"mode": "sealed", "egressAllowlist": []},
            "steps": [{"id": "a", "run": {"uses": "noop"}}],
        },
    }
    document["spec"].update(copy.deepcopy(spec))
    return document


def problems(document: dict[str, Any]) -> list[Problem]:
    with pytest.raises(ManifestError) as info:
        load_pack(document)
    return info.value.problem_list


def only(document: dict[str, Any]) -> Problem:
    found = problems(document)
    assert len(found) == 1, found
    return found[0]


def test_the_minimal_manifest_is_valid() -> None:
    loaded = load_pack(base())
    assert loaded.manifest.spec.steps[0].kind == "run"
    assert loaded.manifest.spec.maxParallel == 4


@pytest.mark.parametrize("step_id", ["a", "Build_2", "x-y-z", "A" + "b" * 63])
def test_step_ids_matching_the_pattern_are_accepted(step_id: str) -> None:
    load_pack(base(steps=[{"id": step_id, "run": {"uses": "noop"}}]))


@pytest.mark.parametrize("step_id", ["1a", "-a", "_a", "a b", "a.b", "a::b", "a" * 65, ""])
def test_step_ids_not_matching_the_pattern_are_refused(step_id: str) -> None:
    found = only(base(steps=[{"id": step_id, "run": {"uses": "noop"}}]))
    assert found["path"] == "spec.steps[0].id"
    assert "start with a letter" in found["hint"]


def test_step_ids_are_checked_in_nested_steps_too() -> None:
    steps = [{"id": "p", "parallel": {"steps": [{"id": "bad id", "run": {"uses": "noop"}}]}}]
    assert only(base(steps=steps))["path"] == "spec.steps[0].parallel.steps[0].id"


def test_a_step_without_a_kind_key_is_refused() -> None:
    found = only(base(steps=[{"id": "a"}]))
    assert found["path"] == "spec.steps[0]"
    assert "exactly one kind key, found 0" in found["message"]
    assert "run, parallel, map, gate.approval, gate.policy" in found["hint"]


def test_a_step_with_two_kind_keys_names_them() -> None:
    steps = [{"id": "a", "run": {"uses": "noop"}, "gate.policy": {"policy": "p"}}]
    found = only(base(steps=steps, policies=[{"id": "p", "expression": "`true`"}]))
    assert "found 2 (run and gate.policy)" in found["message"]


@pytest.mark.parametrize("field", ["outputs", "retries", "continueOnError", "timeoutSeconds"])
def test_run_only_fields_are_refused_on_other_kinds(field: str) -> None:
    value = {"outputs": ["x"], "retries": {"maxAttempts": 2}, "continueOnError": True, "timeoutSeconds": 5}[
        field
    ]
    steps = [{"id": "g", "gate.policy": {"policy": "p"}, field: value}]
    found = only(base(steps=steps, policies=[{"id": "p", "expression": "`true`"}]))
    assert field in found["message"]
    assert "run steps only" in found["message"]


def test_gate_keys_are_read_through_their_dotted_names() -> None:
    loaded = load_pack(
        base(
            approvals=[{"id": "ok", "grants": ["packs.approve"], "expiresAfter": "PT1H"}],
            policies=[{"id": "p", "expression": "`true`"}],
            steps=[
                {"id": "r", "gate.approval": {"approval": "ok", "message": "m"}},
                {"id": "q", "gate.policy": {"policy": "p", "failAction": "continue"}},
            ],
        )
    )
    first, second = loaded.manifest.spec.steps
    assert first.gate_approval is not None
    assert first.gate_approval.approval == "ok"
    assert first.kind == "gate.approval"
    assert second.gate_policy is not None
    assert second.gate_policy.failAction == "continue"


def test_python_field_names_are_not_accepted_in_place_of_the_manifest_keys() -> None:
    found = only(base(steps=[{"id": "a", "run": {"uses": "noop", "with_": {}}}]))
    assert found["path"] == "spec.steps[0].run.with_"
    assert "unknown field" in found["message"]


def test_unknown_fields_are_refused_with_the_allowed_ones() -> None:
    found = only(base(sandbox={"mode": "sealed", "egressAllowlist": [], "egress": ["x"]}))
    assert found["path"] == "spec.sandbox.egress"
    assert found["message"] == "unknown field 'egress'"
    assert "egressAllowlist" in found["hint"]
    assert "wallClockSeconds" in found["hint"]


def test_a_pack_without_sandbox_is_refused_fail_closed() -> None:
    document = base()
    del document["spec"]["sandbox"]
    found = only(document)
    assert found["path"] == "spec.sandbox"
    assert "fail-closed" in found["hint"]


@pytest.mark.parametrize("missing", ["mode", "egressAllowlist"])
def test_sandbox_mode_and_egress_allowlist_are_required(missing: str) -> None:
    sandbox = {"mode": "sealed", "egressAllowlist": []}
    del sandbox[missing]
    found = only(base(sandbox=sandbox))
    assert found["path"] == f"spec.sandbox.{missing}"
    assert found["message"] == "required field is missing"
    assert "fail-closed" in found["hint"]


@pytest.mark.parametrize(
    ("sandbox", "path"),
    [
        ({"mode": "open", "egressAllowlist": []}, "spec.sandbox.mode"),
        (
            {"mode": "restricted", "egressAllowlist": ["https://x.example/path"]},
            "spec.sandbox.egressAllowlist[0]",
        ),
        ({"mode": "sealed", "egressAllowlist": [], "cpuSeconds": 0}, "spec.sandbox.cpuSeconds"),
    ],
)
def test_sandbox_values_are_checked(sandbox: dict[str, Any], path: str) -> None:
    assert only(base(sandbox=sandbox))["path"] == path


def test_restricted_sandbox_accepts_hosts_ports_and_wildcards() -> None:
    sandbox = {
        "mode": "restricted",
        "egressAllowlist": ["registry.example.com", "10.0.0.1:443", "*.example.org"],
    }
    assert load_pack(base(sandbox=sandbox)).manifest.spec.sandbox.egressAllowlist[2] == "*.example.org"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT4H", 14400), ("PT2S", 2), ("PT30M", 1800), ("P1D", 86400), ("P1DT2H3M4S", 93784), ("P2W", 1209600)],
)
def test_iso_durations_are_parsed(text: str, seconds: int) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["4h", "PT", "P", "P1Y", "P1M", "PT1.5S", "1H", "PT4H ", "P1DT"])
def test_unsupported_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        duration_seconds(text)
    approvals = [{"id": "r", "grants": ["g"], "expiresAfter": text}]
    found = only(base(approvals=approvals))
    assert found["path"] == "spec.approvals[0].expiresAfter"


def test_durations_must_fit_a_step_functions_execution() -> None:
    approvals = [{"id": "r", "grants": ["g"], "expiresAfter": "P400D"}]
    assert "out of range" in only(base(approvals=approvals))["message"]


def test_approvals_need_grants_and_expiry() -> None:
    found = problems(base(approvals=[{"id": "r", "grants": []}]))
    assert {p["path"] for p in found} == {"spec.approvals[0].grants", "spec.approvals[0].expiresAfter"}


@pytest.mark.parametrize(
    ("inputs", "path", "fragment"),
    [
        ([{"name": "a-b", "type": "string"}], "spec.inputs[0].name", "does not match"),
        ([{"name": "a", "type": "text"}], "spec.inputs[0].type", "'string'"),
        (
            [{"name": "a", "type": "string", "required": True, "default": "x"}],
            "spec.inputs[0].default",
            "input 'a': a required input cannot have a default",
        ),
        (
            [{"name": "a", "type": "integer", "default": "3"}],
            "spec.inputs[0].default",
            """input 'a': default "3" is not an integer""",
        ),
        (
            [{"name": "a", "type": "integer", "default": True}],
            "spec.inputs[0].default",
            "input 'a': default true is not an integer",
        ),
        (
            [{"name": "a", "type": "string", "default": "x", "schema": {"pattern": "^/"}}],
            "spec.inputs[0].default",
            "input 'a': default \"x\" fails schema keyword 'pattern': 'x' does not match '^/'",
        ),
        (
            [{"name": "a", "type": "string", "schema": {"minLength": "two"}}],
            "spec.inputs[0].schema",
            "JSON Schema",
        ),
    ],
)
def test_input_declarations_are_checked(inputs: list[dict[str, Any]], path: str, fragment: str) -> None:
    found = only(base(inputs=inputs))
    assert found["path"] == path
    assert fragment in found["message"]


@pytest.mark.parametrize(
    "ref",
    [
        "aws-secretsmanager:prod/registry#token",
        "aws-secretsmanager:arn:aws:secretsmanager:x",
        "aws-ssm:/a/b",
        "env:TOKEN",
    ],
)
def test_secret_references_of_every_kind_are_accepted(ref: str) -> None:
    assert load_pack(base(secrets=[{"name": "s", "ref": ref}])).manifest.spec.secrets[0].ref == ref


@pytest.mark.parametrize(
    "ref", ["plain-value", "env:", "env:1X", "vault:x", "aws-ssm:relative", "aws-secretsmanager:a#b#c"]
)
def test_other_secret_references_are_refused(ref: str) -> None:
    found = only(base(secrets=[{"name": "s", "ref": ref}]))
    assert found["path"] == "spec.secrets[0].ref"
    assert "env:<NAME>" in found["hint"]


@pytest.mark.parametrize(
    ("metadata", "path"),
    [
        ({"name": "Bad_Name", "version": "1.0.0"}, "metadata.name"),
        ({"name": "ok", "version": "1.0"}, "metadata.version"),
        ({"name": "ok", "version": "1.0.0", "tenantVisibility": "everyone"}, "metadata.tenantVisibility"),
        ({"name": "ok"}, "metadata.version"),
    ],
)
def test_metadata_is_checked(metadata: dict[str, Any], path: str) -> None:
    document = base()
    document["metadata"] = metadata
    assert only(document)["path"] == path


def test_an_unquoted_numeric_version_gets_a_quoting_hint() -> None:
    document = base()
    document["metadata"]["version"] = 1.5
    found = only(document)
    assert "got 1.5" in found["message"]
    assert "quote" in found["hint"]


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"failure": {"retries": {"maxAttempts": 0}}}, "spec.failure.retries.maxAttempts"),
        ({"failure": {"retries": {"backoffRate": 0.5}}}, "spec.failure.retries.backoffRate"),
        ({"failure": {"retries": {"backoffSeconds": -1}}}, "spec.failure.retries.backoffSeconds"),
        ({"maxParallel": 0}, "spec.maxParallel"),
        ({"steps": []}, "spec.steps"),
        ({"outputs": [{"name": "o", "type": "blob", "from": "steps.a.outputs"}]}, "spec.outputs[0].type"),
        ({"security": {"secretsRedactionPolicy": "plain"}}, "spec.security.secretsRedactionPolicy"),
        ({"slo": {"runP95Seconds": 0}}, "spec.slo.runP95Seconds"),
    ],
)
def test_spec_values_are_checked(spec: dict[str, Any], path: str) -> None:
    assert only(base(**spec))["path"] == path


@pytest.mark.parametrize(
    ("step", "path"),
    [
        (
            {"id": "m", "map": {"items": "not a template", "step": {"id": "c", "run": {"uses": "noop"}}}},
            "map.items",
        ),
        (
            {
                "id": "m",
                "map": {
                    "items": "{{ inputs.a }} {{ inputs.b }}",
                    "step": {"id": "c", "run": {"uses": "noop"}},
                },
            },
            "map.items",
        ),
        ({"id": "m", "map": {"items": 3, "step": {"id": "c", "run": {"uses": "noop"}}}}, "map.items"),
        ({"id": "m", "map": {"items": []}}, "map.step"),
        ({"id": "p", "parallel": {"steps": []}}, "parallel.steps"),
        ({"id": "r", "run": {"uses": "no such module!"}}, "run.uses"),
        ({"id": "r", "run": {"uses": "noop"}, "timeoutSeconds": 0}, "timeoutSeconds"),
    ],
)
def test_step_bodies_are_checked(step: dict[str, Any], path: str) -> None:
    inputs = [{"name": "a", "type": "array", "default": []}, {"name": "b", "type": "array", "default": []}]
    assert only(base(inputs=inputs, steps=[step]))["path"] == f"spec.steps[0].{path}"


@pytest.mark.parametrize(("field", "value"), [("apiVersion", "stellaops.io/pack.v2"), ("kind", "Pack")])
def test_the_document_kind_is_checked(field: str, value: str) -> None:
    document = base()
    document[field] = value
    assert only(document)["path"] == field
