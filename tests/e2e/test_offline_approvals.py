"""The offline approval round trip with the CLI: export a request, sign it on a disconnected machine with a
key from ``taskrunner keys generate``, import the response; the run completes and the ledger holds it.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from taskrunner.evidence.signing import file_signer
from test_http_api import (
    GATE,
    READ,
    RUN,
    gated_pack,
    log_events,
    read_url,
    run_detail,
    started,
    step_of,
    user_token,
)
from test_restart_resume import TENANT, Serve, cli

APPROVER = "olivia"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One TASKRUNNER_HOME for the module (tokens minted here are verified by the servers started on it)."""
    import os

    path = tmp_path_factory.mktemp("offline") / "home"
    path.mkdir()
    previous = os.environ.get("TASKRUNNER_HOME")
    os.environ["TASKRUNNER_HOME"] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("TASKRUNNER_HOME", None)
        else:
            os.environ["TASKRUNNER_HOME"] = previous


@pytest.fixture(scope="module")
def approver_key(home: Path) -> Path:
    """A key from ``keys generate --out`` on the approver's machine; its public key trusted with ``approvals trust``."""
    key = home.parent / "offline-machine" / f"{APPROVER}.pem"
    key.parent.mkdir()
    cli(home, "keys", "generate", "--out", str(key))
    public = home.parent / f"{APPROVER}.pub.pem"
    public.write_text(file_signer(key).public_key_pem, encoding="utf-8")  # what the approver hands over
    trusted = cli(home, "approvals", "trust", APPROVER, str(public), "--tenant", TENANT)
    assert APPROVER in trusted.stdout
    return key


@pytest.fixture
def server(home: Path, tmp_path: Path) -> Iterator[Serve]:
    serve = Serve(home, tmp_path / "serve.log").start()
    try:
        yield serve
    finally:
        serve.kill()


def waiting_run(server: Serve, tmp_path: Path) -> dict[str, Any]:
    token = user_token(TENANT, READ, RUN)
    run = started(server.api, token, gated_pack("offline"))
    wait_for(
        lambda: any(g["gateId"] == GATE for g in run_detail(server.api, token, run["runId"])["pendingGates"]),
        timeout=60,
    )
    return run


def export_and_sign(home: Path, key: Path, run: dict[str, Any], tmp_path: Path) -> Path:
    request = tmp_path / "request.json"
    response = tmp_path / "response.json"

    cli(home, "approvals", "export", run["runId"], GATE, "-o", str(request))
    exported = json.loads(request.read_text(encoding="utf-8"))
    assert (exported["runId"], exported["gateId"], exported["planHash"], exported["tenantId"]) == (
        run["runId"],
        GATE,
        run["planHash"],
        TENANT,
    )
    assert (exported["status"], exported["requiredCount"], exported["grants"]) == (
        "waiting",
        1,
        ["packs.approve"],
    )
    assert "taskToken" not in request.read_text(encoding="utf-8")  # the token never leaves the server

    # signing needs only the request file and the key: run it away from the project and from its home
    disconnected = key.parent
    signed = cli(
        disconnected / "home",
        *(
            "approvals",
            "sign",
            str(request),
            "--key",
            str(key),
            "-o",
            str(response),
            "--reason",
            "checked offline",
        ),
        cwd=disconnected,
    )
    assert str(response) in signed.stdout
    answer = json.loads(response.read_text(encoding="utf-8"))
    assert (answer["approver"], answer["decision"], answer["runId"]) == (APPROVER, "approve", run["runId"])
    return response


def ledger_of(bundle: bytes) -> list[dict[str, Any]]:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as archive:
        member = archive.extractfile("approvals/ledger.jsonl")
        assert member is not None
        lines = member.read().decode("utf-8").splitlines()
    return [json.loads(base64.b64decode(json.loads(line)["payload"])) for line in lines]


def test_offline_round_trip_then_runs_resume(
    home: Path, approver_key: Path, server: Serve, tmp_path: Path
) -> None:
    run = waiting_run(server, tmp_path)
    server.stop()  # nobody holds the run any more
    response = export_and_sign(home, approver_key, run, tmp_path)

    forged = tmp_path / "forged.json"
    tampered = json.loads(response.read_text(encoding="utf-8"))
    tampered["decision"] = "reject"  # not what was signed
    forged.write_text(json.dumps(tampered), encoding="utf-8")
    refused = cli(home, "approvals", "import", str(forged), check=False)
    assert refused.returncode != 0
    assert "sign" in (refused.stderr + refused.stdout).lower()

    imported = cli(home, "approvals", "import", str(response), "--json")
    assert json.loads(imported.stdout)["status"] == "approved"
    resumed = cli(home, "runs", "resume", run["runId"], "--json", check=False)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout

    final = json.loads(resumed.stdout)
    assert final["status"] == "succeeded"
    steps = {s["stepId"]: (s["status"], s["attempts"]) for s in final["steps"]}
    assert steps["before"] == ("succeeded", 1)
    assert steps["after"] == ("succeeded", 1)
    assert steps[GATE][0] == "approved"
    [decision] = ledger_of(read_url(final["evidence"]["location"]))
    assert (decision["approver"], decision["decision"], decision["reason"], decision["gateId"]) == (
        APPROVER,
        "approve",
        "checked offline",
        GATE,
    )
    assert (decision["runId"], decision["planHash"], decision["tenantId"]) == (
        run["runId"],
        run["planHash"],
        TENANT,
    )


def test_import_while_serve_holds_the_run_completes_it(
    home: Path, approver_key: Path, server: Serve, tmp_path: Path
) -> None:
    run = waiting_run(server, tmp_path)
    response = export_and_sign(home, approver_key, run, tmp_path)

    imported = cli(home, "approvals", "import", str(response), "--json")  # another process than the server

    assert json.loads(imported.stdout)["status"] == "approved"
    token = user_token(TENANT, READ, RUN)
    final = wait_for(
        lambda: (d := run_detail(server.api, token, run["runId"]))["status"] in ("succeeded", "failed") and d,
        timeout=60,
    )
    assert final["status"] == "succeeded", final
    assert step_of(final, GATE)["status"] == "approved"
    events = log_events(server.api, token, run["runId"])
    approved = [e for e in events if e["eventType"] == "gate.approved"]
    assert [e["metadata"]["approver"] for e in approved] == [APPROVER]
    assert [e.get("stepId") for e in events if e["eventType"] == "step.started"] == ["before", "after"]
