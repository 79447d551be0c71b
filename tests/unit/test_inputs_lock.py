"""inputs.lock: resolved inputs, and per secret its ref and redacted form - never the value."""

from __future__ import annotations

import json
from typing import Any

import pytest
from taskrunner.plan.inputs_lock import (
    UNRESOLVED,
    build_inputs_lock,
    environment_secret_values,
    inputs_lock_bytes,
)
from taskrunner.plan.planner import build_plan
from taskrunner.redaction import BLANK, fingerprint

KEY = b"k" * 32


def plan_with(policy: str) -> Any:
    return build_plan(
        {
            "apiVersion": "stellaops.io/pack.v1",
            "kind": "TaskPack",
            "metadata": {"name": "lock", "version": "1.0.0"},
            "spec": {
                "inputs": [
                    {"name": "who", "type": "string", "default": "world"},
                    {"name": "n", "type": "integer"},
                ],
                "secrets": [
                    {"name": "token", "ref": "env:LOCK_TOKEN"},
                    {"name": "db", "ref": "aws-secretsmanager:prod/db#password"},
                    {"name": "absent", "ref": "env:LOCK_ABSENT"},
                ],
                "security": {"secretsRedactionPolicy": policy},
                "sandbox": {"mode": "sealed", "egressAllowlist": []},
                "steps": [{"id": "a", "run": {"uses": "noop", "with": {"t": "{{ secrets.token }}"}}}],
            },
        },
        {"n": 4},
    ).plan


def test_hash_policy_stores_keyed_fingerprints() -> None:
    lock = build_inputs_lock(
        plan_with("hash"), redaction_key=KEY, secret_values={"token": "s3cr3t", "db": "pw"}
    )
    assert lock == {
        "apiVersion": "stellaops.io/inputs-lock.v1",
        "inputs": {"n": 4, "who": "world"},
        "secrets": {
            "token": {"ref": "env:LOCK_TOKEN", "value": fingerprint("s3cr3t", KEY)},
            "db": {"ref": "aws-secretsmanager:prod/db#password", "value": fingerprint("pw", KEY)},
            "absent": {"ref": "env:LOCK_ABSENT", "value": UNRESOLVED},
        },
        "secretsRedactionPolicy": "hash",
    }
    assert lock["secrets"]["token"]["value"] != fingerprint("s3cr3t", b"other key")


def test_blank_policy_stores_the_placeholder() -> None:
    lock = build_inputs_lock(plan_with("blank"), redaction_key=KEY, secret_values={"token": "s3cr3t"})
    assert lock["secrets"]["token"]["value"] == BLANK
    assert lock["secrets"]["db"]["value"] == UNRESOLVED


@pytest.mark.parametrize("policy", ["hash", "blank"])
def test_secret_values_never_appear_in_the_lock(policy: str) -> None:
    values = {"token": "very-secret-token-value", "db": "hunter2-password"}
    data = inputs_lock_bytes(build_inputs_lock(plan_with(policy), redaction_key=KEY, secret_values=values))
    for value in values.values():
        assert value.encode() not in data
    assert json.loads(data)["secretsRedactionPolicy"] == policy


def test_the_lock_copies_inputs() -> None:
    plan = plan_with("hash")
    lock = build_inputs_lock(plan, redaction_key=KEY, secret_values={})
    lock["inputs"]["who"] = "changed"
    assert plan.inputs["who"] == "world"


def test_only_env_references_resolve_from_the_environment() -> None:
    environ = {"LOCK_TOKEN": "from-env", "prod/db#password": "never", "OTHER": "x"}
    assert environment_secret_values(plan_with("hash"), environ) == {"token": "from-env"}
