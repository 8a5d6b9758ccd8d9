"""The listener hot path column by column: Arrow inserts, vector batches, vectorised hashes.

An Arrow insert into a table with listeners writes its rows and their outputs in one
transaction where the backend has ``insert_many`` (DuckDB), reading the inputs column by column;
a model returning its vectors as one 2-D float array has them written as one Arrow array. The
outputs (values, hashes, input copies) are exactly those of the same rows inserted as dicts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pinnacle_protocols.protocols import SupportsInsertMany
from pinnacledb import Listener, Model, pinnacle
from pinnacledb import listeners as listeners_module
from pinnacledb.base.datalayer import Datalayer
from pinnacledb.listeners import input_hash, input_hashes

pa = pytest.importorskip("pyarrow")


class ListVectors:
    """``x`` -> ``[x, x / 2, -x]`` as Python lists."""

    def predict(self, xs: list[float]) -> list[list[float]]:
        return [[float(x), float(x) / 2, -float(x)] for x in xs]


class ArrayVectors:
    """The same vectors as one 2-D float32 numpy array."""

    def predict(self, xs: list[float]) -> Any:
        x = np.asarray(xs, dtype=np.float32)[:, None]
        return np.hstack([x, x / 2, -x]).astype(np.float32)


class Pair:
    """Two inputs, a number and a string: ``x + len(tag)``."""

    def predict(self, xs: list[list[Any]]) -> list[float]:
        return [float(x) + len(tag) for x, tag in xs]


@pytest.fixture(
    params=[
        pytest.param("duckdb", marks=[pytest.mark.duckdb, pytest.mark.sqlite]),
        pytest.param("sqlite", marks=pytest.mark.sqlite),
    ]
)
def db(request: pytest.FixtureRequest) -> Iterator[Datalayer]:
    uri = "sqlite://data.db" if request.param == "sqlite" else None
    made = pinnacle(uri, trust_serializers={"pickle"})
    yield made
    made.close()


def _listeners(db: Datalayer, table: str) -> None:
    db.create_table(table, {"id": "int", "x": "float", "tag": "str"})
    db.apply(
        Listener(
            identifier=f"lv_{table}",
            model=Model(identifier="lv", object=ListVectors()),
            table=table,
            inputs="x",
            output_type="vector",
        )
    )
    db.apply(
        Listener(
            identifier=f"av_{table}",
            model=Model(identifier="av", object=ArrayVectors()),
            table=table,
            inputs="x",
            output_type="vector",
        )
    )
    db.apply(  # no output_type: lists are stored in a JSON column
        Listener(
            identifier=f"json_{table}",
            model=Model(identifier="lv", object=ListVectors()),
            table=table,
            inputs="x",
        )
    )
    db.apply(
        Listener(
            identifier=f"pair_{table}",
            model=Model(identifier="pair", object=Pair()),
            table=table,
            inputs=["x", "tag"],
        )
    )
    db.apply(
        Listener(
            identifier=f"where_{table}",
            model=Model(identifier="pair", object=Pair()),
            table=table,
            inputs=["x", "tag"],
            where={"tag": "a"},
        )
    )


def _rows(start: int, n: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "x": i * 0.37 - 5, "tag": "a" if i % 3 else "bé\u00e9"}
        for i in range(start, start + n)
    ]


def _outputs(db: Datalayer, listener: str) -> list[dict[str, Any]]:
    active = db._listeners.snapshot().by_id[listener]
    rows = db.select(active.output_table, {"model_version": active.model_version})
    keep = {"source_id", "model", "model_version", "input_hash", "output", "input_0", "input_1"}
    return sorted(
        ({k: v for k, v in r.items() if k in keep} for r in rows), key=lambda r: r["source_id"]
    )


def test_an_arrow_insert_writes_the_outputs_of_the_same_rows_as_dicts(
    db: Datalayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outputs of an Arrow insert == outputs of a dict insert of the same rows, for list and
    array vectors, two inputs with their copies, and a ``where``; on DuckDB in one
    insert_many (one commit), with no Python value made of an array model's vectors."""
    _listeners(db, "d")
    _listeners(db, "a")
    first = _rows(0, 5)
    db.insert("d", first)  # the first writes create the outputs tables and warm the cache
    db.insert("a", pa.Table.from_pylist(first))
    backend = db.databackend
    calls: list[str] = []
    for name in ("insert", "insert_many"):
        real = getattr(type(backend), name, None)
        if real is not None:

            def spy(*a: Any, _n: str = name, _real: Any = real, **k: Any) -> Any:
                calls.append(_n)
                return _real(*a, **k)

            monkeypatch.setattr(type(backend), name, spy)
    made_python: list[Any] = []
    real_python_value = listeners_module.python_value  # type: ignore[attr-defined]

    def python_value(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            made_python.append(value)
        return real_python_value(value)

    monkeypatch.setattr(listeners_module, "python_value", python_value)
    rows = _rows(5, 40)
    result = db.insert("a", pa.Table.from_pylist(rows))
    if isinstance(backend, SupportsInsertMany):
        assert calls == ["insert_many"]
        assert made_python == []  # the array model's vectors went as one Arrow array
    monkeypatch.undo()
    assert result == 40
    assert result.ok
    assert list(result.ids) == [r["id"] for r in rows]
    db.insert("d", rows)
    for name in ("lv", "av", "json", "pair", "where"):
        assert _outputs(db, f"{name}_a") == _outputs(db, f"{name}_d"), name
    assert {o["source_id"]: o["output"] for o in _outputs(db, "json_a")} == {
        r["id"]: ListVectors().predict([r["x"]])[0] for r in first + rows
    }
    vectors = {o["source_id"]: o["output"] for o in _outputs(db, "av_a")}
    x = np.float32(rows[0]["x"])
    assert vectors[5] == [float(x), float(x / np.float32(2)), float(-x)]
    assert len(_outputs(db, "where_a")) == sum(r["tag"] == "a" for r in first + rows)
    report = db.catch_up()  # the hashes and copies match the stored rows: nothing to do
    assert report.changed == 0


def test_an_arrow_insert_with_a_bad_model_output_keeps_the_rows_and_reports_it(
    db: Datalayer,
) -> None:
    """A model returning a bad vector for one row: the Arrow rows are written and the
    failure is reported the usual way (the batch's outputs write is refused as a whole: a
    FAILED job lists its rows, and catch_up retries them)."""

    db.create_table("t", {"id": "int", "x": "float"})
    db.apply(
        Listener(
            identifier="bad",
            model=Model(identifier="nan", object=NanOnNegative()),
            table="t",
            inputs="x",
            output_type="vector",
        )
    )
    db.insert("t", pa.Table.from_pylist([{"id": 0, "x": 1.0}]))
    result = db.insert("t", pa.Table.from_pylist([{"id": 1, "x": 2.0}, {"id": 2, "x": -1.0}]))
    assert result == 2
    assert db.count("t") == 3
    assert not result.ok
    assert [f.source_ids for f in result.failures] == [(1, 2)]
    assert {o["source_id"] for o in db.select("outputs__bad")} == {0}


class NanOnNegative:
    """``[x, x]``, and a NaN vector for a negative ``x`` (refused by the vector column)."""

    def predict(self, xs: list[float]) -> Any:
        return np.array([[x, x] if x >= 0 else [np.nan, x] for x in xs], dtype=np.float64)


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.binary(max_size=4),
    st.datetimes(timezones=st.just(UTC)),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=3).flatmap(
        lambda k: st.lists(st.tuples(*[VALUES] * k), max_size=6).map(lambda rows: (k, rows))
    )
)
def test_input_hashes_are_the_hashes_of_each_row(drawn: tuple[int, list[tuple[Any, ...]]]) -> None:
    k, rows = drawn
    columns = [[r[i] for r in rows] for i in range(k)] if rows else [[] for _ in range(k)]
    assert input_hashes(columns, len(rows)) == [input_hash(r) for r in rows]


def test_input_hashes_of_plain_int_and_str_columns() -> None:
    columns: list[list[Any]] = [list(range(-3, 3)), ["a", "é", "\ud800", "", '"', "x"]]
    rows = list(zip(*columns, strict=True))
    assert input_hashes(columns, 6) == [input_hash(r) for r in rows]
    assert input_hashes([columns[0]], 6) == [input_hash([v]) for v in columns[0]]
    assert input_hashes([[datetime(2024, 1, 1, tzinfo=UTC)]], 1) == [
        input_hash([datetime(2024, 1, 1, tzinfo=UTC)])
    ]


def test_the_text_encoder_returns_numpy_rows_the_listener_writes_as_one_column() -> None:
    """HashingTextEncoder returns float64 numpy rows (as embedding libraries do), so a vector
    listener over it takes the one-Arrow-column path; stored outputs are the same vectors."""
    from pinnacledb import HashingTextEncoder

    enc = HashingTextEncoder(identifier="enc", dim=16)
    texts = ["reset my password", "refund a double charge", ""]
    rows = enc.predict(texts)
    assert all(isinstance(r, np.ndarray) and r.dtype == np.float64 for r in rows)
    assert listeners_module._float_batch(rows, len(texts)) is not None
    assert np.allclose(np.linalg.norm(np.stack(rows[:2]), axis=1), 1.0)
    assert not rows[2].any()  # the empty text: the zero vector
    assert [r.tolist() for r in enc.predict(texts)] == [r.tolist() for r in rows]

    db = pinnacle("sqlite://")
    db.create_table("t", {"id": "int", "text": "str"})
    listener = Listener(identifier="emb", model=enc, table="t", inputs="text", output_type="vector")
    db.apply(listener)
    db.insert("t", [{"id": i, "text": t} for i, t in enumerate(texts)])
    stored = {
        r["source_id"]: r["output"]
        for r in db.databackend.select(listener.output_table, {}, columns=["source_id", "output"])
    }
    assert stored == {i: r.tolist() for i, r in enumerate(rows)}
