"""TaskRunner settings (pydantic-settings), one nested section per concern.

Sources, highest priority first: arguments to :func:`load_settings`, environment variables (prefix
``TASKRUNNER_``, sections joined by ``__``, e.g. ``TASKRUNNER_STORAGE__MONGO__DATABASE``; an empty one
counts as unset), the JSON file
named by ``TASKRUNNER_CONFIG_FILE`` in the seed shape ``{"TaskRunner": {"Storage": {"Mode": "mongo",
"Mongo": {"ConnectionString": ...}}}}`` (PascalCase keys), then defaults. :func:`load_settings` turns
every invalid value into a :class:`~taskrunner.errors.ConfigurationError` naming the setting.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from taskrunner.errors import ConfigurationError

ENV_PREFIX = "TASKRUNNER_"
SECRET_MAX_AGE_SECONDS = 300  # Secrets Manager values are cached this long per process


def env_name(*path: str) -> str:
    """Environment variable of a setting: ``env_name("storage", "mode")`` -> ``TASKRUNNER_STORAGE__MODE``."""
    return ENV_PREFIX + "__".join(part.upper() for part in path)


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def seed_name(*path: str) -> str:
    """Seed-file path of a setting: ``TaskRunner:Storage:Mode``."""
    return ":".join(("TaskRunner", *(_pascal(part) for part in path)))


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _snake_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_snake(str(k)): _snake_keys(v) for k, v in value.items()}
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _collection_name(value: str) -> str:
    if not value or len(value) > 120 or "$" in value or "\x00" in value or value.startswith("system."):
        raise ValueError("must be a MongoDB collection name (1-120 characters, no '$', not system.*)")
    return value


CollectionName = Annotated[str, AfterValidator(_collection_name)]


class MongoSettings(_Section):
    """``TASKRUNNER_STORAGE__MONGO__*``: the MongoDB run store."""

    connection_string: SecretStr | None = Field(
        None, description="MongoDB URI, e.g. mongodb://host:27017/taskrunner (may name the database)."
    )
    connection_string_secret_arn: str | None = Field(
        None, description="Secrets Manager secret holding the URI (plain, or JSON with connectionString)."
    )
    database: str | None = Field(None, description="Database name; default: the database in the URI.")
    runs_collection: CollectionName = Field("pack_runs", description="Collection of run documents.")
    logs_collection: CollectionName = Field("pack_run_logs", description="Collection of run log events.")
    artifacts_collection: CollectionName = Field("pack_artifacts", description="Collection of artifacts.")
    approvals_collection: CollectionName = Field("pack_run_approvals", description="Collection of gates.")
    migrations_collection: CollectionName = Field(
        "taskrunner_migrations", description="Ledger of applied schema migrations."
    )
    log_ttl_seconds: int | None = Field(
        None, ge=1, description="Retention of log events (TTL on pack_run_logs.timestamp); off by default."
    )
    max_pool_size: int = Field(
        4,
        ge=1,
        le=500,
        description="Connections per process; a Lambda instance serves one invocation at a time, so few suffice.",
    )
    max_idle_time_ms: int = Field(
        60_000, ge=1, description="Close a pooled connection idle this long (a frozen Lambda keeps none)."
    )

    def resolve_connection_string(self) -> str:
        """The URI, fetched from Secrets Manager (cached) when only the secret ARN is set."""
        if self.connection_string is not None:
            return self.connection_string.get_secret_value()
        if self.connection_string_secret_arn:
            return _connection_string_from_secret(self.connection_string_secret_arn)
        raise ConfigurationError(
            f"no MongoDB connection string: set {env_name('storage', 'mongo', 'connection_string')} "
            f"(or {env_name('storage', 'mongo', 'connection_string_secret_arn')})",
            remediation=f"or set {seed_name('storage', 'mongo', 'connection_string')} in TASKRUNNER_CONFIG_FILE",
        )

    def database_name(self, connection_string: str) -> str:
        """``database``, else the database named in ``connection_string``."""
        name = self.database or database_from_uri(connection_string)
        if not name:
            raise ConfigurationError(
                f"no MongoDB database: set {env_name('storage', 'mongo', 'database')} "
                "or name the database in the connection string (mongodb://host/<database>)",
                remediation=f"or set {seed_name('storage', 'mongo', 'database')} in TASKRUNNER_CONFIG_FILE",
            )
        return name


class StorageSettings(_Section):
    """``TASKRUNNER_STORAGE__*``: where run records live. Switching back to ``file`` is the rollback."""

    mode: Annotated[Literal["file", "mongo"], BeforeValidator(_lower)] = Field(
        "file", description="file (embedded store under TASKRUNNER_HOME) or mongo."
    )
    mongo: MongoSettings = Field(default_factory=MongoSettings)


class AwsSettings(_Section):
    """``TASKRUNNER_AWS__*``: resources of the deployed stack (set by the SAM template)."""

    artifacts_bucket: str | None = Field(None, description="S3 bucket for artifacts and evidence bundles.")
    state_machine_role_arn: str | None = Field(None, description="Role Step Functions assumes to run packs.")
    state_machine_prefix: str = Field(
        "taskrunner",
        pattern=r"^[A-Za-z0-9_-]{1,57}$",
        description="Start of every state machine name (<prefix>-<pack>-<digest>); scopes them to the stack.",
    )
    state_machine_log_group_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:logs:[a-z0-9-]+:[0-9]{12}:log-group:[A-Za-z0-9_./#-]+:\*$",
        description="CloudWatch Logs group ARN ending in :* for execution logs (level ERROR, no data).",
    )
    event_bus_name: str = Field("default", description="EventBridge bus for run notifications.")
    verify_plan_function_arn: str | None = Field(None, description="ARN of the verify_plan function.")
    execute_step_function_arn: str | None = Field(None, description="ARN of the execute_step function.")
    open_gate_function_arn: str | None = Field(None, description="ARN of the open_gate function.")
    evaluate_policy_function_arn: str | None = Field(None, description="ARN of the evaluate_policy function.")
    seal_evidence_function_arn: str | None = Field(None, description="ARN of the seal_evidence function.")


class SigningSettings(_Section):
    """``TASKRUNNER_SIGNING__*``: the evidence signing key."""

    key: str | None = Field(
        None,
        description="file:///path/to/key.pem or awskms:///alias/name; default file $TASKRUNNER_HOME/keys/signing.pem.",
    )

    @field_validator("key")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("file://", "awskms:///")):
            raise ValueError("must be a file:///path or awskms:///alias/name URI")
        return value


class RedactionSettings(_Section):
    """``TASKRUNNER_REDACTION__*``: the key that fingerprints redacted secrets."""

    key_secret_arn: str | None = Field(
        None, description="Secrets Manager secret with the redaction key; default: the local key file."
    )


class SandboxSettings(_Section):
    """``TASKRUNNER_SANDBOX__*``: step execution limits."""

    sealed: bool = Field(True, description="Refuse egress to hosts outside a pack's allowlist.")


class PacksSettings(_Section):
    """``TASKRUNNER_PACKS__*``: where submitted packs may come from."""

    require_signed: bool = Field(
        False,
        description="Run a packRef only as a verified, unrevoked version of the signed pack registry "
        "(the stack's RequireSignedPacks parameter turns it on by default).",
    )


class ApiSettings(_Section):
    """``TASKRUNNER_API__*``: the HTTP API."""

    public_url: str | None = Field(None, description="Base URL of the API, used in approval links.")

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as https://runs.example.com")
        return value.rstrip("/") if value else value

    public_url_parameter: str | None = Field(
        None,
        description="SSM parameter holding the API's base URL, read when `public_url` is not set (the "
        "template's execute-api URL: functions cannot reference the API that invokes them).",
    )

    @field_validator("public_url_parameter")
    @classmethod
    def _parameter_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"/[A-Za-z0-9_.\-/]{1,1000}", value):
            raise ValueError("must be an SSM parameter name such as /taskrunner/api-url")
        return value


class ApprovalTokenSettings(_Section):
    """``TASKRUNNER_APPROVAL_TOKENS__*``: the approval tokens this deployment issues (ES256 JWTs)."""

    issuer: str | None = Field(
        None,
        description="Issuer URL (the `iss` claim and where /.well-known/jwks.json is served); default: the "
        "request's own base URL.",
    )
    key: str | None = Field(
        None,
        description="EC P-256 key: file:///path/to/key.pem or awskms:///alias/name; default file "
        "$TASKRUNNER_HOME/keys/approval-issuer.pem (created on first use).",
    )
    ttl_seconds: int = Field(300, ge=30, le=900, description="Lifetime of an approval token (30-900 s).")

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value):
            raise ValueError(
                "must be an http(s) URL without query or fragment, e.g. https://issuer.example.com"
            )
        return value.rstrip("/") if value else value

    @field_validator("key")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        return SigningSettings._known_scheme(value)


class ConsoleSettings(_Section):
    """``TASKRUNNER_CONSOLE__*``: how the web console signs people in."""

    oidc_issuer: str | None = Field(None, description="OIDC issuer the console signs in with (JwtIssuer).")
    oidc_client_id: str | None = Field(None, description="The console's public OIDC client id.")
    oidc_scopes: str = Field(
        "openid packs.read packs.run packs.approve", description="Scopes the console asks the issuer for."
    )
    dev_sign_in: bool = Field(False, description="Offer the development sign-in of `taskrunner serve`.")


class _SeedFileSource(PydanticBaseSettingsSource):
    """The ``TaskRunner`` object of the JSON file named by ``TASKRUNNER_CONFIG_FILE``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # the whole file is read in __call__

    def __call__(self) -> dict[str, Any]:
        path = self.current_state.get("config_file") or os.environ.get(ENV_PREFIX + "CONFIG_FILE")
        if not path:
            return {}
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(
                f"TASKRUNNER_CONFIG_FILE {path}: cannot read it ({exc.strerror})",
                remediation="point TASKRUNNER_CONFIG_FILE at a readable JSON file or unset it",
            ) from None
        except ValueError as exc:
            raise ConfigurationError(
                f"TASKRUNNER_CONFIG_FILE {path}: not valid JSON ({exc})", remediation="fix the JSON syntax"
            ) from None
        section = document.get("TaskRunner") if isinstance(document, dict) else None
        if not isinstance(section, dict):
            raise ConfigurationError(
                f"TASKRUNNER_CONFIG_FILE {path}: expected an object with a top-level TaskRunner object",
                remediation='use the shape {"TaskRunner": {"Storage": {"Mode": "mongo", "Mongo": {...}}}}',
            )
        data: dict[str, Any] = _snake_keys(section)
        return data


class Settings(BaseSettings):
    """Every TaskRunner setting; see the module docstring for sources and naming."""

    # An empty variable is unset: `sam local invoke` passes `!If [..., !Ref AWS::NoValue]` as "".
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=False,
    )

    home: Path = Field(
        Path(".taskrunner"), description="TASKRUNNER_HOME: root of the file store and local keys."
    )
    config_file: Path | None = Field(
        None, description="TASKRUNNER_CONFIG_FILE: seed-shape JSON settings file."
    )
    runtime: Annotated[Literal["local", "aws"] | None, BeforeValidator(_lower)] = Field(
        None,
        description="TASKRUNNER_RUNTIME: local (objects under TASKRUNNER_HOME/objects, env: secrets) or aws "
        "(S3); default: local with the file store, aws with MongoDB.",
    )
    storage: StorageSettings = Field(default_factory=StorageSettings)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    signing: SigningSettings = Field(default_factory=SigningSettings)
    redaction: RedactionSettings = Field(default_factory=RedactionSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    packs: PacksSettings = Field(default_factory=PacksSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    approval_tokens: ApprovalTokenSettings = Field(default_factory=ApprovalTokenSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _SeedFileSource(settings_cls)

    @property
    def local(self) -> bool:
        """Objects, secrets and evidence as the local runtime keeps them (see ``runtime``)."""
        return self.runtime == "local" if self.runtime else self.storage.mode == "file"

    def model_post_init(self, context: Any, /) -> None:
        if self.signing.key is None:
            self.signing.key = (self.home / "keys" / "signing.pem").absolute().as_uri()
        if self.approval_tokens.key is None:
            self.approval_tokens.key = (self.home / "keys" / "approval-issuer.pem").absolute().as_uri()


def database_from_uri(uri: str) -> str | None:
    """The database named in a ``mongodb://`` or ``mongodb+srv://`` URI, if any."""
    path = urlsplit(uri).path.lstrip("/")
    return unquote(path) or None


def _connection_string_from_secret(arn: str) -> str:
    from aws_lambda_powertools.utilities import parameters  # only where the secret ARN is used

    setting = env_name("storage", "mongo", "connection_string_secret_arn")
    try:
        value = parameters.get_secret(arn, max_age=SECRET_MAX_AGE_SECONDS)
    except Exception as exc:
        raise ConfigurationError(
            f"cannot read the MongoDB connection string from {setting} ({arn}): {type(exc).__name__}",
            remediation="check the ARN and that the function's role may call secretsmanager:GetSecretValue",
        ) from None
    text = value.decode() if isinstance(value, bytes) else str(value)
    if text.lstrip().startswith("{"):
        try:
            text = str(json.loads(text)["connectionString"])
        except (ValueError, KeyError):
            raise ConfigurationError(
                f"the secret named by {setting} is JSON without a connectionString field",
                remediation='store the URI itself or {"connectionString": "mongodb://..."}',
            ) from None
    return text


def settings_environment(section: BaseModel, *path: str) -> dict[str, str | None]:
    """``section``'s values as the environment variables that set them (``None``: unset), e.g.
    ``settings_environment(settings.storage, "storage")`` -> ``{"TASKRUNNER_STORAGE__MODE": "mongo", ...}``."""
    variables: dict[str, str | None] = {}
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            variables.update(settings_environment(value, *path, name))
        elif isinstance(value, SecretStr):
            variables[env_name(*path, name)] = value.get_secret_value()
        else:
            variables[env_name(*path, name)] = None if value is None else str(value)
    return variables


def _describe(error: Any) -> str:
    path = [str(p) for p in error["loc"] if not isinstance(p, int)]
    return f"{env_name(*path)} ({seed_name(*path)}): {error['msg']}"


def console_settings() -> ConsoleSettings:
    """The console's settings (``TASKRUNNER_CONSOLE__*``) alone; nothing of the store is resolved."""
    try:
        return Settings().console
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigurationError(
            f"invalid settings: {problems}", remediation="fix the settings named above"
        ) from None


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and the seed file; ConfigurationError names any bad setting."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigurationError(
            f"invalid settings: {problems}",
            remediation="fix the environment variable or the TASKRUNNER_CONFIG_FILE entry named above",
        ) from None
    mongo = settings.storage.mongo
    if settings.storage.mode == "mongo":
        if mongo.connection_string is None and not mongo.connection_string_secret_arn:
            mongo.resolve_connection_string()  # raises, naming the settings
        if mongo.connection_string is not None:
            mongo.database_name(mongo.connection_string.get_secret_value())
    return settings
