"""A run's executions are named after it: ``<runId>``, then ``<runId>-resume-<n>`` for each resume."""

from __future__ import annotations

import pytest
from taskrunner.engine.lifecycle import execution_run_id, resume_count

RUN = "20261130T175502Z-5d62ae2d"
ARN = "arn:aws:states:us-east-1:123456789012:execution:taskrunner-pack-0123abcd:"


@pytest.mark.parametrize(
    ("name", "resumes"),
    [(RUN, 0), (f"{RUN}-resume-1", 1), (f"{RUN}-resume-12", 12)],
)
def test_the_run_and_its_resumes_are_read_off_the_execution_name(name: str, resumes: int) -> None:
    assert execution_run_id(name) == RUN
    assert resume_count(ARN + name) == resumes


def test_a_name_that_only_looks_like_a_resume_is_a_run_id() -> None:
    assert execution_run_id(f"{RUN}-resume-x") == f"{RUN}-resume-x"
    assert resume_count(f"{ARN}{RUN}-resume-") == 0
