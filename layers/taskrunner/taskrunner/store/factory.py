"""The one composition point for run stores: settings in, a :class:`RunStore` out.

Each store's modules load only when it is selected: the file store (the local default) never loads pymongo,
a Lambda function on MongoDB never loads the file store.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from taskrunner.config import MongoSettings, Settings
from taskrunner.store.port import RunStore

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.database import Database

    from taskrunner.store.mongo_names import CollectionNames

MongoClientFactory = Callable[[str, "PoolOptions"], "MongoClient[dict[str, Any]]"]


class PoolOptions(NamedTuple):
    """Connection pool sizing (``TASKRUNNER_STORAGE__MONGO__MAX_POOL_SIZE`` / ``__MAX_IDLE_TIME_MS``)."""

    max_pool_size: int
    max_idle_time_ms: int

    @classmethod
    def of(cls, mongo: MongoSettings) -> PoolOptions:
        return cls(mongo.max_pool_size, mongo.max_idle_time_ms)


@functools.lru_cache(maxsize=4)
def _pymongo_client(connection_string: str, pool: PoolOptions) -> MongoClient[dict[str, Any]]:
    """One pooled client per URI and process (reused across Lambda invocations), sized for Lambda: no
    connection kept open for its own sake (minPoolSize 0), idle ones closed."""
    from pymongo import MongoClient

    return MongoClient(
        connection_string,
        appname="taskrunner",
        tz_aware=True,
        serverSelectionTimeoutMS=10_000,
        maxPoolSize=pool.max_pool_size,
        minPoolSize=0,
        maxIdleTimeMS=pool.max_idle_time_ms,
    )


mongo_client_factory: MongoClientFactory = _pymongo_client
"""Creates the MongoDB client for a connection string; tests replace it to inject a client."""


def collection_names(mongo: MongoSettings) -> CollectionNames:
    """The configured collection names."""
    from taskrunner.store.mongo_names import CollectionNames

    return CollectionNames(
        runs=mongo.runs_collection,
        logs=mongo.logs_collection,
        artifacts=mongo.artifacts_collection,
        approvals=mongo.approvals_collection,
        migrations=mongo.migrations_collection,
    )


def open_mongo_database(mongo: MongoSettings) -> Database[dict[str, Any]]:
    """The configured database (connection string fetched from Secrets Manager when configured so)."""
    from taskrunner.store.mongo_names import CODEC_OPTIONS

    connection_string = mongo.resolve_connection_string()
    client = mongo_client_factory(connection_string, PoolOptions.of(mongo))
    return client.get_database(mongo.database_name(connection_string), codec_options=CODEC_OPTIONS)


def open_store(settings: Settings) -> RunStore:
    """The run store selected by ``settings.storage.mode``."""
    if settings.storage.mode == "mongo":
        from taskrunner.store.mongo_store import MongoRunStore

        mongo = settings.storage.mongo
        return MongoRunStore(open_mongo_database(mongo), collection_names(mongo))
    from taskrunner.store.file_store import FileRunStore  # a Lambda on MongoDB never loads the file store

    return FileRunStore(settings.home)
