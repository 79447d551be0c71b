"""Store-specific domain errors (subclasses of :mod:`taskrunner.errors`)."""

from __future__ import annotations

from collections.abc import Collection

from taskrunner.errors import Conflict, TaskRunnerError


class StaleUpdate(Conflict):
    """A compare-and-set lost: the record's status is no longer what the writer expected."""

    code = "StaleUpdate"


class StoreUnavailable(TaskRunnerError):
    """The run-record store cannot be reached."""

    code = "StoreUnavailable"
    status = 503


def ensure_status(what: str, current: str, expected: Collection[str] | None) -> None:
    """Raise :class:`StaleUpdate` unless ``current`` is one of ``expected`` (``None`` accepts any)."""
    if expected is not None and current not in expected:
        wanted = ", ".join(sorted(expected)) or "(none)"
        raise StaleUpdate(
            f"{what} is {current!r}, expected {wanted}",
            remediation="another writer changed it first; re-read the record and decide again",
        )


class MigrationFailed(TaskRunnerError):
    """The database cannot be brought to the expected schema without manual intervention."""

    code = "MigrationFailed"
    status = 500


class CorruptRecord(TaskRunnerError):
    """A stored record cannot be read back (edited or damaged outside TaskRunner)."""

    code = "CorruptRecord"
    status = 500
