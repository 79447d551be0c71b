"""The template's IAM roles as CloudFormation would create them: SAM-expanded, resolved to local ARNs.

The SAM translator turns each function's ``Policies`` into a generated ``<Function>Role`` (inline
statements plus ``ManagedPolicyArns``), exactly as ``sam deploy`` does. Managed policies declared in the
template resolve to their ``PolicyDocument``; the two AWS managed policies SAM attaches to every function
are known documents; any other AWS managed policy grants nothing locally (fail closed).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskrunner.errors import ConfigurationError
from taskrunner.local.home_cache import HomeCache
from taskrunner.local.iam import Policy
from taskrunner.local.template import IntrinsicResolver, SamTemplate

_API_EVENTS = ("Api", "HttpApi")
_DENY_ALL: Policy = {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
AWS_MANAGED_POLICIES: dict[str, Policy] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ]
    },
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                    "xray:GetSamplingStatisticSummaries",
                ],
                "Resource": "*",
            }
        ]
    },
}


@dataclass(frozen=True)
class Role:
    """An execution role: its name, ARN and every identity policy attached to it."""

    logical_id: str
    name: str
    arn: str
    policies: tuple[Policy, ...]


@dataclass(frozen=True)
class TemplateRoles:
    """Roles by logical id, and which role each function (by logical id) runs as."""

    roles: Mapping[str, Role]
    function_roles: Mapping[str, str]

    def for_function(self, logical_id: str) -> Role:
        return self.roles[self.function_roles[logical_id]]

    def by_arn(self, arn: str) -> Role | None:
        return next((role for role in self.roles.values() if role.arn == arn), None)


def translate(
    template: SamTemplate, resolver: IntrinsicResolver, region: str, cache_dir: Path | None = None
) -> dict[str, Any]:
    """The CloudFormation template SAM produces for the roles (code locations replaced, as ``sam package``
    does; API events left out: they add routes and invoke permissions, not role policies).

    With ``cache_dir``, the translation of the same document, parameters and region by the same translator
    version is read back from there (a :class:`HomeCache`) instead of importing and running the translator
    (~0.3 s of every start)."""
    document = _translatable(template)
    parameters = dict(resolver.parameters)
    cache = HomeCache(cache_dir, f"aws-sam-translator {_translator_version()}") if cache_dir else None
    key = json.dumps([document, parameters, region], sort_keys=True, default=str)
    kept = cache.load(key) if cache else None
    if kept is not None:
        translated: dict[str, Any] = json.loads(kept)
        return translated
    translated = _run_translator(template, document, parameters, region)
    if cache:
        cache.save(key, json.dumps(translated).encode())
    return translated


def _translator_version() -> str:
    from importlib.metadata import version

    return version("aws-sam-translator")


def _translatable(template: SamTemplate) -> dict[str, Any]:
    document = copy.deepcopy(dict(template.document))
    for resource in document["Resources"].values():
        props = resource.get("Properties") if isinstance(resource, dict) else None
        if not isinstance(props, dict):
            continue
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://local-code/{props[key]}"
        events = props.get("Events")
        if isinstance(events, dict):  # API events add routes and invoke permissions, never role policies
            props["Events"] = {k: v for k, v in events.items() if v.get("Type") not in _API_EVENTS}
    return document


def _run_translator(
    template: SamTemplate, document: dict[str, Any], parameters: dict[str, Any], region: str
) -> dict[str, Any]:
    import boto3
    from samtranslator.metrics.metrics import Metrics
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    metrics = Metrics()  # recorded by the translator, published nowhere
    session = boto3.session.Session(region_name=region)
    translator = Translator({}, Parser(), boto_session=session, metrics=metrics)
    try:
        translated: dict[str, Any] = translator.translate(
            document, parameter_values=parameters, get_managed_policy_map=dict
        )
        return translated
    except InvalidDocumentException as exc:
        raise ConfigurationError(
            f"{template.path.name} does not translate with SAM: {'; '.join(str(e) for e in exc.causes)}",
            remediation="Fix the template (sam validate reports the same errors).",
        ) from exc
    finally:
        metrics.publish()


def template_roles(
    template: SamTemplate,
    resolver: IntrinsicResolver,
    *,
    region: str,
    account_id: str,
    role_arns: Mapping[str, str],
    cache_dir: Path | None = None,
) -> TemplateRoles:
    """Every ``AWS::IAM::Role`` of the translated template; ``role_arns`` gives provisioned roles' ARNs;
    ``cache_dir`` keeps the translation (see :func:`translate`)."""
    resources = translate(template, resolver, region, cache_dir)["Resources"]
    stack = resolver.resolve({"Ref": "AWS::StackName"})
    roles: dict[str, Role] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        props = resource.get("Properties") or {}
        where = f"Resources.{logical_id}.Properties"
        policies = [
            _resolve_policy(resolver, p.get("PolicyDocument") or {}, f"{where}.Policies[{i}]")
            for i, p in enumerate(props.get("Policies") or [])
        ]
        for i, managed in enumerate(props.get("ManagedPolicyArns") or []):
            policies.append(_managed_policy(resources, resolver, managed, f"{where}.ManagedPolicyArns[{i}]"))
        name = f"{stack}-{logical_id}"
        arn = role_arns.get(logical_id) or f"arn:aws:iam::{account_id}:role/{name}"
        roles[logical_id] = Role(logical_id, arn.rpartition("/")[2], arn, tuple(policies))
    function_roles = {}
    for logical_id, resource in resources.items():
        role = (
            (resource.get("Properties") or {}).get("Role")
            if resource.get("Type") == "AWS::Lambda::Function"
            else None
        )
        if isinstance(role, dict) and "Fn::GetAtt" in role:
            function_roles[logical_id] = str(role["Fn::GetAtt"][0])
    return TemplateRoles(roles, function_roles)


def _managed_policy(
    resources: Mapping[str, Any], resolver: IntrinsicResolver, managed: Any, where: str
) -> Policy:
    if isinstance(managed, dict) and set(managed) == {"Ref"}:
        target = resources.get(str(managed["Ref"])) or {}
        if target.get("Type") == "AWS::IAM::ManagedPolicy":
            document = (target.get("Properties") or {}).get("PolicyDocument") or {}
            return _resolve_policy(
                resolver, document, f"Resources.{managed['Ref']}.Properties.PolicyDocument"
            )
    try:
        arn = resolver.resolve_text(managed, where)
    except ConfigurationError:
        return {"Statement": []}
    return AWS_MANAGED_POLICIES.get(arn, {"Statement": []})


def _resolve_policy(resolver: IntrinsicResolver, document: Mapping[str, Any], where: str) -> Policy:
    """Resolve a policy's intrinsics; what has no local value grants nothing and denies everything it could."""
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    resolved: list[Any] = []
    for i, statement in enumerate(statements):
        here = f"{where}.Statement[{i}]"
        deny = statement.get("Effect") == "Deny"
        try:
            body = resolver.resolve(
                {k: v for k, v in statement.items() if k not in ("Resource", "NotResource")}, here
            )
        except ConfigurationError:
            resolved.extend(_DENY_ALL["Statement"] if deny else [])
            continue
        for key in ("Resource", "NotResource"):
            if key in statement:
                items = statement[key] if isinstance(statement[key], list) else [statement[key]]
                widen = deny if key == "Resource" else not deny  # what makes the statement deny more
                body[key] = [_resource(resolver, item, f"{here}.{key}", widen) for item in items]
                body[key] = [item for item in body[key] if item is not None]
        resolved.append(body)
    return {"Statement": resolved}


def _resource(resolver: IntrinsicResolver, item: Any, where: str, widen: bool) -> str | None:
    """The resolved ARN; without a local value ``*`` (``widen``) or nothing, whichever grants less."""
    try:
        return resolver.resolve_text(item, where)
    except ConfigurationError:
        return "*" if widen else None
