"""Input resolution: defaults, required, types, JSON Schema keywords, unknown names, secrets, all at once."""

from __future__ import annotations

from typing import Any

import pytest
from taskrunner.errors import ValidationFailed
from taskrunner.pack import InputsError, load_pack
from taskrunner.plan.inputs import resolve_inputs
from taskrunner.plan.planner import build_plan

DECLARED = [
    {"name": "path", "type": "string", "required": True, "schema": {"pattern": "^/"}},
    {"name": "count", "type": "integer", "default": 2, "schema": {"minimum": 1, "maximum": 10}},
    {"name": "ratio", "type": "number", "default": 0.5},
    {"name": "dry", "type": "boolean", "default": False},
    {
        "name": "targets",
        "type": "array",
        "default": ["a"],
        "schema": {"items": {"type": "string"}, "uniqueItems": True},
    },
    {"name": "extra", "type": "object", "schema": {"required": ["k"]}},
]


def manifest() -> Any:
    return load_pack(
        {
            "apiVersion": "stellaops.io/pack.v1",
            "kind": "TaskPack",
            "metadata": {"name": "inputs", "version": "1.0.0"},
            "spec": {
                "inputs": DECLARED,
                "secrets": [{"name": "token", "ref": "env:TOKEN"}],
                "sandbox": {"mode": "sealed", "egressAllowlist": []},
                "steps": [{"id": "a", "run": {"uses": "noop"}}],
            },
        }
    ).manifest


def refused(supplied: Any) -> dict[str, str]:
    with pytest.raises(InputsError) as info:
        resolve_inputs(manifest(), supplied)
    return {p["path"]: p["message"] for p in info.value.problem_list}


def test_defaults_fill_what_was_not_supplied() -> None:
    assert resolve_inputs(manifest(), {"path": "/b"}) == {
        "count": 2,
        "dry": False,
        "path": "/b",
        "ratio": 0.5,
        "targets": ["a"],
    }


def test_supplied_values_win_and_optional_inputs_without_default_stay_absent() -> None:
    resolved = resolve_inputs(manifest(), {"path": "/b", "count": 7, "extra": {"k": 1}})
    assert resolved["count"] == 7
    assert resolved["extra"] == {"k": 1}
    assert "extra" not in resolve_inputs(manifest(), {"path": "/b"})


def test_defaults_are_copied_not_shared() -> None:
    first = resolve_inputs(manifest(), {"path": "/b"})
    first["targets"].append("mutated")
    assert resolve_inputs(manifest(), {"path": "/b"})["targets"] == ["a"]


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("path", "relative", "does not match '^/'"),
        ("path", 3, "is not a string"),
        ("count", 2.5, "is not an integer"),
        ("count", True, "is not an integer"),
        ("count", 11, "is greater than the maximum of 10"),
        ("ratio", "0.5", "is not a number"),
        ("dry", "false", "is not a boolean"),
        ("targets", ["a", "a"], "non-unique"),
        ("targets", [1], "is not a string"),
        ("extra", {"j": 1}, "'k' is a required property"),
        ("extra", [], "is not an object"),
    ],
)
def test_types_and_schema_keywords_are_enforced(name: str, value: Any, fragment: str) -> None:
    supplied = {"path": "/b", name: value}
    problems = refused(supplied)
    assert list(problems) == [f"inputs.{name}"]
    assert fragment in problems[f"inputs.{name}"]
    assert problems[f"inputs.{name}"].startswith(f"input {name!r}: value ")


def test_unknown_missing_and_invalid_inputs_are_reported_together() -> None:
    problems = refused({"nope": 1, "count": 0, "token": "s3cr3t"})
    assert set(problems) == {"inputs.nope", "inputs.token", "inputs.path", "inputs.count"}
    assert problems["inputs.path"] == "required input is missing"
    assert "unknown input 'nope'" in problems["inputs.nope"]


def test_a_secret_passed_as_input_is_refused_with_a_pointer_to_spec_secrets() -> None:
    with pytest.raises(InputsError) as info:
        resolve_inputs(manifest(), {"path": "/b", "token": "s3cr3t"})
    problem = info.value.problem_list[0]
    assert "spec.secrets" in problem["hint"]
    assert "s3cr3t" not in str(info.value)


def test_non_json_input_values_are_refused() -> None:
    problems = refused({"path": "/b", "extra": {"k": float("inf")}, "count": 2**60})
    assert set(problems) == {"inputs.extra.k", "inputs.count"}


def test_inputs_must_be_a_mapping() -> None:
    assert "inputs must be an object" in refused(["path"])["inputs"]


def test_input_errors_are_validation_errors_with_their_own_code() -> None:
    with pytest.raises(ValidationFailed) as info:
        build_plan(
            "apiVersion: stellaops.io/pack.v1\nkind: TaskPack\nmetadata: {name: x, version: 1.0.0}\n"
            "spec: {sandbox: {mode: sealed, egressAllowlist: []}, steps: [{id: a, run: {uses: noop}}]}\n",
            {"surprise": 1},
            inputs_name="inputs.json",
        )
    assert info.value.code == "InvalidInputs"
    assert (
        str(info.value)
        == "inputs.json: inputs.surprise: unknown input 'surprise' (hint: declared inputs: none)"
    )
