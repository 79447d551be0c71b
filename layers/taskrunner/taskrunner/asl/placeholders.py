"""``${Name}`` placeholders for the Lambda function ARNs a compiled definition calls.

Compiled definitions never hold an ARN, so the same plan compiles to the same bytes in every
environment. The ARNs are filled in when the definition is deployed (SAM ``DefinitionSubstitutions``
uses the same syntax) or just before ``CreateStateMachine``, with :func:`substitute_placeholders`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from taskrunner.errors import TaskRunnerError

PLACEHOLDERS = (
    "VerifyPlanFunctionArn",
    "ExecuteStepFunctionArn",
    "OpenGateFunctionArn",
    "EvaluatePolicyFunctionArn",
    "SealEvidenceFunctionArn",
)

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def placeholder(name: str) -> str:
    """The ``${name}`` reference for one of :data:`PLACEHOLDERS`."""
    if name not in PLACEHOLDERS:
        raise ValueError(f"unknown placeholder {name!r}")
    return "${" + name + "}"


def placeholders_in(text: str) -> list[str]:
    """Distinct placeholder names referenced in ``text``, in order of first use."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(text)))


def substitute_placeholders(definition_bytes: bytes, values: Mapping[str, str]) -> str:
    """The definition text for ``CreateStateMachine`` with every ``${Name}`` replaced by its value.

    Every placeholder the definition uses must have a non-empty value, and every value must name a
    known placeholder; otherwise a ``TaskRunnerError`` (code ``PlaceholderError``) lists them all.
    Values are inserted JSON-escaped, so the result stays valid JSON whatever they contain.
    """
    text = definition_bytes.decode("utf-8")
    used = placeholders_in(text)
    problems = [
        f"unknown placeholder ${{{name}}} in the definition" for name in used if name not in PLACEHOLDERS
    ]
    problems += [
        f"no value for placeholder ${{{name}}}"
        for name in used
        if name in PLACEHOLDERS and not values.get(name)
    ]
    problems += [
        f"value given for unknown placeholder {name!r}" for name in sorted(values) if name not in PLACEHOLDERS
    ]
    if problems:
        raise TaskRunnerError(
            "Cannot fill in the state machine definition: " + "; ".join(problems) + ".",
            code="PlaceholderError",
            remediation="Pass a function ARN for each of: " + ", ".join(PLACEHOLDERS) + ".",
        )
    return _PLACEHOLDER.sub(lambda match: json.dumps(values[match.group(1)])[1:-1], text)
