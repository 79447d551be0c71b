"""A deployment that requires signed packs (RequireSignedPacks, TASKRUNNER_PACKS__REQUIRE_SIGNED=true) refuses a
pack file packRef and never falls back from the registry to ``packs/``, over the submit handler."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PACKS
from test_signed_pack_run import TENANT, create_run


def test_a_deployment_that_requires_signed_packs_refuses_pack_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskrunner.local.runtime import LocalRuntime

    home = tmp_path / "signed-home"
    monkeypatch.setenv("TASKRUNNER_HOME", str(home))
    monkeypatch.setenv("TASKRUNNER_PACKS__REQUIRE_SIGNED", "true")
    with LocalRuntime(home) as rt:
        rt.svc.artifacts.put_bytes(
            "packs/hello.yaml", (PACKS / "hello.yaml").read_bytes(), "application/yaml"
        )
        status, problem = create_run(rt, "packs/hello.yaml")
        assert (status, problem["code"]) == (422, "PackRejected")
        assert "this deployment runs only signed packs" in problem["detail"]
        assert "taskrunner packs publish" in problem["remediation"]
        status, problem = create_run(rt, "hello@1.0.0")  # not in the registry: no fall-back to packs/
        assert (status, problem["code"]) == (404, "NotFound")
        assert "not published for tenant signed-tenant" in problem["detail"]
        assert rt.svc.store.list_runs(TENANT)[0] == []
