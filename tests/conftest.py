"""Shared fixtures: an isolated TASKRUNNER_HOME, a running local runtime (moto + in-process handlers) and the
MongoDB wire server (one per test process)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKS = REPO / "examples" / "packs"


@pytest.fixture
def tr_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``TASKRUNNER_HOME`` for one test."""
    home = tmp_path / "taskrunner-home"
    monkeypatch.setenv("TASKRUNNER_HOME", str(home))
    return home


MONGO_WIRE = pytest.mark.xdist_group("mongo-wire")
"""Marks what uses the wire server: under ``--dist loadgroup`` one worker starts it for all of them."""


@pytest.fixture(scope="session")
def mongo_wire_uri() -> Iterator[str]:
    """The MongoDB wire server's connection string; skipped where ``.venv-mongo`` is missing, except in CI."""
    from support.mongo_wire import MISSING, available, mongo_server

    if not available():
        pytest.skip(MISSING)
    with mongo_server() as uri:
        yield uri


@pytest.fixture(scope="session")
def mongo_wire_client(mongo_wire_uri: str) -> Iterator[Any]:
    """One pymongo client of the wire server per test process."""
    import pymongo

    client: Any = pymongo.MongoClient(mongo_wire_uri, serverSelectionTimeoutMS=5000)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def mongo_wire_database(
    mongo_wire_uri: str, mongo_wire_client: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """A fresh database on the wire server, named by ``TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING`` (the store
    factory hands out the session's client); dropped afterwards."""
    from support.mongo_wire import database_uri
    from taskrunner.store import factory
    from taskrunner.store.mongo_names import CODEC_OPTIONS

    name = f"t_{uuid.uuid4().hex[:12]}"
    monkeypatch.setattr(factory, "mongo_client_factory", lambda uri, pool: mongo_wire_client)
    monkeypatch.setenv("TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING", database_uri(mongo_wire_uri, name))
    try:
        yield mongo_wire_client.get_database(name, codec_options=CODEC_OPTIONS)
    finally:
        mongo_wire_client.drop_database(name)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local runtime per test module, with moto's Retry/Wait sleeps scaled down 100x."""
    from support.clock import fast_clock
    from taskrunner.local.runtime import LocalRuntime

    home = tmp_path_factory.mktemp("runtime-home")
    previous = os.environ.get("TASKRUNNER_HOME")
    os.environ["TASKRUNNER_HOME"] = str(home)
    try:
        with fast_clock(0.01), LocalRuntime(home) as rt:
            yield rt
    finally:
        if previous is None:
            os.environ.pop("TASKRUNNER_HOME", None)
        else:
            os.environ["TASKRUNNER_HOME"] = previous


def submit(
    rt: Any, manifest: str | Path, inputs: dict[str, Any] | None = None, tenant: str = "local", **kwargs: Any
) -> Any:
    """Submit a pack (text or path) to a running local runtime; returns the run record."""
    from taskrunner.engine.submit import submit_run

    text = manifest.read_text(encoding="utf-8") if isinstance(manifest, Path) else manifest
    return submit_run(rt.svc, tenant_id=tenant, manifest=text, inputs=inputs or {}, **kwargs).run


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def wait_for_step(rt: Any, run_id: str, step_id: str, status: str, timeout: float = 30.0) -> Any:
    return wait_for(
        lambda: (r := rt.svc.store.get_run(run_id, None)).step(step_id).status == status and r, timeout
    )


def eventbridge_scheduled_event(rule_arn: str, event_id: str, fired_at: str) -> dict[str, Any]:
    """What EventBridge emits when a schedule rule fires (before the target's input transformation)."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": fired_at,
        "region": "us-east-1",
        "resources": [rule_arn],
        "detail": {},
    }


def transform_input(transformer: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """Apply a resolved EventBridge ``InputTransformer`` to ``event``: each ``InputPathsMap`` path (dot
    notation) is looked up, then ``"<key>"`` in the template takes the string and a bare ``<key>`` the JSON value.
    """
    import json
    import re

    text = transformer["InputTemplate"]
    for key, path in transformer["InputPathsMap"].items():
        assert re.fullmatch(r"\$(\.[A-Za-z0-9_-]+)+", path), f"not a dot-notation path: {path}"
        value: Any = event
        for part in path.split(".")[1:]:
            value = value[part]
        text = text.replace(f'"<{key}>"', json.dumps(str(value))).replace(f"<{key}>", json.dumps(value))
    result: dict[str, Any] = json.loads(text)
    return result
