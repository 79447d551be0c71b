"""AWS_ENDPOINT_URL: set only when the LocalAwsEndpointUrl parameter is (for `sam local`), harmless when empty."""

from __future__ import annotations

import boto3
import pytest
from conftest import REPO
from taskrunner.local.template import OMIT, IntrinsicResolver, LocalValues, load_template


def endpoint_variable(**parameters: str) -> object:
    template = load_template(REPO / "template.yaml")
    values = LocalValues(region="us-east-1", account_id="123456789012", stack_name="s", parameters=parameters)
    resolver = IntrinsicResolver(template, values)
    resolved = {resolver.resolve(fn.environment["AWS_ENDPOINT_URL"]) for fn in template.functions.values()}
    assert len(resolved) == 1
    return resolved.pop()


def test_not_set_in_aws() -> None:
    assert endpoint_variable() is OMIT  # the parameter's default


def test_set_from_the_parameter() -> None:
    url = "http://127.0.0.1:5000"
    assert endpoint_variable(LocalAwsEndpointUrl=url) == url


def test_rejects_a_non_url_parameter() -> None:
    from taskrunner.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"LocalAwsEndpointUrl=.* does not match"):
        endpoint_variable(LocalAwsEndpointUrl="localhost:5000")


def test_empty_variable_keeps_the_aws_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `sam local` passes for AWS::NoValue: boto3 must then use the regional endpoints."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    session = boto3.session.Session(region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
    assert session.client("stepfunctions").meta.endpoint_url == "https://states.eu-west-1.amazonaws.com"
    assert (
        session.client("secretsmanager").meta.endpoint_url == "https://secretsmanager.eu-west-1.amazonaws.com"
    )
