"""Behaviour of SQLAlchemyMetadataStore on every backend (SQLite file and memory, PG, MariaDB)."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pinnacle_protocols import (
    ArtifactRef,
    BackendUnavailable,
    ComponentInUse,
    ComponentKey,
    ComponentNotFound,
    ComponentRecord,
    DropRefused,
    InvalidRecord,
    JobNotFound,
    JobRecord,
    JobStatus,
    MetadataStore,
    PinnacleError,
    VersionConflict,
)
from pinnacle_protocols.testing.strategies import TRICKY_IDENTIFIERS
from pinnacle_sql import SQLAlchemyMetadataStore
from pinnacle_sql.testing import DatabaseServer, StoreMaker, backend_params, run_sql

SHA_A = "a" * 64
SHA_B = "b" * 64
MiB = 1 << 20


def rec(identifier: str = "m", type_id: str = "model", **kw: object) -> ComponentRecord:
    return ComponentRecord(type_id=type_id, identifier=identifier, **kw)  # type: ignore[arg-type]


def key(identifier: str, version: int, type_id: str = "model") -> ComponentKey:
    return ComponentKey(type_id=type_id, identifier=identifier, version=version)


def test_satisfies_protocol(store: SQLAlchemyMetadataStore) -> None:
    assert isinstance(store, MetadataStore)
    assert store.schema_revision().up_to_date


def test_versions_allocate_and_are_never_reused(store: SQLAlchemyMetadataStore) -> None:
    assert [store.create_component(rec()).version for _ in range(3)] == [0, 1, 2]
    store.delete_component_version("model", "m", 2)
    assert store.show_versions("model", "m") == [0, 1]
    assert store.get_component("model", "m").version == 1
    assert store.create_component(rec()).version == 3
    # explicit versions count towards "highest ever allocated"
    assert store.create_component(rec(version=10)).version == 10
    assert store.create_component(rec()).version == 11
    # a lower explicit version that is free is fine and does not move the counter back
    assert store.create_component(rec(version=5)).version == 5
    assert store.create_component(rec()).version == 12
    with pytest.raises(VersionConflict):
        store.create_component(rec(version=5))
    assert store.show_versions("model", "m") == [0, 1, 3, 5, 10, 11, 12]
    # deleting every version keeps the counter
    for v in store.show_versions("model", "m"):
        store.delete_component_version("model", "m", v)
    assert store.show_versions("model", "m") == []
    assert store.create_component(rec()).version == 13


def test_record_round_trip(store: SQLAlchemyMetadataStore) -> None:
    when = datetime(2001, 2, 3, 4, 5, 6, 123456, tzinfo=UTC)
    original = rec(
        data={"f": 1.5, "i": -(2**63), "n": None, "l": [1, "x", {"y": False}], "neg0": -0.0},
        artifacts={
            "weights": ArtifactRef(sha256=SHA_A, size=12),
            "w2": ArtifactRef(sha256=SHA_B, size=0),
        },
        created_at=when,
    )
    stored = store.create_component(original)
    assert stored.version == 0
    assert stored.created_at == when
    got = store.get_component("model", "m", 0)
    assert got == stored
    assert got.data == original.data
    assert isinstance(got.data["f"], float)
    assert isinstance(got.data["i"], int)
    assert store.get_component("model", "m") == stored
    assert store.referenced_artifacts() == {SHA_A, SHA_B}


def test_created_at_set_by_store(store: SQLAlchemyMetadataStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    stored = store.create_component(rec())
    assert stored.created_at is not None
    assert stored.created_at >= before
    assert store.get_component("model", "m").created_at == stored.created_at


def test_naive_created_at_is_refused(store: SQLAlchemyMetadataStore) -> None:
    with pytest.raises(InvalidRecord):
        store.create_component(rec(created_at=datetime(2020, 1, 1)))
    assert store.show_components() == []


def test_identifiers_compare_exactly(store: SQLAlchemyMetadataStore) -> None:
    """'A' vs 'a', trailing spaces, accents: all distinct (MariaDB *_bin is PAD SPACE)."""
    names = ["a", "A", "a ", " a", "a  ", "é", "e\u0301", "ß", "SS", "ss"]
    for name in names:
        assert store.create_component(rec(name)).version == 0
    assert [k.identifier for k in store.show_components()] == sorted(names)
    for name in names:
        assert store.get_component("model", name).identifier == name
        assert store.show_versions("model", name) == [0]
    store.delete_component_version("model", "a", 0)
    assert store.show_versions("model", "a ") == [0]
    assert store.show_versions("model", "A") == [0]


def test_hostile_identifiers_round_trip(store: SQLAlchemyMetadataStore) -> None:
    extra = ["' OR 1=1 --", "x'; DROP TABLE _pinnacle_components; --", "a/b\\c", 'q"q']
    tricky = list(dict.fromkeys([*TRICKY_IDENTIFIERS, *extra]))
    for i, name in enumerate(tricky):
        stored = store.create_component(rec(name, type_id=name, data={"i": i, "name": name}))
        assert store.get_component(name, name) == stored
    keys = store.show_components()
    assert keys == sorted(keys)
    assert {(k.type_id, k.identifier) for k in keys} == {(n, n) for n in tricky}
    for name in tricky:
        assert store.show_components(name) == [key(name, 0, type_id=name)]


def test_large_records_round_trip(store: SQLAlchemyMetadataStore) -> None:
    """Records of several MiB survive exactly (MySQL TEXT would stop at 64 KiB)."""
    big = {
        "ascii": "x" * (3 * MiB),
        "astral": "😀" * (128 * 1024),
        "quotes": "'\";--\\" * 10_000,
        "nested": [{"k": i, "v": "é" * 100} for i in range(2000)],
    }
    stored = store.create_component(rec("big", data=big))
    got = store.get_component("model", "big")
    assert got == stored
    assert got.data == big


def test_not_found(store: SQLAlchemyMetadataStore) -> None:
    with pytest.raises(ComponentNotFound):
        store.get_component("model", "nope")
    store.create_component(rec())
    with pytest.raises(ComponentNotFound):
        store.get_component("model", "m", 1)
    with pytest.raises(ComponentNotFound):
        store.get_component("model", "M")
    with pytest.raises(ComponentNotFound):
        store.delete_component_version("model", "m", 7)
    # arguments no record could have are "not found", not driver errors
    for type_id, identifier, version in [
        ("", "m", None),
        ("model", "a\x00b", None),
        ("model", "x" * 300, None),
        ("model", "m", 2**70),
    ]:
        with pytest.raises(ComponentNotFound):
            store.get_component(type_id, identifier, version)
    assert store.show_versions("model", "a\x00b") == []
    assert store.show_components("a\x00") == []


def test_show_components(store: SQLAlchemyMetadataStore) -> None:
    for ident in ["b", "a", "c"]:
        store.create_component(rec(ident))
    store.create_component(rec("a"))
    store.create_component(rec("z", type_id="dataset"))
    assert store.show_components() == [
        key("z", 0, "dataset"),
        key("a", 1),
        key("b", 0),
        key("c", 0),
    ]
    assert store.show_components("dataset") == [key("z", 0, "dataset")]
    assert store.show_components("nothing") == []


def test_lineage(store: SQLAlchemyMetadataStore) -> None:
    p = store.create_component(rec("parent")).key
    c1 = store.create_component(rec("child1")).key
    c2 = store.create_component(rec("child2")).key
    store.create_parent_child(p, c2)
    store.create_parent_child(p, c1)
    store.create_parent_child(p, c1)  # idempotent
    assert store.get_children(p) == [c1, c2]
    assert store.get_parents(c1) == [p]
    assert store.get_parents(p) == []
    with pytest.raises(ComponentNotFound):
        store.create_parent_child(p, key("ghost", 0))
    with pytest.raises(ComponentNotFound):
        store.create_parent_child(key("ghost", 0), p)
    with pytest.raises(InvalidRecord):
        store.create_parent_child(p, "nope")  # type: ignore[arg-type]
    with pytest.raises(ComponentInUse):
        store.delete_component_version("model", "child1", 0)
    assert store.show_versions("model", "child1") == [0]
    # deleting the parent removes its edges
    store.delete_component_version("model", "parent", 0)
    assert store.get_parents(c1) == []
    store.delete_component_version("model", "child1", 0)
    # force deletes a depended-on version and its edges
    p2 = store.create_component(rec("parent")).key
    store.create_parent_child(p2, c2)
    store.delete_component_version("model", "child2", 0, force=True)
    assert store.get_children(p2) == []
    assert store.get_parents(key("ghost", 3)) == []


def test_delete_removes_artifact_refs(store: SQLAlchemyMetadataStore) -> None:
    store.create_component(rec("a", artifacts={"w": ArtifactRef(sha256=SHA_A, size=1)}))
    store.create_component(rec("b", artifacts={"w": ArtifactRef(sha256=SHA_A, size=1)}))
    store.create_component(rec("b", artifacts={"w": ArtifactRef(sha256=SHA_B, size=1)}))
    assert store.referenced_artifacts() == {SHA_A, SHA_B}
    store.delete_component_version("model", "b", 1)
    assert store.referenced_artifacts() == {SHA_A}
    store.delete_component_version("model", "a", 0)
    assert store.referenced_artifacts() == {SHA_A}
    store.delete_component_version("model", "b", 0)
    assert store.referenced_artifacts() == set()


def test_jobs(store: SQLAlchemyMetadataStore) -> None:
    k = store.create_component(rec()).key
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    j2 = store.create_job(JobRecord(job_id="j2", kind="predict", component=k, created_at=t0))
    j1 = store.create_job(JobRecord(job_id="j1", kind="predict", component=k, created_at=t0))
    j0 = store.create_job(JobRecord(job_id="j0", kind="train", args={"a": [1, 2]}))
    assert j0.created_at is not None
    assert store.get_job("j0") == j0
    with pytest.raises(VersionConflict):
        store.create_job(JobRecord(job_id="j0", kind="x"))
    assert store.show_jobs() == [j1, j2, j0]
    assert store.show_jobs(component=k) == [j1, j2]
    assert store.show_jobs(component=key("m", 1)) == []
    running = store.update_job(
        JobRecord(job_id="j1", kind="predict", component=k, status=JobStatus.RUNNING)
    )
    assert running.created_at == t0  # kept from the stored job
    assert store.get_job("j1") == running
    assert store.show_jobs(status=JobStatus.RUNNING) == [running]
    assert store.show_jobs(status=JobStatus.PENDING, component=k) == [j2]
    with pytest.raises(JobNotFound):
        store.get_job("missing")
    with pytest.raises(JobNotFound):
        store.update_job(JobRecord(job_id="missing", kind="x"))
    with pytest.raises(JobNotFound):
        store.get_job("a\x00")


def test_metadata(store: SQLAlchemyMetadataStore) -> None:
    assert store.get_metadata("k") is None
    assert store.get_metadata("k", {"d": 1}) == {"d": 1}
    store.set_metadata("k", {"a": [1, 2.5, None, "😀"]})
    assert store.get_metadata("k") == {"a": [1, 2.5, None, "😀"]}
    store.set_metadata("k", 3)
    assert store.get_metadata("k") == 3
    long_key = "ключ/" * 200  # longer than any name column
    store.set_metadata(long_key, "v")
    assert store.get_metadata(long_key) == "v"
    store.set_metadata("' OR 1=1 --", None)
    assert store.get_metadata("' OR 1=1 --", "default") is None
    with pytest.raises(InvalidRecord):
        store.set_metadata("", 1)
    with pytest.raises(InvalidRecord):
        store.set_metadata("x", float("nan"))
    with pytest.raises(InvalidRecord):
        store.set_metadata("x", {1: 2})  # type: ignore[dict-item]
    assert store.get_metadata("", 5) == 5


def test_drop(maker: StoreMaker) -> None:
    store = maker()
    store.create_component(rec())
    store.set_metadata("k", 1)
    with pytest.raises(DropRefused):
        store.drop()
    assert store.show_versions("model", "m") == [0]
    store.drop(force=True)
    # usable again, empty, counters gone too
    assert store.show_components() == []
    assert store.get_metadata("k") is None
    assert store.create_component(rec()).version == 0
    assert store.schema_revision().up_to_date


def test_close(store: SQLAlchemyMetadataStore) -> None:
    store.create_component(rec())
    store.close()
    store.close()
    with pytest.raises(BackendUnavailable):
        store.show_components()


@pytest.mark.parametrize("backend", backend_params(("sqlite_file", "postgres", "mariadb")))
def test_two_stores_share_a_database(maker: StoreMaker) -> None:
    """Two store objects on one database see each other (sqlite:// is private by design)."""
    a = maker()
    b = SQLAlchemyMetadataStore.from_uri(a.uri.reveal())
    try:
        a.create_component(rec())
        assert b.create_component(rec()).version == 1
        assert a.show_versions("model", "m") == [0, 1]
    finally:
        b.close()


@pytest.mark.mariadb
def test_mariadb_column_types(mariadb_server: DatabaseServer) -> None:
    """Names are VARBINARY (utf8mb4_bin is PAD SPACE on MariaDB), records LONGTEXT (not 64 KiB)."""
    uri = mariadb_server.create_database()
    store = SQLAlchemyMetadataStore.from_uri(uri)
    try:
        store.show_components()
        rows = run_sql(
            uri,
            "SELECT column_name, column_type FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = '_pinnacle_components'",
        )
        types = {str(name): str(kind) for name, kind in rows}
        assert types["type_id"] == "varbinary(1020)"
        assert types["identifier"] == "varbinary(1020)"
        assert types["record"] == "longtext"
        assert types["created_at"] == "datetime(6)"
        # and the server really would have merged them as strings
        assert run_sql(uri, "SELECT 'a' = 'a ' COLLATE utf8mb4_bin") == [(1,)]
    finally:
        store.close()


def test_stored_keys_are_real_component_keys() -> None:
    """Keys read back without re-validation behave exactly like validated ones."""
    from pinnacle_sql.store import _sorted_keys

    rows = [("t", "b", 1), ("s", "z", 0), ("t", "a", 7)]
    keys = _sorted_keys(rows)
    expected = sorted(ComponentKey(type_id=t, identifier=i, version=v) for t, i, v in rows)
    assert keys == expected
    assert [hash(k) for k in keys] == [hash(k) for k in expected]
    assert [repr(k) for k in keys] == [repr(k) for k in expected]
    assert all(type(k) is ComponentKey for k in keys)


@pytest.mark.mariadb
def test_mariadb_writes_are_transactions(mariadb_server: DatabaseServer) -> None:
    """Connections are in autocommit mode for reads; writers must still get a transaction."""
    store = SQLAlchemyMetadataStore.from_uri(mariadb_server.create_database())
    try:
        store.show_components()

        def probe(conn: Any) -> Any:
            return conn.exec_driver_sql("SELECT @@in_transaction").scalar()

        assert store._write(probe, "probing") == 1
        assert store._read(probe, "probing") == 0

        def fail_after_insert(conn: Any) -> None:
            store._bump_counter(conn, "model", "rolled back", 0)
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            store._write(fail_after_insert, "failing")
        # the counter row written before the failure was rolled back with the transaction
        assert store.create_component(rec("rolled back")).version == 0
    finally:
        store.close()


def test_counter_behind_stored_versions_is_repaired(store: SQLAlchemyMetadataStore) -> None:
    """Counters lost or lowered behind the store's back (a partial restore): allocation repairs
    them from the stored versions instead of failing or reusing a version."""
    for _ in range(3):
        store.create_component(rec(artifacts={"w": ArtifactRef(sha256=SHA_A, size=1)}))
    store.create_component(rec("other"))

    def lower(conn: Any) -> None:
        conn.exec_driver_sql("DELETE FROM _pinnacle_version_counters")

    store._write(lower, "lowering counters")
    created = store.create_component(rec(artifacts={"w": ArtifactRef(sha256=SHA_B, size=1)}))
    assert created.version == 3
    assert store.get_component("model", "m").artifacts["w"].sha256 == SHA_B
    assert store.create_component(rec("other")).version == 1
    assert store.show_versions("model", "m") == [0, 1, 2, 3]
    assert store.referenced_artifacts() >= {SHA_A, SHA_B}


@pytest.mark.sqlite
def test_sqlite_fast_path_writes_what_the_core_path_writes(tmp_path: Path) -> None:
    """create_component on pysqlite runs its statements on the DB-API cursor: the rows it
    writes must be identical to those of the SQLAlchemy Core path (the other dialects')."""
    store = SQLAlchemyMetadataStore.from_uri(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        when = datetime(2001, 2, 3, 4, 5, 6, 123000, tzinfo=UTC)
        refs = {"w": ArtifactRef(sha256=SHA_A, size=1), "v": ArtifactRef(sha256=SHA_B, size=2)}
        store.create_component(rec("fast", created_at=when, artifacts=refs, data={"x": [1]}))
        assert store._sqlite_create is not None  # the fast path is the one in use
        fast_path = store._sqlite_create
        store._sqlite_create = None
        store.create_component(rec("core", created_at=when, artifacts=refs, data={"x": [1]}))
        store._sqlite_create = fast_path

        def rows(conn: Any) -> list[tuple[Any, ...]]:
            return [
                tuple(row)
                for row in conn.exec_driver_sql(
                    "SELECT c.version, c.record, c.created_at, a.sha256, c.content_hash, "
                    "c.identifier "
                    "FROM _pinnacle_components c JOIN _pinnacle_component_artifacts a "
                    "ON a.component_id = c.id ORDER BY c.identifier, a.sha256"
                )
            ]

        stored = store._read(rows, "reading")
        # version, record (own identifier masked), created_at and artifact refs are identical;
        # the content hash covers the identifier, so it is compared with the record's own
        normal = [(r[0], r[1].replace(f'"{r[5]}"', '"?"'), r[2], r[3]) for r in stored]
        assert normal[:2] == normal[2:]
        for *_, content_hash, identifier in stored:
            assert content_hash == store.get_component("model", identifier).content_hash
        assert store.get_component("model", "fast").created_at == when
        assert store.get_component("model", "fast").artifacts == refs
    finally:
        store.close()


@pytest.mark.sqlite
def test_sqlite_writer_waits_for_the_lock_then_fails_cleanly(tmp_path: Path) -> None:
    """Another process's write transaction holds the lock past busy_timeout: create_component
    fails with an error naming the store and the lock, and writes nothing; once the lock is
    released the same store works."""
    path = tmp_path / "locked.db"
    store = SQLAlchemyMetadataStore.from_uri(f"sqlite:///{path}", busy_timeout=0.3)
    try:
        store.create_component(rec())
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            with pytest.raises(PinnacleError, match="database is locked") as info:
                store.create_component(rec())
            assert 0.25 < time.monotonic() - started < 10
            assert "locked.db" in str(info.value)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert store.show_versions("model", "m") == [0]
        assert store.create_component(rec()).version == 1
    finally:
        store.close()
