"""Settings: environment variables, the seed-shape JSON file, Secrets Manager, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws
from pydantic import BaseModel
from taskrunner.config import Settings, database_from_uri, env_name, load_settings
from taskrunner.errors import ConfigurationError
from taskrunner.store import factory
from taskrunner.store.file_store import FileRunStore


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TASKRUNNER_* setting leaks in from the environment running the tests."""
    for name in list(os.environ):
        if name.startswith("TASKRUNNER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def seed_file(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps(document))
    return path


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.storage.mode == "file"
    assert settings.home == Path(".taskrunner")
    assert settings.signing.key == (tmp_path / ".taskrunner" / "keys" / "signing.pem").as_uri()
    assert settings.storage.mongo.runs_collection == "pack_runs"
    assert settings.storage.mongo.approvals_collection == "pack_run_approvals"
    assert settings.aws.event_bus_name == "default"
    assert settings.aws.artifacts_bucket is None
    assert settings.sandbox.sealed is True
    assert settings.redaction.key_secret_arn is None
    assert settings.api.public_url is None


def test_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "TASKRUNNER_HOME": str(tmp_path / "home"),
        "TASKRUNNER_STORAGE__MODE": "mongo",
        "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING": "mongodb://db.example:27017/runs",
        "TASKRUNNER_STORAGE__MONGO__LOGS_COLLECTION": "tr_logs",
        "TASKRUNNER_AWS__ARTIFACTS_BUCKET": "artifacts-123",
        "TASKRUNNER_AWS__STATE_MACHINE_ROLE_ARN": "arn:aws:iam::123456789012:role/sfn",
        "TASKRUNNER_AWS__EXECUTE_STEP_FUNCTION_ARN": "arn:aws:lambda:us-east-1:123456789012:function:exec",
        "TASKRUNNER_SIGNING__KEY": "awskms:///alias/taskrunner",
        "TASKRUNNER_REDACTION__KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:red",
        "TASKRUNNER_SANDBOX__SEALED": "false",
        "TASKRUNNER_API__PUBLIC_URL": "https://runs.example.com/",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.home == tmp_path / "home"
    assert settings.storage.mode == "mongo"
    assert settings.storage.mongo.logs_collection == "tr_logs"
    assert settings.storage.mongo.database_name(settings.storage.mongo.resolve_connection_string()) == "runs"
    assert settings.aws.artifacts_bucket == "artifacts-123"
    assert settings.aws.execute_step_function_arn.endswith(":exec")  # type: ignore[union-attr]
    assert settings.signing.key == "awskms:///alias/taskrunner"
    assert settings.redaction.key_secret_arn.endswith(":red")  # type: ignore[union-attr]
    assert settings.sandbox.sealed is False
    assert settings.api.public_url == "https://runs.example.com"


def test_home_moves_the_default_signing_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TASKRUNNER_HOME", str(tmp_path / "h"))
    assert load_settings().signing.key == (tmp_path / "h" / "keys" / "signing.pem").as_uri()


def test_seed_shape_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = seed_file(
        tmp_path,
        {
            "TaskRunner": {
                "Storage": {
                    "Mode": "Mongo",
                    "Mongo": {
                        "ConnectionString": "mongodb://127.0.0.1:27017/taskrunner",
                        "RunsCollection": "runs_v1",
                        "LogsCollection": "logs_v1",
                        "ArtifactsCollection": "artifacts_v1",
                        "ApprovalsCollection": "approvals_v1",
                    },
                },
                "Aws": {"EventBusName": "ops"},
            },
            "Worker": {"Unrelated": True},
        },
    )
    monkeypatch.setenv("TASKRUNNER_CONFIG_FILE", str(path))
    settings = load_settings()
    mongo = settings.storage.mongo
    assert settings.storage.mode == "mongo"
    assert (mongo.runs_collection, mongo.logs_collection) == ("runs_v1", "logs_v1")
    assert (mongo.artifacts_collection, mongo.approvals_collection) == ("artifacts_v1", "approvals_v1")
    assert mongo.database is None
    assert mongo.database_name(mongo.resolve_connection_string()) == "taskrunner"  # from the URI
    assert settings.aws.event_bus_name == "ops"

    # environment variables win over the file, key by key
    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__DATABASE", "override")
    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__RUNS_COLLECTION", "runs_env")
    overridden = load_settings().storage.mongo
    assert overridden.database_name(overridden.resolve_connection_string()) == "override"
    assert overridden.runs_collection == "runs_env"
    assert overridden.logs_collection == "logs_v1"


def test_connection_string_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING", "mongodb://user:hunter2@db/x")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TASKRUNNER_STORAGE__MODE": "postgres"}, "TASKRUNNER_STORAGE__MODE"),
        ({"TASKRUNNER_STORAGE__MODE": "mongo"}, "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING"),
        (
            {
                "TASKRUNNER_STORAGE__MODE": "mongo",
                "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING": "mongodb://h:1/",
            },
            "TASKRUNNER_STORAGE__MONGO__DATABASE",
        ),
        (
            {"TASKRUNNER_STORAGE__MONGO__RUNS_COLLECTION": "bad$name"},
            "TASKRUNNER_STORAGE__MONGO__RUNS_COLLECTION",
        ),
        ({"TASKRUNNER_STORAGE__MONGO__LOG_TTL_SECONDS": "0"}, "TASKRUNNER_STORAGE__MONGO__LOG_TTL_SECONDS"),
        ({"TASKRUNNER_STORAGE__MONGO__TYPO": "x"}, "TASKRUNNER_STORAGE__MONGO__TYPO"),
        ({"TASKRUNNER_SIGNING__KEY": "/etc/key.pem"}, "TASKRUNNER_SIGNING__KEY"),
        ({"TASKRUNNER_SANDBOX__SEALED": "maybe"}, "TASKRUNNER_SANDBOX__SEALED"),
        ({"TASKRUNNER_API__PUBLIC_URL": "runs.example.com"}, "TASKRUNNER_API__PUBLIC_URL"),
        ({"TASKRUNNER_AWS__STATE_MACHINE_PREFIX": "a" * 58}, "TASKRUNNER_AWS__STATE_MACHINE_PREFIX"),
        ({"TASKRUNNER_AWS__STATE_MACHINE_PREFIX": "prod:tr"}, "TASKRUNNER_AWS__STATE_MACHINE_PREFIX"),
        (
            # Step Functions wants the log group ARN that ends in ":*"
            {
                "TASKRUNNER_AWS__STATE_MACHINE_LOG_GROUP_ARN": "arn:aws:logs:us-east-1:123456789012:log-group:g"
            },
            "TASKRUNNER_AWS__STATE_MACHINE_LOG_GROUP_ARN",
        ),
    ],
)
def test_bad_settings_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as failure:
        load_settings()
    assert named in failure.value.message
    assert failure.value.remediation


def test_state_machine_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().aws.state_machine_prefix == "taskrunner"
    arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/vendedlogs/states/prod-taskrunner:*"
    monkeypatch.setenv("TASKRUNNER_AWS__STATE_MACHINE_PREFIX", "prod_tr")
    monkeypatch.setenv("TASKRUNNER_AWS__STATE_MACHINE_LOG_GROUP_ARN", arn)

    aws = load_settings().aws
    assert (aws.state_machine_prefix, aws.state_machine_log_group_arn) == ("prod_tr", arn)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ('{"Storage": {"Mode": "mongo"}}', "top-level TaskRunner object"),
        (
            '{"TaskRunner": {"Storage": {"Mongo": {"ConectionString": "x"}}}}',
            "TaskRunner:Storage:Mongo:ConectionString",
        ),
    ],
)
def test_bad_config_file_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "settings.json"
    path.write_text(content)
    monkeypatch.setenv("TASKRUNNER_CONFIG_FILE", str(path))
    with pytest.raises(ConfigurationError) as failure:
        load_settings()
    assert expected in failure.value.message


def test_missing_config_file_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TASKRUNNER_CONFIG_FILE", str(tmp_path / "absent.json"))
    with pytest.raises(ConfigurationError) as failure:
        load_settings()
    assert failure.value.message.startswith("TASKRUNNER_CONFIG_FILE")


@pytest.mark.parametrize(
    ("uri", "database"),
    [
        ("mongodb://127.0.0.1:27017/taskrunner", "taskrunner"),
        ("mongodb://u:p%40ss@a:1,b:2/runs?replicaSet=rs0&authSource=admin", "runs"),
        ("mongodb+srv://cluster0.example.net/prod-db?retryWrites=true", "prod-db"),
        ("mongodb://127.0.0.1:27017/?tls=true", None),
        ("mongodb://127.0.0.1", None),
    ],
)
def test_database_from_uri(uri: str, database: str | None) -> None:
    assert database_from_uri(uri) == database


@pytest.fixture
def secrets() -> Iterator[object]:
    with mock_aws():
        parameters.clear_caches()
        parameters.base.DEFAULT_PROVIDERS.clear()
        yield boto3.client("secretsmanager", region_name="us-east-1")
        parameters.clear_caches()
        parameters.base.DEFAULT_PROVIDERS.clear()


def test_connection_string_from_secrets_manager_is_cached(
    monkeypatch: pytest.MonkeyPatch, secrets: object
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    arn = secrets.create_secret(Name="tr/mongo", SecretString="mongodb://db.internal:27017/fromsecret")["ARN"]  # type: ignore[attr-defined]
    monkeypatch.setenv("TASKRUNNER_STORAGE__MODE", "mongo")
    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING_SECRET_ARN", arn)
    mongo = load_settings().storage.mongo
    uri = mongo.resolve_connection_string()
    assert uri == "mongodb://db.internal:27017/fromsecret"
    assert mongo.database_name(uri) == "fromsecret"

    secrets.put_secret_value(SecretId=arn, SecretString="mongodb://rotated/other")  # type: ignore[attr-defined]
    assert mongo.resolve_connection_string() == uri  # served from the cache
    parameters.clear_caches()
    assert mongo.resolve_connection_string() == "mongodb://rotated/other"


def test_connection_string_secret_in_json_form(monkeypatch: pytest.MonkeyPatch, secrets: object) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    value = json.dumps({"connectionString": "mongodb://json/db1"})
    arn = secrets.create_secret(Name="tr/json", SecretString=value)["ARN"]  # type: ignore[attr-defined]
    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING_SECRET_ARN", arn)
    assert load_settings().storage.mongo.resolve_connection_string() == "mongodb://json/db1"


def test_unreadable_secret_names_the_setting(monkeypatch: pytest.MonkeyPatch, secrets: object) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv(
        "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING_SECRET_ARN",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:absent-AbCdEf",
    )
    with pytest.raises(ConfigurationError) as failure:
        load_settings().storage.mongo.resolve_connection_string()
    assert "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING_SECRET_ARN" in failure.value.message


def test_powertools_parameters_load_only_when_a_secret_is_used() -> None:
    code = (
        "import sys; from taskrunner.config import load_settings; load_settings(); "
        "print('aws_lambda_powertools.utilities.parameters' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_mongo_store_does_not_load_the_file_store() -> None:
    code = (
        "import sys; from taskrunner.config import load_settings; from taskrunner.store.factory import open_store; "
        "store = open_store(load_settings()); "
        "print(type(store).__name__, 'taskrunner.store.file_store' in sys.modules)"
    )
    env = {
        **os.environ,
        "TASKRUNNER_STORAGE__MODE": "mongo",
        "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING": "mongodb://127.0.0.1:9/runs?connectTimeoutMS=100",
    }
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "MongoRunStore False"


def test_open_store_follows_the_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TASKRUNNER_HOME", str(tmp_path / "store"))
    store = factory.open_store(load_settings())
    assert isinstance(store, FileRunStore)
    assert store.root == tmp_path / "store"


def _leaf_settings(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaf_settings(annotation, (*path, name))
        else:
            yield (*path, name)


def test_every_setting_given_as_empty_text_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    leaves = list(_leaf_settings(Settings))
    assert ("api", "public_url") in leaves
    assert ("storage", "mongo", "database") in leaves
    for path in leaves:
        monkeypatch.setenv(env_name(*path), "")
    monkeypatch.setenv("TASKRUNNER_CONFIG_FILE", "")

    assert load_settings().model_dump() == _defaults()


def _defaults() -> dict[str, object]:
    with pytest.MonkeyPatch.context() as clean:
        for name in list(os.environ):
            if name.startswith("TASKRUNNER_"):
                clean.delenv(name)
        return load_settings().model_dump()


@pytest.mark.parametrize(("configured", "expected"), [({}, 4), ({"MAX_POOL_SIZE": "9"}, 9)])
def test_the_mongo_client_pool_is_sized_for_lambda(
    monkeypatch: pytest.MonkeyPatch, configured: dict[str, str], expected: int
) -> None:
    """The real pymongo client (it connects lazily: nothing listens on the URI's port)."""
    monkeypatch.setenv("TASKRUNNER_STORAGE__MODE", "mongo")
    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING", "mongodb://127.0.0.1:9/pooltest")
    for name, value in configured.items():
        monkeypatch.setenv(f"TASKRUNNER_STORAGE__MONGO__{name}", value)
    client = factory.open_mongo_database(load_settings().storage.mongo).client
    try:
        pool = client.options.pool_options
        assert (pool.max_pool_size, pool.min_pool_size, pool.max_idle_time_seconds) == (expected, 0, 60)
    finally:
        client.close()
        factory._pymongo_client.cache_clear()


def test_a_bad_pool_size_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__MAX_POOL_SIZE", "0")
    with pytest.raises(ConfigurationError, match="TASKRUNNER_STORAGE__MONGO__MAX_POOL_SIZE"):
        load_settings()


def test_api_url_comes_from_the_setting_or_else_from_the_ssm_parameter(
    monkeypatch: pytest.MonkeyPatch, secrets: object
) -> None:
    from taskrunner.composition import _public_url

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("TASKRUNNER_API__PUBLIC_URL_PARAMETER", "/stack/api-url")
    missing = _public_url(load_settings())
    assert missing() is None  # the link is left out; the gate still opens

    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/stack/api-url", Value="https://abc123.execute-api.us-east-1.amazonaws.com", Type="String"
    )
    parameters.clear_caches()
    assert _public_url(load_settings())() == "https://abc123.execute-api.us-east-1.amazonaws.com"

    monkeypatch.setenv("TASKRUNNER_API__PUBLIC_URL", "https://runs.example.com/")
    assert _public_url(load_settings())() == "https://runs.example.com"


@pytest.mark.parametrize("name", ["api-url", "/a b", "/x?y"])
def test_api_url_parameter_must_be_an_ssm_name(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("TASKRUNNER_API__PUBLIC_URL_PARAMETER", name)
    with pytest.raises(ConfigurationError, match="PUBLIC_URL_PARAMETER"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TASKRUNNER_APPROVAL_TOKENS__TTL_SECONDS", "10", "greater than or equal to 30"),
        ("TASKRUNNER_APPROVAL_TOKENS__TTL_SECONDS", "901", "less than or equal to 900"),
        (
            "TASKRUNNER_APPROVAL_TOKENS__KEY",
            "kms:arn:aws:kms:us-east-1:1:key/x",
            "file:///path or awskms:///",
        ),
        ("TASKRUNNER_APPROVAL_TOKENS__ISSUER", "issuer.example.com", "http(s) URL"),
        ("TASKRUNNER_APPROVAL_TOKENS__ISSUER", "https://issuer.example.com/?q=1", "http(s) URL"),
    ],
)
def test_approval_token_settings_are_validated_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert variable in caught.value.message
    assert message in caught.value.message


def test_approval_token_settings_default_to_a_key_file_under_the_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TASKRUNNER_HOME", str(tmp_path))
    monkeypatch.setenv("TASKRUNNER_APPROVAL_TOKENS__ISSUER", "https://issuer.example.com/")
    settings = load_settings().approval_tokens
    assert settings.key == (tmp_path / "keys" / "approval-issuer.pem").as_uri()
    assert (settings.issuer, settings.ttl_seconds) == ("https://issuer.example.com", 300)
