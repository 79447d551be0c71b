"""A statement removed from the template's IAM fails a local run with the AccessDenied error AWS raises."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PACKS, REPO, submit
from support.clock import fast_clock
from taskrunner.local.runtime import LocalRuntime

RUN_OBJECTS = """          - Sid: RunObjects
            Effect: Allow
            Action:
              - s3:GetObject
              - s3:PutObject
            Resource: !Sub ${ArtifactsBucket.Arn}/runs/*
"""


def template_without(tmp_path: Path, statement: str) -> Path:
    """A copy of template.yaml without ``statement`` (code, layer and ASL directories linked)."""
    text = (REPO / "template.yaml").read_text(encoding="utf-8")
    assert statement in text
    app = tmp_path / "app"
    app.mkdir()
    for directory in ("functions", "layers", "statemachine"):
        (app / directory).symlink_to(REPO / directory)
    (app / "template.yaml").write_text(text.replace(statement, ""), encoding="utf-8")
    return app / "template.yaml"


def test_a_run_fails_with_access_denied_when_the_template_drops_run_objects(
    tr_home: Path, tmp_path: Path
) -> None:
    with fast_clock(0.01), LocalRuntime(tr_home, template=template_without(tmp_path, RUN_OBJECTS)) as rt:
        run = rt.wait(submit(rt, PACKS / "hello.yaml", {"who": "iam"}).runId, timeout=60)
        bucket = rt.aws.artifacts_bucket
    assert run.status == "failed"
    error = run.step("report").attempts[-1].error
    assert "AccessDenied" in error.message
    assert (
        "User: arn:aws:sts::123456789012:assumed-role/taskrunner-local-ExecuteStepFunctionRole/execute_step "
        "is not authorized to perform: s3:PutObject on resource: "
        f'"arn:aws:s3:::{bucket}/runs/{run.runId}/artifacts/report"'
    ) in error.message


SIGN_APPROVAL_TOKENS = """            - Sid: SignApprovalTokens
              Effect: Allow
              Action:
                - kms:Sign
                - kms:GetPublicKey
              Resource: !GetAtt ApprovalTokenKey.Arn
"""


def test_no_approval_token_is_issued_when_the_template_drops_its_kms_statement(
    tr_home: Path, tmp_path: Path
) -> None:
    from taskrunner.local.api_routes import api_routes
    from taskrunner.local.devauth import mint_token
    from taskrunner.local.http_server import serve
    from test_http_api import Api, gated_pack, started, user_token, wait_waiting

    template = template_without(tmp_path, SIGN_APPROVAL_TOKENS)
    with fast_clock(0.01), LocalRuntime(tr_home, template=template) as rt:
        server = serve(api_routes(rt), port=0, poll_interval=0.05).start()
        try:
            api = Api(server.url)
            run = started(api, user_token("local"), gated_pack("iam-tokens"))
            wait_waiting(api, user_token("local"), run["runId"])
            identity = mint_token(["packs.approve"], "local", {"sub": "alice"})

            refused = api.post(f"/api/runs/{run['runId']}/gates/review/approval-token", identity, {})
            jwks = api.get("/.well-known/jwks.json")  # the issuer function keeps its kms:GetPublicKey

            assert refused.status == 500, refused.body
            assert "token" not in refused.json()
            assert jwks.status == 200, jwks.body
            assert api.post(f"/api/runs/{run['runId']}/cancel", user_token("local")).status == 200
        finally:
            server.shutdown()


def test_an_authorizer_the_local_gateway_does_not_know_is_a_configuration_error(
    tr_home: Path, tmp_path: Path
) -> None:
    from taskrunner.errors import ConfigurationError
    from taskrunner.local.api_routes import api_routes

    template = template_without(tmp_path, "")
    text = template.read_text(encoding="utf-8")
    template.write_text(text.replace("Authorizer: ApprovalTokens", "Authorizer: Mystery"), encoding="utf-8")
    with (
        LocalRuntime(tr_home, template=template, resume=False) as rt,
        pytest.raises(ConfigurationError) as caught,
    ):
        api_routes(rt)
    assert "POST /api/runs/{runId}/approve" in caught.value.message
    assert "'Mystery'" in caught.value.message
    assert "ApprovalTokens" in caught.value.remediation
