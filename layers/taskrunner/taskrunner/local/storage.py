"""Where the local runtime and the commands beside it keep run records: the user's storage settings.

The template configures the cloud (MongoDB through a Secrets Manager ARN); locally, every function the
runtime invokes, and every command reading or deciding runs, uses the storage settings of the user's
environment and ``TASKRUNNER_CONFIG_FILE`` instead - the file store by default, MongoDB when configured.
Artifact and evidence bytes stay under ``TASKRUNNER_HOME/objects`` either way (``TASKRUNNER_RUNTIME=local``).
"""

from __future__ import annotations

from taskrunner.config import Settings, env_name, load_settings, settings_environment
from taskrunner.errors import ConfigurationError


def local_settings() -> Settings:
    """The user's settings as the local runtime applies them; MongoDB, when it keeps the run records, is
    checked reachable and migrated first (a problem fails here, before anything runs)."""
    settings = load_settings(runtime="local")
    mongo = settings.storage.mongo
    if settings.storage.mode == "mongo":
        if mongo.connection_string is None:
            setting = env_name("storage", "mongo", "connection_string")
            raise ConfigurationError(
                f"the local runtime reaches MongoDB through {setting} only",
                remediation=f"set {setting} to the URI (mongodb://host:27017/taskrunner); "
                f"{env_name('storage', 'mongo', 'connection_string_secret_arn')} is read in AWS",
            )
        from taskrunner.store.mongo_ready import check_mongo_ready

        check_mongo_ready(mongo)
    return settings


def storage_environment(settings: Settings) -> dict[str, str | None]:
    """The variables that give every local function ``settings``' storage (``None``: unset)."""
    return settings_environment(settings.storage, "storage")
