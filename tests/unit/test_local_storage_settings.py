"""The local runtime's storage settings: handed to every function as variables, shown without passwords."""

from __future__ import annotations

import os

import pytest
from taskrunner.config import load_settings, settings_environment
from taskrunner.local.lambda_runner import process_environment
from taskrunner.store.mongo_ready import redacted_uri


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (
            "mongodb://app:s3cr%40t@db1:27017,db2/runs?tls=true",
            "mongodb://***@db1:27017,db2/runs?tls=true",
        ),
        ("mongodb+srv://app:pw@cluster0.example.net/", "mongodb+srv://***@cluster0.example.net/"),
        ("mongodb://app@db:27017/runs", "mongodb://***@db:27017/runs"),
        ("mongodb://127.0.0.1:27017/runs", "mongodb://127.0.0.1:27017/runs"),
    ],
)
def test_a_uri_is_shown_without_its_user_information(uri: str, shown: str) -> None:
    assert redacted_uri(uri) == shown


def test_the_storage_variables_give_a_process_the_same_storage_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("TASKRUNNER_")]:
        monkeypatch.delenv(name)
    configured = {
        "TASKRUNNER_STORAGE__MODE": "mongo",
        "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING": "mongodb://app:pw@db:27017/runs",
        "TASKRUNNER_STORAGE__MONGO__RUNS_COLLECTION": "my_runs",
        "TASKRUNNER_STORAGE__MONGO__LOG_TTL_SECONDS": "3600",
    }
    with process_environment(configured):
        storage = load_settings().storage
    variables = settings_environment(storage, "storage")

    assert variables["TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING"] == "mongodb://app:pw@db:27017/runs"
    assert variables["TASKRUNNER_STORAGE__MONGO__DATABASE"] is None
    with process_environment(variables):
        assert load_settings().storage == storage
