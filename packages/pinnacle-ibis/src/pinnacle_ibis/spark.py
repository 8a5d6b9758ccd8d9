"""``pyspark://``: Spark SQL tables (Parquet) through ibis's PySpark backend.

* ``pyspark://?database=NAME`` uses (and creates) the Spark database ``NAME`` (default
  ``default``); other query parameters become Spark configuration, as in ibis. The session is
  ``SparkSession.builder.getOrCreate()``, so a session you built first (master, warehouse,
  ...) is the one used; :meth:`PySparkDataBackend.from_session` takes one explicitly.
  :meth:`~PySparkDataBackend.close` never stops the session (other code may share it).
* Spark accepts only ``[A-Za-z0-9_]`` table names and folds their case, so a table is stored
  as ``pt_<hex of the UTF-8 name>``; :meth:`~PySparkDataBackend.physical_name` tells which.
  Column names are kept as they are.
* The portable schema is a table property (``pinnacle.schema``, base64 JSON).
* Tables are Spark's default Parquet data-source tables, which cannot UPDATE or DELETE rows:
  ``supports_update`` and ``supports_delete`` are False.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from pinnacle_ibis import _sql
from pinnacle_ibis.backend import (
    IbisDataBackend,
    _result_rows,
)
from pinnacle_protocols.errors import ConfigError, UnsupportedOperation
from pinnacle_protocols.filters import Filter
from pinnacle_protocols.records import DType, Field, Schema
from pinnacle_protocols.tables import schema_from_text, schema_to_text
from pinnacle_protocols.uri import RedactedURI

if TYPE_CHECKING:
    import ibis.expr.datatypes as dt
    import ibis.expr.types as ir
    import pyarrow as pa

__all__ = ["PySparkDataBackend"]

PREFIX = "pt_"
SCHEMA_PROPERTY = "pinnacle.schema"

_SPARK_TYPES = {
    DType.INT: "BIGINT",
    DType.FLOAT: "DOUBLE",
    DType.STR: "STRING",
    DType.BOOL: "BOOLEAN",
    DType.BYTES: "BINARY",
    DType.DATETIME: "TIMESTAMP",
    DType.JSON: "STRING",
    DType.VECTOR: "ARRAY<DOUBLE>",
}


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@attrs.define(kw_only=True, eq=False, slots=False)
class PySparkDataBackend(IbisDataBackend):
    """Spark SQL through ibis: insert, select, count and native expressions; no UPDATE/DELETE."""

    supports_update: ClassVar[bool] = False
    supports_delete: ClassVar[bool] = False
    float_literals_as_text: ClassVar[bool] = False  # Spark reads decimals exactly

    _database: str = attrs.field(default="default", alias="database")
    _session: Any = attrs.field(default=None, alias="session", repr=False)
    _portable: dict[str, Schema] | None = attrs.field(default=None, init=False, repr=False)

    @classmethod
    def _from_parsed(cls, uri: RedactedURI, options: dict[str, Any]) -> PySparkDataBackend:
        query = dict(uri.query)
        database = query.pop("database", "default")
        _check_database(database)
        conf = {**query, **options}
        return cls(uri=uri, database=database, options=conf)

    @classmethod
    def from_session(cls, session: Any, *, database: str = "default") -> PySparkDataBackend:
        """A backend on an existing SparkSession, in Spark database ``database``."""
        _check_database(database)
        uri = RedactedURI.parse(f"pyspark://?database={database}")
        return cls(uri=uri, database=database, session=session)

    def _connect(self) -> Any:
        import ibis

        session = self._session
        if session is None:
            from pyspark.sql import SparkSession

            builder = SparkSession.builder
            for key, value in self._options.items():
                builder = builder.config(key, value)
            session = builder.getOrCreate()
            self._session = session
        con = ibis.pyspark.connect(session)
        session.sql(f"CREATE DATABASE IF NOT EXISTS {_ident(self._database)}").collect()
        return con

    def _disconnect(self, con: Any) -> None:
        """Never stop the SparkSession: it is shared by everything in the process."""

    def physical_name(self, table: str) -> str:
        """The Spark table name that stores portable table ``table``."""
        return PREFIX + table.encode("utf-8").hex()

    def _qualified(self, table: str) -> str:
        return f"{_ident(self._database)}.{_ident(self.physical_name(table))}"

    def _sql(self, text: str) -> list[Any]:
        self._conn()
        return list(self._session.sql(text).collect())

    # ------------------------------------------------------------------ catalog
    def _physical_tables(self) -> list[str]:
        names = []
        for row in self._sql(f"SHOW TABLES IN {_ident(self._database)}"):
            phys = row["tableName"]
            if row["isTemporary"] or not phys.startswith(PREFIX):
                continue
            try:
                names.append(bytes.fromhex(phys[len(PREFIX) :]).decode("utf-8"))
            except ValueError:
                continue
        return names

    def _load_schemas(self) -> dict[str, Schema]:
        if self._portable is None:
            self._portable = {}
        out = {}
        for name in self._physical_tables():
            schema = self._portable.get(name)
            if schema is None:
                schema = self._read_property(name)
                self._portable[name] = schema
            out[name] = schema
        return out

    def _read_property(self, name: str) -> Schema:
        rows = self._sql(f"SHOW TBLPROPERTIES {self._qualified(name)} ('{SCHEMA_PROPERTY}')")
        for row in rows:
            value = row["value"]
            if row["key"] == SCHEMA_PROPERTY and "does not have property" not in value:
                return schema_from_text(base64.b64decode(value).decode("utf-8"))
        return self._derive_schema(name)

    def _invalidate(self, name: str | None = None) -> None:
        super()._invalidate(name)
        if name is None:
            self._portable = None
        elif self._portable is not None:
            self._portable.pop(name, None)

    def _derive_schema(self, name: str) -> Schema:
        from pinnacle_ibis.backend import _portable_dtype

        ibis_schema = self._conn().table(self.physical_name(name), database=self._database).schema()
        return Schema(
            fields=tuple(
                Field(name=c, dtype=_portable_dtype(t), nullable=True)
                for c, t in ibis_schema.items()
            )
        )

    def _ibis_dtype(self, field: Field) -> dt.DataType:
        import ibis.expr.datatypes as dt

        if field.dtype is DType.JSON:
            return dt.String(nullable=field.nullable)
        if field.dtype is DType.DATETIME:
            return dt.Timestamp(nullable=field.nullable)
        return super()._ibis_dtype(field)

    def _create_physical(self, name: str, schema: Schema) -> None:
        cols = ", ".join(f"{_ident(f.name)} {_SPARK_TYPES[f.dtype]}" for f in schema.fields)
        encoded = base64.b64encode(schema_to_text(schema).encode("utf-8")).decode("ascii")
        self._sql(
            f"CREATE TABLE {self._qualified(name)} ({cols}) USING parquet "
            f"TBLPROPERTIES ('{SCHEMA_PROPERTY}' = '{encoded}')"
        )
        if self._portable is not None:
            self._portable[name] = schema

    def _drop_physical(self, name: str) -> None:
        self._sql(f"DROP TABLE {self._qualified(name)}")
        if self._portable is not None:
            self._portable.pop(name, None)

    def _drop_schema_store(self) -> None:
        """Nothing to drop: schemas are properties of the tables."""

    # ------------------------------------------------------------------ data
    def _table_expr(self, name: str, schema: Schema) -> ir.Table:
        cached = self._table_cache.get(name)
        if cached is None:
            cached = self._conn().table(self.physical_name(name), database=self._database)
            self._table_cache[name] = cached
        return cached

    def _native(self, table: str) -> Any:
        return self._conn().table(self.physical_name(table), database=self._database)

    def _write(self, name: str, schema: Schema, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        frame = self._session.createDataFrame(data)
        frame.write.insertInto(f"{self._database}.{self.physical_name(name)}")

    def _arrow(self, expr: Any) -> pa.Table:
        """Run an ibis expression through Spark's own Arrow collection.

        ibis 12's PySpark ``to_pyarrow`` goes through pandas, which turns an int64 column with
        NULLs into float64 and corrupts values beyond 2**53; ``DataFrame.toArrow`` does not.
        The SQL is rendered with Spark's own string escapes (:func:`_sql.spark_dialect`).
        """
        sql = _sql.compile_select(self._conn(), expr.as_table())
        return self._session.sql(sql).toArrow()

    def _fetch(self, expr: ir.Table, fields: Sequence[Field]) -> list[dict[str, Any]]:
        return self._arrow_rows(self._arrow(expr), fields)

    def _count(self, expr: ir.Table) -> int:
        return int(self._arrow(expr.count()).column(0)[0].as_py())

    def _counts(self, counts: Sequence[Any]) -> list[int]:
        row = self._arrow(self._one_row(counts))
        return [int(row.column(i)[0].as_py()) for i in range(len(counts))]

    def _execute(self, query: Any) -> Any:
        import ibis.expr.types as ir

        table = self._arrow(query)
        if isinstance(query, ir.Table):
            return table
        if isinstance(query, ir.Column):
            return table.column(0)
        return table.column(0)[0]

    def _decoder(self, field: Field) -> Any:
        if field.dtype in (DType.INT, DType.STR, DType.BOOL, DType.BYTES, DType.FLOAT):
            return None
        return super()._decoder(field)

    def _update(
        self, name: str, schema: Schema, where: Filter | None, values: Mapping[str, Any]
    ) -> int:  # pragma: no cover - guarded by supports_update
        raise UnsupportedOperation(f"{self._uri}: Spark Parquet tables cannot be updated")

    def _delete(self, name: str, schema: Schema, where: Filter | None) -> int:  # pragma: no cover
        raise UnsupportedOperation(f"{self._uri}: Spark Parquet tables cannot delete rows")

    def _raw_sql(self, sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        if params is not None:
            raise UnsupportedOperation(f"{self._uri}: Spark SQL takes no parameters here")
        con = self._conn()
        return _result_rows(con.raw_sql(sql), con)

    @classmethod
    def default_metadata_uri_for(cls, uri: RedactedURI) -> RedactedURI | None:
        """None: pinnacle-sql cannot keep metadata in Spark (the facade picks SQLite)."""
        return None


def _check_database(name: str) -> None:
    if not name or not all(c.isascii() and (c.isalnum() or c == "_") for c in name):
        raise ConfigError(
            f"Spark database name {name!r} must be ASCII letters, digits and underscores"
        )
