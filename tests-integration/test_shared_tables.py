"""pinnacle-sql and pinnacle-ibis share one SQLite file: each reads the tables the other wrote.

Both keep their portable schemas in :data:`pinnacle_protocols.tables.SCHEMAS_TABLE` in the form
of :func:`pinnacle_protocols.tables.schema_to_text`; a drift in either package's copy of that
format would make JSON and vector columns come back as text (or the table unreadable).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pinnacle_ibis import IbisDataBackend
from pinnacle_protocols.records import DType, Field, Schema
from pinnacle_sql.data import SQLAlchemyDataBackend

pytestmark = pytest.mark.sqlite

_SCHEMA = Schema(
    fields=(
        Field(name="n", dtype=DType.INT, nullable=False),
        Field(name="s", dtype=DType.STR),
        Field(name="when", dtype=DType.DATETIME),
        Field(name="doc", dtype=DType.JSON),
        Field(name="vec", dtype=DType.VECTOR, dim=2),
    )
)
_ROW: dict[str, Any] = {
    "n": 7,
    "s": "é\x1f",
    "when": datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
    "doc": {"b": [1, None], "a": "x"},
    "vec": [0.5, -1.0],
}


@pytest.mark.parametrize("writer_first", ["sql", "ibis"])
def test_each_package_reads_the_other_s_tables(tmp_path: Path, writer_first: str) -> None:
    path = tmp_path / "shared.db"
    sql = SQLAlchemyDataBackend.from_uri(f"sqlalchemy+sqlite:///{path}")
    ibis_backend = IbisDataBackend.from_uri(f"sqlite:///{path}")
    writer, reader = (sql, ibis_backend) if writer_first == "sql" else (ibis_backend, sql)
    try:
        writer.create_table("t", _SCHEMA)
        writer.insert("t", [_ROW])
        assert reader.table_schema("t") == _SCHEMA
        assert reader.select("t") == [_ROW]
        assert reader.list_tables() == ["t"]
    finally:
        sql.close()
        ibis_backend.close()
