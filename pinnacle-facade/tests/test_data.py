"""The Datalayer's data API and encoded (DataType) columns, on every stack."""

from __future__ import annotations

import fractions
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pinnacle_protocols.errors import SchemaError, UntrustedSerializerError
from pinnacle_protocols.records import DType, JobStatus
from pinnacledb import DataType, Table, pinnacle
from pinnacledb.base.datalayer import Datalayer

MakeDB = Callable[..., Datalayer]

ROWS = [
    {"id": 1, "name": "a", "score": 1.5},
    {"id": 2, "name": "b", "score": 2.5},
    {"id": 3, "name": "c", "score": None},
]


def _native_all_rows(db: Datalayer, table: str) -> Any:
    """A native query meaning "every row of table" for whichever backend db has."""
    module = type(db.databackend).__module__
    if module.startswith("pinnacle_ibis"):
        return db[table]
    if module.startswith("pinnacle_mongo"):
        return {"find": table, "filter": {}}
    return {"table": table}


def test_crud(db: Datalayer) -> None:
    db.create_table("people", {"id": "int", "name": "str", "score": "float"})
    assert "people" in db.list_tables()
    assert db.insert("people", ROWS) == 3
    assert db.count("people") == 3
    rows = db.select("people", {"score": {"$gt": 2}}, columns=["id", "name"])
    assert [(r["id"], r["name"]) for r in rows] == [(2, "b")]
    ordered = db.select("people", order_by=[("id", "desc")], limit=2)
    assert [r["id"] for r in ordered] == [3, 2]
    if db.databackend.supports_update:
        assert db.update("people", {"id": 3}, {"score": 9.0}) == 1
        assert db.select("people", {"id": 3})[0]["score"] == 9.0
    assert db.delete("people", {"name": {"$in": ["a", "b"]}}) == 2
    assert db.count("people") == 1
    db.drop_table("people")
    assert "people" not in db.list_tables()


def test_native_handle_and_execute(db: Datalayer) -> None:
    db.create_table("t", {"id": "int", "v": "str"})
    db.insert("t", [{"id": 1, "v": "x"}, {"id": 2, "v": "y"}])
    handle = db["t"]
    assert handle is not None
    assert type(handle) is type(db.databackend.native("t"))
    result = db.execute(_native_all_rows(db, "t"))
    rows = result.to_pylist() if hasattr(result, "to_pylist") else result
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    assert sorted(r["v"] for r in rows) == ["x", "y"]


def test_table_component_with_encoded_columns(make_db: MakeDB) -> None:
    db = make_db()
    inline = DataType(identifier="array", encoder="numpy")
    by_ref = DataType(identifier="big_array", encoder="numpy", by_reference=True)
    db.apply(Table.of("images", id="int", thumb=inline, pixels=by_ref))
    schema = db.databackend.table_schema("images")
    assert schema["thumb"].dtype is DType.BYTES
    assert schema["pixels"].dtype is DType.STR
    a, b = np.arange(6).reshape(2, 3), np.ones((64, 64), dtype=np.uint8)
    db.insert("images", [{"id": 1, "thumb": a, "pixels": b}, {"id": 2, "thumb": None}])
    raw = db.select("images", {"id": 1}, decode=False)[0]
    assert isinstance(raw["thumb"], bytes)
    assert len(raw["pixels"]) == 64  # a sha256 reference
    assert db.artifact_store.exists(raw["pixels"])
    # another Datalayer on the same stores decodes (hash-verified) on select
    other = make_db()
    rows = {r["id"]: r for r in other.select("images")}
    np.testing.assert_array_equal(rows[1]["thumb"], a)
    np.testing.assert_array_equal(rows[1]["pixels"], b)
    assert rows[2]["thumb"] is None
    assert rows[2]["pixels"] is None
    (job,) = db.show_jobs("insert")
    assert job.status is JobStatus.SUCCESS
    assert job.args["artifacts"] == [raw["pixels"]]


def test_update_encodes_values(mem_db: Datalayer) -> None:
    mem_db.apply(Table.of("t", id="int", v=DataType(identifier="j", encoder="json")))
    mem_db.insert("t", [{"id": 1, "v": {"a": 1}}])
    mem_db.update("t", {"id": 1}, {"v": {"a": 2}})
    assert mem_db.select("t")[0]["v"] == {"a": 2}


def test_encoded_pickle_column_needs_trust(local_db: Datalayer) -> None:
    local_db.apply(Table.of("objs", id="int", obj=DataType(identifier="py", encoder="pickle")))
    local_db.insert("objs", [{"id": 1, "obj": fractions.Fraction(1, 7)}])
    with pytest.raises(UntrustedSerializerError, match="trust_serializers"):
        local_db.select("objs")
    assert local_db.select("objs", decode=False)[0]["obj"]  # raw bytes are still readable


def test_reapplying_a_table_with_other_columns_is_refused(mem_db: Datalayer) -> None:
    mem_db.apply(Table.of("t", id="int"))
    with pytest.raises(SchemaError, match="already exists"):
        mem_db.apply(Table.of("t", id="str"))


def test_table_component_over_existing_table_with_same_columns(mem_db: Datalayer) -> None:
    mem_db.create_table("t", {"id": "int", "v": "str"})
    mem_db.insert("t", [{"id": 1, "v": "x"}])
    mem_db.apply(Table.of("t", id="int", v="str"))
    assert mem_db.count("t") == 1


def test_insert_without_table_component_passes_rows_through(mem_db: Datalayer) -> None:
    mem_db.create_table("t", {"id": "int"})
    assert mem_db.insert("t", [{"id": 1}]) == 1
    assert mem_db.select("t") == [{"id": 1}]


def test_schema_validation_of_the_component() -> None:
    with pytest.raises(SchemaError, match="integer"):
        Table.of("t", id="integer")


def test_memory_stores_are_private_per_datalayer() -> None:
    a, b = pinnacle("memory://"), pinnacle("memory://")
    a.create_table("t", {"id": "int"})
    assert b.list_tables() == []


def test_nested_table_component_creates_its_table(mem_db: Datalayer) -> None:
    from typing import ClassVar

    from attrs import define

    from pinnacledb import Component

    @define(kw_only=True)
    class Bundle(Component):
        type_id: ClassVar[str] = "bundle"
        table: Table

    mem_db.apply(Bundle(identifier="b", table=Table.of("inner", id="int")))
    assert mem_db.list_tables() == ["inner"]
    loaded = mem_db.load("bundle", "b")  # a class whose annotations cannot be resolved
    assert isinstance(loaded, Bundle)
    assert loaded.table.schema.fields == {"id": "int"}
