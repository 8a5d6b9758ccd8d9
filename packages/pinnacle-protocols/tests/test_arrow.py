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


# ----------------------------------------------------------- coerce_columns vs the cells
#: Values some column type refuses (or takes only after a conversion), mixed into valid rows.
ODD_VALUES: tuple[Any, ...] = (
    None, True, 0, 1, -1, 2**63, -(2**63) - 1, 2**53 + 1, 1.5, float("nan"), float("inf"),
    -0.0, 1e308 * 10, "", "x", "a\x00b", "\ud800", "é", b"", b"\x00", bytearray(b"x"),
    datetime(2024, 1, 1), T, T.astimezone(timezone(timedelta(hours=3))), "2024-01-01",
    [], [1.0], [1.0, 2.0], (1, 2), [True, 1.0], [1.0, float("nan")], [1.0, None], ["a", "b"],
    {"x": 1}, {"x": {1, 2}}, {1: "x"}, [1, [2]],
)  # fmt: skip


def _cell_reference(
    schema: Schema, rows: list[Any], json_text: bool, extra: tuple[str, ...]
) -> list[list[Any]] | str:
    """The per-cell reference: ``coerce_value`` on every cell, first bad row then column."""
    from pinnacle_protocols.records import coerce_value

    columns: list[list[Any]] = [[] for _ in (*schema.fields, *extra)]
    try:
        for i, row in enumerate(rows):
            where = f"insert into 't', row {i}"
            if not isinstance(row, dict):
                raise SchemaError(f"{where}: a row must be a dict, got {type(row).__name__}")
            unknown = [k for k in row if k not in {*schema.names, *extra}]
            if unknown:
                raise SchemaError(
                    f"{where}: unknown column(s) {unknown!r}; the table has {list(schema.names)}"
                )
            for col, field in zip(columns, schema.fields, strict=False):
                value = coerce_value(field, row.get(field.name), where)
                col.append(arrow.storage_value(field, value) if json_text else value)
            for col, key in zip(columns[len(schema.fields) :], extra, strict=True):
                col.append(row.get(key, arrow.ABSENT))
    except (SchemaError, OverflowError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return columns


def _outcome(fn: Any) -> Any:
    try:
        return fn()
    except (SchemaError, OverflowError) as exc:
        return f"{type(exc).__name__}: {exc}"


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    schema=schemas(max_columns=4),
    json_text=st.booleans(),
    as_table=st.booleans(),
)
def test_coerce_columns_agrees_with_coerce_value_per_cell(
    data: st.DataObject, schema: Schema, json_text: bool, as_table: bool
) -> None:
    """Accept/reject, the error (first bad row, then column) and the values, per column type."""
    drawn = data.draw(st.lists(rows(schema), max_size=6))
    spoil = data.draw(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(schema.names),
                                         st.sampled_from(ODD_VALUES)), max_size=3))  # fmt: skip
    for i, name, value in spoil:
        if i < len(drawn):
            drawn[i] = {**drawn[i], name: value}
    extra: tuple[str, ...] = data.draw(st.sampled_from([(), ("_id",)]))
    with_id: bool = data.draw(st.booleans(), label="with an _id")
    if extra and drawn and with_id:
        drawn[0] = {**drawn[0], "_id": 7}
    want = _cell_reference(schema, drawn, json_text, extra)
    got = _outcome(lambda: arrow.coerce_columns(schema, drawn, "t", json_text=json_text,
                                                extra=extra))  # fmt: skip
    assert got == want
    json = any(f.dtype is DType.JSON for f in schema.fields)  # canonical JSON is its text
    if as_table and not isinstance(want, str) and not json:
        try:
            table = arrow.canonical_table(schema, drawn, "t")
        except SchemaError:  # e.g. a float column of huge ints: Arrow input cannot say it
            return
        from_arrow = arrow.coerce_columns(schema, table, "t", json_text=json_text, extra=extra)
        assert from_arrow == want
        assert [list(map(type, c)) for c in from_arrow] == [list(map(type, c)) for c in want]


def test_coerce_columns_checks_vectorised(no_slow_path: None, monkeypatch: Any) -> None:
    """Valid dicts and Arrow data never reach the per-cell loop (nor coerce_value)."""

    def refuse(*_: object, **__: object) -> Any:
        raise AssertionError("coerce_value ran on valid input")

    monkeypatch.setattr(arrow, "_exact_columns", refuse)
    monkeypatch.setattr(arrow, "coerce_value", refuse)
    columns = arrow.coerce_columns(SCHEMA, GOOD, "t", json_text=False)
    assert columns[2] == [1.5, 3.0, None]
    assert type(columns[2][1]) is float
    assert columns[6][1] == T
    assert columns[6][1].tzinfo is UTC
    assert columns[7] == [{"x": [1]}, "text", None]
    assert columns[8] == [[1.0, 2.0], [1.0, 2.5], None]
    table = pa.Table.from_pylist([{"k": 1, "f": 2, "s": "x"}, {"k": 2}])
    table = table.drop_columns(["s"]).append_column("s", pa.array(["a", None]))
    assert arrow.coerce_columns(SCHEMA, table, "t")[:4] == [[1, 2], [None, None], [2.0, None],
                                                             ["a", None]]  # fmt: skip


def test_coerce_columns_of_arrow_adds_the_extra_columns(no_slow_path: None) -> None:
    """Arrow input without the ``extra`` key gets its ABSENT column (MongoDB's ``_id``) too."""
    table = pa.table({"k": [1, 2], "s": ["a", None]})
    schema = Schema.of(k="int", s="str")
    got = arrow.coerce_columns(schema, table, "t", extra=("_id",))
    assert got == [[1, 2], ["a", None], [arrow.ABSENT, arrow.ABSENT]]


def test_python_values_are_to_pylist() -> None:
    """The NumPy shortcut gives the same values of the same types as ``to_pylist``."""
    columns = [
        pa.chunked_array([[1, -(2**63)], [2**63 - 1]], type=pa.int64()),
        pa.chunked_array([[1.5, -0.0], [1e308]], type=pa.float64()),
        pa.chunked_array([[True], [False]], type=pa.bool_()),
        pa.chunked_array([], type=pa.int64()),
        pa.array([1, None], type=pa.int64()),
        pa.array([0.5, None]),
        pa.array(["a", None]),
        pa.array([1], type=pa.int32()),
    ]
    for column in columns:
        got = arrow.python_values(column)
        want = column.to_pylist()
        assert got == want
        assert list(map(type, got)) == list(map(type, want))
    assert str(arrow.python_values(pa.array([-0.0]))[0]) == "-0.0"


def test_arrow_python_columns_or_none() -> None:
    """Valid Arrow data: the canonical table's values; anything unproven: None, not an error."""
    schema = Schema.of(a="int", f="float", s="str")
    table = pa.table({"f": pa.array([1, 2], type=pa.int32()), "a": [3, 4]})
    assert arrow.arrow_python_columns(schema, table, "t") == [[3, 4], [1.0, 2.0], [None, None]]
    assert arrow.arrow_python_columns(schema, pa.table({"zz": [1]}), "t") is None
    assert arrow.arrow_python_columns(schema, pa.table({"f": [float("nan")]}), "t") is None
    assert arrow.arrow_python_columns(schema, pa.table({"s": ["a\x00"]}), "t") is None


def test_coerce_columns_names_the_first_bad_row_across_columns() -> None:
    """Arrow input with bad values in two columns: the earlier row wins, as row by row."""
    schema = Schema.of(a="float", b="str")
    table = pa.table({"a": [1.0, 2.0, float("nan")], "b": ["x", "y\x00", "z"]})
    with pytest.raises(SchemaError, match=r"row 1: strings must not contain NUL"):
        arrow.coerce_columns(schema, table, "t")


# ---------------------------------------------------------------------- canonical_columns
def _columns(schema: Schema, data: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """``data`` column by column (a column no row has is left out, as a caller would)."""
    names = [n for n in schema.names if any(n in r for r in data)]
    return {n: [r.get(n) for r in data] for n in names}


def test_canonical_columns_equals_canonical_table_without_the_slow_path(
    no_slow_path: None,
) -> None:
    got = arrow.canonical_columns(SCHEMA, _columns(SCHEMA, GOOD), "t")
    assert got.equals(arrow.canonical_table(SCHEMA, GOOD, "t"))


#: Columns have no row of their own to lack a key: an unknown column is every row's.
COLUMN_BAD_ROWS = [(c, b) for c, b in BAD_ROWS if set(b) <= set(SCHEMA.names)]


@pytest.mark.parametrize(("case", "bad"), COLUMN_BAD_ROWS, ids=[c for c, _ in COLUMN_BAD_ROWS])
def test_canonical_columns_gives_the_reference_error(case: str, bad: dict[str, Any]) -> None:
    data = [*GOOD, bad, {"k": 5, "i": "also bad"}]
    with pytest.raises(SchemaError) as reference:
        arrow.coerce_rows(SCHEMA, data, "t")
    with pytest.raises(SchemaError) as got:
        arrow.canonical_columns(SCHEMA, _columns(SCHEMA, data), "t")
    assert str(got.value) == str(reference.value)


def test_canonical_columns_takes_a_vector_batch_as_one_arrow_array(no_slow_path: None) -> None:
    """A FixedSizeList of float32 (a model's 2-D array) is cast, not made Python floats."""
    np = pytest.importorskip("numpy")
    batch = np.array([[1.5, 2.0], [-3.0, 0.25]], dtype=np.float32)
    fsl = pa.FixedSizeListArray.from_arrays(pa.array(batch.reshape(-1)), 2)
    got = arrow.canonical_columns(SCHEMA, {"k": [0, 1], "v": fsl}, "t")
    as_lists = [{"k": 0, "v": [1.5, 2.0]}, {"k": 1, "v": [-3.0, 0.25]}]
    assert got.equals(arrow.canonical_table(SCHEMA, as_lists, "t"))


def test_a_bad_vector_batch_gives_the_error_of_the_same_vectors_as_lists() -> None:
    np = pytest.importorskip("numpy")
    for bad in ([[1.0, 2.0], [float("inf"), 1.0]], [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]):
        arr = np.array(bad, dtype=np.float32)
        fsl = pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])
        with pytest.raises(SchemaError) as reference:
            arrow.coerce_rows(SCHEMA, [{"k": 0, "v": r} for r in arr.tolist()], "t")
        with pytest.raises(SchemaError) as got_error:
            arrow.canonical_columns(SCHEMA, {"k": [0, 1], "v": fsl}, "t")
        assert str(got_error.value) == str(reference.value)


def test_canonical_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(SchemaError, match="different lengths"):
        arrow.canonical_columns(SCHEMA, {"k": [0, 1], "i": [1]}, "t")


@settings(max_examples=40, deadline=None)
@given(data=st.data(), schema=schemas(max_columns=4))
def test_canonical_columns_agrees_with_canonical_table_on_random_rows(
    data: st.DataObject, schema: Schema
) -> None:
    drawn = data.draw(st.lists(rows(schema), max_size=5))
    columns = {n: [r.get(n) for r in drawn] for n in schema.names}
    assert arrow.canonical_columns(schema, columns, "t").equals(
        arrow.canonical_table(schema, drawn, "t")
    )


# ------------------------------------------- coerce_columns: plain columns without Arrow
PLAIN = Schema(
    fields=(
        Field(name="a", dtype=DType.INT, nullable=False),
        Field(name="x", dtype=DType.FLOAT),
        Field(name="s", dtype=DType.STR),
    )
)


class _Str(str):
    """A str subclass: coerce_value makes it a plain str."""


def test_plain_int_float_str_columns_are_checked_without_arrow(
    no_slow_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full rows of only-int, only-float and only-str columns are proved valid by C-level
    passes over the lists (min/max, sum, join): no Arrow array, no per-cell loop."""

    def refuse(*_: object, **__: object) -> Any:
        raise AssertionError("an Arrow array was built for a plain column")

    monkeypatch.setattr(arrow, "_exact_columns", refuse)
    rows = [{"a": -(2**63), "x": 1e308, "s": "é"}, {"a": 2**63 - 1, "x": -0.0, "s": ""}]
    with monkeypatch.context() as m:
        m.setattr(pa, "array", refuse)
        columns = arrow.coerce_columns(PLAIN, rows, "t")
    assert columns == [[-(2**63), 2**63 - 1], [1e308, -0.0], ["é", ""]]
    assert all(c[i] is r[n] for c, n in zip(columns, "axs", strict=True) for i, r in
               enumerate(rows))  # fmt: skip


@pytest.mark.parametrize(
    "rows",
    [
        [{"a": 0, "x": 1.0, "s": "a"}, {"a": 2**63, "x": 1.0, "s": "b"}],
        [{"a": 0, "x": 1.0, "s": "a"}, {"a": -(2**63) - 1, "x": 1.0, "s": "b"}],
        [{"a": 0, "x": 1e308, "s": "a"}, {"a": 1, "x": 1e308, "s": "b"}],  # the sum overflows
        [{"a": 0, "x": 1.0, "s": "a"}, {"a": 1, "x": float("inf"), "s": "b"}],
        [{"a": 0, "x": float("inf"), "s": "a"}, {"a": 1, "x": float("-inf"), "s": "b"}],
        [{"a": 0, "x": float("nan"), "s": "a"}, {"a": 1, "x": 2.0, "s": "b"}],
        [{"a": 0, "x": 1.0, "s": "a\x00"}, {"a": 1, "x": 2.0, "s": "b"}],
        [{"a": 0, "x": 1.0, "s": "\ud800"}, {"a": 1, "x": 2.0, "s": "\udc00"}],
        [{"a": 0, "x": 1.0, "s": "é\udfff"}, {"a": 1, "x": 2.0, "s": "b\x00"}],
        [{"a": 0, "x": 1.0, "s": _Str("a")}, {"a": 1, "x": 2.0, "s": "b"}],
        [{"a": 0, "x": 1, "s": "a"}, {"a": True, "x": 2.0, "s": "b"}],
        [{"a": 0, "x": 1.0, "s": "a"}, {"a": 1, "x": 2.0, "zz": "b"}],  # full width, a wrong key
        [{"a": 0, "x": 1.0, "s": "a"}, {"a": 1, "zz": 2.0, "s": "b"}],
        [{"a": 0, "x": 1.0, "s": "a"}, {"a": 1, "x": 2.0}],  # a key left out: null
        [{"a": 0, "x": 1.0, "s": "a"}, {"x": 2.0, "s": "b", "zz": 1}],
        [{"a": 0, "x": None, "s": None}, {"a": 1, "x": 2.0, "s": "b"}],
    ],
    ids=repr,
)
def test_plain_columns_give_the_reference_answer(rows: list[dict[str, Any]]) -> None:
    """Edge values of the C-level checks: accept/reject, the error text, the values, types."""
    want = _cell_reference(PLAIN, rows, True, ())
    got = _outcome(lambda: arrow.coerce_columns(PLAIN, rows, "t"))
    assert got == want
    if not isinstance(want, str):
        assert [list(map(type, c)) for c in got] == [list(map(type, c)) for c in want]


_PLAIN_CELLS: dict[str, Any] = {
    "a": st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers()),
    "x": st.floats(width=64),
    "s": st.text(st.characters(codec=None, categories=None), max_size=4),
}
_ODD = st.sampled_from([None, True, 1, 1.5, "x", b"x", _Str("y")])


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_plain_columns_agree_with_coerce_value_per_cell(data: st.DataObject) -> None:
    """Random full rows of int, float and str columns (with out-of-range ints, NaN, inf, NUL,
    surrogates, and now and then a value of another type) agree with the per-cell rules."""
    row = st.fixed_dictionaries(
        {n: st.one_of(s, _ODD) if data.draw(st.booleans()) else s for n, s in _PLAIN_CELLS.items()}
    )
    drawn = data.draw(st.lists(row, max_size=8))
    want = _cell_reference(PLAIN, drawn, True, ())
    got = _outcome(lambda: arrow.coerce_columns(PLAIN, drawn, "t"))
    assert got == want
    if not isinstance(want, str):
        assert [list(map(type, c)) for c in got] == [list(map(type, c)) for c in want]
