"""Spooling to the temporary directory (in Lambda ``/tmp``, sized by the function's ``EphemeralStorage``).

A spool that would leave less than :data:`SPOOL_RESERVE_BYTES` free there is refused with a clear error
before the directory fills up, instead of failing with ``No space left on device`` half way.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import BinaryIO

from taskrunner.errors import ValidationFailed

SPOOL_RESERVE_BYTES = 32 * 1024 * 1024  # left free for everything else the function writes there


class SpoolTooLarge(ValidationFailed):
    code = "SpoolTooLarge"


class SpaceCheckedWriter:
    """Writes to ``out`` (a file in the temporary directory) while the directory keeps its reserve free.

    The free space is measured at the first write, so whatever was spooled before counts against it.
    """

    def __init__(self, out: BinaryIO, what: str, reserve: int | None = None) -> None:
        self._out = out
        self._what = what
        self._reserve = SPOOL_RESERVE_BYTES if reserve is None else reserve
        self._budget: int | None = None
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._budget is None:
            self._budget = shutil.disk_usage(tempfile.gettempdir()).free - self._reserve
        if self.written + len(data) > self._budget:
            raise SpoolTooLarge(
                f"{self._what} does not fit the {max(self._budget, 0):,} bytes of temporary space left in "
                f"{tempfile.gettempdir()} (beyond the {self._reserve:,} bytes kept free)",
                remediation="raise the function's EphemeralStorage (up to 10,240 MB) or keep artifacts smaller",
            )
        self.written += len(data)
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()
