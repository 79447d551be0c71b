"""Start-up check of the MongoDB run store: reachable, and its collections migrated, before anything runs.

A process that would otherwise fail at its first store call (a run half started, a server answering 503)
refuses to start instead, naming the setting to fix; the URI is shown without its user information.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from taskrunner.config import MongoSettings, env_name
from taskrunner.errors import ConfigurationError
from taskrunner.store.errors import StoreUnavailable

START_CHECK_TIMEOUT_MS = 3_000  # server selection for the check: an unreachable server fails in seconds
_URI_SETTING = env_name("storage", "mongo", "connection_string")


def redacted_uri(uri: str) -> str:
    """``uri`` with its user information (user name and password) replaced: ``mongodb://***@host/db``."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    hosts = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{hosts}"))


def check_mongo_ready(mongo: MongoSettings, timeout_ms: int = START_CHECK_TIMEOUT_MS) -> None:
    """Raise unless the configured database answers within ``timeout_ms`` and every migration is applied."""
    from pymongo import MongoClient
    from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

    from taskrunner.store.factory import collection_names
    from taskrunner.store.migrations import migration_status
    from taskrunner.store.mongo_names import CODEC_OPTIONS

    uri = mongo.resolve_connection_string()
    shown, userinfo = redacted_uri(uri), urlsplit(uri).netloc.rpartition("@")[0]
    database = mongo.database_name(uri)

    def reason(exc: PyMongoError) -> str:
        text = str(exc).split(", Timeout:")[0]  # the topology description after it repeats the hosts
        for secret in {userinfo, userinfo.partition(":")[2]} - {""}:  # the password, were it echoed
            text = text.replace(secret, "***")
        return text

    client: MongoClient[dict[str, Any]] | None = None
    try:
        client = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
        db = client.get_database(database, codec_options=CODEC_OPTIONS)
        db.command("ping")
        statuses = migration_status(db, collection_names(mongo), log_ttl_seconds=mongo.log_ttl_seconds)
    except ConnectionFailure as exc:
        raise StoreUnavailable(
            f"MongoDB at {shown} ({_URI_SETTING}) did not answer within {timeout_ms / 1000:g}s: {reason(exc)}",
            remediation=f"check that the server is running and that {_URI_SETTING} names its host and port, "
            f"e.g. mongosh '{shown}' --eval 'db.runCommand({{ping: 1}})'; or unset TASKRUNNER_STORAGE__MODE "
            "to keep runs in the file store",
        ) from None
    except OperationFailure as exc:
        raise ConfigurationError(
            f"MongoDB at {shown} ({_URI_SETTING}) refused database {database}: {reason(exc)}",
            remediation=f"check the user, password and roles in {_URI_SETTING} (readWrite on {database})",
        ) from None
    except PyMongoError as exc:  # e.g. InvalidURI
        raise ConfigurationError(
            f"{_URI_SETTING} is not a usable MongoDB URI ({shown}): {reason(exc)}",
            remediation="use mongodb://[user:password@]host[:port]/database",
        ) from None
    finally:
        if client is not None:
            client.close()
    missing = [s for s in statuses if s.applied_at is None or s.pending]
    if missing:
        details = "; ".join(
            f"{s.id} " + ("not applied" if s.applied_at is None else f"{len(s.pending)} change(s) pending")
            for s in missing
        )
        raise ConfigurationError(
            f"the MongoDB database {database} at {shown} is not migrated ({details})",
            remediation="run `taskrunner db migrate` with the same TASKRUNNER_STORAGE__MONGO__* settings",
        )
