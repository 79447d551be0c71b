"""Read ``template.yaml`` the way SAM does, for the local runtime.

The SAM template is the single source of truth for what runs locally: which functions exist, where their
code is, their handler, timeout, memory, environment (Globals merged with the function's own) and HTTP API
routes. CloudFormation short-form tags (``!Ref``, ``!GetAtt``, ``!Sub``, ...) are parsed to their long form,
and :class:`IntrinsicResolver` resolves intrinsic functions against the local values a caller supplies
(parameters, resource references and attributes, pseudo parameters).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from taskrunner.errors import ConfigurationError

TEMPLATE_FILE = "template.yaml"
FUNCTION_TYPE = "AWS::Serverless::Function"
HTTP_API_TYPE = "AWS::Serverless::HttpApi"
_HTTP_API_EVENT = "HttpApi"
_NO_VALUE = "AWS::NoValue"
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


# ------------------------------------------------------------------------------------------ YAML with tags
class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader (libyaml's when PyYAML has it: the template parses 10x faster) that turns CloudFormation
    short-form tags into their long form."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        logical_id, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [logical_id, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def parse_cfn_yaml(text: str, *, source: str = TEMPLATE_FILE) -> dict[str, Any]:
    """Parse CloudFormation YAML (short-form tags become long form). Raises ConfigurationError."""
    try:
        document = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigurationError(
            f"{source} is not valid YAML: {exc}", remediation="Fix the YAML syntax at the reported line."
        ) from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise ConfigurationError(
            f"{source} has no Resources mapping", remediation="Point the local runtime at the SAM template."
        )
    return document


# ------------------------------------------------------------------------------------------ model
@dataclass(frozen=True)
class HttpRoute:
    """One HttpApi event of a function."""

    event_name: str
    method: str
    path: str
    scopes: tuple[str, ...]
    authorizer: str  # the API's authorizer verifying its tokens; "" for a public route (Authorizer: NONE)
    api: str = ""  # logical id of the HttpApi (ApiId); "" for the implicit one

    @property
    def auth_none(self) -> bool:
        return not self.authorizer

    @property
    def route_key(self) -> str:
        """API Gateway route key, e.g. ``GET /api/runs/{runId}``."""
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class TemplateParameter:
    name: str
    type: str
    default: str | None
    allowed_values: tuple[str, ...] = ()
    allowed_pattern: str | None = None


@dataclass(frozen=True)
class TemplateFunction:
    """A function as the template defines it; ``environment`` is unresolved (may hold intrinsics)."""

    logical_id: str
    name: str  # the CodeUri directory name, e.g. ``execute_step``
    code_uri: Path
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    environment: Mapping[str, Any]
    routes: tuple[HttpRoute, ...]
    event_types: tuple[str, ...]
    tracing: str = "PassThrough"

    @property
    def handler_file(self) -> Path:
        """Source file of the handler module (``app.handler`` -> ``<CodeUri>/app.py``)."""
        module, _, _ = self.handler.rpartition(".")
        return self.code_uri.joinpath(*module.split(".")).with_suffix(".py")

    @property
    def handler_function(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True)
class SamTemplate:
    path: Path
    document: Mapping[str, Any]
    parameters: Mapping[str, TemplateParameter]
    functions: Mapping[str, TemplateFunction]  # by logical id

    @property
    def resources(self) -> Mapping[str, Any]:
        return self.document["Resources"]

    def function(self, name: str) -> TemplateFunction:
        """The function whose CodeUri directory (or logical id) is ``name``."""
        for fn in self.functions.values():
            if name in (fn.name, fn.logical_id):
                return fn
        raise ConfigurationError(
            f"{self.path} defines no function {name!r}",
            remediation=f"Known functions: {', '.join(sorted(f.name for f in self.functions.values()))}.",
        )

    def routes(self) -> list[tuple[HttpRoute, TemplateFunction]]:
        """Every HttpApi route with the function serving it, in template order."""
        return [(route, fn) for fn in self.functions.values() for route in fn.routes]


# ------------------------------------------------------------------------------------------ loading
def find_template(start: Path | None = None) -> Path:
    """The nearest ``template.yaml`` in ``start`` (default: cwd) or a parent directory."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / TEMPLATE_FILE
        if candidate.is_file():
            return candidate
    raise ConfigurationError(
        f"no {TEMPLATE_FILE} found in {here} or its parents",
        remediation="Run from the TaskRunner project directory or pass the template path explicitly.",
    )


def load_template(path: Path) -> SamTemplate:
    """Load and interpret a SAM template. Raises ConfigurationError naming the offending field."""
    path = path.resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read SAM template {path}: {exc.strerror}", remediation="Check the template path."
        ) from exc
    document = parse_cfn_yaml(text, source=str(path))
    parameters = {name: _parameter(name, spec) for name, spec in (document.get("Parameters") or {}).items()}
    globals_fn = (document.get("Globals") or {}).get("Function") or {}
    default_authorizers = {
        logical_id: str(((resource.get("Properties") or {}).get("Auth") or {}).get("DefaultAuthorizer") or "")
        for logical_id, resource in document["Resources"].items()
        if isinstance(resource, dict) and resource.get("Type") == HTTP_API_TYPE
    }
    functions: dict[str, TemplateFunction] = {}
    for logical_id, resource in document["Resources"].items():
        if isinstance(resource, dict) and resource.get("Type") == FUNCTION_TYPE:
            properties = resource.get("Properties") or {}
            functions[logical_id] = _function(path, logical_id, properties, globals_fn, default_authorizers)
    names = [fn.name for fn in functions.values()]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(
            f"{path}: several functions share the CodeUri directory {', '.join(duplicates)}",
            remediation="Give every function its own functions/<name>/ directory.",
        )
    return SamTemplate(path=path, document=document, parameters=parameters, functions=functions)


def _parameter(name: str, spec: Mapping[str, Any]) -> TemplateParameter:
    default = spec.get("Default")
    return TemplateParameter(
        name=name,
        type=str(spec.get("Type", "String")),
        default=None if default is None else _scalar_text(default),
        allowed_values=tuple(_scalar_text(v) for v in spec.get("AllowedValues") or ()),
        allowed_pattern=spec.get("AllowedPattern"),
    )


def _function(
    template_path: Path,
    logical_id: str,
    props: Mapping[str, Any],
    globals_fn: Mapping[str, Any],
    default_authorizers: Mapping[str, str],
) -> TemplateFunction:
    where = f"{template_path}: Resources.{logical_id}.Properties"

    def prop(key: str) -> Any:
        return props.get(key, globals_fn.get(key))

    code_uri, handler = prop("CodeUri"), prop("Handler")
    if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
        raise ConfigurationError(
            f"{where}: CodeUri and Handler must be a local directory and 'module.function'",
            remediation="Set CodeUri: functions/<name>/ and Handler: app.handler.",
        )
    environment = {
        **((globals_fn.get("Environment") or {}).get("Variables") or {}),
        **((props.get("Environment") or {}).get("Variables") or {}),
    }
    events = props.get("Events") or {}
    routes = tuple(
        _route(where, event_name, event.get("Properties") or {}, default_authorizers)
        for event_name, event in events.items()
        if event.get("Type") == _HTTP_API_EVENT
    )
    code_dir = (template_path.parent / code_uri).resolve()
    return TemplateFunction(
        logical_id=logical_id,
        name=code_dir.name,
        code_uri=code_dir,
        handler=handler,
        runtime=str(prop("Runtime") or ""),
        timeout=int(prop("Timeout") or 3),
        memory_size=int(prop("MemorySize") or 128),
        environment=environment,
        routes=routes,
        event_types=tuple(str(event.get("Type")) for event in events.values()),
        tracing=str(prop("Tracing") or "PassThrough"),
    )


def _route(
    where: str, event_name: str, props: Mapping[str, Any], default_authorizers: Mapping[str, str]
) -> HttpRoute:
    method, path = props.get("Method"), props.get("Path")
    if not isinstance(method, str) or not isinstance(path, str):
        raise ConfigurationError(
            f"{where}.Events.{event_name}: an HttpApi event needs Method and Path",
            remediation="Add Method (e.g. GET) and Path (e.g. /api/runs) to the event.",
        )
    auth = props.get("Auth") or {}
    api = props.get("ApiId")
    api_id = str(api.get("Ref", "")) if isinstance(api, Mapping) else ""
    authorizer = str(auth.get("Authorizer") or default_authorizers.get(api_id, ""))
    return HttpRoute(
        event_name=event_name,
        method=method.upper(),
        path=path,
        scopes=tuple(auth.get("AuthorizationScopes") or ()),
        authorizer="" if authorizer.upper() == "NONE" else authorizer,
        api=api_id,
    )


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ------------------------------------------------------------------------------------------ intrinsics
@dataclass
class LocalValues:
    """What intrinsic references resolve to locally.

    ``refs`` maps a logical id to its ``Ref`` value, ``attributes`` maps ``(logical id, attribute)`` to its
    ``Fn::GetAtt`` value, ``parameters`` overrides template parameter defaults.
    """

    region: str
    account_id: str
    stack_name: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    refs: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    partition: str = "aws"
    url_suffix: str = "amazonaws.com"


class _Omit:
    """Result of ``AWS::NoValue``: the enclosing key or list item disappears."""


OMIT = _Omit()


class IntrinsicResolver:
    """Resolve CloudFormation intrinsic functions of a template against :class:`LocalValues`."""

    def __init__(self, template: SamTemplate, values: LocalValues) -> None:
        self._template = template
        self._values = values
        self._parameters = self._parameter_values()
        self._conditions: dict[str, bool] = {}
        self._intrinsics = self._functions()

    @property
    def parameters(self) -> Mapping[str, str]:
        """Effective parameter values (supplied or default), after validation."""
        return dict(self._parameters)

    def resolve(self, value: Any, where: str = "") -> Any:
        """Resolve every intrinsic function in ``value``; ``where`` names the location in errors."""
        if isinstance(value, list):
            items = [self.resolve(item, f"{where}[{i}]") for i, item in enumerate(value)]
            return [item for item in items if item is not OMIT]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = self._intrinsics.get(key)
            if handler is not None:
                return handler(arg, f"{where}.{key}" if where else key)
            if key.startswith("Fn::"):
                raise ConfigurationError(
                    f"{self._template.path.name}: {where or 'template'} uses {key}, which the local runtime "
                    "does not resolve",
                    remediation=f"Use one of {', '.join(self._intrinsics)} (what {TEMPLATE_FILE} needs).",
                )
        resolved = {k: self.resolve(v, f"{where}.{k}" if where else k) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not OMIT}

    def resolve_text(self, value: Any, where: str) -> str:
        """Resolve ``value`` to the string an environment variable would hold."""
        resolved = self.resolve(value, where)
        if isinstance(resolved, (dict, list)) or resolved is OMIT or resolved is None:
            raise ConfigurationError(
                f"{where} does not resolve to a string (got {resolved!r})",
                remediation="Environment variable values must be strings, numbers or booleans.",
            )
        return _scalar_text(resolved)

    def environment(self, function: TemplateFunction, skip: Collection[str] = ()) -> dict[str, str]:
        """The function's resolved environment (Globals merged with its own variables), minus ``skip``."""
        where = f"Resources.{function.logical_id}.Properties.Environment.Variables"
        env: dict[str, str] = {}
        for key, raw in function.environment.items():
            if key in skip:
                continue
            resolved = self.resolve(raw, f"{where}.{key}")
            if resolved is OMIT:
                continue
            env[key] = self.resolve_text(resolved, f"{where}.{key}")
        return env

    def condition(self, name: str, where: str = "") -> bool:
        """Evaluate the template condition ``name``."""
        if name not in self._conditions:
            conditions = self._template.document.get("Conditions") or {}
            if name not in conditions:
                raise self._unresolved(where, f"condition {name!r}", "Declare it under Conditions.")
            self._conditions[name] = bool(self.resolve(conditions[name], f"Conditions.{name}"))
        return self._conditions[name]

    # -- parameters
    def _parameter_values(self) -> dict[str, str]:
        supplied = dict(self._values.parameters)
        unknown = sorted(set(supplied) - set(self._template.parameters))
        if unknown:
            raise ConfigurationError(
                f"unknown template parameters: {', '.join(unknown)}",
                remediation=f"Parameters of {self._template.path.name}: "
                f"{', '.join(sorted(self._template.parameters))}.",
            )
        values: dict[str, str] = {}
        for name, param in self._template.parameters.items():
            value = supplied.get(name, param.default)
            if value is None:
                continue  # only an error if something references it
            if param.allowed_values and value not in param.allowed_values:
                raise ConfigurationError(
                    f"parameter {name}={value!r} is not one of {', '.join(param.allowed_values)}",
                    remediation=f"Pass an allowed value for {name}.",
                )
            if param.allowed_pattern and not re.fullmatch(param.allowed_pattern, value):
                raise ConfigurationError(
                    f"parameter {name}={value!r} does not match {param.allowed_pattern}",
                    remediation=f"Pass a value for {name} matching its AllowedPattern.",
                )
            values[name] = value
        return values

    # -- intrinsic functions
    def _functions(self) -> dict[str, Callable[[Any, str], Any]]:
        return {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::If": self._if,
            "Fn::Equals": self._equals,
            "Fn::Not": lambda arg, where: not self._truth(arg[0] if isinstance(arg, list) else arg, where),
        }

    def _ref(self, name: Any, where: str) -> Any:
        name = str(name)
        if name == _NO_VALUE:
            return OMIT
        pseudo = self._pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self._template.parameters:
            if name not in self._parameters:
                raise self._unresolved(
                    where, f"parameter {name!r} (no Default)", f"Supply a value for {name}."
                )
            param = self._template.parameters[name]
            value = self._parameters[name]
            if param.type == "CommaDelimitedList":
                return [item.strip() for item in value.split(",")] if value else []
            return value
        if name in self._values.refs:
            return self._values.refs[name]
        raise self._unresolved(where, f"Ref {name}", f"Provide a local value for resource {name}.")

    def _get_att(self, arg: Any, where: str) -> Any:
        if isinstance(arg, str):
            logical_id, _, attribute = arg.partition(".")
        else:
            logical_id, attribute = str(arg[0]), str(self.resolve(arg[1], where))
        key = (logical_id, attribute)
        if key not in self._values.attributes:
            raise self._unresolved(
                where,
                f"Fn::GetAtt {logical_id}.{attribute}",
                f"Provide a local value for {logical_id}.{attribute}.",
            )
        return self._values.attributes[key]

    def _sub(self, arg: Any, where: str) -> str:
        if isinstance(arg, list):
            text, variables = str(arg[0]), {k: self.resolve(v, where) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = str(arg), {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in variables:
                return _scalar_text(variables[name])
            if "." in name and name.split(".", 1)[0] not in self._template.parameters:
                return _scalar_text(self._get_att(name, where))
            value = self._ref(name, where)
            if isinstance(value, list):
                return ",".join(value)
            return _scalar_text(value)

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")

    def _join(self, arg: Any, where: str) -> str:
        delimiter, items = arg
        resolved = self.resolve(items, where)
        return str(delimiter).join(_scalar_text(item) for item in resolved)

    def _if(self, arg: Any, where: str) -> Any:
        name, when_true, when_false = arg
        chosen = when_true if self.condition(str(name), where) else when_false
        return self.resolve(chosen, where)

    def _equals(self, arg: Any, where: str) -> bool:
        left, right = (self.resolve(item, where) for item in arg)
        return _scalar_text(left) == _scalar_text(right)

    def _truth(self, arg: Any, where: str) -> bool:
        return bool(self.resolve(arg, where))

    def _pseudo(self, name: str) -> str | None:
        v = self._values
        return {
            "AWS::Region": v.region,
            "AWS::AccountId": v.account_id,
            "AWS::StackName": v.stack_name,
            "AWS::Partition": v.partition,
            "AWS::URLSuffix": v.url_suffix,
            "AWS::StackId": f"arn:{v.partition}:cloudformation:{v.region}:{v.account_id}:stack/{v.stack_name}/local",
        }.get(name)

    def _unresolved(self, where: str, what: str, remediation: str) -> ConfigurationError:
        return ConfigurationError(
            f"{self._template.path.name}: {where or 'template'} references {what}, which has no local value",
            remediation=remediation,
        )
