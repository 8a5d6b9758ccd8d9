"""Listeners: outputs that follow inserts, updates and deletes (memory, SQLite, DuckDB, MongoDB)."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pinnacle_protocols.errors import ComponentInUse, InvalidRecord, SchemaError
from pinnacle_protocols.memory import MemoryArtifactStore, MemoryDataBackend, MemoryMetadataStore
from pinnacle_protocols.protocols import (
    SupportsIndexes,
    SupportsInsertMany,
    SupportsMatchCount,
    SupportsMatchCounts,
)
from pinnacle_protocols.records import JobStatus
from pinnacledb import LinearModel, Listener, Model, pinnacle
from pinnacledb.base.datalayer import Datalayer
from pinnacledb.listeners import EPOCH_KEY, InsertResult, input_hash

MakeDB = Callable[[], Datalayer]

#: Source ids the Flaky model fails on (module level so the pickled model sees the test's set).
FAIL_ON: set[float] = set()


class Flaky:
    """Doubles its input; raises on inputs in FAIL_ON."""

    def predict(self, xs: list[float]) -> list[float]:
        for x in xs:
            if x in FAIL_ON:
                raise ValueError(f"cannot score {x}")
        return [2 * x for x in xs]


class Killed:
    """Raises KeyboardInterrupt (the process being killed) on call number ``kill_at``."""

    calls = 0
    kill_at = 0

    def predict(self, xs: list[float]) -> list[float]:
        Killed.calls += 1
        if Killed.calls == Killed.kill_at:
            raise KeyboardInterrupt
        return [2 * x for x in xs]


class TagLength:
    """A model of two inputs, a number and a string: ``x + len(tag)``."""

    def predict(self, xs: list[list[Any]]) -> list[float]:
        return [float(x) + len(tag) for x, tag in xs]


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory),
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("duckdb", marks=[pytest.mark.duckdb, pytest.mark.sqlite]),
        # pinnacle-sql's data backend (its anti join is NOT EXISTS in SQLAlchemy)
        pytest.param("sqlalchemy", marks=pytest.mark.sqlite),
    ]
)
def make(request: pytest.FixtureRequest) -> Iterator[MakeDB]:
    """Factory of Datalayers on one stack: each call is a new process's view of it."""
    made: list[Datalayer] = []
    stores: dict[str, Any]
    if request.param == "memory":
        stores = {
            "databackend": MemoryDataBackend.from_uri("memory://"),
            "metadata_store": MemoryMetadataStore.from_uri("memory://"),
            "artifact_store": MemoryArtifactStore.from_uri("memory://"),
        }
    elif request.param == "sqlite":
        stores = {"databackend": "sqlite://data.db"}
    elif request.param == "sqlalchemy":
        stores = {"databackend": "sqlalchemy+sqlite://data.db"}
    else:
        stores = {}

    def factory() -> Datalayer:
        db = pinnacle(**stores, trust_serializers={"pickle"})
        made.append(db)
        return db

    yield factory
    for db in made:
        with contextlib.suppress(Exception):
            db.close()


@pytest.fixture
def db(make: MakeDB) -> Datalayer:
    return make()


def _table(db: Datalayer, n: int = 10) -> None:
    db.create_table("t", {"id": "int", "x": "float", "tag": "str"})
    if n:
        db.insert("t", [{"id": i, "x": float(i), "tag": "a" if i % 2 else "b"} for i in range(n)])


def _linear(identifier: str = "m", w: float = 2.0, b: float = 1.0) -> LinearModel:
    return LinearModel(identifier=identifier, weights=np.array([w]), bias=b)


def _outputs(db: Datalayer, listener: str) -> list[dict[str, Any]]:
    active = db._listeners.snapshot().by_id[listener]
    if active.output_table not in db.list_tables():
        return []
    return db.select(active.output_table, {"model_version": active.model_version})


def check(db: Datalayer, listener: str, fn: Callable[[dict[str, Any]], Any]) -> None:
    """Outputs of ``listener`` == fn(row) for exactly the rows matching where, once each."""
    active = db._listeners.snapshot().by_id[listener]
    rows = db.select(active.table, active.where)
    expected = {r[active.id_column]: fn(r) for r in rows}
    outs = _outputs(db, listener)
    counts = Counter(o["source_id"] for o in outs)
    assert [s for s, c in counts.items() if c > 1] == [], "duplicate outputs"
    got = {o["source_id"]: o["output"] for o in outs}
    assert got == pytest.approx(expected)
    for o in outs:
        assert o["id"] == f"{active.model_version}:{o['source_id']}"


def lin(row: dict[str, Any]) -> float:
    return 2.0 * float(row["x"]) + 1.0


def test_apply_backfills_with_a_job_and_creates_the_outputs_table(db: Datalayer) -> None:
    _table(db, 25)
    record = db.apply(Listener(model=_linear(), table="t", inputs="x", where={"tag": "a"}))
    assert record.identifier == "m__t"
    assert "outputs__m__t" in db.list_tables()
    check(db, "m__t", lin)
    rows = _outputs(db, "m__t")
    assert {r["model"] for r in rows} == {"m"}
    # a copy of the input values where catch_up compares them in the database
    copied = isinstance(db.databackend, SupportsMatchCount)
    assert set(rows[0]) == {
        "id",
        "source_id",
        "model",
        "model_version",
        "job_id",
        "input_hash",
        "output",
    } | ({"input_0"} if copied else set())
    assert rows[0]["input_hash"] == input_hash([float(rows[0]["source_id"])])
    if copied:
        assert rows[0]["input_0"] == float(rows[0]["source_id"])
    (job,) = db.show_jobs("listener.backfill")
    assert job.status is JobStatus.SUCCESS
    assert job.args["total"] == 12
    assert job.args["done"] == 12
    assert {r["job_id"] for r in rows} == {job.job_id}
    # lineage: the listener uses its model
    assert db.metadata.get_children(record.key)[0].type_id == "model"


def test_backfill_is_a_partitioned_job(db: Datalayer) -> None:
    _table(db, 25)
    db.apply(Listener(model=_linear(), table="t", inputs="x"))
    active = db._listeners.snapshot().by_id["m__t"]
    # run again over the outputs the apply wrote: rewritten by id, never duplicated
    job = db._listeners.backfill(active, batch_size=4, partition_size=10)
    assert job.status is JobStatus.SUCCESS
    assert (job.tasks_total, job.tasks_done, job.rows_total, job.rows_done) == (3, 3, 25, 25)
    assert (job.args["done"], job.args["total"]) == (25, 25)
    assert job.runner == "local://"
    assert db.metadata.get_job(job.job_id) == job
    check(db, "m__t", lin)


def _reference_hash(values: list[Any]) -> str:
    """input_hash as first written: one ``json.dumps`` of the canonical values."""
    import hashlib
    import json

    from pinnacledb.listeners import _canonical

    text = json.dumps(
        [_canonical(v) for v in values],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=True,
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(max_size=8),
    st.datetimes(),
    st.sampled_from([np.float64(1.5), np.int64(-3), np.float32(0.1), -0.0, 2.0**53, 1e300]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_SCALARS | st.lists(_SCALARS, max_size=3), max_size=4))
def test_input_hash_is_the_canonical_json_digest(values: list[Any]) -> None:
    """The fast path (scalars written directly) hashes exactly what one json.dumps did, so
    hashes stored by earlier versions still match."""
    assert input_hash(values) == _reference_hash(values)


def test_input_hash_of_known_values_is_stable() -> None:
    values = [1.5, "a\x00é\ud800", None, True, 3.0, float("nan")]
    assert input_hash(values) == "0ef3a4659bc33b27ca5b5844ae51bae3969ea646868428c02011a0093c9d8e84"


class SumOf:
    """The sum of a list input."""

    def predict(self, xs: list[list[float]]) -> list[float]:
        return [float(sum(x)) for x in xs]


def test_datatype_inputs_are_decoded_in_backfill_triggers_and_catch_up(db: Datalayer) -> None:
    """The model sees decoded values of a DataType column (a backfill reads the table's
    DataType columns once per task)."""
    from pinnacledb import DataType, Table

    db.apply(Table.of("d", id="int", v=DataType(identifier="vals", encoder="json")))
    db.insert("d", [{"id": i, "v": [i, 1.5]} for i in range(5)])
    db.apply(Listener(model=Model(identifier="s", object=SumOf()), table="d", inputs="v"))

    def total(row: dict[str, Any]) -> float:
        return float(sum(row["v"]))

    check(db, "s__d", total)
    db.insert("d", [{"id": 9, "v": [2.0, 2.0]}])
    check(db, "s__d", total)
    db.databackend.delete("outputs__s__d", {"source_id": 1})
    assert db.catch_up().computed == {"s__d": 1}
    check(db, "s__d", total)


def test_insert_returns_an_int_with_ids_and_computes_outputs(db: Datalayer) -> None:
    _table(db, 3)
    db.apply(Listener(model=_linear(), table="t", inputs="x", where={"x": {"$gte": 1}}))
    result = db.insert("t", [{"id": 10, "x": 10.0, "tag": "a"}, {"id": 11, "x": 0.5, "tag": "b"}])
    assert isinstance(result, InsertResult)
    assert isinstance(result, int)
    assert result == 2
    assert result + 1 == 3
    assert result.ids == (10, 11)
    assert result.ok
    assert result.jobs == ()
    check(db, "m__t", lin)
    assert 11 not in {o["source_id"] for o in _outputs(db, "m__t")}


def test_update_recomputes_changed_rows_only_and_follows_where(db: Datalayer) -> None:
    _table(db, 6)
    db.apply(Listener(model=_linear(), table="t", inputs="x", where={"tag": "a"}))
    before = {o["source_id"]: o["job_id"] for o in _outputs(db, "m__t")}
    db.update("t", {"id": 1}, {"x": 100.0})  # input changed: recomputed
    db.update("t", {"id": 3}, {"tag": "a"})  # not an input, still matching: untouched
    db.update("t", {"id": 5}, {"tag": "b"})  # leaves where: output removed
    db.update("t", {"id": 2}, {"tag": "a"})  # enters where: output computed
    check(db, "m__t", lin)
    after = {o["source_id"]: o["job_id"] for o in _outputs(db, "m__t")}
    assert after[3] == before[3]
    assert after[1] != before[1]
    assert 5 not in after
    assert 2 in after


def test_delete_removes_outputs_of_every_model_version(db: Datalayer) -> None:
    _table(db, 6)
    db.apply(Listener(model=_linear(), table="t", inputs="x"))
    db.apply(Listener(model=_linear(w=3.0), table="t", inputs="x"))
    db.delete("t", {"id": {"$in": [0, 1]}})
    all_outputs = db.select("outputs__m__t")
    assert {o["source_id"] for o in all_outputs} == {2, 3, 4, 5}
    assert {o["model_version"] for o in all_outputs} == {0, 1}


def test_new_model_version_computes_a_new_set_and_keeps_the_old(db: Datalayer) -> None:
    _table(db, 4)
    db.apply(Listener(model=_linear(), table="t", inputs="x"))
    second = db.apply(Listener(model=_linear(w=3.0, b=0.0), table="t", inputs="x"))
    assert second.version == 1
    check(db, "m__t", lambda r: 3.0 * r["x"])
    versions = Counter(o["model_version"] for o in db.select("outputs__m__t"))
    assert versions == {0: 4, 1: 4}
    rows = db.select("t", outputs=["m__t"], order_by=["id"], columns=["x"])
    assert [r["m__t"] for r in rows] == [0.0, 3.0, 6.0, 9.0]
    assert set(rows[0]) == {"x", "m__t"}  # the id column fetched for the lookup is not shown
    old = db.select("t", outputs={"m__t": 0}, order_by=["id"])
    assert [r["m__t"] for r in old] == [1.0, 3.0, 5.0, 7.0]
    # re-applying the unchanged listener is a no-op: no second backfill
    db.apply(Listener(model=_linear(w=3.0, b=0.0), table="t", inputs="x"))
    assert len(db.show_jobs("listener.backfill")) == 2


def test_a_new_listener_version_with_a_narrower_where_drops_outputs_it_no_longer_selects(
    db: Datalayer,
) -> None:
    _table(db, 6)
    db.apply(Listener(model=_linear(), table="t", inputs="x"))
    second = db.apply(Listener(model=_linear(), table="t", inputs="x", where={"tag": "a"}))
    assert second.version == 1  # same model version, another where
    check(db, "m__t", lin)
    assert {o["source_id"] for o in db.select("outputs__m__t")} == {1, 3, 5}


def test_other_process_sees_apply_and_remove_through_the_epoch(make: MakeDB) -> None:
    first, second = make(), make()
    _table(first, 2)
    first.insert("t", [{"id": 50, "x": 5.0, "tag": "a"}])  # caches "no listeners"
    second.apply(Listener(model=_linear(), table="t", inputs="x"))
    first.insert("t", [{"id": 51, "x": 6.0, "tag": "a"}])
    check(first, "m__t", lin)
    assert {o["source_id"] for o in _outputs(first, "m__t")} == {0, 1, 50, 51}
    second.remove("listener", "m__t")
    first.insert("t", [{"id": 52, "x": 7.0, "tag": "a"}])
    assert 52 not in {o["source_id"] for o in first.select("outputs__m__t")}


def test_a_write_reads_one_metadata_key_when_nothing_changed(
    db: Datalayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hot path: with the listener set cached, an insert reads only the epoch key."""
    _table(db, 1)
    db.apply(Listener(model=_linear(), table="t", inputs="x"))
    db.insert("t", [{"id": 100, "x": 1.0, "tag": "a"}])  # warm the cache
    md = db.metadata
    calls: list[str] = []
    for name in ("get_metadata", "get_component", "show_components", "show_versions"):
        real = getattr(type(md), name)

        def spy(*a: Any, _n: str = name, _real: Any = real, **k: Any) -> Any:
            calls.append(_n)
            return _real(*a, **k)

        monkeypatch.setattr(type(md), name, spy)
    db.insert("t", [{"id": 101, "x": 2.0, "tag": "a"}])
    monkeypatch.undo()
    # one epoch read, plus the Table-codec lookup's read of the Table record unless the
    # metadata store's change token shows nothing was committed to it since the last insert:
    # DuckDB data beside SQLite metadata (the data write does not touch the metadata file);
    # where data and metadata share one SQLite file, or the store has no token, it is read
    shared_or_tokenless = "DuckDB" not in type(db.databackend).__name__
    assert sorted(calls) == (["get_component"] if shared_or_tokenless else []) + ["get_metadata"]
    assert md.get_metadata(EPOCH_KEY) is not None
    check(db, "m__t", lin)


def test_a_small_insert_writes_rows_and_outputs_with_one_transaction(
    db: Datalayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hot path: where the backend has SupportsInsertMany (DuckDB), a single-row insert into a
    table with a cached listener set writes the row and its output with one insert_many (one
    commit), not an insert per table."""
    _table(db, 1)
    db.apply(Listener(model=_linear(), table="t", inputs="x"))
    db.insert("t", [{"id": 100, "x": 1.0, "tag": "a"}])  # warm the cache
    backend = db.databackend
    calls: list[str] = []
    for name in ("insert", "insert_many"):
        real = getattr(type(backend), name, None)
        if real is None:
            continue

        def spy(*a: Any, _n: str = name, _real: Any = real, **k: Any) -> Any:
            calls.append(_n)
            return _real(*a, **k)

        monkeypatch.setattr(type(backend), name, spy)
    result = db.insert("t", [{"id": 101, "x": 2.0, "tag": "a"}])
    monkeypatch.undo()
    assert result == 1
    assert result.ids == (101,)
    assert result.ok
    if isinstance(backend, SupportsInsertMany):
        assert calls == ["insert_many"]
    else:
        assert calls == ["insert", "insert"]
    check(db, "m__t", lin)


def test_a_stale_cached_listener_set_is_corrected_after_the_write(make: MakeDB) -> None:
    """The one-transaction insert computes outputs from the cached listener set; when another
    process changed the set meanwhile, the write ends as if it had read the new set."""
    first, second = make(), make()
    _table(first, 2)
    second.apply(Listener(identifier="a", model=_linear("m"), table="t", inputs="x"))
    second.apply(Listener(identifier="gone", model=_linear("g"), table="t", inputs="x"))
    first.insert("t", [{"id": 50, "x": 5.0, "tag": "a"}])  # caches a and gone
    old_version = first._listeners.snapshot().by_id["a"].model_version
    # meanwhile: "a" applied again on a new model version, "new" applied
    second.apply(Listener(identifier="a", model=_linear("m", w=3.0), table="t", inputs="x"))
    second.apply(
        Listener(identifier="new", model=_linear("n", w=0.0, b=7.0), table="t", inputs="x")
    )
    first.insert("t", [{"id": 51, "x": 6.0, "tag": "a"}])
    check(first, "a", lambda r: 3.0 * float(r["x"]) + 1.0)
    check(first, "new", lambda r: 7.0)
    check(first, "gone", lambda r: 2.0 * float(r["x"]) + 1.0)
    old = first.select("outputs__a", {"model_version": old_version})
    assert sorted(o["source_id"] for o in old) == [0, 1, 50]  # no old-version output of 51
    # "gone" removed with its outputs table: the cached set still names it
    second.remove("listener", "gone", force=True)
    first.insert("t", [{"id": 52, "x": 7.0, "tag": "b"}])
    assert "outputs__gone" not in first.list_tables()
    check(first, "a", lambda r: 3.0 * float(r["x"]) + 1.0)
    check(first, "new", lambda r: 7.0)
    # "a" removed (outputs kept): the cached set still has it, its output is taken back
    second.remove("listener", "a")
    first.insert("t", [{"id": 53, "x": 8.0, "tag": "b"}])
    assert 53 not in {o["source_id"] for o in first.select("outputs__a")}
    check(first, "new", lambda r: 7.0)


def test_chained_listeners_run_in_dependency_order(db: Datalayer) -> None:
    _table(db, 3)
    db.apply(Listener(model=_linear(), table="t", inputs="x"))
    down = db.apply(
        Listener(model=_linear("n", w=10.0, b=0.0), table="outputs__m__t", inputs="output")
    )
    assert down.identifier == "n__outputs__m__t"
    # lineage to the upstream listener: it cannot be removed while the chain uses it
    with pytest.raises(ComponentInUse):
        db.remove("listener", "m__t")

    def chained(row: dict[str, Any]) -> float:
        return 10.0 * float(row["output"])

    check(db, "n__outputs__m__t", chained)
    db.insert("t", [{"id": 7, "x": 7.0, "tag": "a"}])
    db.update("t", {"id": 0}, {"x": 50.0})
    db.delete("t", {"id": 1})
    check(db, "m__t", lin)
    check(db, "n__outputs__m__t", chained)
    assert len(_outputs(db, "n__outputs__m__t")) == 3


def test_cycle_is_refused_at_apply(db: Datalayer) -> None:
    _table(db, 2)
    db.apply(Listener(model=_linear(), table="t", inputs="x", output="o1"))
    db.create_table("o2", {"id": "str", "output": "float"})
    with pytest.raises(SchemaError, match=r"outputs table 'o2' exists .* lacks"):
        db.apply(
            Listener(identifier="b", model=_linear("n"), table="o1", inputs="output", output="o2")
        )
    db.drop_table("o2")
    db.apply(
        Listener(
            identifier="b",
            model=_linear("n"),
            table="o1",
            inputs="output",
            output="o2",
            output_type="float",
        )
    )
    with pytest.raises(InvalidRecord, match=r"cycle of tables: o2 -> t -> o1 -> o2"):
        db.apply(
            Listener(identifier="c", model=_linear("k"), table="o2", inputs="output", output="t")
        )
    with pytest.raises(InvalidRecord, match="own source table"):
        db.apply(Listener(identifier="d", model=_linear("k"), table="t", inputs="x", output="t"))
    assert db.show("listener") == ["b", "m__t"]


def test_apply_validates_table_columns_and_where(db: Datalayer) -> None:
    _table(db, 1)
    with pytest.raises(SchemaError, match="no column"):
        db.apply(Listener(model=_linear(), table="t", inputs="nope"))
    with pytest.raises(InvalidRecord, match="not a valid filter"):
        Listener(model=_linear(), table="t", inputs="x", where={"x": {"$bogus": 1}})
    with pytest.raises(InvalidRecord, match="inputs"):
        Listener(model=_linear(), table="t", inputs=[])
    assert db.show("listener") == []


def test_model_failure_keeps_the_write_records_a_job_and_catch_up_retries(
    db: Datalayer,
) -> None:
    _table(db, 3)
    db.apply(Listener(model=Model(identifier="flaky", object=Flaky()), table="t", inputs="x"))
    FAIL_ON.clear()
    FAIL_ON.add(13.0)
    try:
        result = db.insert(
            "t", [{"id": 12, "x": 12.0, "tag": "a"}, {"id": 13, "x": 13.0, "tag": "a"}]
        )
    finally:
        FAIL_ON.clear()
    assert result == 2
    assert not result.ok
    (failure,) = result.failures
    assert failure.source_ids == (13,)
    assert "cannot score 13.0" in failure.error
    job = db.metadata.get_job(failure.job_id)
    assert job.status is JobStatus.FAILED
    assert job.args["failed_ids"] == [13]
    assert "cannot score" in (job.error or "")
    assert db.count("t") == 5  # the data write was kept
    assert {o["source_id"] for o in _outputs(db, "flaky__t")} == {0, 1, 2, 12}
    report = db.catch_up()
    assert report.computed == {"flaky__t": 1}
    check(db, "flaky__t", lambda r: 2 * r["x"])


def test_catch_up_repairs_writes_that_bypassed_pinnacledb(db: Datalayer) -> None:
    _table(db, 8)
    db.apply(Listener(model=_linear(), table="t", inputs="x", where={"tag": "a"}))
    native = db.databackend
    native.insert("t", [{"id": 20, "x": 20.0, "tag": "a"}, {"id": 21, "x": 21.0, "tag": "b"}])
    native.update("t", {"id": 1}, {"x": -1.0})  # stale
    native.update("t", {"id": 3}, {"tag": "b"})  # no longer matching: orphan
    native.delete("t", {"id": 5})  # gone: orphan
    # a duplicated output (two writers raced): repaired too
    dup = dict(next(o for o in _outputs(db, "m__t") if o["source_id"] == 7))
    native.insert("outputs__m__t", [dup])
    report = db.catch_up("m__t")
    assert report.computed["m__t"] == 1
    assert report.recomputed["m__t"] == 2
    assert report.removed["m__t"] == 2
    check(db, "m__t", lin)
    again = db.catch_up()
    assert again.changed == 0
    # stale=False: the anti-join alone finds missing outputs
    native.insert("t", [{"id": 30, "x": 30.0, "tag": "a"}])
    assert db.catch_up(stale=False).computed == {"m__t": 1}
    check(db, "m__t", lin)


def test_a_no_op_catch_up_is_decided_in_the_database_and_still_sees_exact_changes(
    db: Datalayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_op_catch_up_in_the_database(db, monkeypatch)


def _no_op_catch_up_in_the_database(
    db: Datalayer, monkeypatch: pytest.MonkeyPatch, *, exact: bool = True
) -> None:
    """With ``exact=False`` (a backend whose count_unmatched overcounts) every catch_up
    checks row by row: slower, still right."""
    import pinnacledb.listeners as listeners

    _table(db, 12)
    db.apply(
        Listener(model=Model(identifier="tl", object=TagLength()), table="t", inputs=["x", "tag"])
    )
    hashed: list[int] = []
    real_hash = listeners.input_hash

    def counting_hash(values: Any) -> str:
        hashed.append(1)
        return real_hash(values)

    monkeypatch.setattr(listeners, "input_hash", counting_hash)
    report = db.catch_up()
    assert report.changed == 0
    if exact:
        assert hashed == [], "a no-op catch_up hashed rows in Python"
        assert db.metadata.get_job(report.jobs["tl__t"]).args["checked_in"] == "database"
    else:
        assert "checked_in" not in db.metadata.get_job(report.jobs["tl__t"]).args
    assert db.catch_up(stale=False).changed == 0
    assert hashed == [] or not exact

    def expected(row: dict[str, Any]) -> float:
        return float(row["x"]) + len(row["tag"])

    native = db.databackend
    native.update("t", {"id": 1}, {"tag": "A"})  # a change of case only
    native.update("t", {"id": 2}, {"tag": "b "})  # a trailing space only
    report = db.catch_up()
    assert report.recomputed == {"tl__t": 2}
    check(db, "tl__t", expected)
    native.delete("outputs__tl__t", {"source_id": 3})
    assert db.catch_up().computed == {"tl__t": 1}
    check(db, "tl__t", expected)
    hashed.clear()
    assert db.catch_up().changed == 0
    assert hashed == [] or not exact


def test_a_no_op_catch_up_is_one_count_statement_where_the_backend_can(
    db: Datalayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The four counts of the in-database check are one ``count_many`` (SupportsMatchCounts);
    a backend without it answers them one call each, with the same outcome."""
    _table(db, 6)
    db.apply(Listener(model=_linear(), table="t", inputs="x"))
    backend = db.databackend
    calls: list[str] = []

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)

        return call

    for name in ("count", "count_unmatched", "count_many"):
        if hasattr(backend, name):
            monkeypatch.setattr(backend, name, spy(name, getattr(backend, name)))
    report = db.catch_up()
    assert report.changed == 0
    assert db.metadata.get_job(report.jobs["m__t"]).args["checked_in"] == "database"
    if isinstance(backend, SupportsMatchCounts):
        assert calls == ["count_many"]
    else:
        assert sorted(calls) == ["count", "count", "count_unmatched", "count_unmatched"]
    db.databackend.delete("outputs__m__t", {"source_id": 2})
    calls.clear()
    assert db.catch_up().computed == {"m__t": 1}
    check(db, "m__t", lin)


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("mongoeco", marks=pytest.mark.mongoeco),
        # nx-27017 ignores a $lookup's pipeline: count_unmatched overcounts, never undercounts
        pytest.param("nx27017", marks=pytest.mark.nx27017),
    ],
)
def test_a_no_op_catch_up_on_mongodb_is_decided_in_the_database(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pinnacle_mongo.testing import fresh_database_name

    server = request.getfixturevalue("mongoeco_server" if kind == "mongoeco" else "mongo_server")
    db = pinnacle(server.uri(fresh_database_name("pfl")), trust_serializers={"pickle"})
    try:
        _no_op_catch_up_in_the_database(db, monkeypatch, exact=kind == "mongoeco")
    finally:
        with contextlib.suppress(Exception):
            db.drop(force=True)
        db.close()


def test_outputs_tables_are_indexed_where_the_backend_has_indexes(
    db: Datalayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = db.databackend
    assert isinstance(backend, SupportsIndexes)
    made: list[tuple[str, list[str]]] = []
    real = type(backend).create_index

    def spy(self: Any, table: str, columns: list[str], *, unique: bool = False) -> bool:
        made.append((table, list(columns)))
        return real(self, table, columns, unique=unique)

    monkeypatch.setattr(type(backend), "create_index", spy)
    _table(db, 3)
    db.apply(Listener(model=_linear(), table="t", inputs="x"))
    assert made == [("outputs__m__t", ["source_id", "model_version"]), ("outputs__m__t", ["id"])]
    check(db, "m__t", lin)


def test_killed_backfill_leaves_no_duplicates_and_catch_up_completes(db: Datalayer) -> None:
    _table(db, 30)
    Killed.calls, Killed.kill_at = 0, 1
    listener = Listener(model=Model(identifier="k", object=Killed()), table="t", inputs="x")
    with pytest.raises(KeyboardInterrupt):
        db.apply(listener)  # killed before any output was written; the record is kept
    active = db._listeners.snapshot().by_id["k__t"]
    Killed.calls, Killed.kill_at = 0, 2
    with pytest.raises(KeyboardInterrupt):
        db._listeners.backfill(active, batch_size=10)  # killed in the second batch
    assert len(_outputs(db, "k__t")) == 10
    Killed.kill_at = 0
    db.catch_up()
    check(db, "k__t", lambda r: 2 * r["x"])


def test_remove_stops_triggers_force_drops_outputs_and_the_model_is_protected(
    db: Datalayer,
) -> None:
    _table(db, 2)
    db.apply(Listener(model=_linear(), table="t", inputs="x"))
    with pytest.raises(ComponentInUse, match="listener 'm__t'"):
        db.remove("model", "m")
    db.remove("listener", "m__t")
    db.insert("t", [{"id": 9, "x": 9.0, "tag": "a"}])
    assert {o["source_id"] for o in db.select("outputs__m__t")} == {0, 1}
    db.apply(Listener(model=_linear(), table="t", inputs="x"))
    db.remove("listener", "m__t", force=True)
    assert "outputs__m__t" not in db.list_tables()
    db.remove("model", "m")  # no listener uses it any more


def test_restart_sees_listeners_and_lineage_to_the_table_component(make: MakeDB) -> None:
    from pinnacledb import Table

    first = make()
    first.apply(Table.of("t", id="int", x="float", tag="str"))
    first.insert("t", [{"id": 1, "x": 1.0, "tag": "a"}])
    record = first.apply(Listener(model=_linear(), table="t", inputs="x"))
    assert {k.type_id for k in first.metadata.get_children(record.key)} == {"model", "table"}
    first.close()
    second = make()
    second.insert("t", [{"id": 2, "x": 2.0, "tag": "a"}])
    check(second, "m__t", lin)
    loaded = second.load("listener", "m__t")
    assert isinstance(loaded, Listener)
    assert loaded.id_column == "id"


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("memory://", marks=pytest.mark.memory),
        pytest.param("duckdb://d.duckdb", marks=pytest.mark.duckdb),
        pytest.param("sqlite://d.db", marks=pytest.mark.sqlite),
        pytest.param("sqlalchemy+sqlite://d.db", marks=pytest.mark.sqlite),
    ],
)
def test_anti_join_keys_capability_and_fallback_agree(uri: str) -> None:
    from pinnacle_protocols.protocols import SupportsAntiJoin
    from pinnacledb.listeners import anti_join_fallback

    db = pinnacle(uri)
    backend = db.databackend
    assert isinstance(backend, SupportsAntiJoin)
    db.create_table("a", {"id": "int", "g": "str"})
    db.create_table("b", {"k": "int", "v": "int"})
    db.insert("a", [{"id": i, "g": "x" if i % 3 else "y"} for i in range(10)])
    db.insert("a", [{"id": None, "g": "x"}, {"id": 5, "g": "x"}])  # NULL key, repeated key
    db.insert("b", [{"k": i, "v": i % 4} for i in range(0, 10, 2)])
    for anti_join in (backend.anti_join_keys, partial(anti_join_fallback, backend)):
        assert anti_join("a", "id", "b", "k") == [1, 3, 5, 7, 9]
        assert anti_join("a", "id", "b", "k", other_where={"v": 0}) == [1, 2, 3, 5, 6, 7, 9]
        assert anti_join(
            "a", "id", "b", "k", where={"g": "x"}, other_where={"v": 0}, after=2, limit=3
        ) == [5, 7]
        assert anti_join("a", "id", "b", "k", limit=2) == [1, 3]
    db.close()


@pytest.mark.nx27017
def test_mongo_insert_returns_native_ids_and_listeners_need_an_id_column(
    mongo_server: Any,
) -> None:
    from pinnacle_mongo.testing import fresh_database_name
    from pinnacle_protocols.errors import ConfigError

    db = pinnacle(mongo_server.uri(fresh_database_name("pfl")))
    try:
        db.create_table("docs", {"x": "float"})
        result = db.insert("docs", [{"x": 1.0}, {"x": 2.0}])
        assert result == 2
        assert len(result.ids) == 2
        stored = {r["_id"]: r["x"] for r in db.select("docs")}
        assert {stored[i] for i in result.ids} == {1.0, 2.0}
        with pytest.raises(ConfigError, match="native '_id'"):
            db.apply(Listener(model=_linear(), table="docs", inputs="x"))
        # with an id column of its own, a Mongo table gets listener outputs like any other
        db.create_table("t", {"id": "int", "x": "float", "tag": "str"})
        db.insert("t", [{"id": 1, "x": 1.0, "tag": "a"}])
        db.apply(Listener(model=_linear(), table="t", inputs="x"))
        db.insert("t", [{"id": 2, "x": 2.0, "tag": "a"}])
        db.update("t", {"id": 1}, {"x": 5.0})
        check(db, "m__t", lin)
    finally:
        with contextlib.suppress(Exception):
            db.drop(force=True)
        db.close()
