"""What an AWS API call asks IAM for: the action name(s) and the resource ARN of each.

The action is ``<signing name>:<operation>`` except where IAM names it differently (S3 ``HeadObject`` is
``s3:GetObject``, ``ListObjectsV2`` is ``s3:ListBucket``, multipart uploads are ``s3:PutObject``, Lambda
``Invoke`` is ``lambda:InvokeFunction``). Names and aliases resolve to the ARN IAM evaluates through a
:class:`ResourceLookup` (the secret's full ARN, the KMS key an alias points at). Creating a state machine
with a role also asks for ``iam:PassRole`` on that role, as AWS does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from taskrunner.local.iam import Request

_ACTION_NAMES = {
    ("s3", "HeadObject"): "GetObject",
    ("s3", "HeadBucket"): "ListBucket",
    ("s3", "ListObjects"): "ListBucket",
    ("s3", "ListObjectsV2"): "ListBucket",
    ("s3", "ListObjectVersions"): "ListBucketVersions",
    ("s3", "CreateMultipartUpload"): "PutObject",
    ("s3", "UploadPart"): "PutObject",
    ("s3", "CompleteMultipartUpload"): "PutObject",
    ("s3", "ListParts"): "ListMultipartUploadParts",
    ("s3", "DeleteObjects"): "DeleteObject",
    ("lambda", "Invoke"): "InvokeFunction",
    ("lambda", "InvokeAsync"): "InvokeFunction",
    ("lambda", "InvokeWithResponseStream"): "InvokeFunction",
}
UNAUTHORIZED_OPERATIONS = {("sts", "GetCallerIdentity")}  # AWS answers these for any principal


class ResourceLookup(Protocol):
    """Resolves the identifiers a call names to the ARNs IAM authorizes."""

    @property
    def region(self) -> str: ...

    @property
    def account_id(self) -> str: ...

    def secret_arn(self, secret_id: str) -> str: ...

    def kms_key_arn(self, key_id: str) -> str: ...

    def state_machine_of_token(self, task_token: str) -> str | None: ...


@dataclass(frozen=True)
class AwsCall:
    service: str  # IAM service prefix (the model's signing name)
    operation: str
    params: Mapping[str, Any]


def iam_requests(call: AwsCall, lookup: ResourceLookup) -> list[Request]:
    """Every authorization the call needs (empty: none, e.g. sts:GetCallerIdentity)."""
    if (call.service, call.operation) in UNAUTHORIZED_OPERATIONS:
        return []
    action = f"{call.service}:{_ACTION_NAMES.get((call.service, call.operation), call.operation)}"
    resources = _RESOURCES.get(call.service, _any)(call, lookup)
    requests = [Request(action, resource) for resource in resources]
    role = call.params.get("roleArn")
    if call.service == "states" and call.operation in ("CreateStateMachine", "UpdateStateMachine") and role:
        requests.append(Request("iam:PassRole", str(role), {"iam:PassedToService": "states.amazonaws.com"}))
    return requests


def _any(call: AwsCall, lookup: ResourceLookup) -> list[str]:
    return ["*"]


def _s3(call: AwsCall, lookup: ResourceLookup) -> list[str]:
    bucket = call.params.get("Bucket")
    if not bucket:
        return ["*"]
    if call.operation == "DeleteObjects":
        keys = [o.get("Key", "") for o in (call.params.get("Delete") or {}).get("Objects") or []]
        return [f"arn:aws:s3:::{bucket}/{key}" for key in keys] or [f"arn:aws:s3:::{bucket}"]
    key = call.params.get("Key")
    return [f"arn:aws:s3:::{bucket}/{key}" if key is not None else f"arn:aws:s3:::{bucket}"]


def _secretsmanager(call: AwsCall, lookup: ResourceLookup) -> list[str]:
    secret = call.params.get("SecretId")
    if secret:
        return [lookup.secret_arn(str(secret))]
    name = call.params.get("Name")
    if name and call.operation == "CreateSecret":
        return [_secret_name_arn(lookup, str(name))]
    return ["*"]


def _secret_name_arn(lookup: ResourceLookup, name: str) -> str:
    return f"arn:aws:secretsmanager:{lookup.region}:{lookup.account_id}:secret:{name}"


def _ssm(call: AwsCall, lookup: ResourceLookup) -> list[str]:
    names = call.params.get("Names") or ([call.params["Name"]] if "Name" in call.params else [])
    if "Path" in call.params:
        names = [call.params["Path"]]
    arns = []
    for name in names:
        text = str(name)
        if not text.startswith("arn:"):
            text = f"arn:aws:ssm:{lookup.region}:{lookup.account_id}:parameter/{text.lstrip('/')}"
        arns.append(text)
    return arns or ["*"]


def _kms(call: AwsCall, lookup: ResourceLookup) -> list[str]:
    key = call.params.get("KeyId")
    return [lookup.kms_key_arn(str(key))] if key else ["*"]


def _lambda(call: AwsCall, lookup: ResourceLookup) -> list[str]:
    name = str(call.params.get("FunctionName") or "")
    if not name:
        return ["*"]
    if not name.startswith("arn:"):
        name = f"arn:aws:lambda:{lookup.region}:{lookup.account_id}:function:{name}"
    qualifier = call.params.get("Qualifier")
    return [f"{name}:{qualifier}" if qualifier and name.count(":") == 6 else name]


def _states(call: AwsCall, lookup: ResourceLookup) -> list[str]:
    params = call.params
    prefix = f"arn:aws:states:{lookup.region}:{lookup.account_id}"
    for key in ("executionArn", "stateMachineArn", "mapRunArn", "activityArn", "resourceArn"):
        if params.get(key):
            return [str(params[key])]
    if call.operation == "CreateStateMachine" and params.get("name"):
        return [f"{prefix}:stateMachine:{params['name']}"]
    if "taskToken" in params:
        machine = lookup.state_machine_of_token(str(params["taskToken"]))
        return [machine] if machine else []
    return ["*"]


def _events(call: AwsCall, lookup: ResourceLookup) -> list[str]:
    if call.operation != "PutEvents":
        name = call.params.get("EventBusName") or call.params.get("Name")
        return [_bus_arn(lookup, str(name))] if name else ["*"]
    buses = {str(entry.get("EventBusName") or "default") for entry in call.params.get("Entries") or []}
    return [_bus_arn(lookup, bus) for bus in sorted(buses)] or ["*"]


def _bus_arn(lookup: ResourceLookup, name: str) -> str:
    if name.startswith("arn:"):
        return name
    return f"arn:aws:events:{lookup.region}:{lookup.account_id}:event-bus/{name}"


_RESOURCES = {
    "s3": _s3,
    "secretsmanager": _secretsmanager,
    "ssm": _ssm,
    "kms": _kms,
    "lambda": _lambda,
    "states": _states,
    "events": _events,
}
