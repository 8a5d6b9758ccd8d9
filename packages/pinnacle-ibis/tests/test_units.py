"""Unit tests without a database: sqlglot repairs, parameter binding, Arrow validation."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pyarrow as pa
import pytest
import sqlglot
import sqlglot.expressions as sge

from pinnacle_ibis import _sql
from pinnacle_ibis._values import canonical_table
from pinnacle_protocols.errors import SchemaError
from pinnacle_protocols.records import DType, Field, Schema


def test_params_bind_qmark_and_format() -> None:
    """Markers become ? or %s; in format style every other % is doubled."""
    p = _sql.Params()
    a, b = p.add(1), p.add("x")
    tree = sge.select(a, b).where(sge.EQ(this=sge.column("c"), expression=sge.Literal.string("5%")))
    sql = _sql.render(tree, "postgres")
    assert p.bind(sql, "format") == "SELECT %s, %s WHERE c = '5%%'"
    assert p.bind(sql, "qmark") == "SELECT ?, ? WHERE c = '5%'"
    assert p.values == [1, "x"]
    with pytest.raises(RuntimeError):
        p.bind("SELECT 1", "qmark")  # a marker went missing


def test_params_markers_are_unguessable() -> None:
    """Text that looks like another statement's marker (even in a literal) is left alone."""
    other = _sql.Params()
    lookalike = other.add(0).sql()
    p = _sql.Params()
    tree = sge.select(sge.Literal.string(lookalike), p.add(1))
    assert p.bind(_sql.render(tree, "duckdb"), "qmark") == f"SELECT '{lookalike}', ?"


def _parse(sql: str, dialect: str) -> sge.Expression:
    tree = sqlglot.parse_one(sql, read=dialect)
    assert isinstance(tree, sge.Expression)
    return tree


def test_postgres_bytea_literal_repair() -> None:
    """ibis renders '\\x00\\x27'::bytea; PostgreSQL needs '\\x0027'."""
    tree = _parse("SELECT CAST('\\x00\\x27\\x5c\\xff' AS BYTEA)", "postgres")
    fixed = _sql.fixup(tree, "postgres").sql("postgres")
    assert fixed == "SELECT CAST('\\x00275cff' AS BYTEA)"
    other = _parse("SELECT CAST('\\x00 hello' AS BYTEA)", "postgres")
    assert _sql.fixup(other, "postgres").sql("postgres") == other.sql("postgres")


def test_sqlite_repairs() -> None:
    """UNHEX('..') becomes X'..'; TRUE/FALSE become 1/0 (a column may be named "false")."""
    tree = _parse("SELECT * FROM t WHERE y = UNHEX('00ff') AND b = FALSE", "sqlite")
    assert _sql.fixup(tree, "sqlite").sql("sqlite") == "SELECT * FROM t WHERE y = x'00ff' AND b = 0"


def test_mysql_string_literals_use_mysql_escapes() -> None:
    """Issue 19: sqlglot wrote BEL/VT/FF as \\a \\v \\f, which MySQL reads as a, v, f."""
    from ibis.backends.sql.dialects import MySQL

    text = "a\x00b\x07\x08\x0b\x0c\x1a\\'\"\n\r\t\x7f"
    want = "'a\\0b\x07\\b\x0b\x0c\\Z\\\\''\"\\n\\r\\t\x7f'"
    assert _sql.render(sge.Literal.string(text), "mysql") == want
    assert _sql.render(sge.Literal.string(text), MySQL) == want  # what ibis's backend passes
    # sqlglot's own MySQL dialect is left alone (no global monkeypatch).
    assert sge.Literal.string("\x07").sql("mysql") == "'\\a'"
    # Identifiers: MySQL has no escapes in backticks, only doubled backticks.
    assert _sql.render(_sql.ident("a\x07`\\"), "mysql") == "`a\x07``\\`"


SCHEMA = Schema(
    fields=(
        Field(name="i", dtype=DType.INT, nullable=False),
        Field(name="f", dtype=DType.FLOAT),
        Field(name="s", dtype=DType.STR),
        Field(name="t", dtype=DType.DATETIME),
        Field(name="v", dtype=DType.VECTOR, dim=2),
    )
)


@pytest.mark.parametrize(
    "columns",
    [
        {"i": pa.array([1, None], pa.int64())},  # NULL in a non-nullable column
        {"i": pa.array([2**64 - 1], pa.uint64())},  # beyond int64
        {"i": pa.array([1.0])},  # float for int
        {"i": pa.array([True])},  # bool for int
        {"i": pa.array([1]), "f": pa.array([math.nan])},
        {"i": pa.array([1]), "f": pa.array([math.inf])},
        {"i": pa.array([1]), "s": pa.array(["a\x00b"])},
        {"i": pa.array([1]), "t": pa.array([datetime(2024, 1, 1)], pa.timestamp("us"))},  # naive
        {"i": pa.array([1]), "v": pa.array([[1.0]], pa.list_(pa.float64()))},  # wrong dim
        {"i": pa.array([1]), "v": pa.array([[1.0, None]], pa.list_(pa.float64()))},
        {"i": pa.array([1]), "v": pa.array([[1.0, math.nan]], pa.list_(pa.float64()))},
        {"i": pa.array([1]), "nope": pa.array([1])},
    ],
)
def test_arrow_input_is_validated_like_dicts(columns: dict[str, pa.Array]) -> None:
    """The vectorised Arrow path rejects what the reference rejects."""
    with pytest.raises(SchemaError):
        canonical_table(SCHEMA, pa.table(columns), "t")


def test_arrow_input_is_normalised() -> None:
    """Arrow input of other widths and units becomes the canonical types."""
    data = pa.table(
        {
            "i": pa.array([1, 2], pa.int8()),
            "f": pa.array([1, None], pa.int32()),
            "s": pa.array(["x", None], pa.large_string()),
            "t": pa.array([0, 1], pa.timestamp("ms", tz="+02:00")),
            "v": pa.array([[1, 2], None], pa.list_(pa.int16())),
        }
    )
    out = canonical_table(SCHEMA, data, "t")
    assert out.to_pylist() == [
        {"i": 1, "f": 1.0, "s": "x", "t": datetime(1970, 1, 1, tzinfo=UTC), "v": [1.0, 2.0]},
        {"i": 2, "f": None, "s": None, "t": datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
         "v": None},
    ]  # fmt: skip
    assert out.schema.field("t").type == pa.timestamp("us", tz="UTC")
