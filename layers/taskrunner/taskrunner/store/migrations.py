"""MongoDB schema migrations: collections with ``$jsonSchema`` validators, then indexes, unique first.

A migration is data (``<id>.json`` beside this module). :func:`migrate` compares the database with every
migration, applies only what is missing, and records each migration in the ledger collection, so a
second run changes nothing. :func:`migration_status` reports the same comparison without writing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any, Literal

from pymongo.database import Database
from pymongo.errors import CollectionInvalid, OperationFailure

from taskrunner.canonical import digest_of
from taskrunner.store.errors import MigrationFailed
from taskrunner.store.mongo_names import CODEC_OPTIONS, CollectionNames
from taskrunner.timeutil import utc_now

Document = dict[str, Any]
ActionKind = Literal["create-collection", "set-validator", "create-index", "set-ttl"]


@dataclass(frozen=True)
class IndexSpec:
    """An index of a collection; ``ttl`` marks the optional retention index (TTL off by default)."""

    keys: tuple[tuple[str, int], ...]
    unique: bool = False
    ttl: bool = False
    description: str = ""

    @property
    def name(self) -> str:
        """MongoDB's default name for these keys, e.g. ``runId_1_sequence_1``."""
        return "_".join(f"{key}_{direction}" for key, direction in self.keys)


@dataclass(frozen=True)
class CollectionSpec:
    role: str  # runs | logs | artifacts | approvals (see CollectionNames)
    validator: Document
    indexes: tuple[IndexSpec, ...]


@dataclass(frozen=True)
class Migration:
    id: str
    description: str
    collections: tuple[CollectionSpec, ...]
    checksum: str

    @classmethod
    def load(cls, resource: str) -> Migration:
        """Load a migration shipped as JSON data in this package."""
        data = json.loads(resources.files("taskrunner.store").joinpath(resource).read_text(encoding="utf-8"))
        collections = tuple(
            CollectionSpec(
                role=c["role"],
                validator=c["validator"],
                indexes=tuple(
                    IndexSpec(
                        keys=tuple((k, int(d)) for k, d in i["keys"]),
                        unique=i.get("unique", False),
                        ttl=i.get("ttl", False),
                        description=i.get("description", ""),
                    )
                    for i in c["indexes"]
                ),
            )
            for c in data["collections"]
        )
        return cls(data["id"], data["description"], collections, digest_of(data))


BASELINE = Migration.load("20251106-task-runner-baseline.json")
QUEUE_DEPTH = Migration.load("20261130-runs-queue-depth.json")
MIGRATIONS: tuple[Migration, ...] = (BASELINE, QUEUE_DEPTH)


@dataclass(frozen=True)
class Action:
    """One change a migration still has to make."""

    kind: ActionKind
    collection: str
    index: IndexSpec | None = None
    options: Document = field(default_factory=dict)

    def __str__(self) -> str:
        target = f"{self.collection}.{self.index.name}" if self.index else self.collection
        suffix = " (unique)" if self.index and self.index.unique else ""
        return f"{self.kind} {target}{suffix}"


@dataclass(frozen=True)
class MigrationStatus:
    """What is applied of a migration: its ledger entry and the actions still missing."""

    id: str
    applied_at: datetime | None  # when the ledger recorded it; None when never applied
    pending: tuple[Action, ...]


def _validator_options(validator: Document) -> Document:
    return {"validator": validator, "validationLevel": "strict", "validationAction": "error"}


def _index_keys(info: Document) -> tuple[tuple[str, int], ...]:
    return tuple((k, int(d)) for k, d in info["key"])


def plan_actions(
    db: Database[Document],
    migration: Migration,
    names: CollectionNames,
    *,
    validators: bool = True,
    log_ttl_seconds: int | None = None,
) -> list[Action]:
    """The actions that bring ``db`` to ``migration``: collections, then unique indexes, then the rest."""
    existing = set(db.list_collection_names())
    collections: list[Action] = []
    unique: list[Action] = []
    other: list[Action] = []
    for spec in migration.collections:
        name = names.of(spec.role)
        collection = db.get_collection(name)
        if name not in existing:
            options = _validator_options(spec.validator) if validators else {}
            collections.append(Action("create-collection", name, options=options))
        elif validators and collection.options().get("validator") != spec.validator:
            collections.append(Action("set-validator", name, options=_validator_options(spec.validator)))
        current = {
            _index_keys(info): (index_name, info)
            for index_name, info in collection.index_information().items()
        }
        for index in spec.indexes:
            ttl = log_ttl_seconds if index.ttl else None
            index_name, info = current.get(index.keys, (index.name, None))
            if info is None:
                options = {"expireAfterSeconds": ttl} if ttl is not None else {}
                (unique if index.unique else other).append(Action("create-index", name, index, options))
            elif bool(info.get("unique", False)) != index.unique:
                raise MigrationFailed(
                    f"index {index_name} of {name} exists with unique={not index.unique}",
                    remediation=f"drop that index (db.{name}.dropIndex(...)) and run `taskrunner db migrate` again",
                )
            elif index.ttl and info.get("expireAfterSeconds") != ttl:
                other.append(Action("set-ttl", name, index, {"expireAfterSeconds": ttl}))
    return collections + unique + other


def _apply(db: Database[Document], action: Action) -> None:
    if action.kind == "create-collection":
        try:
            db.create_collection(action.collection, **action.options)
        except CollectionInvalid:  # created concurrently
            if action.options:
                db.command({"collMod": action.collection, **action.options})
    elif action.kind == "set-validator":
        db.command({"collMod": action.collection, **action.options})
    elif action.kind == "create-index":
        assert action.index is not None
        db.get_collection(action.collection).create_index(
            list(action.index.keys), name=action.index.name, unique=action.index.unique, **action.options
        )
    else:  # set-ttl: change (or switch off) retention on the existing index
        assert action.index is not None
        ttl = action.options["expireAfterSeconds"]
        if ttl is None:
            raise MigrationFailed(
                f"TTL of {action.collection}.{action.index.name} cannot be switched off in place",
                remediation=f"drop index {action.index.name} and run `taskrunner db migrate` again",
            )
        index = {"keyPattern": dict(action.index.keys), "expireAfterSeconds": ttl}
        db.command({"collMod": action.collection, "index": index})


UNAUTHORIZED = 13
COMMAND_NOT_FOUND = 59
_COMMAND = re.compile(r"(?:no such (?:cmd|command)|unsupported wire command|unrecognized command):? '?(\w+)")
_SCHEMA_KEYWORD = re.compile(r"\$jsonSchema(?: keyword)?:? '?([A-Za-z$]+)")


def refusal(exc: OperationFailure, doing: str, *, kind: ActionKind | None = None) -> MigrationFailed:
    """What the server refused while ``doing`` (e.g. ``create-collection pack_runs``), named by its cause:
    a missing privilege, a command or ``$jsonSchema`` keyword the server does not implement, or else the
    server's own message."""
    details = exc.details or {}
    reason = str(details.get("errmsg") or exc)
    code = f" (code {exc.code})" if exc.code is not None else ""
    if exc.code == UNAUTHORIZED or details.get("codeName") == "Unauthorized" or "not authorized" in reason:
        return MigrationFailed(
            f"MongoDB refused {doing}: the user is not authorized ({reason})",
            remediation="grant the database user the privileges createCollection, collMod, createIndex, listIndexes",
        )
    command = _COMMAND.search(reason)
    if exc.code == COMMAND_NOT_FOUND or command:
        name = command.group(1) if command else "a command"
        if kind == "set-ttl":
            remediation = f"drop the index it changes and run `taskrunner db migrate` again (creating it needs no {name})"
        elif kind in ("create-collection", "set-validator"):
            remediation = (
                "run `taskrunner db migrate --skip-validators`, or use a MongoDB server that implements it"
            )
        else:
            remediation = f"use a MongoDB server that implements {name}"
        return MigrationFailed(
            f"MongoDB refused {doing}: the server does not support the {name} command ({reason})",
            remediation=remediation,
        )
    keyword = _SCHEMA_KEYWORD.search(reason)
    if keyword:
        return MigrationFailed(
            f"MongoDB refused {doing}: the server does not support the $jsonSchema keyword "
            f"{keyword.group(1)} of its validator ({reason}{code})",
            remediation="run `taskrunner db migrate --skip-validators` (the store does not rely on validators), "
            "or use a MongoDB server that implements the keyword",
        )
    return MigrationFailed(
        f"MongoDB refused {doing}: {reason}{code}",
        remediation="fix what the server reports, then run `taskrunner db migrate` again",
    )


def migrate(
    db: Database[Document],
    names: CollectionNames,
    *,
    validators: bool = True,
    log_ttl_seconds: int | None = None,
) -> dict[str, list[Action]]:
    """Apply every migration idempotently; returns the actions applied per migration id."""
    ledger = db.get_collection(names.migrations, codec_options=CODEC_OPTIONS)
    applied: dict[str, list[Action]] = {}
    for migration in MIGRATIONS:
        actions = plan_actions(db, migration, names, validators=validators, log_ttl_seconds=log_ttl_seconds)
        for action in actions:
            try:
                _apply(db, action)
            except OperationFailure as exc:
                raise refusal(exc, str(action), kind=action.kind) from exc
        if actions or ledger.find_one({"_id": migration.id}, {"_id": 1}) is None:
            ledger.replace_one(
                {"_id": migration.id},
                {
                    "description": migration.description,
                    "checksum": migration.checksum,
                    "appliedAt": utc_now(),
                    "collections": {spec.role: names.of(spec.role) for spec in migration.collections},
                    "validators": validators,
                    "logTtlSeconds": log_ttl_seconds,
                },
                upsert=True,
            )
        applied[migration.id] = actions
    return applied


def migration_status(
    db: Database[Document], names: CollectionNames, *, log_ttl_seconds: int | None = None
) -> list[MigrationStatus]:
    """Each migration's ledger entry and what is missing (validators checked when they were applied)."""
    ledger = db.get_collection(names.migrations, codec_options=CODEC_OPTIONS)
    statuses = []
    for migration in MIGRATIONS:
        entry = ledger.find_one({"_id": migration.id})
        validators = bool(entry.get("validators", True)) if entry else True
        pending = plan_actions(db, migration, names, validators=validators, log_ttl_seconds=log_ttl_seconds)
        statuses.append(
            MigrationStatus(migration.id, entry.get("appliedAt") if entry else None, tuple(pending))
        )
    return statuses
