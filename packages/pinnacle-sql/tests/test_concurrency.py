"""Version allocation under concurrent processes: never a duplicate, never a lost record."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pinnacle_protocols import ComponentRecord, VersionConflict
from pinnacle_sql import SQLAlchemyMetadataStore
from pinnacle_sql.testing import backend_params

PROCESSES = 8
PER_PROCESS = 50


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
