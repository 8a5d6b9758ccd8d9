"""Version allocation under concurrent processes: never a duplicate, never a lost record."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

import pytest

from pinnacle_protocols import ComponentRecord, VersionConflict
from pinnacle_sql import SQLAlchemyMetadataStore
from pinnacle_sql.testing import backend_params

PROCESSES = 8
PER_PROCESS = 50


def _create_many(uri: str, barrier: Any, results: Any, worker: int) -> None:
    # Opening the store is part of the race: the database starts empty, so the first use
    # (which creates the tables) happens in 8 processes at once.
    store = SQLAlchemyMetadataStore.from_uri(uri)
    barrier.wait(60)
    versions = []
    for i in range(PER_PROCESS):
        record = ComponentRecord(
            type_id="model", identifier="shared", data={"worker": worker, "i": i}
        )
        versions.append(store.create_component(record).version)
    store.close()
    results.put((worker, versions))


@pytest.mark.parametrize("backend", backend_params(("sqlite_file", "postgres", "mariadb")))
def test_concurrent_create_component(backend: str, new_database: Callable[[str], str]) -> None:
    """8 processes x 50 create_component on one identifier of a new database: 400 versions."""
    uri = new_database(backend)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_create_many, args=(uri, barrier, results, w)) for w in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    returned: dict[int, list[int]] = {}
    for _ in procs:
        worker, versions = results.get(timeout=300)
        returned[worker] = versions
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


def _explicit_race(uri: str, barrier: Any, results: Any, worker: int) -> None:
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
    results.put(won)


@pytest.mark.parametrize("backend", backend_params(("sqlite_file", "postgres", "mariadb")))
def test_concurrent_explicit_versions(backend: str, new_database: Callable[[str], str]) -> None:
    """4 processes race to store the same explicit versions: each version is won exactly once."""
    uri = new_database(backend)
    SQLAlchemyMetadataStore.from_uri(uri).close()
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    procs = [ctx.Process(target=_explicit_race, args=(uri, barrier, results, w)) for w in range(4)]
    for p in procs:
        p.start()
    won = [v for _ in procs for v in results.get(timeout=300)]
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
