"""template.yaml (the SAM app) and taskrunner.local.template (how the local runtime reads it)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import eventbridge_scheduled_event, transform_input
from taskrunner.config import load_settings
from taskrunner.errors import ConfigurationError
from taskrunner.local.lambda_runner import shared_environment
from taskrunner.local.template import (
    IntrinsicResolver,
    LocalValues,
    find_template,
    load_template,
    parse_cfn_yaml,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
WORKERS = {"verify_plan", "execute_step", "open_gate", "evaluate_policy", "seal_evidence"}
API_FUNCTIONS = {
    "submit_run",
    "get_run",
    "approve_gate",
    "approver_keys",
    "packs",
    "cancel_run",
    "approval_issuer",
    "console",
}
DEPLOY_FUNCTIONS = {"migrate_db"}  # CloudFormation custom resources
EVENT_FUNCTIONS = {"retire_state_machine"}
WORKER_ARN_VARIABLES = {f"TASKRUNNER_AWS__{name.upper()}_FUNCTION_ARN" for name in WORKERS}
GLOBAL_VARIABLES = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "TASKRUNNER_STORAGE__MODE",
    "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING_SECRET_ARN",
    "TASKRUNNER_STORAGE__MONGO__DATABASE",
    "TASKRUNNER_STORAGE__MONGO__MAX_POOL_SIZE",
    "TASKRUNNER_AWS__ARTIFACTS_BUCKET",
    "TASKRUNNER_AWS__EVENT_BUS_NAME",
    "TASKRUNNER_AWS__STATE_MACHINE_PREFIX",
    "TASKRUNNER_SIGNING__KEY",
    "TASKRUNNER_REDACTION__KEY_SECRET_ARN",
    "TASKRUNNER_SANDBOX__SEALED",
    "TASKRUNNER_API__PUBLIC_URL",
}
# DESIGN.md §7, plus the evidence download route
ROUTES = {
    "POST /api/plans": ("submit_run", ("packs.read",)),
    "POST /api/runs": ("submit_run", ("packs.run",)),
    "GET /api/runs": ("get_run", ("packs.read",)),
    "GET /api/runs/{runId}": ("get_run", ("packs.read",)),
    "GET /api/runs/{runId}/logs": ("get_run", ("packs.read",)),
    "GET /api/runs/{runId}/artifacts": ("get_run", ("packs.read",)),
    "GET /api/runs/{runId}/evidence": ("get_run", ("packs.read",)),
    "POST /api/runs/{runId}/approve": ("approve_gate", ("packs.approve",)),
    "POST /api/runs/{runId}/gates/{gateId}/approval-token": ("approve_gate", ("packs.approve",)),
    "POST /api/runs/{runId}/cancel": ("cancel_run", ("packs.run",)),
    "POST /api/approvers/keys": ("approver_keys", ("packs.approve",)),
    "GET /api/approvers/keys": ("approver_keys", ("packs.approve",)),
    "POST /api/approvers/{approver}/keys/{keyId}/confirm": ("approver_keys", ("packs.admin",)),
    "DELETE /api/approvers/keys/{keyId}": ("approver_keys", ("packs.approve",)),
    "GET /api/packs": ("packs", ("packs.read",)),
    "GET /api/packs/{packId}/versions": ("packs", ("packs.read",)),
    "GET /api/packs/{packId}/versions/{version}": ("packs", ("packs.read",)),
    "POST /api/packs/{packId}/versions": ("packs", ("packs.write",)),
    "POST /api/packs/{packId}/promote": ("packs", ("packs.write",)),
    "GET /api/packs/revocations": ("packs", ("packs.read",)),
    "PUT /api/packs/revocations": ("packs", ("packs.write",)),
    "POST /api/runs/{runId}/resume": ("cancel_run", ("packs.run",)),
    "GET /api/approvals": ("get_run", ("packs.approve", "packs.read")),
    "GET /api/runs/{runId}/gates/{gateId}": ("get_run", ("packs.approve", "packs.read")),
    "GET /.well-known/openapi": ("get_run", ()),
    "GET /.well-known/jwks.json": ("approval_issuer", ()),
    "GET /.well-known/openid-configuration": ("approval_issuer", ()),
    "GET /console": ("console", ()),
    "GET /console/{proxy+}": ("console", ()),
}
PUBLIC_PATHS = {"/.well-known/openapi", "/.well-known/jwks.json", "/.well-known/openid-configuration"}
LOCAL_PARAMETERS = {
    "JwtIssuer": "https://issuer.local",
    "JwtAudience": "taskrunner",
    "MongoConnectionSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:mongo-AbCdEf",
}


@pytest.fixture(scope="module")
def template() -> Any:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def resources(template: Any) -> dict[str, Any]:
    return dict(template.resources)


def _local_values(template: Any) -> LocalValues:
    refs: dict[str, str] = {}
    attributes: dict[tuple[str, str], str] = {}
    for logical_id in template.resources:
        refs[logical_id] = f"local-{logical_id.lower()}"
        attributes[(logical_id, "Arn")] = f"arn:aws:local:::{logical_id}"
    # settings validate the log group ARN's form (CloudFormation gives log groups an ARN ending in ":*")
    attributes[("StateMachineLogs", "Arn")] = "arn:aws:logs:us-east-1:123456789012:log-group:tr-logs:*"
    return LocalValues(
        region="us-east-1",
        account_id="123456789012",
        stack_name="tr",
        parameters=LOCAL_PARAMETERS,
        refs=refs,
        attributes=attributes,
    )


def _references(value: Any) -> Iterator[str]:
    """Logical ids referenced by Ref / Fn::GetAtt / Fn::Sub anywhere in ``value``."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                yield arg
            elif key == "Fn::GetAtt":
                yield arg[0]
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                yield from (name.split(".")[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", text))
                if isinstance(arg, list):
                    yield from _references(arg[1])
            else:
                yield from _references(arg)


# ------------------------------------------------------------------------------------------ functions
def test_template_declares_the_functions_with_their_code_and_handler(template: Any) -> None:
    functions = {fn.name: fn for fn in template.functions.values()}
    assert set(functions) == WORKERS | API_FUNCTIONS | DEPLOY_FUNCTIONS | EVENT_FUNCTIONS
    for name, fn in functions.items():
        assert fn.code_uri == ROOT / "functions" / name
        assert fn.handler == "app.handler"
        assert fn.handler_file == ROOT / "functions" / name / "app.py"
        assert fn.runtime == "python3.11"
        assert fn.timeout >= 29
    assert functions["execute_step"].timeout == 900


def test_routes_scopes_and_auth_match_the_api_contract(template: Any) -> None:
    routes = {route.route_key: (fn.name, route.scopes) for route, fn in template.routes()}
    assert routes == ROUTES
    public = [
        route
        for route, _ in template.routes()
        if route.path in PUBLIC_PATHS or route.path.startswith("/console")
    ]
    assert all(route.auth_none for route in public)
    assert all(not route.auth_none and route.scopes for route, _ in template.routes() if route not in public)
    authorizers = {route.route_key: route.authorizer for route, _ in template.routes() if route not in public}
    assert authorizers.pop("POST /api/runs/{runId}/approve") == "ApprovalTokens"
    assert set(authorizers.values()) == {"TaskRunnerJwt"}  # every other route: the identity provider's


def test_http_api_uses_a_default_jwt_authorizer_from_parameters(resources: dict[str, Any]) -> None:
    auth = resources["TaskRunnerApi"]["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["JwtConfiguration"] == {
        "issuer": {"Ref": "JwtIssuer"},
        "audience": {"Ref": "JwtAudience"},
    }
    assert authorizer["IdentitySource"] == "$request.header.Authorization"


def test_workers_have_no_events_and_submit_has_a_disabled_by_default_schedule(
    template: Any, resources: dict[str, Any]
) -> None:
    by_name = {fn.name: fn for fn in template.functions.values()}
    assert all(by_name[name].event_types == () for name in WORKERS)
    rule = resources["ScheduledRunRule"]["Properties"]
    assert [target["Arn"] for target in rule["Targets"]] == [{"Fn::GetAtt": ["SubmitRunFunction", "Arn"]}]
    permission = resources["ScheduledRunPermission"]["Properties"]
    assert permission["FunctionName"] == {"Fn::GetAtt": ["SubmitRunFunction", "Arn"]}
    assert permission["SourceArn"] == {"Fn::GetAtt": ["ScheduledRunRule", "Arn"]}
    assert permission["Principal"] == "events.amazonaws.com"
    assert template.parameters["ScheduleEnabled"].default == "false"
    assert IntrinsicResolver(template, _local_values(template)).resolve(rule["State"]) == "DISABLED"


def test_every_function_gets_the_global_environment_and_only_machine_builders_get_worker_arns(
    template: Any,
) -> None:
    for fn in template.functions.values():
        assert set(fn.environment) >= GLOBAL_VARIABLES
        has_arns = WORKER_ARN_VARIABLES & set(fn.environment)
        if fn.name == "verify_plan":  # its own ARN would be a cycle; the definition passes it in the payload
            assert has_arns == WORKER_ARN_VARIABLES - {"TASKRUNNER_AWS__VERIFY_PLAN_FUNCTION_ARN"}
        else:
            assert has_arns == (WORKER_ARN_VARIABLES if fn.name in {"submit_run", "cancel_run"} else set())
    assert template.function("submit_run").environment["TASKRUNNER_STORAGE__MODE"] == "mongo"


def test_resource_references_have_no_cycle(template: Any, resources: dict[str, Any]) -> None:
    global_refs = set(_references(template.document.get("Globals", {})))
    graph = {
        logical_id: set(
            _references({k: v for k, v in resource.get("Properties", {}).items() if k != "Events"})
        )
        & set(resources)
        for logical_id, resource in resources.items()
    }
    for fn in template.functions.values():
        graph[fn.logical_id] |= global_refs & set(resources)
        if fn.routes:  # SAM puts these functions' ARNs into the API's OpenAPI body: API -> function
            graph["TaskRunnerApi"].add(fn.logical_id)
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"reference cycle: {' -> '.join((*path, node))}"
        if node in done:
            return
        for target in graph[node]:
            visit(target, (*path, node))
        done.add(node)

    for node in graph:
        visit(node, ())
    # the worker functions reference no other function, except verify_plan the other workers
    functions = [lid for lid, res in resources.items() if res["Type"] == "AWS::Serverless::Function"]
    workers = {
        lid
        for lid in functions
        if resources[lid]["Properties"]["CodeUri"].strip("/").split("/")[-1] in WORKERS
    }
    for lid in workers:
        allowed = workers - {lid} if lid == "VerifyPlanFunction" else set()
        assert graph[lid] & set(functions) <= allowed


def test_local_resolution_of_every_function_environment(template: Any) -> None:
    resolver = IntrinsicResolver(template, _local_values(template))
    environments = {fn.name: resolver.environment(fn) for fn in template.functions.values()}
    merged = shared_environment(environments)
    assert merged["TASKRUNNER_SIGNING__KEY"] == "awskms:///local-signingkeyalias"
    assert merged["TASKRUNNER_AWS__STATE_MACHINE_ROLE_ARN"] == "arn:aws:local:::StateMachineRole"
    assert merged["TASKRUNNER_AWS__EXECUTE_STEP_FUNCTION_ARN"] == "arn:aws:local:::ExecuteStepFunction"
    assert merged["TASKRUNNER_SANDBOX__SEALED"] == "true"  # fail-closed by default
    assert merged["POWERTOOLS_METRICS_NAMESPACE"] == "TaskRunner"
    assert "TASKRUNNER_API__PUBLIC_URL" not in merged  # empty ApiPublicUrl: not set (the setting rejects "")
    values = _local_values(template)
    values.parameters = {**LOCAL_PARAMETERS, "ApiPublicUrl": "https://runs.example.com"}
    with_url = IntrinsicResolver(template, values).environment(template.function("open_gate"))
    assert with_url["TASKRUNNER_API__PUBLIC_URL"] == "https://runs.example.com"


def _may_be_empty(parameter: Any) -> bool:
    if parameter.type != "String":
        return False
    if parameter.allowed_values:
        return "" in parameter.allowed_values
    return parameter.allowed_pattern is None or re.fullmatch(parameter.allowed_pattern, "") is not None


def test_settings_load_when_sam_local_passes_every_optional_variable_as_empty_text(
    template: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sam local invoke` turns `!If [..., !Ref AWS::NoValue]` into "", and a parameter may be set to ""."""
    values = _local_values(template)
    empty = {name for name, p in template.parameters.items() if _may_be_empty(p)}
    values.parameters = {**LOCAL_PARAMETERS, **dict.fromkeys(empty, "")}
    resolver = IntrinsicResolver(template, values)
    for name in list(os.environ):
        if name.startswith("TASKRUNNER_"):
            monkeypatch.delenv(name)
    emptied: set[str] = set()
    for fn in template.functions.values():
        resolved = resolver.environment(fn)
        env = {key: resolved.get(key, "") for key in fn.environment}
        emptied |= {key for key, value in env.items() if value == ""}
        with monkeypatch.context() as invocation:
            for key, value in env.items():
                invocation.setenv(key, value)
            settings = load_settings()
        assert settings.api.public_url is None
        assert settings.storage.mode == "mongo"
    assert {"TASKRUNNER_API__PUBLIC_URL", "TASKRUNNER_STORAGE__MONGO__DATABASE"} <= emptied


# ------------------------------------------------------------------------------------------ infrastructure
def test_layer_is_built_from_the_package_directory(resources: dict[str, Any]) -> None:
    layer = resources["TaskRunnerLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/taskrunner/"
    assert layer["Metadata"]["BuildMethod"] == "python3.11"
    assert (ROOT / "layers" / "taskrunner" / "requirements.txt").is_file()
    assert (ROOT / "layers" / "taskrunner" / "taskrunner" / "__init__.py").is_file()


def test_artifacts_bucket_is_private_encrypted_versioned_retained_and_expires_runs(
    resources: dict[str, Any],
) -> None:
    bucket = resources["ArtifactsBucket"]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    runs_rule = next(
        rule for rule in props["LifecycleConfiguration"]["Rules"] if rule.get("Prefix") == "runs/"
    )
    assert (runs_rule["Status"], runs_rule["ExpirationInDays"]) == ("Enabled", 30)
    statement = resources["ArtifactsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_signing_key_redaction_secret_and_sealed_mode(template: Any, resources: dict[str, Any]) -> None:
    key = resources["SigningKey"]["Properties"]
    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    assert resources["SigningKeyAlias"]["Properties"]["TargetKeyId"] == {"Ref": "SigningKey"}
    assert "GenerateSecretString" in resources["RedactionKeySecret"]["Properties"]
    env = template.function("seal_evidence").environment
    assert env["TASKRUNNER_SIGNING__KEY"] == {"Fn::Sub": "awskms:///${SigningKeyAlias}"}
    assert env["TASKRUNNER_SANDBOX__SEALED"] == {"Ref": "SealedMode"}
    assert template.parameters["SealedMode"].allowed_values == ("true", "false")


def test_state_machine_role_trust_and_permissions(resources: dict[str, Any]) -> None:
    role = resources["StateMachineRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "states.amazonaws.com"
    }
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    invoked = {
        ref
        for s in statements
        if s["Action"] == "lambda:InvokeFunction"
        for ref in _references(s["Resource"])
    }
    worker_ids = {"VerifyPlanFunction", "ExecuteStepFunction", "OpenGateFunction", "EvaluatePolicyFunction"}
    assert invoked == worker_ids | {"SealEvidenceFunction"}
    actions = {
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {"states:StartExecution", "xray:PutTraceSegments", "logs:CreateLogDelivery"} <= actions


def test_pass_role_is_scoped_to_the_state_machine_role_and_service(resources: dict[str, Any]) -> None:
    statements = resources["StateMachineDeployPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    passrole = next(s for s in statements if s["Action"] == "iam:PassRole")
    assert passrole["Resource"] == {"Fn::GetAtt": ["StateMachineRole", "Arn"]}
    assert passrole["Condition"] == {"StringEquals": {"iam:PassedToService": "states.amazonaws.com"}}
    managed = next(s for s in statements if "states:CreateStateMachine" in s["Action"])
    assert managed["Resource"]["Fn::Sub"].endswith(":stateMachine:${AWS::StackName}_tr-*")


def test_no_function_policy_grants_wildcard_resources(resources: dict[str, Any]) -> None:
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::Serverless::Function":
            for policy in resource["Properties"]["Policies"]:
                for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                    assert statement["Resource"] != "*", logical_id
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                assert statement["Resource"] != "*", logical_id


def test_outputs_name_the_api_bucket_role_and_every_function(template: Any) -> None:
    outputs = template.document["Outputs"]
    assert {"ApiUrl", "ArtifactsBucketName", "StateMachineRoleArn"} <= set(outputs)
    for fn in template.functions.values():
        assert outputs[f"{fn.logical_id}Arn"]["Value"] == {"Fn::GetAtt": [fn.logical_id, "Arn"]}


# ------------------------------------------------------------------------------------------ loader and resolver
def test_short_form_tags_parse_to_long_form() -> None:
    doc = parse_cfn_yaml(
        """
Resources:
  R:
    Type: X
    Properties:
      A: !Ref P
      B: !GetAtt Fn.Arn
      C: !Sub ["${X}-${AWS::Region}", {X: !Ref P}]
      D: !If [Cond, !Join [",", [a, b]], !Ref AWS::NoValue]
      E: !Equals [!Ref P, "x"]
      F: !GetAtt [Fn, Arn]
      G: !Condition Cond
"""
    )
    props = doc["Resources"]["R"]["Properties"]
    assert props["A"] == {"Ref": "P"}
    assert props["B"] == {"Fn::GetAtt": ["Fn", "Arn"]}
    assert props["C"] == {"Fn::Sub": ["${X}-${AWS::Region}", {"X": {"Ref": "P"}}]}
    assert props["D"] == {"Fn::If": ["Cond", {"Fn::Join": [",", ["a", "b"]]}, {"Ref": "AWS::NoValue"}]}
    assert props["E"] == {"Fn::Equals": [{"Ref": "P"}, "x"]}
    assert props["F"] == {"Fn::GetAtt": ["Fn", "Arn"]}
    assert props["G"] == {"Condition": "Cond"}


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(
        """
Parameters:
  Stage: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Names: {Type: CommaDelimitedList, Default: "a,b,c"}
  Required: {Type: String}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: !Not [!Equals [!Ref Stage, prod]]
Globals:
  Function:
    Timeout: 7
    Environment:
      Variables:
        SHARED: !Sub "${AWS::StackName}-${Stage}"
        OVERRIDDEN: global
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/fn/
      Handler: pkg.mod.main
      Environment:
        Variables:
          OVERRIDDEN: own
          ESCAPED: !Sub "${!Literal}-${Bucket.Arn}"
          MAPPED: !Sub ["${X}/${Y}", {X: !Ref Bucket, Y: !Join ["+", !Ref Names]}]
          JOINED: !Join ["|", [x, y]]
          CHOSEN: !If [IsProd, big, small]
          BOTH: !If [NotProd, "on", "off"]
          DROPPED: !If [IsProd, kept, !Ref AWS::NoValue]
          NUMBER: 5
          FLAG: true
  Bucket: {Type: AWS::S3::Bucket}
"""
    )
    (tmp_path / "nested").mkdir()
    return tmp_path


def test_resolver_handles_intrinsics_globals_and_no_value(mini: Path) -> None:
    template = load_template(find_template(mini / "nested"))
    fn = template.function("fn")
    assert (fn.timeout, fn.memory_size, fn.handler_file) == (7, 128, mini / "src" / "fn" / "pkg" / "mod.py")
    values = LocalValues(
        region="eu-west-1",
        account_id="111122223333",
        stack_name="st",
        refs={"Bucket": "bkt"},
        attributes={("Bucket", "Arn"): "arn:aws:s3:::bkt"},
    )
    env = IntrinsicResolver(template, values).environment(fn)
    assert env == {
        "SHARED": "st-dev",
        "OVERRIDDEN": "own",
        "ESCAPED": "${Literal}-arn:aws:s3:::bkt",
        "MAPPED": "bkt/a+b+c",
        "JOINED": "x|y",
        "CHOSEN": "small",
        "BOTH": "on",
        "NUMBER": "5",
        "FLAG": "true",
    }
    prod = IntrinsicResolver(
        template,
        LocalValues(
            "eu-west-1",
            "1",
            "st",
            parameters={"Stage": "prod"},
            refs={"Bucket": "b"},
            attributes={("Bucket", "Arn"): "a"},
        ),
    )
    assert prod.environment(fn)["DROPPED"] == "kept"


def test_resolver_errors_name_the_location_and_the_fix(mini: Path) -> None:
    template = load_template(mini / "template.yaml")
    bare = IntrinsicResolver(template, LocalValues("eu-west-1", "1", "st"))
    with pytest.raises(
        ConfigurationError, match=r"Fn\.Properties\.Environment\.Variables\.ESCAPED.*Bucket\.Arn"
    ) as err:
        bare.environment(template.function("Fn"))
    assert "Provide a local value" in err.value.remediation
    with pytest.raises(ConfigurationError, match="Required"):
        bare.resolve({"Ref": "Required"}, "X")
    with pytest.raises(ConfigurationError, match="not one of dev, prod"):
        IntrinsicResolver(template, LocalValues("r", "1", "s", parameters={"Stage": "qa"}))
    with pytest.raises(ConfigurationError, match="unknown template parameters: Nope"):
        IntrinsicResolver(template, LocalValues("r", "1", "s", parameters={"Nope": "x"}))


def test_loader_rejects_what_it_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no template\.yaml found"):
        find_template(tmp_path)
    bad = tmp_path / "template.yaml"
    bad.write_text("Resources: [1, 2")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_template(bad)
    bad.write_text("Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties: {CodeUri: x/}\n")
    with pytest.raises(ConfigurationError, match="CodeUri and Handler"):
        load_template(bad)
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_template(tmp_path / "missing.yaml")
    bad.write_text(
        "Resources:\n"
        "  A: {Type: AWS::Serverless::Function, Properties: {CodeUri: f/x/, Handler: app.h}}\n"
        "  B: {Type: AWS::Serverless::Function, Properties: {CodeUri: g/x/, Handler: app.h}}\n"
    )
    with pytest.raises(ConfigurationError, match="share the CodeUri directory x"):
        load_template(bad)
    with pytest.raises(ConfigurationError, match="defines no function 'zz'"):
        load_template(TEMPLATE).function("zz")


# ------------------------------------------------------------------------------------------ sample events
WORKER_PAYLOAD_KEYS = {
    "verify_plan": {"runId", "tenantId", "planHash", "stateMachine", "functionArn"},
    "execute_step": {"runId", "tenantId", "stepId", "attempt"},
    "open_gate": {"runId", "tenantId", "gateId", "taskToken"},
    "evaluate_policy": {"runId", "tenantId", "stepId"},
    "seal_evidence": {"runId", "tenantId", "outcome"},
}


def _events() -> dict[str, Any]:
    import json

    return {path.stem: json.loads(path.read_text()) for path in sorted((ROOT / "events").glob("*.json"))}


def test_every_route_has_a_sample_http_api_v2_event_that_parses(template: Any) -> None:
    from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

    events = _events()
    covered: set[str] = set()
    for name, event in events.items():
        function = name.split("-", 1)[0]
        assert function in WORKERS | API_FUNCTIONS | DEPLOY_FUNCTIONS | EVENT_FUNCTIONS, (
            f"events/{name}.json names no function"
        )
        if event.get("version") != "2.0":
            continue
        parsed = APIGatewayProxyEventV2Model.model_validate(event)
        route = next(r for r, fn in template.routes() if r.route_key == parsed.routeKey)
        assert route in template.function(function).routes, name
        authorizer = event["requestContext"].get("authorizer")
        if route.auth_none:
            assert authorizer is None
        else:
            claims = authorizer["jwt"]["claims"]
            assert claims["tenant_id"]
            assert set(route.scopes) <= set(claims["scope"].split())
            assert set(route.scopes) <= set(authorizer["jwt"]["scopes"])
        covered.add(route.route_key)
    assert covered == set(ROUTES)


def test_worker_and_schedule_sample_events_have_the_contract_fields() -> None:
    events = _events()
    for function, keys in WORKER_PAYLOAD_KEYS.items():
        samples = [event for name, event in events.items() if name.split("-", 1)[0] == function]
        assert samples, f"no sample event for {function}"
        for event in samples:
            assert keys <= set(event) <= keys | {"error"}
    failed = events["seal_evidence-failed"]
    assert (failed["outcome"], set(failed["error"])) == ("failed", {"Error", "Cause"})
    ended = events["retire_state_machine"]
    assert (ended["source"], ended["detail-type"]) == ("aws.states", "Step Functions Execution Status Change")
    assert {"stateMachineArn", "executionArn", "status"} <= set(ended["detail"])
    schedule = events["submit_run-schedule"]
    assert schedule["detail-type"] == "Scheduled Event"
    assert schedule["id"]
    assert schedule["time"]
    assert schedule["detail"]["packKey"].startswith("packs/")
    assert isinstance(schedule["detail"]["inputs"], dict)


def test_schedule_target_delivers_the_sample_scheduled_event_with_the_firings_id_and_time(
    template: Any, resources: dict[str, Any]
) -> None:
    values = _local_values(template)
    values.parameters = {
        **LOCAL_PARAMETERS,
        "ScheduledPackKey": "packs/hello.yaml",
        "ScheduledInputs": '{"who": "scheduler"}',
        "ScheduleEnabled": "true",
    }
    resolver = IntrinsicResolver(template, values)
    rule = resources["ScheduledRunRule"]["Properties"]
    assert resolver.resolve(rule["State"]) == "ENABLED"
    (target,) = rule["Targets"]
    assert "Input" not in target  # a fixed Input would replace the event, id and time included
    sample = _events()["submit_run-schedule"]
    fired = eventbridge_scheduled_event(
        "arn:aws:events:us-east-1:123456789012:rule/tr-ScheduledRunRule", sample["id"], sample["time"]
    )
    assert transform_input(resolver.resolve(target["InputTransformer"]), fired) == sample


def test_a_lone_iam_condition_block_is_not_mistaken_for_an_intrinsic(template: Any) -> None:
    resolver = IntrinsicResolver(template, _local_values(template))
    block = {"Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}}
    assert resolver.resolve(block) == {"Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}


def test_an_intrinsic_the_template_does_not_use_is_refused_with_the_supported_ones(template: Any) -> None:
    resolver = IntrinsicResolver(template, _local_values(template))
    with pytest.raises(
        ConfigurationError, match=r"X uses Fn::Select, which the local runtime does not resolve"
    ) as err:
        resolver.resolve({"Fn::Select": [0, ["a"]]}, "X")
    assert "Fn::Sub" in err.value.remediation


# ------------------------------------------------------------------------------------------ alarms
def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _allows(statement: dict[str, Any], service: str, action: str) -> bool:
    principals = _as_list((statement.get("Principal") or {}).get("Service", []))
    actions = _as_list(statement["Action"])
    return (
        statement["Effect"] == "Allow"
        and service in principals
        and any(re.fullmatch(a.replace("*", ".*"), action) for a in actions)
    )


def test_cloudwatch_alarms_can_publish_to_the_encrypted_alarm_topic(resources: dict[str, Any]) -> None:
    """CloudWatch cannot use the AWS-managed alias/aws/sns key: the topic's key must be a customer managed key
    whose policy lets cloudwatch.amazonaws.com generate and decrypt data keys, and the topic policy must let
    CloudWatch publish."""
    topic = resources["AlarmTopic"]["Properties"]
    key_ref = topic["KmsMasterKeyId"]
    assert key_ref != "alias/aws/sns"
    (key_id,) = _references(key_ref)
    key = resources[key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    key_statements = key["Properties"]["KeyPolicy"]["Statement"]
    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        assert any(_allows(s, "cloudwatch.amazonaws.com", action) for s in key_statements), action

    policies = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::SNS::TopicPolicy" and {"Ref": "AlarmTopic"} in r["Properties"]["Topics"]
    ]
    assert len(policies) == 1
    publish = [
        s
        for s in policies[0]["PolicyDocument"]["Statement"]
        if _allows(s, "cloudwatch.amazonaws.com", "sns:Publish")
    ]
    assert publish
    assert all(s["Resource"] == {"Ref": "AlarmTopic"} for s in publish)
    assert all("aws:SourceAccount" in s["Condition"]["StringEquals"] for s in publish)

    windows = {name for rule in _composite_rules(resources).values() for name in _rule_alarms(rule)}
    alarms = {
        name: r["Properties"]
        for name, r in resources.items()
        if r["Type"] in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
    }
    assert alarms
    for name, alarm in alarms.items():  # a window of a composite alarm notifies through the composite
        assert alarm.get("AlarmActions") == (None if name in windows else [{"Ref": "AlarmTopic"}]), name


def _composite_rules(resources: dict[str, Any]) -> dict[str, str]:
    return {
        name: r["Properties"]["AlarmRule"]["Fn::Sub"]
        for name, r in resources.items()
        if r["Type"] == "AWS::CloudWatch::CompositeAlarm"
    }


def _rule_alarms(rule: str) -> list[str]:
    return re.findall(r'ALARM\("\$\{(\w+)\}"\)', rule)


@pytest.mark.parametrize(
    ("composite", "metric"),
    [("RunSloBurnRateAlarm", "RunSloMissed"), ("ApprovalSloBurnRateAlarm", "ApprovalSloMissed")],
)
def test_slo_burn_rate_alarms_are_multi_window(
    resources: dict[str, Any], composite: str, metric: str
) -> None:
    """(14.4x over 1 h AND over 5 min) OR (6x over 6 h AND over 30 min) of a 5% (p95) error budget, on the
    stack-wide miss ratio of the metric each pack's own SLO bound decides."""
    rule = _composite_rules(resources)[composite]
    pairs = [_rule_alarms(part) for part in rule.split(" OR ")]
    windows = [[resources[name]["Properties"] for name in pair] for pair in pairs]
    assert [[(w["Period"], w["Threshold"]) for w in pair] for pair in windows] == [
        [(3600, pytest.approx(14.4 * 0.05)), (300, pytest.approx(14.4 * 0.05))],
        [(21600, pytest.approx(6 * 0.05)), (1800, pytest.approx(6 * 0.05))],
    ]
    for window in (w for pair in windows for w in pair):
        assert (window["Namespace"], window["MetricName"], window["Statistic"]) == (
            "TaskRunner",
            metric,
            "Average",
        )
        assert window["Dimensions"] == [{"Name": "service", "Value": "taskrunner"}]
        assert (window["ComparisonOperator"], window["TreatMissingData"]) == (
            "GreaterThanThreshold",
            "notBreaching",
        )


# ------------------------------------------------------------------------------------------ MongoDB deployment
def test_functions_join_the_vpc_only_when_subnets_are_given(template: Any) -> None:
    vpc = template.document["Globals"]["Function"]["VpcConfig"]
    condition, inside, outside = vpc["Fn::If"]
    assert inside == {
        "SubnetIds": {"Ref": "VpcSubnetIds"},
        "SecurityGroupIds": {"Ref": "VpcSecurityGroupIds"},
    }
    assert outside == {"Ref": "AWS::NoValue"}
    for parameter in ("VpcSubnetIds", "VpcSecurityGroupIds"):
        assert (template.parameters[parameter].type, template.parameters[parameter].default) == (
            "CommaDelimitedList",
            "",
        )
    values = _local_values(template)
    assert IntrinsicResolver(template, values).condition(condition) is False
    values.parameters = {
        **LOCAL_PARAMETERS,
        "VpcSubnetIds": "subnet-1,subnet-2",
        "VpcSecurityGroupIds": "sg-1",
    }
    in_vpc = IntrinsicResolver(template, values)
    assert in_vpc.resolve(vpc) == {"SubnetIds": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}


def test_the_pool_size_parameter_reaches_every_function(template: Any) -> None:
    values = _local_values(template)
    values.parameters = {**LOCAL_PARAMETERS, "MongoMaxPoolSize": "7"}
    resolver = IntrinsicResolver(template, values)
    for fn in template.functions.values():
        assert resolver.environment(fn)["TASKRUNNER_STORAGE__MONGO__MAX_POOL_SIZE"] == "7"


def test_the_migration_custom_resource_runs_on_new_code_and_may_only_read_the_mongo_secret(
    template: Any, resources: dict[str, Any]
) -> None:
    migration = resources["MongoMigration"]
    assert migration["Type"].startswith("Custom::")
    props = migration["Properties"]
    assert props["ServiceToken"] == {"Fn::GetAtt": ["MigrateDbFunction", "Arn"]}
    assert props["LayerVersion"] == {"Ref": "TaskRunnerLayer"}  # a new layer version re-runs the migration
    function = resources["MigrateDbFunction"]["Properties"]
    assert int(props["ServiceTimeout"]) > function["Timeout"]  # a crashed function still ends the wait
    assert function["Policies"] == [{"Ref": "StoreAccessPolicy"}]
    (statement,) = resources["StoreAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert "Events" not in function


def test_every_state_machine_arn_pattern_is_scoped_to_the_stack_prefix() -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    patterns = re.findall(r":states:[^\s\"']*:(?:stateMachine|execution):[^\s\"']*", text)
    prefix = parse_cfn_yaml(text)["Globals"]["Function"]["Environment"]["Variables"][
        "TASKRUNNER_AWS__STATE_MACHINE_PREFIX"
    ]["Fn::Sub"]
    assert prefix == "${AWS::StackName}_tr"
    assert len(patterns) >= 7
    for pattern in patterns:
        resource = re.split(r":(?:stateMachine|execution):", pattern)[1]
        assert resource.startswith(prefix + "-"), pattern


def test_execute_step_concurrency_is_reserved_only_when_asked(
    template: Any, resources: dict[str, Any]
) -> None:
    parameter = template.document["Parameters"]["ExecuteStepReservedConcurrency"]
    assert parameter["Default"] == 0
    reserved = resources["ExecuteStepFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert reserved == {
        "Fn::If": ["ReserveExecuteStep", {"Ref": "ExecuteStepReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }


def test_functions_that_spool_to_tmp_get_ephemeral_storage_beyond_the_default(
    resources: dict[str, Any],
) -> None:
    from taskrunner.engine.spool import SPOOL_RESERVE_BYTES

    for logical_id in ("SealEvidenceFunction", "ExecuteStepFunction"):
        size_mb = resources[logical_id]["Properties"]["EphemeralStorage"]["Size"]
        assert 512 < size_mb <= 10_240
        assert size_mb * 1024 * 1024 > 10 * SPOOL_RESERVE_BYTES


def test_state_machine_logs_go_to_the_stack_log_group_from_the_functions_that_create_machines(
    template: Any,
) -> None:
    for fn in template.functions.values():
        log_group = fn.environment.get("TASKRUNNER_AWS__STATE_MACHINE_LOG_GROUP_ARN")
        if fn.name in {"submit_run", "cancel_run"}:
            assert log_group == {"Fn::GetAtt": ["StateMachineLogs", "Arn"]}
        else:
            assert log_group is None


def test_submit_may_list_only_pack_sources_so_a_missing_pack_is_404(resources: dict[str, Any]) -> None:
    statements = resources["SubmitRunFunction"]["Properties"]["Policies"][-1]["Statement"]
    listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
    assert listing["Resource"] == {"Fn::GetAtt": ["ArtifactsBucket", "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "packs/*"}}


def test_ended_executions_of_this_stack_reach_the_retire_function(resources: dict[str, Any]) -> None:
    retire = resources["RetireStateMachineFunction"]["Properties"]
    pattern = retire["Events"]["ExecutionEnded"]["Properties"]["Pattern"]
    assert pattern["detail"]["status"] == ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]
    assert pattern["detail"]["stateMachineArn"][0]["prefix"]["Fn::Sub"].endswith(
        ":stateMachine:${AWS::StackName}_tr-"
    )
    (statement,) = retire["Policies"][0]["Statement"]
    assert sorted(statement["Action"]) == ["states:DeleteStateMachine", "states:ListExecutions"]


# ------------------------------------------------------------------------------------------ approval tokens
ISSUER_URL = {"Fn::Sub": "https://${ApprovalIssuerApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}


def test_the_approve_route_trusts_only_the_stacks_approval_token_issuer(resources: dict[str, Any]) -> None:
    authorizer = resources["TaskRunnerApi"]["Properties"]["Auth"]["Authorizers"]["ApprovalTokens"]
    assert authorizer["JwtConfiguration"] == {"issuer": ISSUER_URL, "audience": ["taskrunner-approvals"]}
    issuer_api = resources["ApprovalIssuerApi"]["Properties"]
    assert "Auth" not in issuer_api  # discovery and JWKS are public
    key = resources["ApprovalTokenKey"]["Properties"]
    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    approve = resources["ApproveGateFunction"]["Properties"]
    assert approve["Environment"]["Variables"]["TASKRUNNER_APPROVAL_TOKENS__ISSUER"] == ISSUER_URL


def test_the_issuer_function_names_neither_api_and_may_only_read_the_public_key(
    resources: dict[str, Any],
) -> None:
    issuer = resources["ApprovalIssuerFunction"]["Properties"]
    assert not {"ApprovalIssuerApi", "TaskRunnerApi"} & set(_references(issuer["Environment"]))
    [policy] = issuer["Policies"]
    assert policy["Statement"] == [
        {
            "Sid": "ReadApprovalTokenPublicKey",
            "Effect": "Allow",
            "Action": "kms:GetPublicKey",
            "Resource": {"Fn::GetAtt": ["ApprovalTokenKey", "Arn"]},
        }
    ]
    signing = next(
        s
        for p in resources["ApproveGateFunction"]["Properties"]["Policies"]
        if "Statement" in p
        for s in p["Statement"]
        if s["Sid"] == "SignApprovalTokens"
    )
    assert sorted(signing["Action"]) == ["kms:GetPublicKey", "kms:Sign"]
    assert signing["Resource"] == {"Fn::GetAtt": ["ApprovalTokenKey", "Arn"]}


def test_the_outputs_name_the_issuer_and_its_jwks(template: Any) -> None:
    outputs = template.document["Outputs"]
    assert outputs["ApprovalTokenIssuerUrl"]["Value"] == ISSUER_URL
    assert outputs["ApprovalTokenJwksUrl"]["Value"] == {
        "Fn::Sub": ISSUER_URL["Fn::Sub"] + "/.well-known/jwks.json"
    }
