"""Compiled definitions are byte-identical across processes, whatever the hash seed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from taskrunner.asl import compile_plan
from taskrunner.plan.document import Plan
from test_asl_scenarios import SCENARIOS

_COMPILE = """
import hashlib, json, sys
from taskrunner.asl import compile_plan
from taskrunner.plan.document import Plan
for path in sys.argv[2:]:
    compiled = compile_plan(Plan.model_validate_json(open(path).read()))
    print(compiled.digest, hashlib.sha256(compiled.definition_bytes).hexdigest())
"""

STABLE = ("airgap-import", "map-in-map", "parallel-in-map", "long-ids", "gates-in-map", "run-retries")


def test_same_bytes_in_processes_with_different_hash_seeds(tmp_path: Path) -> None:
    paths = []
    expected = []
    for scenario in STABLE:
        scenario_plan = SCENARIOS[scenario]()
        path = tmp_path / f"{scenario}.json"
        path.write_text(json.dumps(scenario_plan.to_document()), encoding="utf-8")
        paths.append(str(path))
        compiled = compile_plan(Plan.model_validate_json(path.read_text()))
        assert compiled.definition_bytes == compile_plan(scenario_plan).definition_bytes
        expected.append(f"{compiled.digest} {hashlib.sha256(compiled.definition_bytes).hexdigest()}")

    for seed in ("0", "1", "4242"):
        result = subprocess.run(
            [sys.executable, "-c", _COMPILE, "-", *paths],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.split("\n")[:-1] == expected, seed


def test_compiling_twice_in_one_process_gives_the_same_bytes() -> None:
    first = compile_plan(SCENARIOS["map-in-parallel"]())
    second = compile_plan(SCENARIOS["map-in-parallel"]())

    assert first.definition_bytes == second.definition_bytes
    assert first.digest == second.digest
