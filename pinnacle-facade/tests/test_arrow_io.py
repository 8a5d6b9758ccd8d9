"""db.insert from Arrow, pandas, polars and streams; db.select(format=...), on every stack."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pinnacle_protocols.errors import ConfigError, SchemaError
from pinnacledb.base.datalayer import Datalayer

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")

SCHEMA = {"id": "int", "name": "str", "score": "float", "tags": "json"}
ROWS: list[dict[str, Any]] = [
    {"id": 1, "name": "a", "score": 1.5, "tags": {"x": 1}},
    {"id": 2, "name": "b", "score": None, "tags": None},
    {"id": 3, "name": None, "score": 3.0, "tags": [1, "two"]},
]


def _stored(db: Datalayer) -> list[tuple[Any, ...]]:
    return sorted((r["id"], r["name"], r["score"]) for r in db.select("t"))


def test_insert_every_input_kind(db: Datalayer) -> None:
    db.create_table("t", SCHEMA)
    plain = [{k: v for k, v in r.items() if k != "tags"} for r in ROWS]
    frame = {k: [r[k] for r in plain] for k in ("id", "name", "score")}
    inputs: list[Any] = [
        pa.Table.from_pylist(plain),
        pa.RecordBatch.from_pylist(plain),
        pd.DataFrame(frame),
        pl.DataFrame(frame),
        iter(plain),
        iter([pa.Table.from_pylist(plain)]),
    ]
    for data in inputs:
        result = db.insert("t", data)
        assert result == 3, type(data)
        native = db.databackend.has_native_ids
        assert len(result.ids) == 3 if native else list(result.ids) == [1, 2, 3], type(data)
        assert _stored(db) == [(1, "a", 1.5), (2, "b", None), (3, None, 3.0)], type(data)
        db.delete("t", None)


def test_stream_inserts_batch_by_batch(db: Datalayer) -> None:
    db.create_table("t", SCHEMA)

    def stream() -> Iterator[dict[str, Any]]:
        for i in range(25):
            yield {"id": i, "name": f"n{i}"}
        yield {"id": 25, "name": 5}  # a bad row in the third batch

    with pytest.raises(SchemaError, match=r"row 5: .*'name'.* starting at row 20; the 20 rows"):
        db.insert("t", stream(), batch_rows=10)
    assert db.count("t") == 20  # the two full batches before it, not the bad one


def test_list_input_is_all_or_nothing_whatever_batch_rows(db: Datalayer) -> None:
    db.create_table("t", SCHEMA)
    rows = [{"id": i} for i in range(30)] + [{"id": "x"}]
    with pytest.raises(SchemaError, match="row 30"):
        db.insert("t", rows, batch_rows=10)
    assert db.count("t") == 0


def test_select_formats(db: Datalayer) -> None:
    db.create_table("t", SCHEMA)
    db.insert("t", ROWS)
    table = db.select("t", {"id": {"$gte": 2}}, order_by=["id"], format="arrow")
    assert isinstance(table, pa.Table)
    assert table.column_names == ["id", "name", "score", "tags"]
    assert table.schema.field("tags").type == pa.string()
    assert table.to_pylist() == [
        {"id": 2, "name": "b", "score": None, "tags": None},
        {"id": 3, "name": None, "score": 3.0, "tags": '[1,"two"]'},
    ]
    frame = db.select("t", columns=["id", "score"], order_by=["id"], format="pandas")
    assert isinstance(frame, pd.DataFrame)
    assert frame["id"].tolist() == [1, 2, 3]
    polars = db.select("t", columns=["id"], limit=1, format="polars")
    assert isinstance(polars, pl.DataFrame)
    assert polars.columns == ["id"]
    assert polars.height == 1
    assert db.select("t", {"id": 1}, format="dicts")[0]["tags"] == {"x": 1}
    with pytest.raises(ConfigError, match="format"):
        db.select("t", format="csv")  # type: ignore[call-overload]
