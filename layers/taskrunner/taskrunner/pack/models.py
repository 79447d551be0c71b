"""Pack manifest ``stellaops.io/pack.v1`` as pydantic models (the shape of every field).

These models check structure, types and per-field rules. Rules that span the whole pack (unique step ids,
references to approvals/policies/inputs/secrets/steps, expression syntax) live in
:mod:`taskrunner.pack.rules`; :func:`taskrunner.pack.loader.load_pack` applies both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from taskrunner.keys import PACK_NAME_PATTERN, SEMVER_PATTERN, STEP_ID_PATTERN
from taskrunner.pack.expressions import ExpressionError, parse_template

PACK_API_VERSION = "stellaops.io/pack.v1"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"  # inputs, secrets, outputs: plain JMESPath identifiers
# Secret references: AWS Secrets Manager (optionally #jsonKey), SSM parameters, environment (local).
REFERENCE_PATTERN = (
    r"^(aws-secretsmanager:[^\s#]+(#[^\s#]+)?|aws-ssm:(/|arn:)\S+|env:[A-Za-z_][A-Za-z0-9_]*)$"
)
EGRESS_PATTERN = r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$"
MODULE_PATTERN = r"^[A-Za-z][A-Za-z0-9_.:-]{0,127}$"
KIND_KEYS: tuple[str, ...] = ("run", "parallel", "map", "gate.approval", "gate.policy")
RUN_ONLY_KEYS: tuple[str, ...] = ("outputs", "retries", "continueOnError", "timeoutSeconds")
MAX_SECONDS = 365 * 24 * 3600  # a standard Step Functions execution lasts at most one year

_DURATION = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)

StepId = Annotated[str, Field(pattern=STEP_ID_PATTERN)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Seconds = Annotated[int, Field(ge=1, le=MAX_SECONDS)]


def rule_error(message: str, hint: str) -> PydanticCustomError:
    """A validation error that carries a fix hint (read back by the loader)."""
    return PydanticCustomError("pack_rule", message, {"hint": hint})


def duration_seconds(text: str) -> int:
    """Seconds in an ISO-8601 duration of weeks/days/hours/minutes/seconds (``PT4H`` -> 14400)."""
    match = _DURATION.match(text)
    if not match or text in {"P", "PT"} or text.endswith("T"):
        raise ValueError(f"{text!r} is not an ISO-8601 duration")
    g = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    return (((g["w"] * 7 + g["d"]) * 24 + g["h"]) * 60 + g["m"]) * 60 + g["s"]


def _check_duration(value: str) -> str:
    try:
        seconds = duration_seconds(value)
    except ValueError:
        raise rule_error(
            f"{value!r} is not an ISO-8601 duration",
            "write e.g. PT30M, PT4H, P1D or P1DT12H (no years or months)",
        ) from None
    if not 1 <= seconds <= MAX_SECONDS:
        raise rule_error(
            f"duration {value!r} is out of range", f"use between PT1S and P365D ({MAX_SECONDS} s)"
        )
    return value


IsoDuration = Annotated[
    str, AfterValidator(_check_duration), Field(description="ISO-8601 duration, e.g. PT4H (1 s to 365 days)")
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Maintainer(_Model):
    name: str = Field(min_length=1)
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$")
    url: str | None = None


class Metadata(_Model):
    name: str = Field(
        pattern=PACK_NAME_PATTERN, description="Lower-case letters, digits and '-', 1-48 chars."
    )
    version: str = Field(
        pattern=SEMVER_PATTERN, description="Semantic version, e.g. 1.2.0 (quote it in YAML)."
    )
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    tenantVisibility: Literal["private", "public"] = "private"
    maintainers: list[Maintainer] = Field(default_factory=list)
    license: str | None = None


class Input(_Model):
    name: Name
    type: Literal["string", "number", "integer", "boolean", "array", "object"]
    required: bool = False
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema", description="Extra JSON Schema keywords.")
    default: Any = None

    @field_validator("schema_")
    @classmethod
    def _schema_is_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from jsonschema import Draft202012Validator  # only packs that declare a schema need jsonschema
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(value)
            except SchemaError as exc:
                raise rule_error(
                    f"schema is not valid JSON Schema: {exc.message}", "use JSON Schema 2020-12 keywords"
                ) from None
        return value

    @field_validator("default")
    @classmethod
    def _default_matches(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.data.get("name", "?")
        if info.data.get("required"):
            raise rule_error(
                f"input {name!r}: a required input cannot have a default",
                "remove the default or set required: false",
            )
        kind, schema = info.data.get("type"), info.data.get("schema_")
        if kind is not None:
            message = schema_violation(value, kind, schema)
            if message:
                raise rule_error(
                    f"input {name!r}: default {message}",
                    f"give a default matching {json.dumps(input_schema(kind, schema), ensure_ascii=False)}",
                )
        return value

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema a value of this input must satisfy (``type`` plus ``schema``)."""
        return input_schema(self.type, self.schema_)


def input_schema(kind: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    return {"allOf": [{"type": kind}, extra]} if extra else {"type": kind}


_ARTICLES = {"integer": "an integer", "array": "an array", "object": "an object"}
# Values that satisfy JSON Schema's ``type`` alone (a subset: a float such as 1.0 is left to the validator).
_PLAIN_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "number": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
    "array": lambda value: isinstance(value, list),
    "object": lambda value: isinstance(value, dict),
}


def schema_violation(value: Any, kind: str, extra: dict[str, Any] | None) -> str | None:
    """Why ``value`` does not satisfy ``type``/``schema`` (``"three" is not an integer``), or None."""
    plain = _PLAIN_TYPES.get(kind)
    if not extra and plain is not None and plain(value):
        return None  # a value of the plain type: no validator (and no jsonschema import) needed
    from jsonschema import Draft202012Validator

    error = next(iter(Draft202012Validator(input_schema(kind, extra)).iter_errors(value)), None)
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    shown = json.dumps(error.instance, ensure_ascii=False)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    if error.validator == "type" and isinstance(error.validator_value, str):
        expected = error.validator_value
        reason = f"is not {_ARTICLES.get(expected, 'a ' + expected)}"
    else:
        reason = f"fails schema keyword {error.validator!r}: {error.message}"
    return f"{shown}{' at ' + where.lstrip('.') if where else ''} {reason}"


class Secret(_Model):
    name: Name
    ref: str = Field(
        pattern=REFERENCE_PATTERN,
        description="aws-secretsmanager:<id>[#jsonKey], aws-ssm:/<path> or env:<NAME> (local runtime).",
    )


class Approval(_Model):
    id: StepId
    grants: list[str] = Field(min_length=1)
    requiredCount: int = Field(1, ge=1, le=100)
    expiresAfter: IsoDuration
    reasonTemplate: str | None = None

    @property
    def expires_after_seconds(self) -> int:
        return duration_seconds(self.expiresAfter)


class Policy(_Model):
    id: StepId
    expression: str = Field(min_length=1, description="JMESPath over inputs and steps; truthy = allowed.")


class Sandbox(_Model):
    mode: Literal["sealed", "restricted"]
    egressAllowlist: list[Annotated[str, Field(pattern=EGRESS_PATTERN)]] = Field(
        description="Hosts (host, host:port, *.domain) reachable from steps; [] = no egress."
    )
    cpuSeconds: Seconds | None = None
    memoryMiB: int | None = Field(None, ge=1)
    wallClockSeconds: Seconds | None = None


MAX_QUEUE_DEPTH = 10_000  # more waiting runs than this is no queue bound at all


class Slo(_Model):
    """Service-level objectives of the pack's runs (see ``## SLOs and alarms`` in the README)."""

    runP95Seconds: Seconds | None = Field(
        None, description="p95 of a run's duration, start to seal, excluding approval waits."
    )
    approvalP95Seconds: Seconds | None = Field(
        None, description="p95 of an approval gate's wait, opened to decided; needs spec.approvals."
    )
    maxQueueDepth: int | None = Field(
        None, ge=1, le=MAX_QUEUE_DEPTH, description="Most unfinished runs of this pack per tenant."
    )


class Security(_Model):
    secretsRedactionPolicy: Literal["hash", "blank"] = "hash"


class Retries(_Model):
    """Retry settings; unset fields inherit (spec.failure.retries, then the defaults 1 / 0 s / 2.0)."""

    maxAttempts: int | None = Field(None, ge=1, le=100)
    backoffSeconds: float | None = Field(None, ge=0, le=86400)
    backoffRate: float | None = Field(None, ge=1.0, le=10.0)


class Failure(_Model):
    retries: Retries | None = None
    continueOnError: bool | None = None


class RunSpec(_Model):
    uses: str = Field(pattern=MODULE_PATTERN, description="Module name, e.g. noop, artifact.write.")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class ParallelSpec(_Model):
    maxParallel: int | None = Field(None, ge=1)
    continueOnError: bool | None = None
    steps: list[Step] = Field(min_length=1)


class MapSpec(_Model):
    items: Any = Field(description="A list, or one {{ expression }} over inputs that yields a list.")
    maxParallel: int | None = Field(None, ge=1)
    step: Step

    @field_validator("items")
    @classmethod
    def _items_shape(cls, value: Any) -> Any:
        if isinstance(value, list):
            return value
        if isinstance(value, str):
            try:
                if parse_template(value.strip()).single is not None:
                    return value
            except ExpressionError:
                return value  # the expression rules report the syntax error with its details
        raise rule_error(
            "map.items must be a list or one {{ expression }}", 'write e.g. items: "{{ inputs.targets }}"'
        )


class ApprovalGateSpec(_Model):
    approval: StepId
    message: str | None = None


class PolicyGateSpec(_Model):
    policy: StepId
    failAction: Literal["halt", "continue"] = "halt"


class Step(_Model):
    """A step: ``id``, optional ``when``, and exactly one kind key."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": [key]} for key in KIND_KEYS]},
    )

    id: StepId
    when: str | None = Field(None, description="JMESPath condition; falsy -> the step is skipped.")
    run: RunSpec | None = None
    parallel: ParallelSpec | None = None
    map: MapSpec | None = None
    gate_approval: ApprovalGateSpec | None = Field(None, alias="gate.approval")
    gate_policy: PolicyGateSpec | None = Field(None, alias="gate.policy")
    outputs: list[Name] | None = None
    retries: Retries | None = None
    continueOnError: bool | None = None
    timeoutSeconds: Seconds | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        empty = [key for key in KIND_KEYS if key in data and data[key] is None]
        if empty:
            raise rule_error(f"{empty[0]} has no value", f"give {empty[0]} its fields, or remove it")
        kinds = [key for key in KIND_KEYS if key in data]
        if len(kinds) != 1:
            found = " and ".join(kinds) if kinds else "none"
            raise rule_error(
                f"a step needs exactly one kind key, found {len(kinds)} ({found})",
                "keep exactly one of: " + ", ".join(KIND_KEYS),
            )
        misplaced = [key for key in RUN_ONLY_KEYS if key in data] if kinds[0] != "run" else []
        if misplaced:
            where = "parallel.continueOnError" if kinds[0] == "parallel" else "a run step"
            raise rule_error(
                f"{', '.join(misplaced)} applies to run steps only, not {kinds[0]}",
                f"move it to {where} or remove it",
            )
        return data

    @property
    def kind(self) -> str:
        for key, attr in zip(
            KIND_KEYS, ("run", "parallel", "map", "gate_approval", "gate_policy"), strict=True
        ):
            if getattr(self, attr) is not None:
                return key
        raise AssertionError("validated steps have a kind")

    def children(self) -> list[Step]:
        """Nested steps: a parallel's steps or a map's template step."""
        if self.parallel is not None:
            return self.parallel.steps
        if self.map is not None:
            return [self.map.step]
        return []


class Output(_Model):
    name: Name
    type: Literal["file", "value"]
    from_: str = Field(alias="from", min_length=1, description="JMESPath, e.g. steps.report.outputs")


class Spec(_Model):
    inputs: list[Input] = Field(default_factory=list)
    secrets: list[Secret] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)
    policies: list[Policy] = Field(default_factory=list)
    sandbox: Sandbox
    slo: Slo | None = None
    security: Security = Security()
    failure: Failure = Failure()
    maxParallel: int = Field(4, ge=1)
    steps: list[Step] = Field(min_length=1)
    outputs: list[Output] = Field(default_factory=list)


class PackManifest(_Model):
    """A Task Pack manifest (``apiVersion: stellaops.io/pack.v1``, ``kind: TaskPack``)."""

    model_config = ConfigDict(title="TaskPack")

    apiVersion: Literal["stellaops.io/pack.v1"]
    kind: Literal["TaskPack"]
    metadata: Metadata
    spec: Spec


ParallelSpec.model_rebuild()
MapSpec.model_rebuild()
Step.model_rebuild()
