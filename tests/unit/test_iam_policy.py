"""IAM identity-policy evaluation and the mapping of AWS calls to IAM actions and resources."""

from __future__ import annotations

from typing import Any

import pytest
from taskrunner.local.aws_requests import AwsCall, iam_requests
from taskrunner.local.iam import Request, conditions_match, evaluate

BUCKET = "arn:aws:s3:::artifacts"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def test_nothing_allowed_is_an_implicit_deny() -> None:
    assert evaluate([], Request("s3:GetObject", f"{BUCKET}/a")) == "implicit-deny"
    assert (
        evaluate([policy(allow("s3:PutObject", "*"))], Request("s3:GetObject", f"{BUCKET}/a"))
        == "implicit-deny"
    )


@pytest.mark.parametrize(
    ("pattern", "action", "matches"),
    [
        ("s3:GetObject", "s3:GetObject", True),
        ("S3:getobject", "s3:GetObject", True),  # action names are case-insensitive
        ("s3:Get*", "s3:GetObjectVersion", True),
        ("s3:*", "s3:PutObject", True),
        ("*", "kms:Sign", True),
        ("s3:Get?bject", "s3:GetObject", True),
        ("s3:Get?", "s3:GetObject", False),
        ("s3:Get*", "s3:PutObject", False),
        ("s3:GetObject", "s3:GetObjectVersion", False),  # no implicit prefix match
        ("states:*", "s3:GetObject", False),
    ],
)
def test_action_wildcards(pattern: str, action: str, matches: bool) -> None:
    decision = evaluate([policy(allow(pattern, "*"))], Request(action, f"{BUCKET}/a"))
    assert (decision == "allow") is matches


@pytest.mark.parametrize(
    ("pattern", "resource", "matches"),
    [
        (f"{BUCKET}/runs/*", f"{BUCKET}/runs/r1/artifacts/a.txt", True),
        (f"{BUCKET}/runs/*", f"{BUCKET}/evidence/r1.tar.gz", False),
        (f"{BUCKET}/runs/*", f"{BUCKET}/RUNS/r1", False),  # resources are case-sensitive
        (f"{BUCKET}/r?ns/*", f"{BUCKET}/runs/x", True),
        (
            "arn:aws:states:us-east-1:1:execution:taskrunner-*:*",
            "arn:aws:states:us-east-1:1:execution:taskrunner-p:e1",
            True,
        ),
        (
            "arn:aws:states:us-east-1:1:execution:taskrunner-*:*",
            "arn:aws:states:us-east-1:1:execution:other:e1",
            False,
        ),
        (
            "arn:aws:secretsmanager:us-east-1:1:secret:taskrunner/*",
            "arn:aws:secretsmanager:us-east-1:1:secret:taskrunner/db-AbC123",
            True,
        ),
        ("*", "anything", True),
    ],
)
def test_resource_wildcards(pattern: str, resource: str, matches: bool) -> None:
    decision = evaluate([policy(allow("s3:GetObject", pattern))], Request("s3:GetObject", resource))
    assert (decision == "allow") is matches


def test_explicit_deny_wins_over_any_allow_in_any_policy() -> None:
    request = Request("s3:GetObject", f"{BUCKET}/runs/secret")
    allowing = policy(allow("s3:*", "*"))
    denying = policy(deny("s3:GetObject", f"{BUCKET}/runs/secret"))
    assert evaluate([allowing], request) == "allow"
    assert evaluate([allowing, denying], request) == "explicit-deny"
    assert evaluate([denying, allowing], request) == "explicit-deny"
    assert evaluate([allowing, denying], Request("s3:GetObject", f"{BUCKET}/runs/other")) == "allow"


def test_not_action_and_not_resource() -> None:
    everything_but_delete = policy({"Effect": "Allow", "NotAction": "s3:Delete*", "Resource": "*"})
    assert evaluate([everything_but_delete], Request("s3:PutObject", f"{BUCKET}/a")) == "allow"
    assert evaluate([everything_but_delete], Request("s3:DeleteObject", f"{BUCKET}/a")) == "implicit-deny"
    outside_trust = policy({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": f"{BUCKET}/trust/*"})
    assert evaluate([outside_trust], Request("s3:GetObject", f"{BUCKET}/runs/a")) == "allow"
    assert evaluate([outside_trust], Request("s3:GetObject", f"{BUCKET}/trust/a.pem")) == "implicit-deny"
    deny_all_but_kms = policy(allow("*", "*"), {"Effect": "Deny", "NotAction": "kms:*", "Resource": "*"})
    assert evaluate([deny_all_but_kms], Request("kms:Sign", "arn:aws:kms:us-east-1:1:key/k")) == "allow"
    assert evaluate([deny_all_but_kms], Request("s3:GetObject", f"{BUCKET}/a")) == "explicit-deny"


def test_a_statement_without_action_or_resource_matches_nothing() -> None:
    assert (
        evaluate([policy({"Effect": "Allow", "Action": "*"})], Request("s3:GetObject", "x"))
        == "implicit-deny"
    )
    assert (
        evaluate([policy({"Effect": "Allow", "Resource": "*"})], Request("s3:GetObject", "x"))
        == "implicit-deny"
    )


def test_pass_role_condition() -> None:
    role = "arn:aws:iam::1:role/states"
    statement = allow(
        "iam:PassRole", role, Condition={"StringEquals": {"iam:PassedToService": "states.amazonaws.com"}}
    )
    to_states = Request("iam:PassRole", role, {"iam:PassedToService": "states.amazonaws.com"})
    to_lambda = Request("iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"})
    assert evaluate([policy(statement)], to_states) == "allow"
    assert evaluate([policy(statement)], to_lambda) == "implicit-deny"
    assert evaluate([policy(statement)], Request("iam:PassRole", role)) == "implicit-deny"  # key missing


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        ({"StringEquals": {"k": ["a", "b"]}}, {"k": "b"}, True),  # values of one key: OR
        ({"StringEquals": {"k": "a", "j": "b"}}, {"k": "a", "j": "c"}, False),  # keys: AND
        ({"StringEquals": {"K": "a"}}, {"k": "a"}, True),  # key names are case-insensitive
        ({"StringEquals": {"k": "A"}}, {"k": "a"}, False),
        ({"StringEqualsIgnoreCase": {"k": "A"}}, {"k": "a"}, True),
        ({"StringNotEquals": {"k": ["a", "b"]}}, {"k": "c"}, True),
        ({"StringNotEquals": {"k": ["a", "b"]}}, {"k": "a"}, False),
        ({"StringNotEquals": {"k": "a"}}, {}, True),  # negated operator, missing key: true
        ({"StringLike": {"k": "run-*"}}, {"k": "run-42"}, True),
        ({"StringLike": {"k": "run-?"}}, {"k": "run-42"}, False),
        ({"StringNotLike": {"k": "run-*"}}, {"k": "job-1"}, True),
        ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": "true"}, False),
        ({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "true"}, True),
        (
            {"ArnLike": {"aws:SourceArn": "arn:aws:states:*:1:stateMachine:taskrunner-*"}},
            {"aws:SourceArn": "arn:aws:states:eu-west-1:1:stateMachine:taskrunner-p"},
            True,
        ),
        (
            {"ArnLike": {"aws:SourceArn": "arn:aws:states:*:1:stateMachine:taskrunner-*"}},
            {"aws:SourceArn": "arn:aws:states:eu-west-1:2:stateMachine:taskrunner-p"},
            False,
        ),
        ({"ArnLike": {"aws:SourceArn": "arn:aws:states:*"}}, {"aws:SourceArn": "not-an-arn"}, False),
        ({"StringEqualsIfExists": {"k": "a"}}, {}, True),
        ({"StringEqualsIfExists": {"k": "a"}}, {"k": "b"}, False),
        ({"Null": {"k": "true"}}, {}, True),
        ({"Null": {"k": "false"}}, {}, False),
        ({"ForAnyValue:StringEquals": {"k": "a"}}, {"k": ["b", "a"]}, True),
        ({"ForAllValues:StringEquals": {"k": ["a", "b"]}}, {"k": ["b", "c"]}, False),
    ],
)
def test_condition_operators(condition: dict[str, Any], context: dict[str, Any], expected: bool) -> None:
    assert conditions_match(condition, context) is expected


def test_an_unknown_condition_operator_fails_closed() -> None:
    unknown = {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}
    request = Request("s3:GetObject", f"{BUCKET}/a", {"aws:MultiFactorAuthAge": "10"})
    assert evaluate([policy(allow("s3:*", "*", Condition=unknown))], request) == "implicit-deny"
    # a Deny with an operator we cannot evaluate still denies
    assert (
        evaluate([policy(allow("s3:*", "*"), deny("s3:*", "*", Condition=unknown))], request)
        == "explicit-deny"
    )


class Lookup:
    region = "us-east-1"
    account_id = "123456789012"

    def secret_arn(self, secret_id: str) -> str:
        return f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{secret_id}-AbCdEf"

    def kms_key_arn(self, key_id: str) -> str:
        return "arn:aws:kms:us-east-1:123456789012:key/k-1"

    def state_machine_of_token(self, task_token: str) -> str | None:
        return (
            "arn:aws:states:us-east-1:123456789012:stateMachine:taskrunner-p"
            if task_token == "known"
            else None
        )


@pytest.mark.parametrize(
    ("service", "operation", "params", "expected"),
    [
        ("s3", "GetObject", {"Bucket": "b", "Key": "runs/a"}, [("s3:GetObject", "arn:aws:s3:::b/runs/a")]),
        ("s3", "HeadObject", {"Bucket": "b", "Key": "k"}, [("s3:GetObject", "arn:aws:s3:::b/k")]),
        ("s3", "ListObjectsV2", {"Bucket": "b", "Prefix": "runs/"}, [("s3:ListBucket", "arn:aws:s3:::b")]),
        ("s3", "UploadPart", {"Bucket": "b", "Key": "k"}, [("s3:PutObject", "arn:aws:s3:::b/k")]),
        (
            "s3",
            "CompleteMultipartUpload",
            {"Bucket": "b", "Key": "k"},
            [("s3:PutObject", "arn:aws:s3:::b/k")],
        ),
        (
            "secretsmanager",
            "GetSecretValue",
            {"SecretId": "taskrunner/db"},
            [
                (
                    "secretsmanager:GetSecretValue",
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:taskrunner/db-AbCdEf",
                )
            ],
        ),
        (
            "ssm",
            "GetParameter",
            {"Name": "/taskrunner/p"},
            [("ssm:GetParameter", "arn:aws:ssm:us-east-1:123456789012:parameter/taskrunner/p")],
        ),
        (
            "ssm",
            "GetParameters",
            {"Names": ["a", "/b"]},
            [
                ("ssm:GetParameters", "arn:aws:ssm:us-east-1:123456789012:parameter/a"),
                ("ssm:GetParameters", "arn:aws:ssm:us-east-1:123456789012:parameter/b"),
            ],
        ),
        (
            "kms",
            "Sign",
            {"KeyId": "alias/signing"},
            [("kms:Sign", "arn:aws:kms:us-east-1:123456789012:key/k-1")],
        ),
        (
            "lambda",
            "Invoke",
            {"FunctionName": "seal_evidence"},
            [("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:123456789012:function:seal_evidence")],
        ),
        (
            "lambda",
            "Invoke",
            {"FunctionName": "f", "Qualifier": "live"},
            [("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:123456789012:function:f:live")],
        ),
        (
            "events",
            "PutEvents",
            {"Entries": [{"EventBusName": "bus"}]},
            [("events:PutEvents", "arn:aws:events:us-east-1:123456789012:event-bus/bus")],
        ),
        ("states", "StartExecution", {"stateMachineArn": "arn:sm"}, [("states:StartExecution", "arn:sm")]),
        (
            "states",
            "SendTaskSuccess",
            {"taskToken": "known"},
            [("states:SendTaskSuccess", "arn:aws:states:us-east-1:123456789012:stateMachine:taskrunner-p")],
        ),
        ("states", "SendTaskSuccess", {"taskToken": "unknown"}, []),  # no such token: nothing to protect
        ("sts", "GetCallerIdentity", {}, []),
    ],
)
def test_calls_map_to_iam_actions_and_resources(
    service: str, operation: str, params: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    requests = iam_requests(AwsCall(service, operation, params), Lookup())
    assert [(r.action, r.resource) for r in requests] == expected


def test_creating_a_state_machine_with_a_role_also_passes_the_role() -> None:
    call = AwsCall(
        "states", "CreateStateMachine", {"name": "taskrunner-p", "roleArn": "arn:aws:iam::1:role/r"}
    )
    requests = iam_requests(call, Lookup())
    assert [(r.action, r.resource) for r in requests] == [
        ("states:CreateStateMachine", "arn:aws:states:us-east-1:123456789012:stateMachine:taskrunner-p"),
        ("iam:PassRole", "arn:aws:iam::1:role/r"),
    ]
    assert requests[1].context == {"iam:PassedToService": "states.amazonaws.com"}


def test_the_authorizer_denies_as_aws_does_and_knows_the_global_condition_keys() -> None:
    from botocore.exceptions import ClientError
    from taskrunner.local.authorization import Authorizer, acting_as
    from taskrunner.local.roles import Role, TemplateRoles

    role = Role(
        "FnRole",
        "stack-FnRole",
        "arn:aws:iam::123456789012:role/stack-FnRole",
        (
            policy(
                allow(
                    "s3:GetObject", f"{BUCKET}/runs/*", Condition={"Bool": {"aws:SecureTransport": "true"}}
                ),
                deny("s3:GetObject", f"{BUCKET}/runs/secret"),
                allow("kms:Sign", "*", Condition={"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}),
            ),
        ),
    )
    authorizer = Authorizer(Lookup())
    authorizer.configure(TemplateRoles({"FnRole": role}, {"Fn": "FnRole"}), {"fn": "Fn"})
    authorizer.check(
        Request("s3:GetObject", f"{BUCKET}/runs/a"), "s3", "GetObject"
    )  # no principal: unchecked
    with acting_as(authorizer.principal("fn")):
        authorizer.check(Request("s3:GetObject", f"{BUCKET}/runs/a"), "s3", "GetObject")
        with pytest.raises(ClientError) as denied:
            authorizer.check(Request("s3:GetObject", f"{BUCKET}/runs/secret"), "s3", "GetObject")
        assert denied.value.response["Error"] == {
            "Code": "AccessDenied",
            "Message": "User: arn:aws:sts::123456789012:assumed-role/stack-FnRole/fn is not authorized to perform: "
            f's3:GetObject on resource: "{BUCKET}/runs/secret" with an explicit deny in an identity-based policy',
        }
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        with pytest.raises(ClientError) as wrong_region:
            authorizer.check(Request("kms:Sign", "arn:aws:kms:us-east-1:123456789012:key/k"), "kms", "Sign")
        assert wrong_region.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "because no identity-based policy allows the kms:Sign action" in str(wrong_region.value)
