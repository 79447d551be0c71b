"""The MongoDB schema migration as a CloudFormation custom resource (``Custom::MongoMigration``).

Create and Update run the idempotent migration (``taskrunner db migrate``) against the configured database;
Delete changes nothing (the collections and their runs outlive the stack). Every request is answered, FAILED
with the reason when the migration fails or would outlast the function, so a deployment never hangs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from pymongo.errors import ConnectionFailure, PyMongoError

from taskrunner.aws.cfn_response import Status, response_body, send
from taskrunner.config import load_settings
from taskrunner.errors import TaskRunnerError
from taskrunner.observability import logger
from taskrunner.store import migrations
from taskrunner.store.factory import collection_names, open_mongo_database

PHYSICAL_ID = "taskrunner-mongo-schema"
ANSWER_MARGIN_SECONDS = 20.0  # to answer: 3 attempts of at most 4 s, 2 s and 4 s apart


def migrate_configured_database() -> str:
    """Run every migration on the configured MongoDB; a summary of what changed."""
    settings = load_settings()
    if settings.storage.mode != "mongo":
        return "storage mode is file: no database to migrate"
    mongo = settings.storage.mongo
    applied = migrations.migrate(
        open_mongo_database(mongo), collection_names(mongo), log_ttl_seconds=mongo.log_ttl_seconds
    )
    changes = sum(len(actions) for actions in applied.values())
    return f"{len(applied)} migration(s) checked, {changes} change(s) applied"


def _within(seconds: float, work: Callable[[], str]) -> str:
    """``work()``'s result, or TimeoutError when it has not finished after ``seconds``."""
    if seconds <= 0:
        raise TimeoutError("the migration did not finish: the function had no time left to run it")
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="mongo-migration", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"the migration did not finish within {seconds:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return str(outcome["result"])


def _failure(exc: BaseException) -> str:
    if isinstance(exc, TaskRunnerError):
        return f"{exc.message} (fix: {exc.remediation})" if exc.remediation else exc.message
    if isinstance(exc, TimeoutError):
        return f"{exc}; run `taskrunner db migrate` from a host that reaches the database, then deploy again"
    if isinstance(exc, ConnectionFailure):
        return (
            f"MongoDB is unreachable: {exc} (fix: check the connection string secret and that the "
            "functions' subnets and security groups reach the cluster)"
        )
    if isinstance(exc, PyMongoError):
        return f"MongoDB rejected the migration: {exc} (fix: the user needs createCollection, collMod, createIndex)"
    return f"the migration failed: {type(exc).__name__}: {exc}"


def on_event(request: Mapping[str, Any], remaining_ms: Callable[[], int]) -> dict[str, Any]:
    """Handle one custom resource request and answer CloudFormation; returns the answer sent."""
    request_type = request.get("RequestType")
    physical_id = str(request.get("PhysicalResourceId") or PHYSICAL_ID)
    status: Status = "SUCCESS"
    try:
        if request_type in ("Create", "Update"):
            reason = _within(remaining_ms() / 1000 - ANSWER_MARGIN_SECONDS, migrate_configured_database)
        elif request_type == "Delete":
            reason = "nothing to undo: the collections and their data are kept"
        else:
            raise TaskRunnerError(
                f"unknown RequestType {request_type!r}",
                remediation="invoke this function only as a CloudFormation custom resource",
            )
    except BaseException as exc:  # every failure is answered, never left to time out
        status, reason = "FAILED", _failure(exc)
        logger.error("mongo migration failed", extra={"requestType": request_type, "reason": reason})
    body = response_body(request, status, reason, physical_id)
    delivered = send(str(request.get("ResponseURL") or ""), body)
    logger.info(
        "custom resource answered", extra={"status": status, "reason": reason, "delivered": delivered}
    )
    return {**body, "Delivered": delivered}
