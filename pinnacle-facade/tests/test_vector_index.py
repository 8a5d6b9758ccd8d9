"""Vector indexes: apply, search (with ``where``), upkeep, repair, second-process search.

Real backends: SQLite, DuckDB (the embedded default) and PostgreSQL; the Hypothesis state
machine at the end runs on the in-memory reference stores (restart = a new Datalayer on the
same stores) so it stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np
import pytest
from attrs import define
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pinnacle_protocols.errors import (
    ComponentInUse,
    IndexNotBuilt,
    InvalidRecord,
    NotVectorOutputs,
)
from pinnacle_protocols.memory import MemoryArtifactStore, MemoryDataBackend, MemoryMetadataStore
from pinnacle_protocols.records import ArtifactRef, JobStatus
from pinnacle_protocols.vectors import Measure, VectorId, brute_force
from pinnacledb import HashingTextEncoder, LinearModel, Listener, Model, VectorIndex, pinnacle
from pinnacledb.base.datalayer import Datalayer
from pinnacledb.vector_search import POINTER_PREFIX, VectorIndexEngine
from pinnacledb.vectors import engine_names
from pinnacledb.vectors.tiered import TieredEngine


class MakeDB:
    """Datalayers on one stack: each call is a new process's view of it."""

    def __init__(self, stores: dict[str, Any]) -> None:
        self.stores = stores
        self.made: list[Datalayer] = []
        uri = stores.get("databackend")
        #: How the CLI names the same stack.
        self.cli_args = [] if uri is None else ["--databackend", uri]

    def __call__(self) -> Datalayer:
        db = pinnacle(**self.stores, components=[Planar])
        self.made.append(db)
        return db


def planar(x: float) -> list[float]:
    """The test embedding of a number (never the zero vector)."""
    return [math.cos(x), math.sin(x), x / 10 + 0.5]


@define(kw_only=True)
class Planar(Model):
    """A data-only model (no artifact, nothing to trust): x -> planar(x)."""

    component_name: ClassVar[str | None] = "test_planar"
    serializer: str = "json"

    def predict(self, inputs: Any) -> list[Any]:
        return [planar(float(x)) for x in inputs]


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("duckdb", marks=[pytest.mark.duckdb, pytest.mark.sqlite]),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def make(request: pytest.FixtureRequest) -> Iterator[MakeDB]:
    """Factory of Datalayers on one stack: each call is a new process's view of it."""
    stores: dict[str, Any] = {}
    if request.param == "sqlite":
        stores = {"databackend": "sqlite://data.db"}
    elif request.param == "postgres":
        stores = {"databackend": request.getfixturevalue("pg_uri")}
    factory = MakeDB(stores)
    yield factory
    for db in factory.made:
        with contextlib.suppress(Exception):
            db.close()


def _setup(
    db: Datalayer,
    n: int = 40,
    *,
    measure: Measure = "l2",
    engine: str = "exact",
    where: dict[str, Any] | None = None,
    output_type: str | None = None,
) -> None:
    db.create_table("t", {"id": "int", "x": "float", "tag": "str"})
    db.insert("t", [{"id": i, "x": i * 0.37, "tag": _tag(i)} for i in range(n)])
    listener = Listener(
        identifier="emb",
        model=Planar(identifier="planar"),
        table="t",
        inputs="x",
        where=where,
        output_type=output_type,
    )
    db.apply(VectorIndex(identifier="idx", listener=listener, measure=measure, engine=engine))


def _tag(i: int) -> str:
    return "rare" if i % 10 == 3 else ("a" if i % 2 else "b")


def expected(
    db: Datalayer,
    q: list[float],
    n: int,
    where: dict[str, Any] | None = None,
    measure: Measure = "l2",
) -> list[tuple[Any, float]]:
    rows = db.select("t", where)
    return brute_force(measure, {r["id"]: planar(r["x"]) for r in rows}, q, n)


def same(got: list[Any], want: list[tuple[Any, float]]) -> None:
    """Same scores in order, each id's score its true one (tie-order free)."""
    assert [h.score for h in got] == pytest.approx([s for _, s in want], abs=1e-4)
    truth = dict(want)
    for h in got:
        if h.id in truth:
            assert h.score == pytest.approx(truth[h.id], abs=1e-4)


# ---------------------------------------------------------------------- apply + search
def test_apply_stores_a_build_another_process_searches_without_rebuilding(
    make: MakeDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make()
    _setup(db)
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert ptr.artifact is not None
    assert ptr.count == 40
    assert ptr.dim == 3
    assert ptr.index_version == 0
    assert db.artifact_store.exists(ptr.artifact)
    kinds = {(j.kind, j.status) for j in db.show_jobs()}
    assert ("vector_index.build", JobStatus.SUCCESS) in kinds
    # lineage: the index uses the listener
    key = db.metadata.get_component("vector_index", "idx").key
    assert [c.type_id for c in db.metadata.get_children(key)] == ["listener"]
    assert db.show("vector_index") == ["idx"]

    q = planar(2.0)
    hits = db.search("idx", like=q, n=5)
    same(hits, expected(db, q, 5))
    assert hits[0]["x"] == pytest.approx(0.37 * 5)
    assert set(hits[0]) == {"id", "x", "tag"}

    def no_rebuild(*a: Any, **k: Any) -> Any:
        raise AssertionError("a second process must not rebuild")

    other = make()
    monkeypatch.setattr(VectorIndexEngine, "build_engine", no_rebuild)
    again = other.search("idx", like=np.array(q), n=5)
    assert [(h.id, h.score) for h in again] == [(h.id, h.score) for h in hits]


def test_like_a_raw_input_goes_through_the_listener_model(make: MakeDB) -> None:
    db = make()
    _setup(db)
    same(db.search("idx", like=2.0, n=3), expected(db, planar(2.0), 3))


def test_where_is_exact_about_the_filter(make: MakeDB) -> None:
    db = make()
    _setup(db, n=60)
    q = planar(0.4)
    # few matches (prefilter fallback): all 6 'rare' rows, nothing else, even with n=10
    rare = db.search("idx", like=q, n=10, where={"tag": "rare"})
    assert len(rare) == 6
    assert {h["tag"] for h in rare} == {"rare"}
    same(rare, expected(db, q, 10, {"tag": "rare"}))
    # many matches (over-fetch): n results, best first, all matching
    for where in ({"tag": "a"}, {"x": {"$gt": 10.0}}, {"$or": [{"tag": "rare"}, {"id": 0}]}):
        hits = db.search("idx", like=q, n=7, where=where)
        same(hits, expected(db, q, 7, where))
    assert db.search("idx", like=q, n=0) == []


def test_upkeep_follows_insert_update_delete_in_every_process(make: MakeDB) -> None:
    db, other = make(), make()
    _setup(db)
    q = planar(1.0)
    assert [h.id for h in other.search("idx", like=q, n=1)] == [3]  # 3 * 0.37 = 1.11
    db.insert("t", [{"id": 100, "x": 1.0, "tag": "b"}, {"id": 101, "x": 1.02, "tag": "a"}])
    same(other.search("idx", like=q, n=4), expected(db, q, 4))
    assert other.search("idx", like=q, n=1)[0].id == 100
    other.update("t", {"id": 100}, {"x": 30.0})
    same(db.search("idx", like=q, n=4), expected(db, q, 4))
    assert db.search("idx", like=q, n=1)[0].id == 101
    db.delete("t", {"tag": "a"})
    got = other.search("idx", like=q, n=40, where={"tag": {"$ne": "zzz"}})
    assert {h["tag"] for h in got} <= {"b", "rare"}
    same(got, expected(db, q, 40))
    assert db._vectors.pointer("idx").count == db.count("t")  # type: ignore[union-attr]


def test_listener_where_limits_what_is_indexed(make: MakeDB) -> None:
    db = make()
    _setup(db, where={"tag": {"$ne": "rare"}})
    hits = db.search("idx", like=planar(1.1), n=100)
    assert len(hits) == 36
    assert all(h["tag"] != "rare" for h in hits)
    db.update("t", {"id": 4}, {"tag": "rare"})  # leaves the listener's where: out of the index
    assert 4 not in {h.id for h in db.search("idx", like=planar(1.1), n=100)}


def test_non_vector_outputs_are_refused_naming_the_listener_and_dtype(make: MakeDB) -> None:
    db = make()
    db.create_table("t", {"id": "int", "x": "float", "tag": "str"})
    db.insert("t", [{"id": 1, "x": 1.0, "tag": "a"}])
    lin = Listener(
        identifier="lin",
        model=LinearModel(identifier="m", weights=np.array([2.0]), bias=0.0),
        table="t",
        inputs="x",
    )
    with pytest.raises(NotVectorOutputs, match=r"listener 'lin' outputs dtype 'float'"):
        db.apply(VectorIndex(identifier="bad", listener=lin))
    assert db.show("vector_index") == []
    with pytest.raises(InvalidRecord, match="measure"):
        VectorIndex(identifier="x", listener=lin, measure="hamming")


def test_ragged_json_outputs_are_refused_and_leave_no_record(make: MakeDB) -> None:
    db = make()
    db.create_table("t", {"id": "int", "x": "float", "tag": "str"})
    db.insert("t", [{"id": i, "x": float(i), "tag": "a"} for i in range(3)])
    enc = HashingTextEncoder(identifier="enc", dim=8)
    listener = Listener(identifier="txt", model=enc, table="t", inputs="tag")
    db.apply(VectorIndex(identifier="ok", listener=listener))  # json arrays of one length: fine
    assert len(db.search("ok", like="a", n=5)) == 3
    db.databackend.insert(  # a bypassing write leaves a ragged output behind
        listener.output_table,
        [
            {
                "id": "x",
                "source_id": 99,
                "model": "enc",
                "model_version": 0,
                "job_id": "j",
                "input_hash": "h",
                "output": [1.0, 2.0],
            }
        ],
    )
    with pytest.raises(NotVectorOutputs, match=r"listener 'txt'.*dimensions \[2, 8\]"):
        db.apply(VectorIndex(identifier="ragged", listener=listener))
    assert db.show("vector_index") == ["ok"]


# ---------------------------------------------------------------------- repair
def test_missing_or_corrupt_build_raises_and_catch_up_or_the_cli_repairs(
    make: MakeDB, capsys: pytest.CaptureFixture[str]
) -> None:
    from pinnacledb.cli import main

    db = make()
    _setup(db)
    q = planar(3.0)
    want = [h.id for h in db.search("idx", like=q, n=5)]
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert ptr.artifact is not None
    db.artifact_store.delete(ptr.artifact)
    fresh = make()
    with pytest.raises(IndexNotBuilt, match="pinnacle index rebuild idx"):
        fresh.search("idx", like=q, n=5)
    report = fresh.catch_up(stale=False)
    assert report.indexes == {"idx": "rebuilt"}
    assert [h.id for h in fresh.search("idx", like=q, n=5)] == want
    assert fresh.catch_up(stale=False).indexes == {"idx": "current"}

    fresh.metadata.set_metadata(POINTER_PREFIX + "idx", None)  # the pointer itself is gone
    third = make()
    with pytest.raises(IndexNotBuilt, match="has no stored build"):
        third.search("idx", like=q, n=5)
    capsys.readouterr()
    assert main(["index", "rebuild", "idx", *make.cli_args]) == 0
    assert "'idx' rebuilt: 40 vectors" in capsys.readouterr().out
    assert [h.id for h in make().search("idx", like=q, n=5)] == want


def test_stale_count_is_found_by_catch_up_without_stale(make: MakeDB) -> None:
    db = make()
    _setup(db)
    db.databackend.delete("t", {"id": 3})  # bypasses pinnacledb: outputs and index keep it
    db.catch_up(stale=False)  # listener removes the orphan output; its upkeep drops the vector
    assert 3 not in {h.id for h in db.search("idx", like=planar(1.1), n=40)}
    assert db._vectors.pointer("idx").count == 39  # type: ignore[union-attr]


def test_a_new_model_version_rebuilds_the_index(make: MakeDB) -> None:
    db = make()
    _setup(db)

    @define(kw_only=True)
    class Shifted(Planar):
        component_name: ClassVar[str | None] = "test_shifted"

        def predict(self, inputs: Any) -> list[Any]:
            return [planar(float(x) + 1.0) for x in inputs]

    listener = Listener(identifier="emb", model=Shifted(identifier="planar"), table="t", inputs="x")
    db.apply(listener)
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert ptr.model_version == 1
    top = db.search("idx", like=planar(1.0 + 1.0), n=1)[0]
    assert top.id == 3


def test_remove_is_protected_by_lineage_and_clears_the_pointer(make: MakeDB) -> None:
    db = make()
    _setup(db)
    with pytest.raises(ComponentInUse, match="vector_index 'idx'"):
        db.remove("listener", "emb")
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert ptr.artifact is not None
    report = db.gc(grace_seconds=0)
    assert ptr.artifact not in report.deleted  # the pointer keeps the current build
    assert db.artifact_store.exists(ptr.artifact)
    db.remove("vector_index", "idx")
    assert db._vectors.pointer("idx") is None
    db.insert("t", [{"id": 500, "x": 1.0, "tag": "b"}])  # no index upkeep any more
    assert db._vectors.pointer("idx") is None


# ---------------------------------------------------------------------- incremental upkeep
def _record_puts(db: Datalayer, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of every artifact ``db`` puts from now on."""
    store = db.artifact_store
    sizes: list[int] = []
    put = store.put

    def counting(data: Any) -> Any:
        ref = put(data)
        sizes.append(ref.size)
        return ref

    monkeypatch.setattr(store, "put", counting)
    return sizes


def test_a_write_stores_one_small_change_file_and_leaves_no_job_record(
    make: MakeDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make()
    _setup(db, n=400)
    base = db._vectors.pointer("idx")
    assert base is not None
    assert base.artifact is not None
    assert base.deltas == ()
    jobs = len(db.show_jobs())
    puts = _record_puts(db, monkeypatch)

    db.insert("t", [{"id": 1000, "x": 1.0, "tag": "b"}, {"id": 1001, "x": 1.5, "tag": "a"}])
    db.update("t", {"id": 5}, {"x": 33.0})
    db.delete("t", {"id": 7})
    db.delete("t", {"id": 123456})  # not in the index: nothing to store
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert ptr.artifact == base.artifact  # the base build is not stored again
    assert len(ptr.deltas) == 3
    assert ptr.delta_rows == 2 + 1 + 1
    assert ptr.count == 401
    assert len(puts) == 3
    assert max(puts) * 20 < base.artifact.size  # change files, not the whole index again
    assert len(db.show_jobs()) == jobs  # no journal (or any) job record per write
    for q in (planar(1.0), planar(3.3)):
        same(db.search("idx", like=q, n=5), expected(db, q, 5))
        same(make().search("idx", like=q, n=5), expected(db, q, 5))  # base + change files


class RacingMetadataStore(MemoryMetadataStore):
    """The reference store, plus a hook run once just before the next pointer swap: another
    process's write lands between a write's read of the pointer and its swap."""

    before_swap: Any = None

    def _race(self, key: str) -> None:
        hook, self.before_swap = self.before_swap, None
        if hook is not None and key.startswith(POINTER_PREFIX):
            hook()

    def swap_metadata(self, key: str, expected: Any, value: Any) -> bool:
        self._race(key)
        return super().swap_metadata(key, expected, value)

    def set_metadata(self, key: str, value: Any) -> None:
        self._race(key)  # a pointer written without a swap races the same way
        super().set_metadata(key, value)


@pytest.mark.memory
@pytest.mark.parametrize("max_deltas", [100, 1], ids=["change-file", "compaction"])
def test_a_write_that_loses_the_pointer_swap_is_applied_on_top_of_the_winner(
    max_deltas: int,
) -> None:
    """Two processes' writes race on the pointer: the loser re-reads and applies its change
    on top, so neither change file is lost (without compare-and-set the later pointer wins)."""
    md = RacingMetadataStore.from_uri("memory://")
    stores: dict[str, Any] = {
        "databackend": MemoryDataBackend.from_uri("memory://"),
        "metadata_store": md,
        "artifact_store": MemoryArtifactStore.from_uri("memory://"),
    }
    first = pinnacle(**stores, components=[Planar])
    _setup(first, n=10)
    second = pinnacle(**stores, components=[Planar])
    for db in (first, second):
        db._vectors.max_deltas = max_deltas
    second.search("idx", like=planar(0.0), n=1)  # both hold the engine of the same pointer
    md.before_swap = lambda: second.insert("t", [{"id": 500, "x": 2.0, "tag": "a"}])
    first.insert("t", [{"id": 501, "x": 2.5, "tag": "b"}])
    first.delete("t", {"id": 3})
    md.before_swap = lambda: first.update("t", {"id": 4}, {"x": 7.0})
    second.insert("t", [{"id": 502, "x": 6.5, "tag": "a"}])

    fresh = pinnacle(**stores, components=[Planar])
    vectors = fresh._vectors
    info, _active = vectors._resolve("idx")
    ptr = vectors.pointer("idx")
    assert ptr is not None
    engine = vectors.engine_at(info, ptr)
    assert engine is not None
    ids = {r["id"] for r in fresh.select("t")}
    assert ids == (set(range(10)) - {3}) | {500, 501, 502}
    assert {i for i in ids if i in engine} == ids, "a write's change file was lost"
    assert len(engine) == len(ids), "a deleted row is still indexed"
    for q in (planar(7.0), planar(2.5), planar(0.3)):
        same(fresh.search("idx", like=q, n=5), expected(fresh, q, 5))
    assert fresh.catch_up(stale=False).indexes == {"idx": "current"}
    assert [j.kind for j in fresh.show_jobs() if j.status is not JobStatus.SUCCESS] == []


def test_another_process_reads_only_the_change_files_it_has_not_applied(
    make: MakeDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, other = make(), make()
    _setup(db, n=200)
    q = planar(1.0)
    other.search("idx", like=q, n=3)  # loads the base
    db.insert("t", [{"id": 500, "x": 1.0, "tag": "b"}])
    db.insert("t", [{"id": 501, "x": 1.01, "tag": "b"}])
    store = other.artifact_store
    read: list[str] = []
    get = store.get

    def counting(ref: Any) -> bytes:
        read.append(ref.sha256)
        return get(ref)

    monkeypatch.setattr(store, "get", counting)
    same(other.search("idx", like=q, n=3), expected(db, q, 3))
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert read == [d.sha256 for d in ptr.deltas]  # the two change files, not the base


def test_change_files_are_compacted_into_a_new_base_and_gc_drops_the_old_chain(
    make: MakeDB,
) -> None:
    db = make()
    _setup(db)
    db._vectors.max_deltas = 3
    first = db._vectors.pointer("idx")
    assert first is not None
    for i in range(3):
        db.insert("t", [{"id": 100 + i, "x": 0.5 + i, "tag": "a"}])
    chain = db._vectors.pointer("idx")
    assert chain is not None
    assert len(chain.deltas) == 3
    db.insert("t", [{"id": 200, "x": 2.2, "tag": "b"}])  # the 4th change: compaction
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert ptr.deltas == ()
    assert ptr.delta_rows == 0
    assert ptr.artifact != first.artifact
    assert ptr.count == 44
    report = db.gc(grace_seconds=0)
    assert {r.sha256 for r in report.deleted} == {r.sha256 for r in chain.refs}
    q = planar(2.0)
    same(make().search("idx", like=q, n=6), expected(db, q, 6))

    db._vectors.max_deltas = 100  # now by rows: more than max(3, 0.1 * count) ids changed
    db._vectors.compact_min_rows = 3
    db.insert("t", [{"id": 300 + i, "x": i / 3, "tag": "a"} for i in range(3)])
    assert len(db._vectors.pointer("idx").deltas) == 1  # type: ignore[union-attr]
    db.insert("t", [{"id": 400 + i, "x": i / 5, "tag": "b"} for i in range(3)])
    assert db._vectors.pointer("idx").deltas == ()  # type: ignore[union-attr]
    same(make().search("idx", like=q, n=6), expected(db, q, 6))


@pytest.mark.memory
def test_gc_between_a_writes_put_and_its_pointer_swap_keeps_the_change_file() -> None:
    """A change file is put without a journal job: gc (grace 0) running after the put and
    before the pointer names it keeps it, because it follows the pointer's chain."""
    md = RacingMetadataStore.from_uri("memory://")
    stores: dict[str, Any] = {
        "databackend": MemoryDataBackend.from_uri("memory://"),
        "metadata_store": md,
        "artifact_store": MemoryArtifactStore.from_uri("memory://"),
    }
    db = pinnacle(**stores, components=[Planar])
    _setup(db, n=10)
    jobs = len(db.show_jobs())
    reports: list[Any] = []
    md.before_swap = lambda: reports.append(db.gc(grace_seconds=0))
    db.insert("t", [{"id": 500, "x": 1.0, "tag": "a"}])
    assert len(reports) == 1
    assert reports[0].deleted == ()
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert len(ptr.deltas) == 1
    assert db.artifact_store.exists(ptr.deltas[0])
    assert len(db.show_jobs()) == jobs  # no journal job
    fresh = pinnacle(**stores, components=[Planar])
    same(fresh.search("idx", like=planar(1.0), n=3), expected(db, planar(1.0), 3))


def test_gc_deletes_a_change_file_once_the_pointer_has_passed_its_position(
    make: MakeDB,
) -> None:
    """A change file no pointer names is kept while it may still be named (it follows the
    pointer's base at a position not yet passed: a writer between its put and its swap, or
    one that died there) and deleted once the pointer has moved past it or to a new base."""
    from pinnacledb.vectors.delta import Delta, pack_delta

    db = make()
    _setup(db, n=10)
    db.insert("t", [{"id": 500, "x": 1.0, "tag": "a"}])
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert ptr.artifact is not None
    orphan = db.artifact_store.put(
        pack_delta(Delta(base=ptr.artifact.sha256, seq=1, dim=3, removed=(9,), added=()))
    )
    late = db.artifact_store.put(  # at a position the pointer has passed: never named
        pack_delta(Delta(base=ptr.artifact.sha256, seq=0, dim=3, removed=(8,), added=()))
    )
    report = db.gc(grace_seconds=0)
    assert {r.sha256 for r in report.deleted} == {late.sha256}
    assert db.artifact_store.exists(orphan)
    db.insert("t", [{"id": 501, "x": 2.0, "tag": "a"}])  # the pointer passes position 1
    assert len(db._vectors.pointer("idx").deltas) == 2  # type: ignore[union-attr]
    report = db.gc(grace_seconds=0)
    assert {r.sha256 for r in report.deleted} == {orphan.sha256}
    same(make().search("idx", like=planar(2.0), n=3), expected(db, planar(2.0), 3))


def test_a_change_file_put_waits_for_a_gc_run_deleting_the_same_bytes(
    make: MakeDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gc fence: a gc run that announced the change file's bytes (the same content
    stored before, now garbage) finishes its delete before the write puts them."""
    import threading
    import time

    from pinnacledb.base import _gcfence as fence
    from pinnacledb.vectors.delta import Delta, pack_delta

    db = make()
    _setup(db, n=10)
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert ptr.artifact is not None
    data = pack_delta(Delta(base=ptr.artifact.sha256, seq=0, dim=3, removed=(), added=(500,)))
    ref = ArtifactRef(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    run = fence.announce(db.metadata, [ref.sha256])
    events: list[str] = []
    store = db.artifact_store
    put = store.put

    def recording(value: Any) -> Any:
        events.append("put")
        return put(value)

    monkeypatch.setattr(store, "put", recording)

    def gc_finishes() -> None:
        time.sleep(0.3)
        events.append("withdraw")
        fence.withdraw(db.metadata, run)

    thread = threading.Thread(target=gc_finishes)
    thread.start()
    db.insert("t", [{"id": 500, "x": 1.0, "tag": "a"}])
    thread.join()
    assert events == ["withdraw", "put"]
    now = db._vectors.pointer("idx")
    assert now is not None
    assert now.deltas == (ref,)


def test_a_missing_or_foreign_change_file_raises_and_catch_up_rebuilds(make: MakeDB) -> None:
    db = make()
    _setup(db)
    db.insert("t", [{"id": 100, "x": 1.0, "tag": "a"}])
    db.insert("t", [{"id": 101, "x": 2.0, "tag": "a"}])
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert len(ptr.deltas) == 2
    q = planar(1.0)
    want = [h.id for h in db.search("idx", like=q, n=5)]
    # the change files in the wrong order: each names its position, so both are refused
    swapped = attrs.evolve(ptr, deltas=ptr.deltas[::-1], stamp="swapped")
    db.metadata.set_metadata(POINTER_PREFIX + "idx", swapped.to_json())
    with pytest.raises(IndexNotBuilt, match="position"):
        make().search("idx", like=q, n=5)
    db.metadata.set_metadata(POINTER_PREFIX + "idx", ptr.to_json())
    db.artifact_store.delete(ptr.deltas[1])
    fresh = make()
    with pytest.raises(IndexNotBuilt, match="pinnacle index rebuild idx"):
        fresh.search("idx", like=q, n=5)
    assert fresh.catch_up(stale=False).indexes == {"idx": "rebuilt"}
    assert [h.id for h in make().search("idx", like=q, n=5)] == want


def test_a_failed_upkeep_leaves_a_failed_job_and_the_next_write_repairs(
    make: MakeDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make()
    _setup(db)
    store = db.artifact_store
    put = store.put

    def broken(data: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(store, "put", broken)
    db.insert("t", [{"id": 100, "x": 1.0, "tag": "a"}])  # the data write is kept
    failed = [j for j in db.show_jobs() if j.status is JobStatus.FAILED]
    # a change file is not journaled (gc keeps it by its position): only the upkeep's job
    assert {j.kind for j in failed} == {"vector_index.upkeep"}
    assert all("disk full" in (j.error or "") for j in failed)
    monkeypatch.setattr(store, "put", put)
    db.insert("t", [{"id": 101, "x": 2.0, "tag": "a"}])
    # the pointer never named the lost change: the next write's change follows the old chain
    assert [h.id for h in make().search("idx", like=planar(2.0), n=1)] == [101]
    assert 100 not in {h.id for h in make().search("idx", like=planar(1.0), n=5)}
    assert db.catch_up(stale=False).indexes == {"idx": "rebuilt"}  # count mismatch found
    q = planar(1.0)
    same(make().search("idx", like=q, n=5), expected(db, q, 5))


# ---------------------------------------------------------------------- vectors stored once
def _outputs(db: Datalayer) -> str:
    """The outputs table of the index's listener."""
    return db._listeners.snapshot().by_id["emb"].output_table


def _vector_of(db: Datalayer, id_: int) -> list[float] | None:
    """The vector ``db``'s loaded engine holds for ``id_`` (None: not indexed)."""
    vectors = db._vectors
    info, active = vectors._resolve("idx")
    ptr = vectors.pointer("idx")
    assert ptr is not None
    engine = vectors.engine_at(info, ptr, active)
    assert engine is not None
    if id_ not in engine:
        return None
    found = engine.search(np.zeros(engine.dim, np.float32), len(engine), allowed=[id_])
    assert list(found.ids) == [id_]
    return [-float(found.scores[0])]  # l2: minus the distance to the origin


def _without_upkeep(db: Datalayer, monkeypatch: pytest.MonkeyPatch) -> None:
    """``db``'s writes no longer reach the index: a later write whose change file is not in
    the chain yet (another process's, in flight) or whose upkeep failed."""
    vectors = db._vectors
    monkeypatch.setattr(vectors, "flush", vectors._pending.clear)


@pytest.mark.parametrize("output_type", [None, "vector"], ids=["json", "vector"])
def test_change_files_hold_ids_only_and_another_process_reads_the_vectors_back(
    make: MakeDB, monkeypatch: pytest.MonkeyPatch, output_type: str | None
) -> None:
    from pinnacledb.vectors.delta import unpack_delta

    db = make()
    _setup(db, n=40, output_type=output_type)
    db.update("t", {"id": 5}, {"x": 9.0})
    db.delete("t", {"id": 7})
    db.insert("t", [{"id": 500 + i, "x": 1.0 + i / 7, "tag": "a"} for i in range(30)])
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert ptr.artifact is not None
    assert len(ptr.deltas) == 3
    for seq, ref in enumerate(ptr.deltas):
        data = db.artifact_store.get(ref)
        assert data[4:6] == b"\x02\x00"  # format 2
        assert unpack_delta(data, base=ptr.artifact.sha256, seq=seq, dim=3).vectors is None
    assert ptr.deltas[-1].size < 30 * 3 * 4 + 200  # ids, not 30 vectors
    # the writer keeps its own engine (no read of the outputs table)
    backend = db.databackend
    reads: list[Any] = []
    for name in ("select", "select_arrow"):
        if hasattr(backend, name):
            real = getattr(backend, name)

            def counting(*a: Any, _real: Any = real, **k: Any) -> Any:
                reads.append(a)
                return _real(*a, **k)

            monkeypatch.setattr(backend, name, counting)
    assert _vector_of(db, 500) is not None
    assert reads == []
    other = make()
    for q in (planar(1.0), planar(9.0), planar(0.37 * 7)):
        same(other.search("idx", like=q, n=6), expected(db, q, 6))
    info, active = other._vectors._resolve("idx")
    engine = other._vectors.engine_at(info, ptr, active)
    assert engine is not None
    assert len(engine) == 40 - 1 + 30
    assert 7 not in engine


@pytest.mark.parametrize("output_type", [None, "vector"], ids=["json", "vector"])
def test_an_id_changed_after_its_change_file_loads_its_current_vector_or_none(
    make: MakeDB, monkeypatch: pytest.MonkeyPatch, output_type: str | None
) -> None:
    """A change file names ids; the vectors are the outputs table's current ones at the
    pointer's model version: an update, a delete or an unusable output after the change
    file (its own change file not in the chain yet) is what another process loads."""
    db = make()
    _setup(db, n=20, output_type=output_type)
    db.insert("t", [{"id": 500, "x": 1.0, "tag": "a"}, {"id": 501, "x": 2.0, "tag": "a"}])
    db.update("t", {"id": 3}, {"x": 4.0})  # a base id the chain now lists as added
    db.update("t", {"id": 4}, {"x": 5.0})
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert len(ptr.deltas) == 3
    outputs = _outputs(db)
    # an output of another model version for a listed id (left over by an older version)
    db.databackend.insert(
        outputs,
        [
            {
                "id": f"99:{i}",
                "source_id": i,
                "model": "planar",
                "model_version": 99,
                "job_id": "old",
                "input_hash": "old",
                "output": [50.0, 50.0, 50.0],
            }
            for i in (500, 501, 3, 4)
        ],
    )
    _without_upkeep(db, monkeypatch)
    db.update("t", {"id": 500}, {"x": 3.0})  # newest vector: planar(3.0)
    db.delete("t", {"id": 501})
    db.databackend.update(outputs, {"source_id": 3, "model_version": 0}, {"output": [0.0] * 3})
    db.databackend.update(outputs, {"source_id": 4, "model_version": 0}, {"output": None})
    assert db._vectors.pointer("idx") == ptr  # none of it reached the chain
    fresh = make()
    assert _vector_of(fresh, 500) == pytest.approx([math.dist(planar(3.0), [0, 0, 0])])
    assert _vector_of(fresh, 501) is None  # deleted: absent
    assert _vector_of(fresh, 3) == pytest.approx([0.0])  # l2 takes a zero vector
    assert _vector_of(fresh, 4) is None  # output None: removed from the base it was in
    assert _vector_of(fresh, 2) == pytest.approx([math.dist(planar(0.74), [0, 0, 0])])


@pytest.mark.parametrize("output", [[0.0, 0.0, 0.0], None], ids=["zero", "none"])
def test_an_unusable_current_output_is_removed_not_kept_stale(
    make: MakeDB, monkeypatch: pytest.MonkeyPatch, output: Any
) -> None:
    """Under cosine a zero vector cannot be indexed: an id the chain lists whose current
    output is zero (or None) is removed from the engine, not kept with its base vector."""
    db = make()
    _setup(db, n=20, measure="cosine")
    db.update("t", {"id": 3}, {"x": 4.0})  # id 3 is in the base and in a change file
    _without_upkeep(db, monkeypatch)
    db.databackend.update(_outputs(db), {"source_id": 3}, {"output": output})
    fresh = make()
    info, active = fresh._vectors._resolve("idx")
    ptr = fresh._vectors.pointer("idx")
    assert ptr is not None
    engine = fresh._vectors.engine_at(info, ptr, active)
    assert engine is not None
    assert 3 not in engine
    assert len(engine) == 19
    assert 3 not in {h.id for h in fresh.search("idx", like=planar(4.0), n=20)}


def test_a_later_write_of_the_loading_process_removes_an_id_whose_output_is_gone(
    make: MakeDB,
) -> None:
    """A process that loads the chain in its own write's upkeep, after that write deleted an
    output the chain lists: the change file still removes it (the pointer counts it out)."""
    db = make()
    _setup(db, n=10)
    db.insert("t", [{"id": 500, "x": 1.0, "tag": "a"}])
    fresh = make()  # has not loaded the index
    fresh.delete("t", {"id": 500})
    ptr = fresh._vectors.pointer("idx")
    assert ptr is not None
    assert len(ptr.deltas) == 2
    assert ptr.count == 10
    same(make().search("idx", like=planar(1.0), n=5), expected(db, planar(1.0), 5))


def test_a_format_1_change_file_still_loads_before_and_after_format_2_ones(
    make: MakeDB,
) -> None:
    """An index stored by an older pinnacledb: its change files carry the vectors, which
    are used as they are (not read back); format-2 files after them are read back."""
    from pinnacledb.vectors.delta import Delta, pack_delta

    db = make()
    _setup(db, n=10)
    db.insert("t", [{"id": 500, "x": 1.0, "tag": "a"}])
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert ptr.artifact is not None
    # the first change file as format 1: id 500 with the vector of x=6.0 (the outputs table
    # says planar(1.0): a file read back would hold that one)
    old = pack_delta(
        Delta(
            base=ptr.artifact.sha256,
            seq=0,
            dim=3,
            removed=(),
            added=(500,),
            vectors=np.array([planar(6.0)]),
        )
    )
    assert old[4:6] == b"\x01\x00"
    ref = db.artifact_store.put(old)
    v1 = attrs.evolve(ptr, deltas=(ref,), stamp="v1")
    db.metadata.set_metadata(POINTER_PREFIX + "idx", v1.to_json())
    fresh = make()
    assert _vector_of(fresh, 500) == pytest.approx([math.dist(planar(6.0), [0, 0, 0])])
    db = make()
    db.insert("t", [{"id": 501, "x": 2.0, "tag": "a"}])  # a format-2 file after it
    db.delete("t", {"id": 2})
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert ptr.deltas[0] == ref
    assert len(ptr.deltas) == 3
    fresh = make()
    assert _vector_of(fresh, 500) == pytest.approx([math.dist(planar(6.0), [0, 0, 0])])
    assert _vector_of(fresh, 501) == pytest.approx([math.dist(planar(2.0), [0, 0, 0])])
    assert _vector_of(fresh, 2) is None
    assert _vector_of(fresh, 1) is not None


@pytest.mark.parametrize("damage", ["dropped", "not vectors", "other dimension"])
def test_an_unreadable_outputs_table_raises_index_not_built(make: MakeDB, damage: str) -> None:
    db = make()
    _setup(db, n=10)
    db.insert("t", [{"id": 500, "x": 1.0, "tag": "a"}])
    outputs = _outputs(db)
    if damage == "dropped":
        db.databackend.drop_table(outputs)
    else:
        value: Any = "oops" if damage == "not vectors" else [1.0, 2.0]
        db.databackend.update(outputs, {"source_id": 500}, {"output": value})
    fresh = make()
    with pytest.raises(IndexNotBuilt, match=r"outputs table of listener 'emb'.*rebuild idx"):
        fresh.search("idx", like=planar(1.0), n=3)
    assert db.search("idx", like=planar(1.0), n=1)[0].id == 500  # the writer's own engine


# ---------------------------------------------------------------------- copy
def test_copy_carries_the_build_and_the_target_searches_without_rebuilding(
    make: MakeDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make()
    _setup(db)
    db.insert("t", [{"id": 100, "x": 1.0, "tag": "a"}])  # base build + one change file
    dst = pinnacle(
        databackend=MemoryDataBackend.from_uri("memory://"),
        metadata_store=MemoryMetadataStore.from_uri("memory://"),
        artifact_store=MemoryArtifactStore.from_uri("memory://"),
        components=[Planar],
    )
    plan = db.copy_to(dst, all_tables=True, dry_run=True).plan
    assert plan.indexes_to_copy == ("idx",)
    assert len(plan.index_artifacts) == 2
    assert "vector index builds to copy: 1 (2 artifacts" in plan.describe()
    report = db.copy_to(dst, all_tables=True)
    assert report.indexes_copied == 1
    assert dst._vectors.pointer("idx") == db._vectors.pointer("idx")

    def no_rebuild(*a: Any, **k: Any) -> Any:
        raise AssertionError("the copy's target must not rebuild")

    monkeypatch.setattr(VectorIndexEngine, "build_engine", no_rebuild)
    for q in (planar(1.0), planar(4.0)):
        same(dst.search("idx", like=q, n=5), expected(db, q, 5))
    dst.insert("t", [{"id": 101, "x": 1.0, "tag": "b"}])  # upkeep goes on at the target
    assert 101 in {h.id for h in dst.search("idx", like=planar(1.0), n=2)}
    again = db.copy_to(dst, all_tables=True)  # the target's own pointer is left alone
    assert again.indexes_copied == 0
    assert again.plan.indexes_differing == ("idx",)
    assert 101 in {h.id for h in dst.search("idx", like=planar(1.0), n=2)}


# ---------------------------------------------------------------------- ANN engines
ANN = [e for e in ("faiss", "usearch", "hnswlib") if e in engine_names()]


@pytest.mark.sqlite
@pytest.mark.parametrize("engine", ANN)
def test_ann_engines_return_only_current_matching_rows(engine: str) -> None:
    db = pinnacle("sqlite://data.db", components=[Planar])
    _setup(db, n=80, engine=engine, measure="cosine")
    db.delete("t", {"id": {"$lt": 10}})
    db.insert("t", [{"id": 1000, "x": 0.5, "tag": "rare"}])
    again = pinnacle("sqlite://data.db", components=[Planar])
    for where in (None, {"tag": "rare"}, {"tag": "a"}):
        hits = again.search("idx", like=planar(0.5), n=8, where=where)
        live = {r["id"] for r in db.select("t", where)}
        assert len(hits) == min(8, len(live))
        assert {h.id for h in hits} <= live
    assert again.search("idx", like=planar(0.5), n=1, where={"tag": "rare"})[0].id == 1000


# ---------------------------------------------------------------------- two tiers
def _tiers(db: Datalayer) -> TieredEngine:
    """The process's engine of index ``idx`` (loaded at the current pointer)."""
    vectors = db._vectors
    ptr = vectors.pointer("idx")
    assert ptr is not None
    info, _ = vectors._resolve("idx")
    engine = vectors.engine_at(info, ptr)
    assert isinstance(engine, TieredEngine)
    return engine


def _hits(db: Datalayer, q: list[float], where: dict[str, Any] | None = None) -> list[Any]:
    return [
        (h.id, pytest.approx(h.score, abs=1e-5)) for h in db.search("idx", like=q, n=6, where=where)
    ]


QUERIES = [planar(0.4), planar(3.0), planar(7.5), planar(12.0)]


@pytest.mark.sqlite
@pytest.mark.parametrize("engine", ANN)
def test_writes_go_to_the_pending_segment_and_search_finds_them_before_any_fold(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = pinnacle("sqlite://data.db", components=[Planar])
    _setup(db, n=80, engine=engine, measure="cosine")
    assert _tiers(db).pending == 0  # the build is all graph
    new = [{"id": 1000 + i, "x": 0.3 + i * 0.011, "tag": "rare"} for i in range(5)]
    db.insert("t", new)
    tiers = _tiers(db)
    assert tiers.pending == 5
    assert all(r["id"] not in tiers.graph for r in new)  # no graph add paid by the write
    assert db._vectors.pointer("idx").deltas  # type: ignore[union-attr]  # durable: a change file
    for where in (None, {"tag": "rare"}):
        same(
            db.search("idx", like=planar(0.33), n=8, where=where),
            expected(db, planar(0.33), 8, where, measure="cosine"),
        )
    # another process puts the change file's vectors into its pending segment: no graph add
    graph_type = type(tiers.graph)

    def no_graph_add(*a: Any, **k: Any) -> None:
        raise AssertionError("loading base + change files must not add to the graph")

    monkeypatch.setattr(graph_type, "add", no_graph_add)
    other = pinnacle("sqlite://data.db", components=[Planar])
    same(
        other.search("idx", like=planar(0.33), n=8),
        expected(db, planar(0.33), 8, measure="cosine"),
    )
    assert _tiers(other).pending == 5


@pytest.mark.sqlite
@pytest.mark.parametrize("engine", ANN)
def test_a_fold_keeps_search_results_and_a_restart_before_it_loses_nothing(engine: str) -> None:
    db = pinnacle("sqlite://data.db", components=[Planar])
    _setup(db, n=80, engine=engine, measure="cosine")
    db.insert("t", [{"id": 1000 + i, "x": i * 0.29 + 0.011, "tag": "rare"} for i in range(30)])
    db.insert("t", [{"id": 2000 + i, "x": i * 0.41 + 0.017, "tag": "a"} for i in range(10)])
    before = {
        (i, w is None): _hits(db, q, w)
        for i, q in enumerate(QUERIES)
        for w in (None, {"tag": "rare"})
    }
    # a restart before any fold: a new process finds everything the writes added
    again = pinnacle("sqlite://data.db", components=[Planar])
    assert _tiers(again).pending == 40
    assert len(_tiers(again)) == 120
    for i, q in enumerate(QUERIES):
        for w in (None, {"tag": "rare"}):
            assert _hits(again, q, w) == before[(i, w is None)]
            same(again.search("idx", like=q, n=6, where=w), expected(db, q, 6, w, measure="cosine"))
    # the fold (db.catch_up) moves them into the graph and stores a new base
    assert again.catch_up(stale=False).indexes == {"idx": "folded"}
    ptr = again._vectors.pointer("idx")
    assert ptr is not None
    assert ptr.deltas == ()
    assert ptr.count == 120
    assert _tiers(again).pending == 0
    assert again.catch_up(stale=False).indexes == {"idx": "current"}
    for db_ in (again, db, pinnacle("sqlite://data.db", components=[Planar])):
        assert _tiers(db_).pending == 0
        for i, q in enumerate(QUERIES):
            for w in (None, {"tag": "rare"}):
                assert _hits(db_, q, w) == before[(i, w is None)]


@pytest.mark.sqlite
@pytest.mark.parametrize("engine", ANN)
def test_updates_and_deletes_of_pending_and_folded_ids(engine: str) -> None:
    db = pinnacle("sqlite://data.db", components=[Planar])
    _setup(db, n=60, engine=engine, measure="cosine")
    db.insert("t", [{"id": 1000 + i, "x": 1.0 + i * 0.05, "tag": "a"} for i in range(6)])
    tiers = _tiers(db)
    assert 7 in tiers.graph
    assert 1001 not in tiers.graph
    # an update of a folded id moves it to the pending segment and out of the graph;
    # an update of a pending id replaces it there
    db.update("t", {"id": 7}, {"x": 9.0})
    db.update("t", {"id": 1001}, {"x": 9.05})
    tiers = _tiers(db)
    assert 7 not in tiers.graph
    assert tiers.pending == 7
    for check in (db, pinnacle("sqlite://data.db", components=[Planar])):
        for q in (planar(9.0), planar(7 * 0.37), planar(1.05)):
            same(check.search("idx", like=q, n=5), expected(db, q, 5, measure="cosine"))
    # deletes of a folded and of a pending id: gone from both tiers, in every process
    db.delete("t", {"id": {"$in": [8, 1002, 7]}})
    tiers = _tiers(db)
    assert {8, 1002, 7} & set(tiers.ids()) == set()
    for check in (db, pinnacle("sqlite://data.db", components=[Planar])):
        for q in (planar(8 * 0.37), planar(1.1), planar(9.0)):
            hits = check.search("idx", like=q, n=5)
            assert {8, 1002, 7} & {h.id for h in hits} == set()
            same(hits, expected(db, q, 5, measure="cosine"))
    # the same after the fold
    assert db.catch_up(stale=False).indexes == {"idx": "folded"}
    for q in (planar(8 * 0.37), planar(1.1), planar(9.0)):
        same(db.search("idx", like=q, n=5), expected(db, q, 5, measure="cosine"))
    assert len(_tiers(pinnacle("sqlite://data.db", components=[Planar]))) == 60 + 6 - 3


@pytest.mark.sqlite
@pytest.mark.parametrize("engine", ANN)
def test_the_pending_segment_is_folded_when_it_passes_the_threshold(engine: str) -> None:
    db = pinnacle("sqlite://data.db", components=[Planar])
    _setup(db, n=40, engine=engine, measure="cosine")
    db._vectors.fold_min_rows = 5  # change files may touch 5 ids (or 10%) before a fold
    db._vectors.compact_min_rows = 1  # only the two-tier threshold applies to this engine
    db.insert("t", [{"id": 100 + i, "x": i / 3, "tag": "a"} for i in range(3)])
    assert _tiers(db).pending == 3
    assert len(db._vectors.pointer("idx").deltas) == 1  # type: ignore[union-attr]
    db.insert("t", [{"id": 200 + i, "x": i / 5, "tag": "b"} for i in range(3)])  # 6 > 5
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert ptr.deltas == ()
    assert _tiers(db).pending == 0
    assert 201 in _tiers(db).graph
    q = planar(0.2)
    same(
        pinnacle("sqlite://data.db", components=[Planar]).search("idx", like=q, n=6),
        expected(db, q, 6, measure="cosine"),
    )


# ---------------------------------------------------------------------- state machine
class IndexMachine(RuleBasedStateMachine):
    """Insert, update, delete, search with and without where, restart; ``exact`` == brute
    force over the current rows (through base builds, change files and compactions)."""

    def __init__(self) -> None:
        super().__init__()
        self.stores: dict[str, Any] = {
            "databackend": MemoryDataBackend.from_uri("memory://"),
            "metadata_store": MemoryMetadataStore.from_uri("memory://"),
            "artifact_store": MemoryArtifactStore.from_uri("memory://"),
        }
        self.rows: dict[int, dict[str, Any]] = {}
        self.restart()

    engine: ClassVar[str] = "exact"

    @initialize(measure=st.sampled_from(["l2", "cosine", "dot"]))
    def setup(self, measure: Measure) -> None:
        self.measure = measure
        self.db.create_table("t", {"id": "int", "x": "float", "tag": "str"})
        listener = Listener(identifier="emb", model=Planar(identifier="p"), table="t", inputs="x")
        self.db.apply(
            VectorIndex(identifier="idx", listener=listener, measure=measure, engine=self.engine)
        )

    xs = st.integers(-40, 40).map(lambda i: i / 8)

    @rule(
        ids=st.lists(st.integers(0, 30), min_size=1, max_size=4, unique=True),
        x=xs,
        tag=st.sampled_from("ab"),
    )
    def insert(self, ids: list[int], x: float, tag: str) -> None:
        new = [i for i in ids if i not in self.rows]
        rows: dict[int, dict[str, Any]] = {i: {"id": i, "x": x + i / 100, "tag": tag} for i in new}
        if rows:
            self.db.insert("t", list(rows.values()))
            self.rows.update(rows)

    @rule(lo=st.integers(0, 30), x=xs)
    def update(self, lo: int, x: float) -> None:
        self.db.update("t", {"id": {"$gte": lo, "$lt": lo + 3}}, {"x": x})
        for i, r in self.rows.items():
            if lo <= i < lo + 3:
                r["x"] = x

    @rule(tag=st.sampled_from("ab"), lo=st.integers(0, 30))
    def delete(self, tag: str, lo: int) -> None:
        self.db.delete("t", {"tag": tag, "id": {"$gte": lo}})
        self.rows = {i: r for i, r in self.rows.items() if not (r["tag"] == tag and i >= lo)}

    @rule()
    def restart(self) -> None:
        self.db = pinnacle(**self.stores, components=[Planar])
        self.db._vectors.max_deltas = 3  # change files and compactions both happen
        self.db._vectors.fold_min_rows = 4  # two-tier engines: pending segments and folds

    @rule()
    def catch_up(self) -> None:
        self.db.catch_up(stale=False)  # folds a two-tier engine's pending segment

    @rule(q=xs, n=st.integers(1, 8), tag=st.sampled_from([None, "a", "b"]))
    def search(self, q: float, n: int, tag: str | None) -> None:
        where = None if tag is None else {"tag": tag}
        hits = self.db.search("idx", like=planar(q), n=n, where=where)
        vectors: dict[VectorId, Sequence[float]] = {
            i: planar(r["x"]) for i, r in self.rows.items() if tag is None or r["tag"] == tag
        }
        same(hits, brute_force(self.measure, vectors, planar(q), n))
        assert all(tag is None or h["tag"] == tag for h in hits)

    @invariant()
    def pointer_counts_the_rows(self) -> None:
        ptr = self.db._vectors.pointer("idx")
        if ptr is not None:
            assert ptr.count == len(self.rows)


TestIndexMachine = IndexMachine.TestCase
TestIndexMachine.settings = settings(
    max_examples=15,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class AnnIndexMachine(IndexMachine):
    """The same machine over a two-tier engine (hnswlib graph + exact pending segment, folds
    at 4 changed ids and on catch_up): at these sizes the graph search is exhaustive, so the
    answers equal brute force too."""

    engine: ClassVar[str] = "hnswlib"


TestAnnIndexMachine = pytest.mark.skipif(
    "hnswlib" not in engine_names(), reason="hnswlib is not installed"
)(AnnIndexMachine.TestCase)
TestAnnIndexMachine.settings = TestIndexMachine.settings
