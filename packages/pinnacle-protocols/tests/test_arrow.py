"""pinnacle_protocols.arrow: dicts and Arrow data to the canonical table, checked vectorised."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pinnacle_protocols import arrow
from pinnacle_protocols.errors import SchemaError
from pinnacle_protocols.records import DType, Field, Schema
from pinnacle_protocols.testing._data import BAD_ROWS
from pinnacle_protocols.testing.strategies import rows, schemas

pa = pytest.importorskip("pyarrow")

SCHEMA = Schema(
    fields=(
        Field(name="k", dtype=DType.INT, nullable=False),
        Field(name="i", dtype=DType.INT),
        Field(name="f", dtype=DType.FLOAT),
        Field(name="s", dtype=DType.STR),
        Field(name="b", dtype=DType.BOOL),
        Field(name="y", dtype=DType.BYTES),
        Field(name="t", dtype=DType.DATETIME),
        Field(name="j", dtype=DType.JSON),
        Field(name="v", dtype=DType.VECTOR, dim=2),
    )
)
T = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
GOOD: list[dict[str, Any]] = [
    {"k": 0, "i": 1, "f": 1.5, "s": "a", "b": True, "y": b"\x00a", "t": T, "j": {"x": [1]},
     "v": [1.0, 2.0]},
    {"k": 1, "i": -(2**63), "f": 3, "s": "é", "b": False, "y": b"", "j": "text", "v": (1, 2.5),
     "t": T.astimezone(timezone(timedelta(hours=-5)))},
    {"k": 2},
]  # fmt: skip


def _slow(schema: Schema, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the exact reference loop makes of ``data``."""
    columns = arrow.coerce_rows(schema, data, "t")
    arrays = [
        pa.array(c, type=arrow.arrow_type(f)) for c, f in zip(columns, schema.fields, strict=True)
    ]
    table = pa.Table.from_arrays(arrays, schema=arrow.canonical_arrow_schema(schema))
    result: list[dict[str, Any]] = table.to_pylist()
    return result


@pytest.fixture
def no_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if the exact per-cell loop runs (valid input must take the vectorised path)."""

    def refuse(*_: object, **__: object) -> Any:
        raise AssertionError("the per-cell loop ran on valid input")

    monkeypatch.setattr(arrow, "coerce_rows", refuse)
    monkeypatch.setattr(arrow, "_slow_column", refuse)


def test_valid_dicts_take_the_vectorised_path(no_slow_path: None) -> None:
    table = arrow.canonical_table(SCHEMA, GOOD, "t")
    assert table.schema == arrow.canonical_arrow_schema(SCHEMA)
    got = table.to_pylist()
    assert got[0]["j"] == '{"x":[1]}'
    assert got[1]["t"] == T
    assert got[1]["f"] == 3.0
    assert got[1]["v"] == [1.0, 2.5]
    assert got[2] == {"k": 2} | dict.fromkeys(SCHEMA.names[1:])


def test_valid_arrow_takes_the_vectorised_path(no_slow_path: None) -> None:
    data = pa.Table.from_pylist([{"k": 1, "s": "x", "f": 2}, {"k": 2, "s": None, "f": None}])
    table = arrow.canonical_table(SCHEMA, data, "t")
    assert table.column("f").to_pylist() == [2.0, None]


def test_fast_path_equals_reference() -> None:
    assert arrow.canonical_table(SCHEMA, GOOD, "t").to_pylist() == _slow(SCHEMA, GOOD)


@pytest.mark.parametrize(("case", "bad"), BAD_ROWS, ids=[c for c, _ in BAD_ROWS])
def test_bad_rows_give_the_reference_error(case: str, bad: dict[str, Any]) -> None:
    """The error names the first bad row and column exactly as the per-cell loop does."""
    data = [*GOOD, bad, {"k": 5, "i": "also bad"}]
    with pytest.raises(SchemaError) as reference:
        arrow.coerce_rows(SCHEMA, data, "t")
    with pytest.raises(SchemaError) as got:
        arrow.canonical_table(SCHEMA, data, "t")
    assert str(got.value) == str(reference.value)
    assert "row 3" in str(got.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"k": 1, "f": float("nan")},
        {"k": 1, "f": float("-inf")},
        {"k": 1, "s": "a\x00b"},
        {"k": 1, "s": "\ud800"},
        {"k": 1, "v": [1.0, float("inf")]},
        {"k": 1, "v": [True, 1.0]},
        {"k": 1, "v": [1.0, None]},
        {"k": 1, "i": 1.0},
        {"k": 1, "y": bytearray(b"x")},
        {"k": 1, "j": {"x": float("nan")}},
        {"k": 1, "j": {1: "non-str key"}},
        {"k": 1, "t": datetime(2024, 1, 1)},
    ],
    ids=repr,
)
def test_values_arrow_would_take_are_refused(bad: dict[str, Any]) -> None:
    """Values Arrow converts happily but the portable rules refuse (or a bytearray, accepted)."""
    data = [GOOD[0], bad]
    try:
        expected: Any = _slow(SCHEMA, data)
    except SchemaError as exc:
        expected = str(exc)
    try:
        got: Any = arrow.canonical_table(SCHEMA, data, "t").to_pylist()
    except SchemaError as exc:
        got = str(exc)
    assert got == expected


@settings(max_examples=40, deadline=None)
@given(data=st.data(), schema=schemas(max_columns=4))
def test_fast_path_agrees_with_reference_on_random_rows(
    data: st.DataObject, schema: Schema
) -> None:
    drawn = data.draw(st.lists(rows(schema), max_size=5))
    got = arrow.canonical_table(schema, drawn, "t").to_pylist()
    assert got == _slow(schema, drawn)


def test_pandas_and_polars_frames() -> None:
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    schema = Schema.of(k="int", s="str", f="float")
    frame = {"k": [1, 2], "s": ["a", None], "f": [0.5, 1.0]}
    want = [{"k": 1, "s": "a", "f": 0.5}, {"k": 2, "s": None, "f": 1.0}]
    assert arrow.canonical_table(schema, pd.DataFrame(frame), "t").to_pylist() == want
    assert arrow.canonical_table(schema, pl.DataFrame(frame), "t").to_pylist() == want
    batch = pa.RecordBatch.from_pylist(want)
    assert arrow.canonical_table(schema, batch, "t").to_pylist() == want


def _counting(n: int, seen: list[int]) -> Iterator[dict[str, int]]:
    for i in range(n):
        seen.append(i)
        yield {"k": i}


def test_insert_chunks_streams_in_bounded_batches() -> None:
    seen: list[int] = []
    chunks = arrow.insert_chunks(_counting(250, seen), batch_rows=100)
    first = next(chunks)
    assert len(first) == 100
    assert len(seen) <= 101  # nothing read ahead beyond one batch
    assert [len(c) for c in chunks] == [100, 50]


def test_insert_chunks_slices_tables_and_keeps_whole_inputs_whole() -> None:
    table = pa.table({"k": list(range(250))})
    assert [len(c) for c in arrow.insert_chunks(iter([table]), batch_rows=100)] == [100, 100, 50]
    assert [len(c) for c in arrow.insert_chunks(table, batch_rows=100)] == [250]
    big = [{"k": i} for i in range(250)]
    assert [len(c) for c in arrow.insert_chunks(big, batch_rows=100)] == [250]
    assert [len(c) for c in arrow.insert_chunks(iter([big]), batch_rows=100)] == [100, 100, 50]


@pytest.mark.parametrize(
    "bad", [{"k": 1}, "text", 5, iter([5])], ids=["dict", "str", "int", "iterator-of-ints"]
)
def test_insert_chunks_refuses_what_is_not_rows(bad: Any) -> None:
    with pytest.raises(SchemaError):
        list(arrow.insert_chunks(bad))
