"""With the template's IAM enforced locally, the permission fixes hold: GET routes need no redaction key,
SealEvidence reads pack secrets; operator calls outside handlers are not checked."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import uuid
from typing import Any

from conftest import PACKS, submit
from taskrunner.composition import reset_services
from taskrunner.keys import evidence_key
from test_http_api import READ, RUN, Api, new_tenant, run_detail, started, user_token
from test_http_api import api as api  # the API server fixture, shared

SECRET_PACK = """
apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: pack-secret, version: 1.0.0}
spec:
  secrets: [{name: token, ref: "aws-secretsmanager:%s"}]
  security: {secretsRedactionPolicy: hash}
  sandbox: {mode: sealed, egressAllowlist: []}
  steps:
    - id: use
      run: {uses: noop, with: {header: "Bearer {{ secrets.token }}"}}
"""


def inputs_lock(bundle: bytes) -> dict[str, Any]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(bundle))) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("inputs.lock"))
        handle = tar.extractfile(member)
        assert handle is not None
        return dict(json.loads(handle.read()))


def test_get_routes_work_without_the_redaction_key(api: Api, runtime: Any) -> None:
    tenant = new_tenant()
    token = user_token(tenant, READ, RUN)
    run = started(api, token, (PACKS / "hello.yaml").read_text(encoding="utf-8"))
    runtime.wait(run["runId"], timeout=60)
    reset_services(None)  # the next handler builds its services itself, as a cold GetRun Lambda does
    assert run_detail(api, token, run["runId"])["status"] == "succeeded"
    assert api.get(f"/api/runs/{run['runId']}/evidence", token).status == 200


def test_seal_evidence_reads_pack_secrets_for_the_inputs_lock(runtime: Any) -> None:
    name = f"taskrunner/iam-{uuid.uuid4().hex[:8]}"
    runtime.aws.client("secretsmanager").create_secret(Name=name, SecretString=f"v-{uuid.uuid4().hex}")
    run = runtime.wait(submit(runtime, SECRET_PACK % name).runId, timeout=60)
    assert run.status == "succeeded"
    bundle = runtime.svc.artifacts.open(evidence_key(run.runId)).read()
    shown = json.dumps(inputs_lock(bundle))
    assert "hmac-sha256:" in shown
    assert "<unresolved>" not in shown


def test_operator_calls_outside_handlers_are_not_checked(runtime: Any) -> None:
    s3 = runtime.aws.client("s3")
    key = f"operator/{uuid.uuid4().hex}"
    s3.put_object(Bucket=runtime.aws.artifacts_bucket, Key=key, Body=b"x")
    assert s3.get_object(Bucket=runtime.aws.artifacts_bucket, Key=key)["Body"].read() == b"x"
    assert os.environ.get("AWS_LAMBDA_FUNCTION_NAME") is None  # no function environment outside handlers
