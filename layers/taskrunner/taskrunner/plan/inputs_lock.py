"""``inputs.lock``: the resolved inputs of a run and, per secret, its reference and redacted form.

A secret's value never appears: with ``security.secretsRedactionPolicy: hash`` the lock holds
``hmac-sha256:<hex>`` under the deployment redaction key (stable and comparable), with ``blank`` it holds
``<redacted>``, and ``<unresolved>`` when no value was supplied to the planner.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from taskrunner.canonical import canonical_bytes
from taskrunner.plan.document import Plan
from taskrunner.redaction import redacted_form

INPUTS_LOCK_API_VERSION = "stellaops.io/inputs-lock.v1"
UNRESOLVED = "<unresolved>"
_ENV_PREFIX = "env:"


def build_inputs_lock(
    plan: Plan, *, redaction_key: bytes, secret_values: Mapping[str, str]
) -> dict[str, Any]:
    """The inputs.lock document of ``plan``; ``secret_values`` maps secret names to their values."""
    policy = plan.security.secretsRedactionPolicy
    secrets: dict[str, dict[str, str]] = {}
    for secret in plan.secrets:
        value = secret_values.get(secret.name)
        shown = UNRESOLVED if value is None else redacted_form(value, policy, redaction_key)
        secrets[secret.name] = {"ref": secret.ref, "value": shown}
    return {
        "apiVersion": INPUTS_LOCK_API_VERSION,
        "inputs": copy.deepcopy(plan.inputs),
        "secrets": secrets,
        "secretsRedactionPolicy": policy,
    }


def inputs_lock_bytes(lock: Mapping[str, Any]) -> bytes:
    """The stored form of an inputs.lock: RFC 8785 canonical JSON."""
    return canonical_bytes(dict(lock))


def environment_secret_values(plan: Plan, environ: Mapping[str, str]) -> dict[str, str]:
    """Values of the plan's ``env:NAME`` secrets that are set in ``environ`` (local runs only).

    Other references (AWS Secrets Manager, SSM) are resolved by the executor's secret resolver.
    """
    values: dict[str, str] = {}
    for secret in plan.secrets:
        if secret.ref.startswith(_ENV_PREFIX):
            value = environ.get(secret.ref[len(_ENV_PREFIX) :])
            if value is not None:
                values[secret.name] = value
    return values
