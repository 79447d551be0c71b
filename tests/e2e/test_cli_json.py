"""``--json``: every command that prints data prints exactly one JSON document on stdout, and nothing else.

The run whose gate is decided runs as the console script in a subprocess (it waits while the other commands
decide it, as from another shell); every other command runs in-process against the same ``TASKRUNNER_HOME``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import mongomock_ng
import pytest
from conftest import REPO
from taskrunner.cli.app import app
from taskrunner.cli.reference import command_contexts
from taskrunner.local.devauth import mint_token
from taskrunner.store import factory
from taskrunner.store.migrations import MIGRATIONS
from test_cli_interactive import waiting_run
from test_restart_resume import Serve
from typer.testing import CliRunner

TASKRUNNER = str(Path(sys.executable).with_name("taskrunner"))
PACKS = REPO / "tests" / "fixtures" / "packs"
GROUPS = {"runs", "approvals", "keys", "db", "packs"}
NOT_DATA = {"serve"}
KEY_COMMANDS = {
    "approvals enrol",
    "approvals keys",
    "approvals confirm",
    "approvals revoke-key",
    "approvals policy",
}


class Json:
    """Runs commands with ``--json``; each must print one JSON document. Remembers which commands ran."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.covered: set[str] = set()

    def _note(self, args: tuple[str, ...]) -> None:
        self.covered.add(" ".join(args[:2] if args[0] in GROUPS else args[:1]))

    def cli(self, *args: str, code: int = 0) -> Any:
        """The document ``taskrunner ARGS --json`` prints (run in-process), once it exited with ``code``."""
        self._note(args)
        result = CliRunner().invoke(app, [*args, "--json"])
        assert result.exit_code == code, result.output
        return one_document(result.stdout)


def one_document(stdout: str) -> Any:
    """The single JSON document that is all of ``stdout`` (json.loads refuses anything after it)."""
    assert stdout.lstrip()[:1] in ("{", "["), stdout[:200]
    return json.loads(stdout)


def test_every_data_command_prints_one_json_document(tr_home: Path, tmp_path: Path) -> None:
    j = Json(tr_home)
    with waiting_run() as (waiting, run_id, _):  # a two-approver gate; decided below, online and offline
        request = tmp_path / "request.json"
        assert j.cli("approvals", "export", run_id, "signoff", "-o", str(request))["gateId"] == "signoff"
        first = j.cli("approve", run_id, "signoff", "--as", "bob")
        assert (first["approvals"], first["requiredCount"], first["status"]) == (1, 2, "waiting")
        key = tmp_path / "alice.pem"
        assert j.cli("keys", "generate", "--out", str(key))["path"] == str(key)
        public = j.cli("keys", "export-public", "--key", key.resolve().as_uri())["publicKeyPem"]
        (tmp_path / "alice.pub.pem").write_text(public)
        assert j.cli("approvals", "trust", "alice", str(tmp_path / "alice.pub.pem"))["approver"] == "alice"
        response = tmp_path / "response.json"
        j.cli("approvals", "sign", str(request), "--key", str(key), "--as", "alice", "-o", str(response))
        assert j.cli("approvals", "import", str(response))["status"] == "approved"
        out, _ = waiting.communicate(timeout=120)
    j.covered.add("run")
    assert one_document(out.decode())["status"] == "succeeded"

    assert [r["runId"] for r in j.cli("runs", "list")] == [run_id]
    assert j.cli("runs", "show", run_id)["status"] == "succeeded"
    assert j.cli("runs", "logs", run_id)[-1]["eventType"] == "run.completed"
    assert isinstance(j.cli("runs", "artifacts", run_id), list)
    assert [(row["runs"], row["approvals"], row["met"]) for row in j.cli("runs", "slo")] == [(1, 1, True)]
    bundle = tmp_path / "bundle.tar.gz"
    assert j.cli("runs", "export", run_id, "-o", str(bundle))["path"] == str(bundle)
    (tmp_path / "signing.pub").write_text(j.cli("keys", "export-public")["publicKeyPem"])
    # Only the signing key is trusted, not the approvers' keys: a failing report is still one document.
    report = j.cli("verify", str(bundle), "--trust", str(tmp_path / "signing.pub"), code=1)
    assert (report["ok"], report["summary"]["runId"]) == (False, run_id)

    pack = str(PACKS / "approval-gate.yaml")
    assert j.cli("validate", pack)["valid"] is True
    assert j.cli("plan", pack)["planHash"].startswith("sha256:")
    assert isinstance(j.cli("simulate", pack), list)
    assert "States" in j.cli("compile", pack)["definition"]
    assert j.cli("schema")["title"]
    assert j.cli("token", "--scopes", "packs.read", "--tenant", "local")["token"].count(".") == 2

    cancelled = j.cli("run", pack, "--no-wait", code=1)
    assert j.cli("runs", "cancel", cancelled["runId"])["status"] == "cancelled"
    failed = j.cli("run", str(PACKS / "failing-step.yaml"), code=1)
    assert j.cli("runs", "resume", failed["runId"], code=1)["status"] == "failed"

    every = {ctx.command_path.removeprefix("taskrunner ") for ctx in command_contexts()}
    data = {
        c
        for c in every
        if c != "taskrunner"
        and c not in GROUPS
        and c not in NOT_DATA
        and not c.startswith(("db ", "packs "))  # tests of their own
    }
    assert data - j.covered == KEY_COMMANDS  # against a server: the next test


def test_approver_key_commands_print_one_json_document(tr_home: Path, tmp_path: Path) -> None:
    j = Json(tr_home)
    assert (
        j.cli("approvals", "policy", "--tenant", "keys", "--enrolment", "confirm")["enrolment"] == "confirm"
    )
    server = Serve(tr_home, tmp_path / "serve.log").start()
    try:
        token = mint_token(["packs.approve"], "keys", {"sub": "nora"})
        api = ("--api", server.url, "--token", token)
        pending = j.cli("approvals", "enrol", *api, "--label", "cli")
        assert pending["status"] == "pending"
        assert [k["keyId"] for k in j.cli("approvals", "keys", *api)["items"]] == [pending["keyId"]]
        admin = ("--api", server.url, "--token", mint_token(["packs.admin"], "keys", {"sub": "omar"}))
        assert j.cli("approvals", "confirm", "nora", pending["keyId"], *admin)["status"] == "active"
        assert j.cli("approvals", "revoke-key", pending["keyId"], *api)["status"] == "revoked"
    finally:
        server.stop()
    assert j.covered == KEY_COMMANDS


def test_pack_registry_commands_print_one_json_document(tr_home: Path, tmp_path: Path) -> None:
    j = Json(tr_home)
    key = tmp_path / "publisher.pem"
    public = j.cli("keys", "generate", "--out", str(key))["publicKeyPem"]
    (tmp_path / "publisher.pub.pem").write_text(public)
    uri = key.resolve().as_uri()
    assert (
        j.cli("packs", "trust-publisher", "release", str(tmp_path / "publisher.pub.pem"))["publisher"]
        == "release"
    )
    assert j.cli("packs", "revoke", "--init", "--key", uri)["versions"] == []
    release = tmp_path / "release"
    digest = j.cli("packs", "build", str(REPO / "examples" / "packs" / "hello.yaml"), "--out", str(release))[
        "digest"
    ]
    assert j.cli("packs", "sign", str(release), "--key", uri)["envelope"].endswith("bundle.dsse.json")
    assert j.cli("packs", "publish", str(release))["digest"] == digest
    assert j.cli("packs", "promote", "hello", "1.0.0", "--channel", "edge")["channels"] == {"edge": "1.0.0"}
    assert [p["name"] for p in j.cli("packs", "list")] == ["hello"]
    assert j.cli("packs", "show", "hello", "1.0.0")["digest"] == digest
    assert j.cli("packs", "verify", "hello@edge")["digest"] == digest
    assert j.cli("packs", "revoke", "hello@1.0.0", "--key", uri)["versions"][0]["pack"] == "hello"
    every = {ctx.command_path.removeprefix("taskrunner ") for ctx in command_contexts()}
    assert {c for c in every if c.startswith("packs ")} <= j.covered


def test_db_commands_print_one_json_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client: Any = mongomock_ng.MongoClient()
    monkeypatch.setattr(factory, "mongo_client_factory", lambda uri, pool: client)
    monkeypatch.setenv(
        "TASKRUNNER_STORAGE__MONGO__CONNECTION_STRING", "mongodb://mongo.invalid:27017/jsontest"
    )
    for name in ("TASKRUNNER_CONFIG_FILE", "TASKRUNNER_STORAGE__MONGO__DATABASE", "TASKRUNNER_STORAGE__MODE"):
        monkeypatch.delenv(name, raising=False)
    j = Json(tmp_path)
    (tmp_path / "runs").mkdir()

    applied = j.cli("db", "migrate", "--skip-validators")
    assert all(isinstance(actions, list) for actions in applied.values())
    statuses = j.cli("db", "status")
    assert [status["id"] for status in statuses] == [migration.id for migration in MIGRATIONS]
    assert all(status["appliedAt"] is not None for status in statuses)
    assert j.cli("db", "import-fs", str(tmp_path))["runs_inserted"] == 0
