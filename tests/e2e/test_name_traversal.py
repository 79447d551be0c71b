"""Every user-controlled name x hostile values: refused with a clear error, and nothing outside the run's own
prefix is created or changed - in the file artifact store and in S3 (moto), through the real entry points."""

from __future__ import annotations

import hashlib
import io
import json
import re
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import submit
from moto import mock_aws
from taskrunner.aws.s3_artifacts import S3ArtifactStore
from taskrunner.cli.app import app
from taskrunner.engine.packs import pack_key
from taskrunner.evidence.signing import generate_ed25519_keyfile
from taskrunner.keys import InvalidName, artifact_key, evidence_key, object_key, trust_key
from taskrunner.local.api_routes import api_routes
from taskrunner.local.devauth import mint_token
from taskrunner.local.http_server import serve
from taskrunner.store.file_artifacts import FileArtifactStore
from test_http_api import APPROVE, GATE, READ, RUN, Api, decision_body, gated_pack, started, wait_waiting
from typer.testing import CliRunner

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

HOSTILE = {
    "dotdot": "..",
    "dotdot-slash": "../x",
    "inner-dotdot": "a/../../b",
    "absolute": "/abs",
    "percent-encoded": "%2e%2e%2f",
    "backslash": "..\\x",
    "nul": "a\x00b",
    "newline": "a\nb",
    "trailing-newline": "ok\n",
    "fullwidth-dots": "\uff0e\uff0e\uff0f",
    "overlong": "x" * 300,
    "empty": "",
    "leading-dot": ".hidden",
    "leading-dash": "-rf",
    "space": "a b",
}
CASES = list(HOSTILE.items())
TENANT = "names"


def ids(case: tuple[str, str]) -> str:
    return case[0]


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its content digest."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------------------------------ the joiner
JOINERS: dict[str, Callable[[str], str]] = {
    "artifact name": lambda v: artifact_key("r1", v),
    "run id (artifact)": lambda v: artifact_key(v, "report"),
    "run id (evidence)": evidence_key,
    "tenant (trust)": lambda v: trust_key(v, "bob"),
    "approver (trust)": lambda v: trust_key("t1", v),
    "packRef name": lambda v: pack_key(f"{v}@1.0.0"),
    "packRef version": lambda v: pack_key(f"hello@{v}"),
    "packRef path": lambda v: pack_key(f"{v}.yaml"),
    "segment": lambda v: object_key("runs", v),
}


@pytest.mark.parametrize("joiner", list(JOINERS))
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_the_joiner_refuses_every_hostile_name(joiner: str, case: tuple[str, str]) -> None:
    name, value = case
    if joiner == "artifact name" and name == "percent-encoded":
        value = "%2e%2e%2f"  # '%' is outside every character set
    with pytest.raises(InvalidName) as caught:
        JOINERS[joiner](value)
    assert caught.value.status == 422
    assert caught.value.remediation  # says how to fix it


def test_the_joiner_builds_keys_from_valid_names() -> None:
    assert artifact_key("r1", "reports/summary.json") == "runs/r1/artifacts/reports/summary.json"
    assert artifact_key("r1", "scan[2]::report") == "runs/r1/artifacts/scan[2]::report"
    assert evidence_key("20261122T223015Z-9f2c4e1a") == "evidence/20261122T223015Z-9f2c4e1a.tar.gz"
    assert trust_key("acme", "alice+ops@example.com") == "trust/acme/alice+ops@example.com.pem"
    assert pack_key("air-gap-import@1.2.0") == "packs/air-gap-import/1.2.0.yaml"
    assert pack_key("packs/hello.yaml") == pack_key("hello.yaml") == "packs/hello.yaml"


# ------------------------------------------------------------------------------------------ the stores
RAW_KEYS = [
    "runs/r1/artifacts/../../r2/artifacts/report",
    "runs/r1/artifacts/../../../evidence/r2.tar.gz",
    "runs/r1/artifacts/../../../trust/t2/x.pem",
    "runs/r1/artifacts/../../../packs/p/1.0.0.yaml",
    "/abs/x",
    "runs//x",
    "runs/r1/",
    "",
    *(f"runs/r1/artifacts/{value}" for value in HOSTILE.values() if "/" not in value),
]


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Callable[[], set[str]]]]:
    """An artifact store and a function listing every key it holds."""
    if request.param == "file":
        root = tmp_path / "objects"
        root.mkdir()
        yield FileArtifactStore(root), lambda: set(tree(tmp_path))
        return
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="artifacts")

        def keys() -> set[str]:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket="artifacts")
            return {o["Key"] + o["ETag"] for page in pages for o in page.get("Contents", [])}

        yield S3ArtifactStore(s3, "artifacts"), keys


def test_stores_refuse_keys_the_joiner_did_not_make(store: tuple[Any, Callable[[], set[str]]]) -> None:
    artifacts, listing = store
    artifacts.put_bytes(artifact_key("r2", "report"), b"theirs", "text/plain")
    before = listing()

    for key in RAW_KEYS:
        for call, args in (
            (artifacts.put_bytes, (key, b"mine", "text/plain")),
            (artifacts.put_stream, (key, io.BytesIO(b"mine"), "text/plain")),
            (artifacts.open, (key,)),
            (artifacts.presign, (key,)),
            (artifacts.location, (key,)),
        ):
            with pytest.raises(InvalidName):
                call(*args)

    assert listing() == before
    assert artifacts.open(artifact_key("r2", "report")).read() == b"theirs"


# ------------------------------------------------------------------------------------------ plan time
def manifest(*, step: str = "write", gate: str = "review", name: str = "names", version: str = "1.0.0",
             artifact: str = "report.txt", bundle: str = "/data/bundle.tar") -> str:  # fmt: skip
    q = json.dumps  # a JSON string is a YAML double-quoted scalar
    return f"""\
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {{name: {q(name)}, version: {q(version)}}}
spec:
  approvals: [{{id: sign-off, grants: [packs.approve], expiresAfter: PT1H}}]
  sandbox: {{mode: sealed, egressAllowlist: []}}
  steps:
    - id: {q(step)}
      run: {{uses: artifact.write, with: {{name: {q(artifact)}, content: x}}}}
    - id: {q(gate)}
      gate.approval: {{approval: sign-off}}
    - id: ingest
      run: {{uses: bundle.ingest, with: {{path: {q(bundle)}, checksumSha256: "{"a" * 64}"}}}}
"""


STATIC_FIELDS: dict[str, Callable[[str], str]] = {
    "step id": lambda v: manifest(step=v),
    "gate id": lambda v: manifest(gate=v),
    "pack name": lambda v: manifest(name=v),
    "pack version": lambda v: manifest(version=v),
    "artifact name": lambda v: manifest(artifact=v),
    "artifact name template": lambda v: manifest(artifact=v + "{{ run.id }}"),
    "bundle file name": lambda v: manifest(bundle="/data/" + v),
}


def static_cases() -> Iterator[Any]:
    for field, build in STATIC_FIELDS.items():
        for name, value in CASES:
            if field == "bundle file name" and ("/" in value or not value):
                continue  # only the last path component is staged (bundles/<sha>/<file name>)
            if field == "artifact name template" and name == "empty":
                continue  # '{{ run.id }}' alone is a run-time name
            yield pytest.param(build(value), id=f"{field}-{name}")


@pytest.mark.parametrize("text", list(static_cases()))
def test_plan_refuses_a_hostile_static_name_with_its_position(tmp_path: Path, text: str) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")

    result = CliRunner(env={"TASKRUNNER_HOME": str(tmp_path / "home")}).invoke(app, ["plan", str(path)])

    assert result.exit_code == 1, result.stdout
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: (spec|metadata)\.", result.stderr), result.stderr
    assert "(hint: " in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "objects").exists()


def test_plan_accepts_the_same_pack_with_valid_names(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(manifest(artifact="reports/{{ run.id }}.txt"), encoding="utf-8")
    result = CliRunner(env={"TASKRUNNER_HOME": str(tmp_path / "home")}).invoke(app, ["plan", str(path)])
    assert result.exit_code == 0, result.stderr


# ------------------------------------------------------------------------------------------ over HTTP
@pytest.fixture(scope="module")
def api(runtime: Any) -> Iterator[Api]:
    server = serve(api_routes(runtime), port=0, poll_interval=0.05).start()
    token()  # creates the development signing key before any snapshot of the home
    try:
        yield Api(server.url)
    finally:
        server.shutdown()


def token(*scopes: str, **claims: str) -> str:
    return mint_token(scopes or (READ, RUN), TENANT, claims)


def assert_problem(reply: Any, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.content_type.startswith("application/problem+json")
    body: dict[str, Any] = reply.json()
    assert body["code"] == code, body
    assert body["remediation"], body
    return body


@pytest.mark.parametrize("field", ["step id", "pack version", "artifact name", "bundle file name"])
def test_submit_refuses_hostile_static_names_and_stores_nothing(api: Api, runtime: Any, field: str) -> None:
    before = tree(runtime.home)
    for name, value in CASES:
        if field == "bundle file name" and ("/" in value or not value):
            continue
        reply = api.post("/api/runs", token(), {"manifest": STATIC_FIELDS[field](value), "inputs": {}})
        body = assert_problem(reply, 422, "InvalidPack")
        [error] = body["errors"]  # the one hostile field, with its position and a hint
        assert re.match(r"(spec|metadata)\.", error["path"]), (name, body)
        assert error["line"] > 1, (name, body)
        assert error["hint"], (name, body)
    assert tree(runtime.home) == before


PACK_REFS = [
    *(f"{v}.yaml" for v in HOSTILE.values()),
    *(f"hello@{v}" for v in HOSTILE.values()),
    *(f"{v}@1.0.0" for v in HOSTILE.values()),
    "../../trust/names/mallory.yaml",
    "packs/../../evidence/x.json",
    "hello",
]


def test_submit_refuses_a_hostile_pack_ref_and_stores_nothing(api: Api, runtime: Any) -> None:
    before = tree(runtime.home)
    for ref in PACK_REFS:
        reply = api.post("/api/runs", token(), {"packRef": ref, "inputs": {}})
        assert_problem(reply, 422, "InvalidName")
    assert tree(runtime.home) == before
    assert (
        api.post("/api/runs", token(), {"packRef": "nowhere@1.0.0"}).status == 404
    )  # a valid ref is looked up


RUN_ROUTES = [
    ("GET", "/api/runs/{}"),
    ("GET", "/api/runs/{}/logs"),
    ("GET", "/api/runs/{}/artifacts"),
    ("GET", "/api/runs/{}/evidence"),
    ("POST", "/api/runs/{}/cancel"),
    ("POST", "/api/runs/{}/resume"),
    ("POST", "/api/runs/{}/gates/review/approval-token"),
    ("POST", "/api/runs/some-run/gates/{}/approval-token"),  # a hostile gate id
]


@pytest.mark.parametrize(("method", "route"), RUN_ROUTES)
def test_run_routes_refuse_hostile_run_ids(api: Api, runtime: Any, method: str, route: str) -> None:
    auth = token(READ, RUN, APPROVE)
    body = {"gateId": GATE, "decision": "approve", "planHash": "sha256:" + "0" * 64, "envelope": {}}
    before = tree(runtime.home)
    for name, value in [*CASES, ("encoded-traversal", "..%2f..%2fevidence")]:
        path = route.format(value if "%" in value else urllib.parse.quote(value, safe=""))
        reply = api.call(method, path, auth, body if method == "POST" else None)
        assert reply.status in (404, 405, 422), (name, reply.status, reply.body)
        assert reply.content_type.startswith("application/problem+json"), (name, reply.body)
        if reply.status == 422 and name != "empty":
            assert reply.json()["code"] in ("InvalidName", "ValidationFailed"), reply.body
    assert tree(runtime.home) == before


def test_an_approver_sub_outside_its_character_set_is_forbidden(api: Api, runtime: Any) -> None:
    run = started(api, token(), gated_pack("subjects"))
    wait_waiting(api, token(), run["runId"])
    body = decision_body(runtime, TENANT, "bob", run["runId"], run["planHash"])
    exchange = f"/api/runs/{run['runId']}/gates/{GATE}/approval-token"
    objects = runtime.home / "objects"
    before = tree(objects)

    for name, value in [*CASES, ("padded", " bob"), ("trailing-space", "bob ")]:
        exchanged = api.post(exchange, token(APPROVE, sub=value), {})
        if name == "empty":
            assert exchanged.status == 401, exchanged.body  # no subject at all
            continue
        assert exchanged.status == 200, exchanged.body  # the approval token carries the same subject
        reply = api.post(f"/api/runs/{run['runId']}/approve", exchanged.json()["token"], body)
        problem = assert_problem(reply, 403, "Forbidden")
        assert "'sub'" in problem["detail"], problem

    assert tree(objects) == before
    assert wait_waiting(api, token(), run["runId"])  # still waiting: nothing was decided
    bob = api.post(exchange, token(APPROVE, sub="bob"), {}).json()["token"]
    reply = api.post(f"/api/runs/{run['runId']}/approve", bob, body)
    assert reply.status == 200, reply.body
    assert runtime.wait(run["runId"], timeout=30).status == "succeeded"


# ------------------------------------------------------------------------------------------ run time
RUNTIME_PACK = """\
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: run-time-names, version: 1.0.0}
spec:
  inputs:
    - {name: names, type: array}
    - {name: bundles, type: array}
    - {name: suffix, type: string}
  failure: {retries: {maxAttempts: 3}}
  sandbox: {mode: sealed, egressAllowlist: []}
  steps:
    - id: prefixed
      continueOnError: true
      run: {uses: artifact.write, with: {name: "reports/{{ inputs.suffix }}", content: x}}
    - id: names
      map:
        items: "{{ inputs.names }}"
        maxParallel: 8
        step:
          id: put
          continueOnError: true
          run: {uses: artifact.write, with: {name: "{{ item }}", content: "{{ item }}"}}
    - id: bundles
      map:
        items: "{{ inputs.bundles }}"
        maxParallel: 8
        step:
          id: ingest
          continueOnError: true
          run: {uses: bundle.ingest, with: {path: "{{ item.path }}", checksumSha256: "{{ item.sha }}"}}
"""
FILE_NAMES = {  # names a file on disk can have
    "leading-dot": ".hidden",
    "leading-dash": "-rf",
    "space": "a b",
    "newline": "a\nb",
    "fullwidth-dots": "\uff0e\uff0e\uff0f",
    "percent-encoded": "%2e%2e%2f",
    "backslash": "..\\x",
    "overlong": "x" * 200,
}


def test_run_time_names_are_refused_without_retry_and_stay_in_the_run(runtime: Any, tmp_path: Path) -> None:
    names = [
        *HOSTILE.values(),
        "../../../evidence/other.tar.gz",
        "../../../trust/names/mallory.pem",
        "ok.txt",
    ]
    bundles = []
    for index, file_name in enumerate([*FILE_NAMES.values(), "ok.tar"]):
        folder = tmp_path / str(index)
        folder.mkdir()
        (folder / file_name).write_bytes(file_name.encode())
        bundles.append(
            {"path": str(folder / file_name), "sha": hashlib.sha256(file_name.encode()).hexdigest()}
        )
    objects = runtime.home / "objects"
    objects.mkdir(exist_ok=True)
    before = tree(objects)

    inputs = {"names": names, "bundles": bundles, "suffix": "../../../packs/names/1.0.0.yaml"}
    run = runtime.wait(submit(runtime, RUNTIME_PACK, inputs, tenant=TENANT).runId, timeout=60)

    refused = {s.stepId: s for s in run.steps if s.error is not None}
    expected = {"prefixed"} | {f"names[{i}]::put" for i in range(len(names) - 1)}
    expected |= {f"bundles[{i}]::ingest" for i in range(len(FILE_NAMES))}
    assert set(refused) == expected
    for step in refused.values():
        assert step.error.code == "InvalidName", step
        assert "not valid" in step.error.message or "cannot be staged" in step.error.message
        assert len(step.attempts) == 1  # never retried, though the pack allows 3 attempts
    assert run.step(f"names[{len(names) - 1}]::put").status == "succeeded"  # the control
    assert run.step(f"bundles[{len(FILE_NAMES)}]::ingest").status == "succeeded"
    changed = {k for k, v in tree(objects).items() if before.get(k) != v}
    own = (f"runs/{run.runId}/", f"evidence/{run.runId}.tar.gz")
    assert changed
    assert all(k.startswith(own) for k in changed), changed


# ------------------------------------------------------------------------------------------ CLI names
def test_cli_refuses_hostile_tenants_and_approvers_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cli = CliRunner(env={"TASKRUNNER_HOME": str(home)})
    signer = generate_ed25519_keyfile(tmp_path / "alice.pem")
    public = tmp_path / "alice.pub.pem"
    public.write_text(signer.public_key_pem, encoding="utf-8")
    assert cli.invoke(app, ["approvals", "trust", "alice", str(public), "--tenant", "t1"]).exit_code == 0
    before = tree(home)

    for name, value in [*CASES, ("padded", " t1 ")]:
        if "\x00" in value:
            continue  # a command line cannot carry NUL
        commands = {
            "token --tenant": ["token", "--scopes", "packs.read", f"--tenant={value}"],
            "approvals trust APPROVER": ["approvals", "trust", "--tenant", "t1", "--", value, str(public)],
            "approvals trust --tenant": ["approvals", "trust", f"--tenant={value}", "alice", str(public)],
        }
        for command, args in commands.items():
            result = cli.invoke(app, args)
            assert result.exit_code in (1, 2), (command, name, result.stdout)
            assert "is not valid" in result.stderr, (command, name, result.stderr)
            assert "Traceback" not in result.stderr
    assert tree(home) == before


@pytest.mark.parametrize(  # an absent tenant means the "default" tenant
    "case", [*(c for c in CASES if c[1]), ("padded", " names "), ("list", ["names"])], ids=ids
)
def test_a_scheduled_event_with_a_hostile_tenant_submits_nothing(runtime: Any, case: tuple[str, Any]) -> None:
    from taskrunner.composition import services
    from taskrunner.engine.schedule import submit_scheduled

    name, tenant = case
    before = tree(runtime.home)
    with pytest.raises(InvalidName, match=r"detail\.tenantId"):
        submit_scheduled(
            services(),
            {
                "id": f"e-{name}",
                "time": "2026-11-30T00:00:00Z",
                "detail": {"packKey": "packs/hello.yaml", "tenantId": tenant},
            },
        )
    assert tree(runtime.home) == before
