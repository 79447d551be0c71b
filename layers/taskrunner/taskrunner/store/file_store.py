"""File store: the embedded default, human-readable and crash-safe, under ``TASKRUNNER_HOME``.

Layout (one directory per run)::

    <root>/runs/<runId>/run.json        the run record; top-level fields one per line, one step per line
    <root>/runs/<runId>/steps.ndjson    step changes since run.json was written, one line per change
    <root>/runs/<runId>/logs.ndjson     log events, one per line, appended with one fsync per batch
    <root>/runs/<runId>/artifacts.json  artifact records by name
    <root>/runs/<runId>/approvals.json  gate records by gate id
    <root>/runs/<runId>/.lock           per-run writer lock (flock across processes + a lock per process)
    <root>/idempotency/<sha256>.json    (tenant, idempotency key) -> runId claims
    <root>/active/<runId>               an empty file per pending or running run (the queue depth)

Every JSON file is replaced atomically (:func:`taskrunner.atomicfile.write_atomic`), so a reader or
a process killed at any point sees the old or the new file, never a mix. The log is append-only: a
writer killed mid-batch can leave at most a torn trailing line, which readers ignore and the next writer
truncates before appending, so sequences stay gapless. A line removed afterwards reaches readers as a
``log.gap`` event of cause ``lost`` (:mod:`taskrunner.store.log_gaps`).

A step update appends one line ``{"version", "updatedAt", "step"}`` to ``steps.ndjson`` (one fsync) instead
of rewriting ``run.json``, so its cost does not grow with the run. A run is ``run.json`` with the lines whose
``version`` is above its own applied in order; readers keep the result per process and apply only lines
appended since. A run update (a few per run) folds the log into a new ``run.json`` and then empties the log;
a crash between the two leaves lines the new ``run.json`` already covers, which their versions skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from pydantic import TypeAdapter

from taskrunner.atomicfile import write_all, write_atomic
from taskrunner.errors import Conflict, NotFound
from taskrunner.keys import RUN_ID_PATTERN
from taskrunner.recent import Recent, RecentKeys
from taskrunner.store.errors import CorruptRecord, ensure_status
from taskrunner.store.log_gaps import with_gaps
from taskrunner.store.paging import check_limit, decode_cursor, encode_cursor
from taskrunner.store.records import (
    ACTIVE_RUN_STATUSES,
    RUN_CHANGES,
    ArtifactRecord,
    Attempt,
    Decision,
    GateRecord,
    LogEvent,
    NewLogEvent,
    RunRecord,
    StepRecord,
    apply_changes,
    changed_gate,
    changed_step,
    decided_gate,
    reopened_gate,
)
from taskrunner.timeutil import iso, utc_now

P = ParamSpec("P")
R = TypeVar("R")
_RUN_ID = re.compile(RUN_ID_PATTERN)
_RUN_FIELDS = tuple(RunRecord.model_fields)
_ENCODER = json.JSONEncoder(ensure_ascii=False)  # C-accelerated (no indent)
_LOG_EVENTS = TypeAdapter(list[LogEvent])
_TIME = TypeAdapter(datetime)
_INDEX_STRIDE = 256  # log lines between two read-index marks
_RUN_CACHE_SIZE = 64  # runs kept parsed per process
_RUN_BOOKKEEPING = 1024  # runs whose log index and temp-file sweep are remembered per process


def _parse_log_lines(lines: list[bytes]) -> list[LogEvent]:
    return _LOG_EVENTS.validate_json(b"[" + b",".join(lines) + b"]") if lines else []


def _gapless(events: list[LogEvent], lines: list[bytes], after: int) -> bool:
    """Whether ``events``, found by line position, are all the sequences after ``after`` (no line removed)."""
    if events:
        return events[-1].sequence - after == len(events)
    return not lines or _parse_log_lines(lines[-1:])[0].sequence <= after


def _rfind_newline(fd: int, end: int) -> int:
    """Offset of the last newline before ``end`` in the file, or -1."""
    position = end
    while position > 0:
        start = max(0, position - 64 * 1024)
        found = os.pread(fd, position - start, start).rfind(b"\n")
        if found != -1:
            return start + found
        position = start
    return -1


def _encode_steps(steps: list[dict[str, Any]]) -> list[str]:
    return [_ENCODER.encode(step) for step in steps]


def _render_run(doc: Mapping[str, Any], step_lines: list[str]) -> bytes:
    """run.json text: a line per top-level field and per step (``step_lines``, encoded steps)."""
    parts = []
    for key in _RUN_FIELDS:
        if key == "steps" and step_lines:
            steps = ",\n    ".join(step_lines)
            parts.append(f'  "steps": [\n    {steps}\n  ]')
        elif key in doc:
            parts.append(f'  "{key}": {_ENCODER.encode(doc[key])}')
    return ("{\n" + ",\n".join(parts) + "\n}\n").encode()


def _render_json(document: Any) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode()


def _readable(method: Callable[P, R]) -> Callable[P, R]:
    """Report a stored file that no longer parses as a domain error naming the store, not a traceback."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (ValueError, KeyError) as exc:  # JSON, UTF-8 and pydantic errors are ValueErrors
            store = args[0]
            root = store.root if isinstance(store, FileRunStore) else "the file store"
            detail = str(exc).splitlines()[0]
            raise CorruptRecord(
                f"a run record under {root} cannot be read: {detail}",
                remediation="restore the file from a backup or remove the damaged run directory",
            ) from None

    return wrapper


class _ProcessFileLocks:
    """Exclusive locks on lock files: a thread lock per path, then ``flock`` for other processes.

    A path's thread lock exists while a thread holds or waits for it, so there are as many as paths in use."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}  # path -> (lock, threads holding or waiting)

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.contextmanager
    def hold(self, path: Path) -> Iterator[None]:
        key = str(path)
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    yield
                finally:
                    os.close(fd)  # releases the flock
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


@dataclass
class _RunState:
    """A run as this process last read it: ``run.json`` (by file identity) plus the step log up to ``offset``."""

    key: tuple[int, int, int]  # (inode, mtime, size) of the run.json it was read from
    offset: int  # bytes of steps.ndjson applied
    run: RunRecord
    positions: dict[str, int]  # stepId -> index in run.steps


def _file_key(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def _file_key_of(fd: int) -> tuple[int, int, int]:
    st = os.fstat(fd)
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclass
class _LogFile:
    """Per-run log bookkeeping of this process: the writers' tail and the readers' seek index."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    tail_size: int = -1  # file size at which ``tail_sequence`` was last known (writers)
    tail_sequence: int = 0
    scanned: int = 0  # bytes of complete lines indexed (readers)
    lines: int = 0  # complete lines indexed; line n holds sequence n
    marks: list[int] = field(default_factory=lambda: [0])  # marks[k]: offset of line k*STRIDE+1


class FileRunStore:
    """:class:`~taskrunner.store.port.RunStore` on the local file system (see the module docstring)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._runs = self.root / "runs"
        self._claims = self.root / "idempotency"
        self._locks = _ProcessFileLocks()
        self._guard = threading.Lock()
        self._logs: Recent[_LogFile] = Recent(_RUN_BOOKKEEPING)
        self._swept = RecentKeys(_RUN_BOOKKEEPING)
        self._states: OrderedDict[str, _RunState] = OrderedDict()

    # -- paths and locking -------------------------------------------------------------------------

    def _run_dir(self, run_id: str) -> Path:
        if not _RUN_ID.fullmatch(run_id):
            raise NotFound(f"run {run_id!r} not found", remediation="check the run id")
        return self._runs / run_id

    def _existing_run_dir(self, run_id: str) -> Path:
        run_dir = self._run_dir(run_id)
        if not (run_dir / "run.json").is_file():
            raise NotFound(f"run {run_id} not found", remediation="check the run id")
        return run_dir

    @contextlib.contextmanager
    def _locked(self, run_id: str) -> Iterator[Path]:
        """Hold the run's writer lock; yields the run directory."""
        run_dir = self._existing_run_dir(run_id)
        with self._locks.hold(run_dir / ".lock"):
            with self._guard:
                swept = run_id in self._swept
                self._swept.add(run_id)
            if not swept:  # temp files left by a writer killed mid-write (writers hold this lock)
                for tmp in run_dir.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)
            yield run_dir

    def _log_file(self, run_id: str) -> _LogFile:
        with self._guard:
            return self._logs.setdefault(run_id, _LogFile)

    # -- run documents -----------------------------------------------------------------------------

    @staticmethod
    def _step_lines(run_dir: Path, offset: int) -> tuple[list[bytes], int]:
        """Complete lines of the step log from ``offset`` on (from the start if it was emptied since), and
        the offset after them. Re-reading lines is harmless: their versions make applying them idempotent."""
        try:
            with (run_dir / "steps.ndjson").open("rb") as handle:
                if os.fstat(handle.fileno()).st_size < offset:
                    offset = 0
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return [], 0
        complete = data.rfind(b"\n") + 1
        return data[:complete].splitlines(), offset + complete

    def _state(self, run_dir: Path) -> _RunState:
        """The run as of now: cached state, re-read when run.json changed, plus newly appended step lines."""
        run_id = run_dir.name
        with self._guard:
            state = self._states.get(run_id)
        try:
            key = _file_key(run_dir / "run.json")
        except FileNotFoundError:
            raise NotFound(f"run {run_id} not found", remediation="check the run id") from None
        if state is None or state.key != key:
            with (run_dir / "run.json").open("rb") as handle:
                key = _file_key_of(handle.fileno())
                run = RunRecord.model_validate_json(handle.read())
            positions = {step.stepId: i for i, step in enumerate(run.steps)}
            state = _RunState(key, 0, run, positions)
        lines, offset = self._step_lines(run_dir, state.offset)
        if lines or offset != state.offset:
            state = self._applied(state, lines, offset)
        with self._guard:
            self._states[run_id] = state
            self._states.move_to_end(run_id)
            while len(self._states) > _RUN_CACHE_SIZE:
                self._states.popitem(last=False)
        return state

    @staticmethod
    def _applied(state: _RunState, lines: list[bytes], offset: int) -> _RunState:
        """``state`` with the step-log ``lines`` newer than its version applied (a new, shared-safe record)."""
        run = state.run
        steps, version, updated_at = list(run.steps), run.version, run.updatedAt
        for line in lines:
            change = json.loads(line)
            if change["version"] <= version:
                continue  # already folded into run.json
            step = StepRecord.model_validate(change["step"])
            steps[state.positions[step.stepId]] = step
            version, updated_at = change["version"], change["updatedAt"]
        update = {"steps": steps, "version": version, "updatedAt": _TIME.validate_python(updated_at)}
        return _RunState(state.key, offset, run.model_copy(update=update), state.positions)

    def _merged_doc(self, run_dir: Path) -> dict[str, Any] | None:
        """run.json as a document with the step log folded in (run updates and listings)."""
        try:
            doc: dict[str, Any] = json.loads((run_dir / "run.json").read_bytes())
        except FileNotFoundError:
            return None
        lines, _ = self._step_lines(run_dir, 0)
        if lines:
            positions = {step["stepId"]: i for i, step in enumerate(doc["steps"])}
            for line in lines:
                change = json.loads(line)
                if change["version"] > doc.get("version", 0):
                    doc["steps"][positions[change["step"]["stepId"]]] = change["step"]
                    doc["version"], doc["updatedAt"] = change["version"], change["updatedAt"]
        return doc

    def iter_run_ids(self) -> Iterator[str]:
        """Ids of every stored run, sorted (file-store specific; used by the importer)."""
        if not self._runs.is_dir():
            return
        for entry in sorted(os.scandir(self._runs), key=lambda e: e.name):
            if entry.is_dir() and (Path(entry.path) / "run.json").is_file():
                yield entry.name

    # -- runs ----------------------------------------------------------------------------------------

    def _claim_path(self, tenant_id: str, key: str) -> Path:
        digest = hashlib.sha256(f"{tenant_id}\0{key}".encode()).hexdigest()
        return self._claims / f"{digest}.json"

    @_readable
    def create_run(self, run: RunRecord) -> tuple[RunRecord, bool]:
        active = self._active_dir()
        with self._locks.hold(self._runs / ".create.lock"):
            claim = self._claim_path(run.tenantId, run.idempotencyKey) if run.idempotencyKey else None
            if claim is not None and claim.is_file():
                try:  # a claim without its run is what a crash between the two writes leaves
                    return self.get_run(json.loads(claim.read_bytes())["runId"], run.tenantId), False
                except NotFound:
                    pass
            run_dir = self._run_dir(run.runId)
            if (run_dir / "run.json").is_file():
                existing = self.get_run(run.runId, None)
                if run.idempotencyKey and (existing.tenantId, existing.idempotencyKey) == (
                    run.tenantId,
                    run.idempotencyKey,
                ):
                    return existing, False
                raise Conflict(f"run {run.runId} already exists", remediation="use a new run id")
            now = utc_now()
            doc = run.model_dump(mode="json", exclude_none=True)
            doc.update(createdAt=iso(now), updatedAt=iso(now), version=1)
            run_dir.mkdir(exist_ok=True, mode=0o700)
            if run.status in ACTIVE_RUN_STATUSES:  # marked first: a crash leaves a surplus mark, never a miss
                (active / run.runId).touch()
            if claim is not None:
                claim.parent.mkdir(exist_ok=True, mode=0o700)
                write_atomic(claim, _render_json({"runId": run.runId, "tenantId": run.tenantId}))
            write_atomic(run_dir / "run.json", _render_run(doc, _encode_steps(doc["steps"])))
        return RunRecord.model_validate(doc), True

    @_readable
    def get_run(self, run_id: str, tenant_id: str | None) -> RunRecord:
        """The run (shared between callers: read-only)."""
        run = self._state(self._run_dir(run_id)).run
        if tenant_id is not None and run.tenantId != tenant_id:
            raise NotFound(f"run {run_id} not found", remediation="check the run id")
        return run

    def _iter_docs(self) -> Iterator[dict[str, Any]]:
        for run_id in self.iter_run_ids():
            doc = self._merged_doc(self._runs / run_id)
            if doc is not None:
                yield doc

    @_readable
    def list_runs(
        self, tenant_id: str, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[RunRecord], str | None]:
        check_limit(limit)
        after = None
        if cursor:
            updated_at, run_id = decode_cursor(cursor)
            after = (iso(updated_at), run_id)
        keyed = []
        for doc in self._iter_docs():
            key = (doc["updatedAt"], doc["runId"])  # ISO-8601 Z strings of fixed width sort as times
            if doc["tenantId"] == tenant_id and (after is None or key < after):
                keyed.append((key, doc))
        keyed.sort(key=lambda item: item[0], reverse=True)
        page = [RunRecord.model_validate(doc) for _, doc in keyed[:limit]]
        more = len(keyed) > limit
        return page, encode_cursor(page[-1].updatedAt, page[-1].runId) if more else None

    def _active_dir(self) -> Path:
        """``<root>/active``, built from the stored runs when missing (a store written before it existed)."""
        active = self.root / "active"
        if active.is_dir():
            return active
        self._runs.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locks.hold(self._runs / ".create.lock"):
            if not active.is_dir():
                building = self.root / ".active.building"
                shutil.rmtree(building, ignore_errors=True)
                building.mkdir(mode=0o700)
                for doc in self._iter_docs():
                    if doc["status"] in ACTIVE_RUN_STATUSES:
                        (building / doc["runId"]).touch()
                os.rename(building, active)
        return active

    @_readable
    def list_active_runs(self) -> list[RunRecord]:
        """The marked runs; a mark a crash left on a finished run is removed here."""
        active = self._active_dir()
        runs = []
        for run_id in sorted(os.listdir(active)):
            doc = self._merged_doc(self._runs / run_id) if _RUN_ID.fullmatch(run_id) else None
            if doc is not None and doc["status"] in ACTIVE_RUN_STATUSES:
                runs.append(RunRecord.model_validate(doc))
            else:
                (active / run_id).unlink(missing_ok=True)
        return runs

    def count_active_runs(self, tenant_id: str | None = None, pack_name: str | None = None) -> int:
        """The number of marks (one directory listing); filtered, the marked runs are read (only they)."""
        marks = os.listdir(self._active_dir())
        if tenant_id is None and pack_name is None:
            return len(marks)
        found = 0
        for run_id in marks:
            try:
                run = self.get_run(run_id, tenant_id)
            except NotFound:
                continue
            found += run.status in ACTIVE_RUN_STATUSES and pack_name in (None, run.packName)
        return found

    @_readable
    def update_run(
        self, run_id: str, *, expected_status: Collection[str] | None, changes: Mapping[str, Any]
    ) -> RunRecord:
        patch = RUN_CHANGES.validate(changes, json=True)
        with self._locked(run_id) as run_dir:
            doc = self._merged_doc(run_dir)
            if doc is None:
                raise NotFound(f"run {run_id} not found", remediation="check the run id")
            ensure_status(f"run {run_id}", doc["status"], expected_status)
            apply_changes(doc, patch)
            doc["version"] = doc.get("version", 0) + 1
            doc["updatedAt"] = iso(utc_now())
            mark = self._active_dir() / run_id
            if doc["status"] in ACTIVE_RUN_STATUSES:  # marked before, unmarked after the write
                mark.touch()
            write_atomic(run_dir / "run.json", _render_run(doc, _encode_steps(doc["steps"])))
            if doc["status"] not in ACTIVE_RUN_STATUSES:
                mark.unlink(missing_ok=True)
            with contextlib.suppress(FileNotFoundError):  # folded into run.json; versions skip leftovers
                os.truncate(run_dir / "steps.ndjson", 0)
            with self._guard:
                self._states.pop(run_id, None)
            return self._state(run_dir).run

    @_readable
    def update_step(
        self,
        run_id: str,
        step_id: str,
        *,
        expected_status: Collection[str] | None,
        changes: Mapping[str, Any],
        attempt: Attempt | None = None,
    ) -> StepRecord:
        with self._locked(run_id) as run_dir:
            state = self._state(run_dir)
            index = state.positions.get(step_id)
            if index is None:
                raise NotFound(
                    f"run {run_id} has no step {step_id!r}", remediation="use a step id of the plan"
                )
            current = state.run.steps[index]
            ensure_status(f"step {step_id} of run {run_id}", current.status, expected_status)
            step = changed_step(current, changes, attempt)
            change = {
                "version": state.run.version + 1,
                "updatedAt": iso(utc_now()),
                "step": step.model_dump(mode="json", exclude_none=True),
            }
            line = _ENCODER.encode(change).encode() + b"\n"
            fd = os.open(run_dir / "steps.ndjson", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.ftruncate(fd, state.offset)  # a torn line of a killed writer is not part of the log
                write_all(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._state(run_dir)
            return step

    # -- logs ----------------------------------------------------------------------------------------

    @staticmethod
    def _recover_tail(fd: int, size: int) -> tuple[int, bytes | None]:
        """``(size of the complete lines, last complete line)``; truncates a torn trailing line."""
        complete = _rfind_newline(fd, size) + 1
        if complete != size:
            os.ftruncate(fd, complete)
            os.fsync(fd)
        if complete == 0:
            return 0, None
        begin = _rfind_newline(fd, complete - 1) + 1
        return complete, os.pread(fd, complete - 1 - begin, begin)

    @_readable
    def append_logs(self, run_id: str, events: Sequence[NewLogEvent]) -> list[LogEvent]:
        if not events:
            self._existing_run_dir(run_id)
            return []
        log = self._log_file(run_id)
        with self._locked(run_id) as run_dir:
            fd = os.open(run_dir / "logs.ndjson", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size != log.tail_size:
                    size, last_line = self._recover_tail(fd, size)
                    log.tail_sequence = json.loads(last_line)["sequence"] if last_line else 0
                first = log.tail_sequence + 1
                stored = [
                    LogEvent.model_construct(
                        **{name: getattr(event, name) for name in NewLogEvent.model_fields},
                        runId=run_id,
                        sequence=first + i,
                    )
                    for i, event in enumerate(events)
                ]
                data = b"".join(e.model_dump_json(exclude_none=True).encode() + b"\n" for e in stored)
                write_all(fd, data)
                os.fsync(fd)
                log.tail_size, log.tail_sequence = size + len(data), stored[-1].sequence
            except BaseException:
                log.tail_size = -1  # re-read the tail next time
                raise
            finally:
                os.close(fd)
        return stored

    def _index_logs(self, log: _LogFile, fd: int) -> None:
        """Extend the read index over complete lines appended since the last read (under ``log.lock``)."""
        size = os.fstat(fd).st_size
        if size < log.scanned:  # the file was replaced: start over
            log.scanned, log.lines, log.marks = 0, 0, [0]
        if size == log.scanned:
            return
        data = os.pread(fd, size - log.scanned, log.scanned)
        position = 0
        while (end := data.find(b"\n", position)) != -1:
            position = end + 1
            log.lines += 1
            if log.lines % _INDEX_STRIDE == 0:
                log.marks.append(log.scanned + position)
        log.scanned += position

    @_readable
    def read_logs(self, run_id: str, after_sequence: int = 0, limit: int | None = None) -> list[LogEvent]:
        run_dir = self._run_dir(run_id)
        try:
            fd = os.open(run_dir / "logs.ndjson", os.O_RDONLY)
        except FileNotFoundError:
            self._existing_run_dir(run_id)
            return []
        log = self._log_file(run_id)
        try:
            with log.lock:
                self._index_logs(log, fd)
                mark = min(max(after_sequence, 0) // _INDEX_STRIDE, len(log.marks) - 1)
                start, line, end = log.marks[mark], mark * _INDEX_STRIDE, log.scanned
            wanted = end - start
            data = os.pread(fd, wanted, start) if wanted > 0 else b""
            lines = data.split(b"\n")[:-1]
            skip = max(0, after_sequence - line)
            events = _parse_log_lines(lines[skip : None if limit is None else skip + limit])
            if _gapless(events, lines, after_sequence):
                return events
            everything = _parse_log_lines(os.pread(fd, end, 0).split(b"\n")[:-1])  # a line was removed
        finally:
            os.close(fd)
        kept = [e for e in everything if e.sequence > after_sequence]
        return with_gaps(run_id, kept, after=after_sequence, upto=None, limit=limit)

    # -- artifacts -----------------------------------------------------------------------------------

    def _read_map(self, run_dir: Path, name: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((run_dir / name).read_bytes())
        except FileNotFoundError:
            return {}
        return data

    @_readable
    def put_artifact(self, record: ArtifactRecord) -> ArtifactRecord:
        with self._locked(record.runId) as run_dir:
            artifacts = self._read_map(run_dir, "artifacts.json")
            artifacts[record.name] = record.model_dump(mode="json", exclude_none=True)
            write_atomic(run_dir / "artifacts.json", _render_json(dict(sorted(artifacts.items()))))
        return record

    @_readable
    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        artifacts = self._read_map(self._existing_run_dir(run_id), "artifacts.json")
        return [ArtifactRecord.model_validate(artifacts[name]) for name in sorted(artifacts)]

    # -- gates ---------------------------------------------------------------------------------------

    def _gate_of(self, gates: Mapping[str, Any], run_id: str, gate_id: str) -> GateRecord:
        if gate_id not in gates:
            raise NotFound(
                f"run {run_id} has no open gate {gate_id!r}", remediation="use the gate id of a waiting gate"
            )
        return GateRecord.model_validate(gates[gate_id])

    def _save_gate(self, run_dir: Path, gates: dict[str, Any], gate: GateRecord) -> GateRecord:
        gates[gate.gateId] = gate.model_dump(mode="json", exclude_none=True)
        write_atomic(run_dir / "approvals.json", _render_json(gates))
        return gate

    @_readable
    def open_gate(self, record: GateRecord) -> GateRecord:
        with self._locked(record.runId) as run_dir:
            gates = self._read_map(run_dir, "approvals.json")
            if record.gateId not in gates:
                return self._save_gate(run_dir, gates, record)
            existing = self._gate_of(gates, record.runId, record.gateId)
            gate = reopened_gate(existing, record)
            return gate if gate is existing else self._save_gate(run_dir, gates, gate)

    @_readable
    def get_gate(self, run_id: str, gate_id: str) -> GateRecord:
        return self._gate_of(
            self._read_map(self._existing_run_dir(run_id), "approvals.json"), run_id, gate_id
        )

    @_readable
    def list_gates(self, run_id: str) -> list[GateRecord]:
        gates = self._read_map(self._existing_run_dir(run_id), "approvals.json")
        records = [GateRecord.model_validate(g) for g in gates.values()]
        return sorted(records, key=lambda g: (g.openedAt, g.gateId))

    @_readable
    def add_decision(self, run_id: str, gate_id: str, decision: Decision) -> GateRecord:
        with self._locked(run_id) as run_dir:
            gates = self._read_map(run_dir, "approvals.json")
            existing = self._gate_of(gates, run_id, gate_id)
            gate = decided_gate(existing, decision)
            return gate if gate is existing else self._save_gate(run_dir, gates, gate)

    @_readable
    def update_gate(
        self,
        run_id: str,
        gate_id: str,
        *,
        expected_status: Collection[str] | None,
        changes: Mapping[str, Any],
    ) -> GateRecord:
        with self._locked(run_id) as run_dir:
            gates = self._read_map(run_dir, "approvals.json")
            existing = self._gate_of(gates, run_id, gate_id)
            ensure_status(f"gate {gate_id} of run {run_id}", existing.status, expected_status)
            return self._save_gate(run_dir, gates, changed_gate(existing, changes))
