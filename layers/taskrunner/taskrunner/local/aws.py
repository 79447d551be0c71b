"""moto-backed AWS for the local runtime, provisioned from ``template.yaml``.

:class:`LocalAws` starts moto with Step Functions execution on (so the compiled ASL really runs), fake
credentials and a fixed region (nothing leaves the process), creates what the template's functions use -
S3 buckets, EventBridge buses, KMS keys and aliases, Secrets Manager secrets, IAM roles and the Lambda
functions themselves (dummy code: the in-process runner intercepts every invocation) - resolves each
function's environment from the template against those local resources, and exposes boto3 clients.

IAM is enforced (``enforce_iam``, on by default): every AWS call a handler makes, and every use of the
local stand-ins for S3, KMS and the redaction secret, is authorized against the function's execution role
as the SAM translator expands it from the template (:mod:`taskrunner.local.authorization`).

moto keeps everything in memory: a new :class:`LocalAws` starts empty; what it would keep for the life of the
process is bounded (:mod:`taskrunner.local.moto_memory`).
"""

from __future__ import annotations

import io
import json
import secrets
import string
import threading
import zipfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from taskrunner.aws.clients import reset_clients
from taskrunner.composition import use_stand_in_guard
from taskrunner.errors import ConfigurationError
from taskrunner.local.authorization import Authorizer
from taskrunner.local.lambda_runner import (
    InProcessLambdaRunner,
    LocalFunction,
    process_environment,
    shared_environment,
)
from taskrunner.local.moto_caches import moto_caches_installed
from taskrunner.local.moto_imports import defer_moto_batch
from taskrunner.local.moto_lookup import MotoResourceLookup
from taskrunner.local.moto_memory import moto_memory_bounded
from taskrunner.local.roles import template_roles
from taskrunner.local.stand_ins import StandInAuthorization
from taskrunner.local.template import (
    IntrinsicResolver,
    LocalValues,
    SamTemplate,
    TemplateFunction,
    load_template,
)

if TYPE_CHECKING:
    from moto.core.config import DefaultConfig

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_STACK_NAME = "taskrunner-local"
MOTO_CONFIG: DefaultConfig = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": True},  # keeps invocations on LambdaFunction._invoke_lambda, the runner's seam
    "core": {
        "mock_credentials": True,
        "passthrough": {"urls": [], "services": []},
        "reset_boto3_session": True,
    },
}
FAKE_CREDENTIALS: dict[str, str | None] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_PROFILE": None,
    "AWS_DEFAULT_PROFILE": None,
    "AWS_ENDPOINT_URL": None,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}
# Where the local runtime differs from the cloud on purpose (None: the variable is not set, so the
# setting's local default applies): no X-Ray daemon or EMF agent; objects and env: secrets under the home and
# the file store unless the user configures MongoDB (DESIGN §9; LocalRuntime passes the user's storage
# settings); Ed25519 key files for signing and a stable local redaction key (DESIGN §8) instead of KMS and a
# per-start secret.
LOCAL_RUNTIME_DEFAULTS: dict[str, str | None] = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "TASKRUNNER_RUNTIME": "local",
    "TASKRUNNER_STORAGE__MODE": "file",
    "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING_SECRET_ARN": None,
    "TASKRUNNER_STORAGE__MONGO__DATABASE": None,
    "TASKRUNNER_SIGNING__KEY": None,
    "TASKRUNNER_REDACTION__KEY_SECRET_ARN": None,
    # no API Gateway here: `serve` gives its own URL as TASKRUNNER_API__PUBLIC_URL
    "TASKRUNNER_API__PUBLIC_URL_PARAMETER": None,
    # approval tokens: the issuer is the local server's own base URL, the key a file under TASKRUNNER_HOME
    "TASKRUNNER_APPROVAL_TOKENS__ISSUER": None,
    "TASKRUNNER_APPROVAL_TOKENS__KEY": None,
    # the console signs in with the development form of `taskrunner serve`, not with JwtIssuer
    "TASKRUNNER_CONSOLE__OIDC_ISSUER": None,
    "TASKRUNNER_CONSOLE__DEV_SIGN_IN": "true",
    # pack files under packs/ run locally; set TASKRUNNER_PACKS__REQUIRE_SIGNED=true to run signed packs only
    "TASKRUNNER_PACKS__REQUIRE_SIGNED": "false",
}
_LAMBDA_ROLE = "lambda-execution"
_IDLE_WAIT_SECONDS = 10.0


@dataclass
class LocalResource:
    """A template resource created in moto: its ``Ref`` value and ``Fn::GetAtt`` attributes."""

    logical_id: str
    type: str
    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


class LocalAws:
    """Context manager: moto + in-process Lambda runner + the template's resources, for one process.

    ``parameters`` override template parameter defaults. ``environment_overrides`` replace template
    variables for every function (``None`` leaves a variable unset) on top of :data:`LOCAL_RUNTIME_DEFAULTS`;
    an overridden variable is not resolved, so its template references need no local value. While started,
    each handler sees its own function's environment, and the variables all functions agree on are also set
    in the process environment (see :mod:`taskrunner.local.lambda_runner`). ``enforce_iam=False`` turns the
    IAM checks off.
    """

    def __init__(
        self,
        template: SamTemplate | Path,
        *,
        stack_name: str = DEFAULT_STACK_NAME,
        region: str = DEFAULT_REGION,
        parameters: Mapping[str, str] | None = None,
        environment_overrides: Mapping[str, str | None] | None = None,
        enforce_iam: bool = True,
        cache_dir: Path | None = None,
    ) -> None:
        self.template = template if isinstance(template, SamTemplate) else load_template(template)
        self.region = region
        self.account_id = DEFAULT_ACCOUNT_ID
        self.stack_name = stack_name
        self._refs: dict[str, str] = {}
        self._attributes: dict[tuple[str, str], str] = {}
        self.values = LocalValues(
            region=region,
            account_id=self.account_id,
            stack_name=stack_name,
            parameters=dict(parameters or {}),
            refs=self._refs,
            attributes=self._attributes,
        )
        self.resolver = IntrinsicResolver(self.template, self.values)
        self._overrides = {**LOCAL_RUNTIME_DEFAULTS, **(environment_overrides or {})}
        self.resources: dict[str, LocalResource] = {}
        self.function_environments: dict[str, dict[str, str]] = {}
        self.environment: dict[str, str] = {}
        self.enforce_iam = enforce_iam
        self.cache_dir = cache_dir  # keeps parsed definitions and the SAM translation across processes
        self.authorizer = Authorizer(MotoResourceLookup(region, self.account_id))
        self.runner = InProcessLambdaRunner(self._local_functions(), self.authorizer.principal)
        self._stack: ExitStack | None = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._session: Any = None

    # -- lifecycle
    def __enter__(self) -> LocalAws:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._stack is not None:
            raise ConfigurationError(
                "the local AWS runtime is already started", remediation="Call stop() first."
            )
        defer_moto_batch()
        from moto import mock_aws

        stack = ExitStack()
        try:
            stack.enter_context(process_environment({**FAKE_CREDENTIALS, **self._region_environment()}))
            if self.enforce_iam:  # before moto starts: its fresh boto3 session must get the handlers
                stack.enter_context(self.authorizer.installed())
            stack.enter_context(mock_aws(config=MOTO_CONFIG))
            # clients cached before the mock started would talk to real AWS: drop them now and at stop
            reset_clients()
            stack.callback(reset_clients)
            stack.enter_context(self.runner.installed())
            stack.enter_context(moto_caches_installed(self.cache_dir / "asl" if self.cache_dir else None))
            stack.enter_context(moto_memory_bounded())
            import boto3

            self._session = boto3.session.Session(region_name=self.region)
            self._provision()
            if self.enforce_iam:
                self._enforce_iam()
                stack.callback(use_stand_in_guard, None)
            unset: dict[str, str | None] = {
                key: None for key, value in self._overrides.items() if value is None
            }
            stack.enter_context(process_environment({**unset, **self.environment}))
            stack.callback(self._shutdown_executions)
        except BaseException:
            stack.close()
            self._session = None
            raise
        self._stack = stack

    def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()
        self._clients.clear()
        self._session = None

    # -- access
    def client(self, service_name: str) -> Any:
        """A boto3 client for ``service_name`` bound to the local (moto) AWS."""
        if self._session is None:
            raise ConfigurationError(
                "the local AWS runtime is not started", remediation="Use it as a context manager."
            )
        with self._clients_lock:
            if service_name not in self._clients:
                self._clients[service_name] = self._session.client(service_name, region_name=self.region)
            return self._clients[service_name]

    @property
    def function_arns(self) -> dict[str, str]:
        """Lambda ARN by function name (the CodeUri directory, e.g. ``execute_step``)."""
        return {fn.name: fn.arn for fn in self.runner.functions.values()}

    @property
    def artifacts_bucket(self) -> str:
        return self._environment_value("TASKRUNNER_AWS__ARTIFACTS_BUCKET")

    @property
    def state_machine_role_arn(self) -> str:
        return self._environment_value("TASKRUNNER_AWS__STATE_MACHINE_ROLE_ARN")

    def ref(self, logical_id: str) -> str:
        """The ``Ref`` value of a provisioned template resource."""
        if logical_id not in self.resources:
            raise ConfigurationError(
                f"resource {logical_id} was not provisioned locally",
                remediation=f"Provisioned: {', '.join(sorted(self.resources)) or 'none'}.",
            )
        return self.resources[logical_id].ref

    # -- provisioning
    def _region_environment(self) -> dict[str, str | None]:
        return {"AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region}

    def _function_arn(self, fn: TemplateFunction) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{fn.name}"

    def _local_functions(self) -> list[LocalFunction]:
        return [
            LocalFunction(
                name=fn.name,
                arn=self._function_arn(fn),
                handler_file=fn.handler_file,
                handler_function=fn.handler_function,
                timeout=fn.timeout,
                memory_size=fn.memory_size,
            )
            for fn in self.template.functions.values()
        ]

    def _provision(self) -> None:
        for fn in self.template.functions.values():
            self._record(fn.logical_id, "AWS::Serverless::Function", fn.name, Arn=self._function_arn(fn))
        creators: dict[str, Callable[[str, Mapping[str, Any]], LocalResource]] = {
            "AWS::S3::Bucket": self._bucket,
            "AWS::Events::EventBus": self._event_bus,
            "AWS::KMS::Key": self._kms_key,
            "AWS::KMS::Alias": self._kms_alias,
            "AWS::SecretsManager::Secret": self._secret,
            "AWS::IAM::Role": self._role,
            "AWS::Logs::LogGroup": self._log_group,
        }
        for resource_type, create in creators.items():  # dict order: keys before aliases
            for logical_id, resource in self.template.resources.items():
                if isinstance(resource, dict) and resource.get("Type") == resource_type:
                    self.resources[logical_id] = create(logical_id, resource.get("Properties") or {})
                    self._record_resource(self.resources[logical_id])
        present = {key: value for key, value in self._overrides.items() if value is not None}
        per_function = {
            fn.name: {**self.resolver.environment(fn, skip=self._overrides), **present}
            for fn in self.template.functions.values()
        }
        self.function_environments = per_function
        self.environment = shared_environment(per_function)
        self._create_functions()
        hidden = {key: None for key, value in self._overrides.items() if value is None}
        self.runner.define(
            replace(
                fn,
                environment={**hidden, **{key: None for key in self.environment}, **per_function[fn.name]},
                tracing=str(self.template.function(fn.name).tracing).lower() == "active",
            )
            for fn in self._local_functions()
        )

    def _enforce_iam(self) -> None:
        """Authorize handlers' AWS calls and the local stand-ins against the template's roles."""
        role_arns = {
            r.logical_id: r.attributes["Arn"] for r in self.resources.values() if r.type == "AWS::IAM::Role"
        }
        roles = template_roles(
            self.template,
            self.resolver,
            region=self.region,
            account_id=self.account_id,
            role_arns=role_arns,
            cache_dir=self.cache_dir / "sam" if self.cache_dir else None,
        )
        self.authorizer.configure(roles, {fn.name: fn.logical_id for fn in self.template.functions.values()})
        use_stand_in_guard(
            StandInAuthorization(
                self.authorizer,
                bucket=self.environment.get("TASKRUNNER_AWS__ARTIFACTS_BUCKET"),
                signing_key_arn=self._template_kms_key_arn("TASKRUNNER_SIGNING__KEY"),
                redaction_secret_arn=self._template_value("TASKRUNNER_REDACTION__KEY_SECRET_ARN"),
                approval_token_key_arn=self._template_kms_key_arn("TASKRUNNER_APPROVAL_TOKENS__KEY"),
            )
        )

    def _template_value(self, key: str) -> str | None:
        """A variable's value as the template sets it (before local overrides), from any function."""
        for fn in self.template.functions.values():
            if key in fn.environment:
                return self.resolver.resolve_text(fn.environment[key], f"{fn.logical_id} {key}")
        return None

    def _template_kms_key_arn(self, key: str) -> str | None:
        """The ARN of the KMS key the template's ``awskms:///`` setting ``key`` names (None: not a KMS key)."""
        uri = self._template_value(key) or ""
        if not uri.startswith("awskms:///"):
            return None
        return MotoResourceLookup(self.region, self.account_id).kms_key_arn(uri.removeprefix("awskms:///"))

    def _create_functions(self) -> None:
        iam, lam = self.client("iam"), self.client("lambda")
        role_arn = iam.create_role(
            RoleName=f"{self.stack_name}-{_LAMBDA_ROLE}",
            AssumeRolePolicyDocument=json.dumps(_trust_policy("lambda.amazonaws.com")),
        )["Role"]["Arn"]
        for fn in self.template.functions.values():
            lam.create_function(
                FunctionName=fn.name,
                Runtime=fn.runtime or "python3.11",
                Role=role_arn,
                Handler=fn.handler,
                Code={"ZipFile": _placeholder_zip()},
                Timeout=fn.timeout,
                MemorySize=fn.memory_size,
                Environment={"Variables": self.function_environments[fn.name]},
            )
            self.resources[fn.logical_id] = LocalResource(
                fn.logical_id, "AWS::Serverless::Function", fn.name, {"Arn": self._function_arn(fn)}
            )

    def _record(self, logical_id: str, resource_type: str, ref: str, **attributes: str) -> None:
        self._record_resource(LocalResource(logical_id, resource_type, ref, dict(attributes)))

    def _record_resource(self, resource: LocalResource) -> None:
        self._refs[resource.logical_id] = resource.ref
        for attribute, value in resource.attributes.items():
            self._attributes[(resource.logical_id, attribute)] = value

    def _name(self, logical_id: str, props: Mapping[str, Any], key: str) -> str:
        where = f"Resources.{logical_id}.Properties.{key}"
        if key in props:
            return self.resolver.resolve_text(props[key], where)
        return f"{self.stack_name}-{logical_id}".lower()

    def _bucket(self, logical_id: str, props: Mapping[str, Any]) -> LocalResource:
        name = self._name(logical_id, props, "BucketName")
        s3 = self.client("s3")
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
        if (props.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return LocalResource(
            logical_id,
            "AWS::S3::Bucket",
            name,
            {
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{self.region}.amazonaws.com",
            },
        )

    def _event_bus(self, logical_id: str, props: Mapping[str, Any]) -> LocalResource:
        name = self._name(logical_id, props, "Name")
        arn = self.client("events").create_event_bus(Name=name)["EventBusArn"]
        return LocalResource(logical_id, "AWS::Events::EventBus", name, {"Arn": arn, "Name": name})

    def _log_group(self, logical_id: str, props: Mapping[str, Any]) -> LocalResource:
        name = self._name(logical_id, props, "LogGroupName")
        self.client("logs").create_log_group(logGroupName=name)
        arn = f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{name}:*"  # as CloudFormation's Arn
        return LocalResource(logical_id, "AWS::Logs::LogGroup", name, {"Arn": arn})

    def _kms_key(self, logical_id: str, props: Mapping[str, Any]) -> LocalResource:
        options = {
            key: self.resolver.resolve_text(props[key], f"Resources.{logical_id}.Properties.{key}")
            for key in ("KeySpec", "KeyUsage", "Description")
            if key in props
        }
        metadata = self.client("kms").create_key(**options)["KeyMetadata"]
        return LocalResource(
            logical_id,
            "AWS::KMS::Key",
            metadata["KeyId"],
            {"Arn": metadata["Arn"], "KeyId": metadata["KeyId"]},
        )

    def _kms_alias(self, logical_id: str, props: Mapping[str, Any]) -> LocalResource:
        where = f"Resources.{logical_id}.Properties"
        alias = self.resolver.resolve_text(props.get("AliasName"), f"{where}.AliasName")
        target = self.resolver.resolve_text(props.get("TargetKeyId"), f"{where}.TargetKeyId")
        self.client("kms").create_alias(AliasName=alias, TargetKeyId=target)
        return LocalResource(logical_id, "AWS::KMS::Alias", alias)

    def _secret(self, logical_id: str, props: Mapping[str, Any]) -> LocalResource:
        name = self._name(logical_id, props, "Name")
        if "SecretString" in props:
            value = self.resolver.resolve_text(
                props["SecretString"], f"Resources.{logical_id}.Properties.SecretString"
            )
        else:
            generate = props.get("GenerateSecretString") or {}
            value = _generated_secret(int(generate.get("PasswordLength", 32)))
        arn = self.client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]
        return LocalResource(logical_id, "AWS::SecretsManager::Secret", arn, {"Id": arn})

    def _role(self, logical_id: str, props: Mapping[str, Any]) -> LocalResource:
        name = self._name(logical_id, props, "RoleName")
        trust = self.resolver.resolve(
            props.get("AssumeRolePolicyDocument") or _trust_policy("states.amazonaws.com"),
            f"Resources.{logical_id}.Properties.AssumeRolePolicyDocument",
        )
        role = self.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]
        return LocalResource(
            logical_id, "AWS::IAM::Role", name, {"Arn": role["Arn"], "RoleId": role["RoleId"]}
        )

    def _environment_value(self, key: str) -> str:
        if key not in self.environment:
            raise ConfigurationError(
                f"no function in {self.template.path.name} sets {key}",
                remediation=f"Add {key} to the functions' Environment in the template.",
            )
        return self.environment[key]

    def _shutdown_executions(self) -> None:
        """Stop running executions and let in-flight handlers finish before moto goes away."""
        sfn = self.client("stepfunctions")
        for machine in sfn.list_state_machines()["stateMachines"]:
            running = sfn.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")
            for execution in running["executions"]:
                sfn.stop_execution(executionArn=execution["executionArn"], cause="local runtime stopped")
        self.runner.wait_idle(_IDLE_WAIT_SECONDS)


def _trust_policy(service: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def _placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "Invoked in-process by taskrunner.local.lambda_runner.\n")
    return buffer.getvalue()


def _generated_secret(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))
