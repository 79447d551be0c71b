"""Shared by the SAM tests: they run under `make test` (which sets TASKRUNNER_SAM_LOCAL=1 after building)."""

import os

import pytest

SKIP_UNLESS_MAKE_TEST = pytest.mark.skipif(
    os.environ.get("TASKRUNNER_SAM_LOCAL") != "1",
    reason="needs the x86_64 build, Docker and the local Lambda image: run `make sam-local` (part of `make test`)",
)
