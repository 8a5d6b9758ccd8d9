"""Version allocation under concurrent processes: never a duplicate, never a lost record."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from pinnacle_protocols import ComponentRecord, VersionConflict
from pinnacle_sql import SQLAlchemyMetadataStore
from pinnacle_sql.testing import backend_params

PROCESSES = 8
PER_PROCESS = 50
T = TypeVar("T")


def _run(target: Callable[..., object], results: Any, *args: Any) -> None:
    """Worker entry point: put ``("ok", value)`` or ``("error", traceback)`` on ``results``.

    A worker that dies must fail the test at once with its own traceback, not leave the
    parent waiting out the queue timeout.
    """
    try:
        results.put(("ok", target(*args)))
    except BaseException:
        results.put(("error", traceback.format_exc()))
        raise


def _collect(results: Any, count: int) -> list[Any]:
    values = []
    for _ in range(count):
        status, value = results.get(timeout=300)
        if status != "ok":
            pytest.fail(f"a worker process failed:\n{value}")
        values.append(value)
    return values


def _create_many(uri: str, barrier: Any, worker: int) -> tuple[int, list[int]]:
    # Opening the store is part of the race: the database starts empty, so the first use
    # (which creates the tables) happens in 8 processes at once.
    store = SQLAlchemyMetadataStore.from_uri(uri)
    barrier.wait(60)
    versions: list[int] = []
    for i in range(PER_PROCESS):
        record = ComponentRecord(
            type_id="model", identifier="shared", data={"worker": worker, "i": i}
        )
        version = store.create_component(record).version
        assert version is not None
        versions.append(version)
    store.close()
    return worker, versions


@pytest.mark.parametrize("backend", backend_params(("sqlite_file", "postgres", "mariadb")))
def test_concurrent_create_component(backend: str, new_database: Callable[[str], str]) -> None:
    """8 processes x 50 create_component on one identifier of a new database: 400 versions."""
    uri = new_database(backend)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_run, args=(_create_many, results, uri, barrier, w))
        for w in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    returned: dict[int, list[int]] = dict(_collect(results, PROCESSES))
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    every = [v for versions in returned.values() for v in versions]
    total = PROCESSES * PER_PROCESS
    assert sorted(every) == list(range(total))  # distinct, none skipped
    for versions in returned.values():
        assert versions == sorted(versions)  # each writer sees its versions increase
    store = SQLAlchemyMetadataStore.from_uri(uri)
    try:
        assert store.show_versions("model", "shared") == list(range(total))
        for version in (0, total // 2, total - 1):
            record = store.get_component("model", "shared", version)
            worker = record.data["worker"]
            assert isinstance(worker, int)
            assert version in returned[worker]
        assert store.get_component("model", "shared").version == total - 1
    finally:
        store.close()


def _explicit_race(uri: str, barrier: Any, worker: int) -> list[int]:
    store = SQLAlchemyMetadataStore.from_uri(uri)
    barrier.wait(60)
    won = []
    for version in range(20):
        try:
            store.create_component(
                ComponentRecord(type_id="t", identifier="x", version=version, data={"w": worker})
            )
            won.append(version)
        except VersionConflict:
            pass
    store.close()
    return won


@pytest.mark.parametrize("backend", backend_params(("sqlite_file", "postgres", "mariadb")))
def test_concurrent_explicit_versions(backend: str, new_database: Callable[[str], str]) -> None:
    """4 processes race to store the same explicit versions: each version is won exactly once."""
    uri = new_database(backend)
    SQLAlchemyMetadataStore.from_uri(uri).close()
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_run, args=(_explicit_race, results, uri, barrier, w)) for w in range(4)
    ]
    for p in procs:
        p.start()
    won = [v for versions in _collect(results, len(procs)) for v in versions]
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 4
    assert sorted(won) == list(range(20))
    store = SQLAlchemyMetadataStore.from_uri(uri)
    try:
        assert store.show_versions("t", "x") == list(range(20))
        assert store.create_component(ComponentRecord(type_id="t", identifier="x")).version == 20
    finally:
        store.close()


@pytest.mark.duckdb
def test_duckdb_file_held_by_another_process_fails_clearly(tmp_path: Path) -> None:
    """A DuckDB file has one process at a time: a second one fails at once, it does not hang.

    (So the multi-process tests above do not run on DuckDB.)
    """
    uri = f"duckdb:///{tmp_path / 'meta.duckdb'}"
    holder = SQLAlchemyMetadataStore.from_uri(uri)
    try:
        holder.create_component(ComponentRecord(type_id="model", identifier="m"))
        code = (
            "import sys\n"
            "from pinnacle_protocols import BackendUnavailable\n"
            "from pinnacle_sql import SQLAlchemyMetadataStore\n"
            "store = SQLAlchemyMetadataStore.from_uri(sys.argv[1])\n"
            "try:\n"
            "    store.show_components()\n"
            "except BackendUnavailable as exc:\n"
            "    print(str(exc))\n"
            "    sys.exit(3)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, uri],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 3, done.stderr
        assert "one process at a time" in done.stdout
        assert "lock" in done.stdout.lower()
        # The holder is unaffected.
        assert holder.get_component("model", "m").version == 0
    finally:
        holder.close()
    # Once the holder closed the file, another process can open it.
    subprocess.run(
        [sys.executable, "-c", code.replace("sys.exit(3)", "sys.exit(4)"), uri],
        check=True,
        timeout=120,
    )


# ------------------------------------------------------------------ in-memory SQLite, threads
WAIT = 30.0  # seconds; only a broken interleaving ever waits this long


class _WatchedLock:
    """A reentrant lock that knows its owner and reports when thread ``B`` starts waiting."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._depth = 0
        self.b_waits = threading.Event()

    def held(self) -> bool:
        return self._owner == threading.get_ident()

    def __enter__(self) -> None:
        if threading.current_thread().name == "B" and not self.held():
            self.b_waits.set()
        self._lock.acquire()
        self._owner = threading.get_ident()
        self._depth += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
        self._lock.release()


def _wait(flag: threading.Event, what: str) -> None:
    if not flag.wait(WAIT):  # pragma: no cover - only if the interleaving breaks
        raise AssertionError(f"timed out waiting for {what}")


class _InterleavedStore(SQLAlchemyMetadataStore):
    """Pauses thread ``A`` inside its write transaction until thread ``B``'s first use is done.

    ``B`` reports when its first use (``_ensure_ready``) has returned; any connection ``B``
    takes without holding the store's guard waits until ``A`` is inside its transaction, so a
    stray connection lands exactly where it does harm.
    """

    b_progress: threading.Event
    b_ready: threading.Event
    a_in_transaction: threading.Event

    def _ensure_ready(self) -> Engine:
        try:
            return super()._ensure_ready()
        finally:
            if threading.current_thread().name == "B":
                self.b_ready.set()
                self.b_progress.set()

    def _write_sqlite(self, fn: Callable[[Any], T], action: str) -> T:
        if threading.current_thread().name != "A":
            return super()._write_sqlite(fn, action)
        _wait(self.b_progress, "B to finish or pause its first use")

        def paused(cursor: Any) -> T:
            result = fn(cursor)  # the INSERTs ran; COMMIT is next
            self.a_in_transaction.set()
            _wait(self.b_ready, "B's first use to return")
            return result

        return super()._write_sqlite(paused, action)


@pytest.mark.sqlite
@pytest.mark.memory
def test_memory_sqlite_first_use_never_ends_another_threads_transaction() -> None:
    """Regression: a thread waiting on the first-use lock must not touch the shared connection.

    On an in-memory database every thread shares one connection. Thread A runs the first use
    (creating the tables) while thread B waits for it; A then writes. B must see that A
    finished the first use, under the store's guard. It used to re-run the check without the
    guard, and returning that connection rolled back A's open write transaction: A's COMMIT
    failed with "cannot commit - no transaction is active" (flaky in
    test_concurrent_version_allocation[sqlite_memory]). The interleaving is forced here with
    events: A pauses in the first use until B waits for the lock, and inside its transaction
    until B's first use has returned.
    """
    store = _InterleavedStore.from_uri("sqlite://")
    store.b_progress = threading.Event()
    store.b_ready = threading.Event()
    store.a_in_transaction = threading.Event()
    init_lock, guard = _WatchedLock(), _WatchedLock()
    store._init_lock = init_lock  # type: ignore[assignment]
    store._guard = guard
    engine = store._get_engine()  # builds the engine (no connection) to watch its pool
    a_in_first_use = threading.Event()

    def on_checkout(*_args: object) -> None:
        name = threading.current_thread().name
        if name == "A" and not a_in_first_use.is_set():
            a_in_first_use.set()
            _wait(init_lock.b_waits, "B to wait for the first-use lock")
        elif name == "B" and not guard.held():
            store.b_progress.set()
            _wait(store.a_in_transaction, "A's write transaction")

    event.listen(engine, "checkout", on_checkout)
    errors: dict[str, BaseException] = {}
    created: dict[str, int | None] = {}

    def create(name: str) -> None:
        try:
            record = ComponentRecord(type_id="model", identifier="m", data={"by": name})
            created[name] = store.create_component(record).version
        except BaseException as exc:
            errors[name] = exc

    a = threading.Thread(target=create, args=("A",), name="A")
    b = threading.Thread(target=create, args=("B",), name="B")
    try:
        a.start()
        _wait(a_in_first_use, "A's first use")
        b.start()
        a.join(2 * WAIT)
        b.join(2 * WAIT)
        assert not a.is_alive()
        assert not b.is_alive()
        assert errors == {}, {name: str(exc) for name, exc in errors.items()}
        assert sorted(v for v in created.values() if v is not None) == [0, 1]
        assert store.show_versions("model", "m") == [0, 1]
        for name, version in created.items():
            assert version is not None
            assert store.get_component("model", "m", version).data == {"by": name}
    finally:
        store.close()
