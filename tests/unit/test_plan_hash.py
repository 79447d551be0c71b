"""planHash: canonical bytes, stability (key order, YAML style, hash seed) and sensitivity to every field."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rfc8785
import yaml
from taskrunner.canonical import canonical_bytes, sha256_digest
from taskrunner.errors import ValidationFailed
from taskrunner.plan.hashing import jcs_bytes, parse_plan, plan_hash, plan_hash_of_bytes, rng_seed
from taskrunner.plan.planner import build_plan

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "packs" / "control-flow.yaml"

BASE: dict[str, Any] = {
    "apiVersion": "stellaops.io/pack.v1",
    "kind": "TaskPack",
    "metadata": {"name": "hashing", "version": "1.0.0", "description": "d"},
    "spec": {
        "inputs": [
            {"name": "who", "type": "string", "default": "w"},
            {"name": "xs", "type": "array", "default": [1, 2]},
        ],
        "secrets": [{"name": "token", "ref": "env:TOKEN"}],
        "approvals": [
            {
                "id": "ok",
                "grants": ["packs.approve"],
                "expiresAfter": "PT1H",
                "reasonTemplate": "r {{ inputs.who }}",
            }
        ],
        "policies": [{"id": "p", "expression": "`true`"}],
        "sandbox": {"mode": "sealed", "egressAllowlist": [], "cpuSeconds": 10},
        "slo": {"runP95Seconds": 60},
        "security": {"secretsRedactionPolicy": "hash"},
        "failure": {"retries": {"maxAttempts": 2}},
        "maxParallel": 4,
        "steps": [
            {
                "id": "a",
                "run": {"uses": "noop", "with": {"g": "hi {{ inputs.who }}", "n": 1}},
                "outputs": ["g"],
            },
            {
                "id": "b",
                "when": "inputs.who == 'w'",
                "run": {"uses": "noop", "with": {"name": "x"}},
                "retries": {"backoffSeconds": 1},
            },
            {"id": "par", "parallel": {"maxParallel": 2, "steps": [{"id": "c", "run": {"uses": "noop"}}]}},
            {
                "id": "m",
                "map": {
                    "items": "{{ inputs.xs }}",
                    "step": {"id": "t", "run": {"uses": "noop", "with": {"v": "{{ item }}"}}},
                },
            },
            {"id": "gate", "gate.approval": {"approval": "ok", "message": "go {{ inputs.who }}"}},
            {"id": "pol", "gate.policy": {"policy": "p"}},
        ],
        "outputs": [{"name": "out", "type": "value", "from": "steps.a.outputs"}],
    },
}


def hash_of(document: Any, inputs: dict[str, Any] | None = None) -> str:
    return build_plan(document, inputs or {}).plan_hash


def reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def test_plan_hash_is_sha256_of_the_canonical_plan_bytes() -> None:
    result = build_plan(BASE, {})
    assert result.plan_bytes == canonical_bytes(result.plan.to_document())
    assert result.plan_hash == "sha256:" + hashlib.sha256(result.plan_bytes).hexdigest()
    assert plan_hash(result.plan) == result.plan_hash
    assert plan_hash_of_bytes(result.plan_bytes) == result.plan_hash


def test_rng_seed_is_derived_from_the_plan_hash() -> None:
    result = build_plan(BASE, {})
    digest = hashlib.sha256(b"rng:" + result.plan_hash.encode()).hexdigest()
    assert result.rng_seed == rng_seed(result.plan_hash) == int(digest[:16], 16)


def test_stored_plan_json_reads_back_to_the_same_plan_and_hash() -> None:
    result = build_plan(BASE, {})
    plan = parse_plan(result.plan_bytes)
    assert plan == result.plan
    assert plan_hash(plan) == result.plan_hash


@pytest.mark.parametrize(
    "data",
    [
        lambda b: json.dumps(json.loads(b), indent=2).encode(),  # same content, not canonical
        lambda b: b.replace(b'"apiVersion":"stellaops.io/plan.v1"', b'"apiVersion":"x"'),
        lambda b: b"{}",
    ],
)
def test_non_canonical_or_invalid_plan_json_is_refused(data: Callable[[bytes], bytes]) -> None:
    with pytest.raises(ValidationFailed):
        parse_plan(data(build_plan(BASE, {}).plan_bytes))


def test_key_order_does_not_change_the_hash() -> None:
    assert hash_of(reversed_keys(BASE)) == hash_of(BASE)


def test_yaml_style_and_json_text_do_not_change_the_hash() -> None:
    expected = hash_of(BASE)
    block = yaml.safe_dump(BASE, default_flow_style=False, sort_keys=False)
    flow = yaml.safe_dump(reversed_keys(BASE), default_flow_style=True, width=4096)
    assert "\n  " in block
    assert flow.startswith("{")
    assert hash_of(block) == hash_of(flow) == hash_of(json.dumps(BASE)) == expected


def test_the_hash_is_the_same_in_other_processes_whatever_their_hash_seed() -> None:
    script = (
        "import sys; from pathlib import Path; from taskrunner.plan.planner import build_plan; "
        "print(build_plan(Path(sys.argv[1]), {'regions': ['eu', 'us', 'ap'], 'label': 'x'}).plan_hash)"
    )
    expected = build_plan(EXAMPLE, {"regions": ["eu", "us", "ap"], "label": "x"}).plan_hash
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script, str(EXAMPLE)], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        node: Any = document
        parts = path.split("/")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _swap_steps(document: dict[str, Any]) -> None:
    steps = document["spec"]["steps"]
    steps[0], steps[1] = steps[1], steps[0]


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "metadata.version": _set("metadata/version", "1.0.1"),
    "metadata.description": _set("metadata/description", "other"),
    "input default": _set("spec/inputs/0/default", "v"),
    "input schema": _set("spec/inputs/0/schema", {"minLength": 1}),
    "secret ref": _set("spec/secrets/0/ref", "env:OTHER"),
    "approval requiredCount": _set("spec/approvals/0/requiredCount", 2),
    "approval expiresAfter": _set("spec/approvals/0/expiresAfter", "PT2H"),
    "approval grants": _set("spec/approvals/0/grants", ["packs.approve", "ops"]),
    "approval reasonTemplate": _set("spec/approvals/0/reasonTemplate", "other {{ inputs.who }}"),
    "policy expression": _set("spec/policies/0/expression", "`false`"),
    "sandbox mode": _set("spec/sandbox/mode", "restricted"),
    "sandbox egress": _set("spec/sandbox/egressAllowlist", ["example.com"]),
    "sandbox cpu": _set("spec/sandbox/cpuSeconds", 11),
    "slo": _set("spec/slo/runP95Seconds", 61),
    "security": _set("spec/security/secretsRedactionPolicy", "blank"),
    "failure retries": _set("spec/failure/retries/maxAttempts", 3),
    "failure continueOnError": _set("spec/failure/continueOnError", True),
    "spec maxParallel": _set("spec/maxParallel", 5),
    "step id": _set("spec/steps/1/id", "b2"),
    "step uses": _set("spec/steps/1/run/uses", "artifact.write"),
    "step parameter value": _set("spec/steps/0/run/with/n", 2),
    "step parameter type": _set("spec/steps/0/run/with/n", "1"),
    "step parameter added": _set("spec/steps/0/run/with/extra", None),
    "step template": _set("spec/steps/0/run/with/g", "hey {{ inputs.who }}"),
    "step outputs": _set("spec/steps/0/outputs", ["g", "n"]),
    "step retries": _set("spec/steps/1/retries", {"backoffSeconds": 2}),
    "step continueOnError": _set("spec/steps/0/continueOnError", True),
    "step timeout": _set("spec/steps/0/timeoutSeconds", 9),
    "step when": _set("spec/steps/1/when", "inputs.who != 'w'"),
    "step order": _swap_steps,
    "parallel maxParallel": _set("spec/steps/2/parallel/maxParallel", 1),
    "parallel continueOnError": _set("spec/steps/2/parallel/continueOnError", True),
    "parallel child": _set("spec/steps/2/parallel/steps/0/id", "c2"),
    "map items": _set("spec/steps/3/map/items", [1, 2, 3]),
    "map maxParallel": _set("spec/steps/3/map/maxParallel", 1),
    "map template": _set("spec/steps/3/map/step/run/with/v", "x{{ item }}"),
    "gate message": _set("spec/steps/4/gate.approval/message", "stop"),
    "policy failAction": _set("spec/steps/5/gate.policy/failAction", "continue"),
    "output from": _set("spec/outputs/0/from", "steps.b.outputs"),
}


@pytest.mark.parametrize("change", list(MUTATIONS.values()), ids=list(MUTATIONS))
def test_any_change_to_the_pack_changes_the_hash(change: Callable[[dict[str, Any]], None]) -> None:
    document = copy.deepcopy(BASE)
    change(document)
    assert hash_of(document) != hash_of(BASE)


@pytest.mark.parametrize(
    "inputs", [{"who": "x"}, {"xs": [1]}, {"xs": [2, 1]}, {"xs": [1, 2.5]}, {"who": "w", "xs": [1, 2, 3]}]
)
def test_any_change_to_the_inputs_changes_the_hash(inputs: dict[str, Any]) -> None:
    assert hash_of(BASE, inputs) != hash_of(BASE)


def test_supplying_the_default_explicitly_gives_the_same_plan() -> None:
    assert hash_of(BASE, {"who": "w", "xs": [1, 2]}) == hash_of(BASE)


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-(2**53) + 1, 2**53 - 1) if rng.random() < 0.3 else rng.randint(-1000, 1000)
    if kind == 2:
        return rng.choice(
            [0.0, -0.0, 1.0, 2.5, 0.1, 1e-4, 9.99e-5, 1e-7, 5e-324, 1e16, 1.5e17, 1e21, 1e300, 2.0**53]
        )
    if kind == 3:
        return rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-12, 12)
    if kind in (4, 5):
        alphabet = [
            "a",
            "Z",
            "é",
            '"',
            "\\",
            "\n",
            "\x01",
            "\x7f",
            "\u2028",
            "\ue000",
            "\U0001f600",
            ":1.5",
            ",2e",
            "0123456789012345",
        ]
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(5)))
    if kind in (6, 7):
        return {_random_key(rng): _random_value(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(5))]


def _random_key(rng: random.Random) -> str:
    return "".join(
        rng.choice(["a", "b", "A", "\ue000", "\U0001f600", "é", "1", "_"]) for _ in range(rng.randrange(1, 4))
    )


def test_fast_canonical_json_equals_rfc8785_on_random_documents() -> None:
    rng = random.Random(8785)
    for _ in range(3000):
        document = {"root": _random_value(rng)}
        assert jcs_bytes(document) == rfc8785.dumps(document), document


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**53, -(2**60)])
def test_fast_canonical_json_refuses_what_rfc8785_refuses(value: Any) -> None:
    with pytest.raises(rfc8785.CanonicalizationError):
        jcs_bytes({"v": value})


def test_pack_digest_matches_the_reference_digest_for_floats_and_unicode() -> None:
    document = copy.deepcopy(BASE)
    document["spec"]["steps"][0]["run"]["with"].update({"f": 1e-7, "g": 2.0, "u": "\U0001f600", "\ue000": 1})
    result = build_plan(document, {})
    assert result.plan.pack.digest == sha256_digest(rfc8785.dumps(document))
    assert result.plan_bytes == rfc8785.dumps(result.plan.to_document())
