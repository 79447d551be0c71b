"""Atomic writes and create-once key files, raced by many threads and processes on a fresh home."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from taskrunner.atomicfile import create_once, write_atomic
from taskrunner.evidence.signing import ensure_ed25519_keyfile, generate_ed25519_keyfile
from taskrunner.keyfiles import load_or_create_secret

THREADS = 12
PROCESSES = 6


def race_threads(action: Callable[[], str]) -> list[str]:
    """``action`` from THREADS threads released at once; every result (an exception fails the test)."""
    barrier = threading.Barrier(THREADS)

    def one(_: int) -> str:
        barrier.wait()
        return action()

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(THREADS)))


def _signing_keyid(path: Path) -> str:
    return ensure_ed25519_keyfile(path).keyid


def _secret(path: Path) -> str:
    return load_or_create_secret(path).hex()


def _child(kind: str, path: Path, barrier: threading.Barrier, results: multiprocessing.Queue[str]) -> None:
    """In a child process: wait for every sibling, then race THREADS threads of its own."""
    action = _signing_keyid if kind == "signing" else _secret
    barrier.wait()
    try:
        for value in race_threads(lambda: action(path)):
            results.put(value)
    except Exception as exc:
        results.put(f"error: {exc!r}")


def race_processes(kind: str, path: Path) -> list[str]:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    results: multiprocessing.Queue[str] = context.Queue()
    children = [context.Process(target=_child, args=(kind, path, barrier, results)) for _ in range(PROCESSES)]
    for child in children:
        child.start()
    values = [results.get(timeout=60) for _ in range(PROCESSES * THREADS)]
    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0
    return values


@pytest.fixture
def fresh_home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_concurrent_first_seals_in_threads_share_one_signing_key(fresh_home: Path) -> None:
    path = fresh_home / "keys" / "signing.pem"
    keyids = race_threads(lambda: _signing_keyid(path))
    assert len(set(keyids)) == 1
    assert path.stat().st_mode & 0o777 == 0o600
    assert not list(path.parent.glob(".*.tmp"))


def test_concurrent_first_seals_in_processes_share_one_signing_key(fresh_home: Path) -> None:
    path = fresh_home / "keys" / "signing.pem"
    keyids = race_processes("signing", path)
    assert not [k for k in keyids if k.startswith("error")], keyids
    assert set(keyids) == {ensure_ed25519_keyfile(path).keyid}
    assert not list(path.parent.glob(".*.tmp"))


def test_concurrent_creators_of_a_secret_read_the_same_bytes(fresh_home: Path) -> None:
    path = fresh_home / "keys" / "redaction.key"
    values = race_processes("secret", path) + race_threads(lambda: _secret(path))
    assert set(values) == {path.read_bytes().hex()}
    assert len(path.read_bytes()) == 32


def test_generate_refuses_to_replace_a_key_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    first = generate_ed25519_keyfile(path)
    outcomes = race_threads(lambda: _outcome(path))
    assert set(outcomes) == {"Conflict"}
    assert ensure_ed25519_keyfile(path).keyid == first.keyid
    assert generate_ed25519_keyfile(path, overwrite=True).keyid != first.keyid


def _outcome(path: Path) -> str:
    try:
        generate_ed25519_keyfile(path)
    except Exception as exc:
        return type(exc).__name__
    return "created"


def test_create_once_publishes_exactly_one_version(tmp_path: Path) -> None:
    path = tmp_path / "one"
    created = race_threads(lambda: str(create_once(path, threading.current_thread().name.encode())))
    assert created.count("True") == 1
    assert path.read_bytes()


def test_concurrent_replacements_are_never_torn(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    write_atomic(path, b"0" * 100_000)
    seen: set[int] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            data = path.read_bytes()
            seen.add(len(set(data)) if len(data) == 100_000 else -1)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        race_threads(lambda: write_atomic(path, threading.current_thread().name[-1].encode() * 100_000) or "")
    finally:
        stop.set()
        reader.join()
    assert len(set(path.read_bytes())) == 1
    assert seen == {1}  # every read saw one whole version
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "artifact"
    write_atomic(path, b"old")

    def chunks() -> Iterator[bytes]:
        yield b"new"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, chunks())
    assert path.read_bytes() == b"old"
    assert not list(tmp_path.glob(".*.tmp"))
