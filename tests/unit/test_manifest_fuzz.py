"""Property-based fuzzing of `validate`, `plan` and the planner with hostile manifests: every example ends in
success or a reported problem (exit 0, 1 or 2), never a traceback, a crash or a hang.

Bounded for CI: a fixed number of examples per property, a generous deadline per example (hangs, not load), no example database.
Run with ``-s`` to see the outcome counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hostile_manifests import HELLO, hostile_corpus, hostile_texts, json_values, mutated_packs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from taskrunner.cli.app import app
from taskrunner.pack.errors import ProblemsError
from taskrunner.plan.planner import build_plan
from typer.testing import CliRunner

FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=30),  # a hang, not a slow example on a loaded CI machine
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def test_validate_and_plan_answer_every_hostile_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKRUNNER_HOME", str(tmp_path / "home"))
    pack = tmp_path / "pack.yaml"
    runner = CliRunner()
    outcomes: Counter[str] = Counter()

    @settings(FUZZ, max_examples=120)  # two commands per example
    @given(hostile_texts())
    def check(data: bytes) -> None:
        pack.write_bytes(data)
        for command in ("validate", "plan"):
            result = runner.invoke(app, [command, str(pack)])
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                raise result.exception
            assert result.exit_code in (0, 1, 2), result.output
            assert "Traceback" not in result.output
            outcomes[f"{command} exit {result.exit_code}"] += 1

    check()
    print(f"validate/plan outcomes: {dict(sorted(outcomes.items()))}")
    assert sum(outcomes.values()) >= 2 * 50


def test_an_empty_step_kind_is_a_problem() -> None:
    """Found by the planner property: ``run: null`` passed validation and crashed the planner."""
    document = yaml.safe_load(HELLO)
    document["spec"]["steps"][0]["run"] = None
    with pytest.raises(ProblemsError) as info:
        build_plan(document)
    assert "run has no value" in str(info.value)


def test_the_planner_answers_every_mutated_pack() -> None:
    outcomes: Counter[str] = Counter()

    @FUZZ
    @given(mutated_packs(), st.dictionaries(st.sampled_from(["who", "items", "x"]), json_values, max_size=2))
    def check(document: dict[str, Any], inputs: dict[str, Any]) -> None:
        outcome, problems = "planned", 1
        try:
            build_plan(document, inputs)
        except ProblemsError as exc:
            outcome, problems = type(exc).__name__, len(exc.problem_list)
        assert problems, "a refusal names at least one problem"
        outcomes[outcome] += 1

    check()
    print(f"planner outcomes: {dict(sorted(outcomes.items()))}")
    assert outcomes["ManifestError"] > 0


def test_the_hostile_corpus_does_not_crash_a_process(tmp_path: Path) -> None:
    """Stack overflows in C kill the process without a Python exception: only a child process can tell."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index, data in enumerate(hostile_corpus()):
        (corpus / f"{index:02d}.yaml").write_bytes(data)
    code = textwrap.dedent(
        f"""
        import sys, threading
        from pathlib import Path
        from taskrunner.pack.errors import ProblemsError
        from taskrunner.plan.planner import build_plan
        outcomes = []
        def work():
            for path in sorted(Path({str(corpus)!r}).iterdir()):
                try:
                    build_plan(path)
                    outcomes.append("planned")
                except ProblemsError as exc:
                    outcomes.append("refused")
        thread = threading.Thread(target=work)  # threads have smaller stacks than the main thread
        thread.start()
        thread.join()
        print(" ".join(outcomes))
        """
    )
    env = {**os.environ, "TASKRUNNER_HOME": str(tmp_path / "home")}
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert child.returncode == 0, child.stderr[-3000:]
    outcomes = child.stdout.split()
    print(f"corpus outcomes: {Counter(outcomes)}")
    assert len(outcomes) == len(hostile_corpus())
    assert outcomes[-1] == "planned"  # the last entry is a valid pack
    assert outcomes.count("refused") == len(outcomes) - 1
