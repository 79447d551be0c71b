"""What the SAM tests invoke the built functions against, all on this machine.

* a moto server (``moto[server]``) holding the template's resources: the artifacts bucket, the event bus, the
  signing KMS key and alias, the redaction key secret, the state machine role, and the secret with the MongoDB
  connection string (the ``MongoConnectionSecretArn`` parameter);
* the MongoDB wire-protocol server of ``support.mongo_wire`` (mongoeco, in memory, from ``.venv-mongo``):
  the functions keep the template's ``TASKRUNNER_STORAGE__MODE=mongo`` and read the connection string from
  Secrets Manager exactly as in AWS;
* each function's environment, resolved from the built template the way AWS resolves it, except that
  ``!If [..., !Ref AWS::NoValue]`` values become ``""`` as under ``sam local``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from support.mongo_wire import free_port
from taskrunner.local.template import (
    IntrinsicResolver,
    LocalValues,
    SamTemplate,
    TemplateFunction,
    load_template,
)

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = REPO / ".aws-sam" / "build-x86_64"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
PARAMETERS = {"Architecture": "x86_64", "JwtIssuer": "https://idp.example.com/", "JwtAudience": "taskrunner"}


@contextmanager
def moto_server(host: str) -> Iterator[str]:
    """A moto server on ``host``; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port(host)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class Stack:
    """The provisioned resources and the template resolved against them."""

    endpoint: str
    template: SamTemplate
    parameters: dict[str, str]
    values: LocalValues
    names: dict[str, str] = field(default_factory=dict)  # logical id -> Ref value

    def client(self, service: str) -> Any:
        return boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        ).client(service, endpoint_url=self.endpoint)

    def environment(self, logical_id: str) -> dict[str, str]:
        """The function's template environment; a variable the template leaves unset (NoValue) is ``""``."""
        function = self.template.functions[logical_id]
        resolved = IntrinsicResolver(self.template, self.values).environment(function)
        return {key: resolved.get(key, "") for key in function.environment}

    def function_arn(self, logical_id: str) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{logical_id}"


def provision(endpoint: str, mongo_uri: str, *, template_path: Path = BUILD_DIR / "template.yaml") -> Stack:
    """Create the template's resources on the moto server at ``endpoint``."""
    template = load_template(template_path)
    stack_name = f"taskrunner-{uuid.uuid4().hex[:8]}"  # moto servers of one process share their state
    values = LocalValues(region=REGION, account_id=ACCOUNT_ID, stack_name=stack_name)
    stack = Stack(endpoint, template, {}, values)
    resources = template.resources
    refs: dict[str, str] = {}
    attributes: dict[tuple[str, str], str] = {}

    mongo_secret = stack.client("secretsmanager").create_secret(
        Name=f"{stack_name}-mongo", SecretString=json.dumps({"connectionString": mongo_uri})
    )["ARN"]
    stack.parameters = {
        **PARAMETERS,
        "MongoConnectionSecretArn": mongo_secret,
        "LocalAwsEndpointUrl": endpoint,
    }
    values.parameters = stack.parameters
    resolver = IntrinsicResolver(template, values)

    def named(logical_id: str, key: str) -> str:
        props = resources[logical_id].get("Properties") or {}
        if key in props:
            return resolver.resolve_text(props[key], f"Resources.{logical_id}.Properties.{key}")
        return f"{stack_name}-{logical_id}".lower()

    for logical_id, resource in resources.items():
        kind = resource.get("Type")
        if kind == "AWS::S3::Bucket":
            refs[logical_id] = named(logical_id, "BucketName")
            stack.client("s3").create_bucket(Bucket=refs[logical_id])
        elif kind == "AWS::Events::EventBus":
            refs[logical_id] = named(logical_id, "Name")
            stack.client("events").create_event_bus(Name=refs[logical_id])
        elif kind == "AWS::KMS::Key":
            key = stack.client("kms").create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
            refs[logical_id] = key["KeyMetadata"]["KeyId"]
        elif kind == "AWS::SecretsManager::Secret":
            arn = stack.client("secretsmanager").create_secret(
                Name=named(logical_id, "Name"), SecretString=secrets.token_hex(32)
            )["ARN"]
            refs[logical_id] = arn
        elif kind == "AWS::IAM::Role":
            role = stack.client("iam").create_role(
                RoleName=named(logical_id, "RoleName"),
                AssumeRolePolicyDocument=json.dumps(
                    resolver.resolve(resource["Properties"]["AssumeRolePolicyDocument"])
                ),
            )["Role"]
            refs[logical_id] = role["RoleName"]
            attributes[(logical_id, "Arn")] = role["Arn"]
        elif kind == "AWS::Logs::LogGroup":
            refs[logical_id] = named(logical_id, "LogGroupName")
            stack.client("logs").create_log_group(logGroupName=refs[logical_id])
            attributes[(logical_id, "Arn")] = (
                f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{refs[logical_id]}:*"
            )
        elif kind == "AWS::Serverless::HttpApi":  # the API id its execute-api URL starts with
            refs[logical_id] = logical_id.lower()[:10]
        elif kind == "AWS::Serverless::Function":
            refs[logical_id] = logical_id
            attributes[(logical_id, "Arn")] = stack.function_arn(logical_id)
    values.refs, values.attributes = refs, attributes
    for logical_id, resource in resources.items():  # aliases name the keys created above
        if resource.get("Type") == "AWS::KMS::Alias":
            refs[logical_id] = named(logical_id, "AliasName")
            target = resolver.resolve_text(resource["Properties"]["TargetKeyId"], logical_id)
            stack.client("kms").create_alias(AliasName=refs[logical_id], TargetKeyId=target)
    stack.names = refs
    return stack


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def lambda_runtime_environment(
    logical_id: str, function: TemplateFunction, task_root: Path
) -> dict[str, str]:
    """What Lambda itself sets for a Python 3.11 function with ``Tracing: Active`` (no X-Ray daemon listens)."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(function.timeout),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{logical_id}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": "app.handler",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PATH": os.defpath,
        **CREDENTIALS,
    }
