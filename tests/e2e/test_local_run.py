"""The product's main path: a pack runs end to end locally, and its evidence verifies offline."""

from __future__ import annotations

from typing import Any

from conftest import PACKS, submit
from taskrunner.evidence.verify import verify_bundle


def test_hello_runs_end_to_end_and_its_evidence_verifies(runtime: Any, tmp_path: Any) -> None:
    run = runtime.wait(submit(runtime, PACKS / "hello.yaml", {"who": "auditor"}).runId, timeout=60)

    assert run.status == "succeeded"
    assert [(s.stepId, s.status, len(s.attempts)) for s in run.steps] == [
        ("greet", "succeeded", 1),
        ("report", "succeeded", 1),
    ]
    assert run.step("greet").outputs == {"greeting": "hello auditor"}
    events = runtime.svc.store.read_logs(run.runId)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[0].eventType == "run.created"
    assert events[-1].eventType == "run.completed"

    from taskrunner.engine.evidence import run_signer

    bundle = tmp_path / "bundle.tar.gz"
    bundle.write_bytes(runtime.svc.artifacts.open(f"evidence/{run.runId}.tar.gz").read())
    report = verify_bundle(bundle, [run_signer(runtime.svc).public_key_pem], require_dsse=True)
    assert report.ok, report.failures
