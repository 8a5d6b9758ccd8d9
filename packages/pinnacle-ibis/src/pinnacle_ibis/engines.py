"""Engine families: DuckDB, SQLite, PostgreSQL, MySQL/MariaDB, Polars and DataFusion.

The four SQL engines share :class:`SQLDataBackend`: tables are created with explicit column
types (so strings compare by code point: ``COLLATE "C"`` on PostgreSQL, a binary no-pad
collation on MySQL/MariaDB), queries are compiled by ibis and run on the engine's DB-API
connection, inserts use the engine's bulk path (DuckDB: Arrow, PostgreSQL: ``COPY``, the
others: ``executemany``) inside a transaction, and UPDATE/DELETE are sqlglot statements whose
``WHERE`` comes from ibis and whose values are driver parameters.

Storage of the portable types:

========  ============  ==================  ===================  ============  ==============
DType     DuckDB        PostgreSQL          MySQL/MariaDB        SQLite        Polars/DataFus.
========  ============  ==================  ===================  ============  ==============
int       BIGINT        BIGINT              BIGINT               BIGINT        int64
float     DOUBLE        DOUBLE PRECISION    DOUBLE               DOUBLE        float64
str       VARCHAR       TEXT COLLATE "C"    LONGTEXT (bin,nopad) TEXT          string
bool      BOOLEAN       BOOLEAN             BOOLEAN (tinyint)    BOOLEAN (0/1) bool
bytes     BLOB          BYTEA               LONGBLOB             BLOB          binary
datetime  TIMESTAMPTZ   TIMESTAMPTZ         DATETIME(6), UTC     ISO text, UTC timestamp[us,UTC]
json      JSON          JSON                JSON                 TEXT          string (JSON)
vector    DOUBLE[]      DOUBLE PRECISION[]  JSON                 TEXT (JSON)   list<float64>
========  ============  ==================  ===================  ============  ==============
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from pinnacle_ibis import _sql
from pinnacle_ibis._values import dump_json
from pinnacle_ibis.backend import (
    SCHEMAS_TABLE,
    IbisDataBackend,
    SelectQuery,
    _schema_from_text,
    _schema_to_text,
)
from pinnacle_protocols.errors import SchemaError, UnsupportedOperation
from pinnacle_protocols.filters import Filter
from pinnacle_protocols.records import DType, Field, Schema

if TYPE_CHECKING:
    import ibis.expr.datatypes as dt
    import ibis.expr.types as ir
    import pyarrow as pa

__all__ = [
    "DataFusionDataBackend",
    "DuckDBDataBackend",
    "MySQLDataBackend",
    "PolarsDataBackend",
    "PostgresDataBackend",
    "SQLDataBackend",
    "SQLiteDataBackend",
]

Encoder = Callable[[Any], Any]


def _iso_naive_utc(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def _naive_utc(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None)


@attrs.define(kw_only=True, eq=False, slots=False)
class SQLDataBackend(IbisDataBackend):
    """Shared behaviour of the SQL engines reached through a DB-API connection."""

    #: DB-API paramstyle of the driver.
    paramstyle: ClassVar[str] = "qmark"
    float_literals_as_text: ClassVar[bool] = False  # floats are bound as parameters
    #: Column type per portable dtype (SQL text; identifiers are quoted separately).
    ddl_types: ClassVar[Mapping[DType, str]] = {}

    # ------------------------------------------------------------------ connection
    @property
    def _dbapi(self) -> Any:
        return self._conn().con

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        """A cursor inside one transaction (committed on success, rolled back on error)."""
        con = self._dbapi
        cur = con.cursor()
        try:
            cur.execute("BEGIN")
            yield cur
            con.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                con.rollback()
            raise
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    def _query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        cur = self._dbapi.cursor()
        try:
            if params is None:
                cur.execute(sql)
            else:
                cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description is not None else []
        finally:
            cur.close()

    #: SQL listing the base tables of the current database/schema (one column: the name).
    tables_sql: ClassVar[str] = ""

    def _physical_tables(self) -> list[str]:
        return [str(r[0]) for r in self._query(self.tables_sql)]

    def _exists_for_create(self, name: str) -> bool:
        # A clash with a table made outside this package shows up as a failing CREATE; a
        # cached schema may be stale (another process dropped the table), so look again.
        if name not in self._schemas():
            return False
        self._invalidate()
        return name in self._schemas()

    # ------------------------------------------------------------------ types
    def _ddl_type(self, field: Field) -> str:
        return self.ddl_types[field.dtype]

    def _encoder(self, field: Field) -> Encoder | None:
        """Canonical Python value -> driver parameter (None: unchanged)."""
        return None

    def _param(self, field: Field, marker: Any) -> Any:
        """The SQL expression a parameter of ``field`` is written through (e.g. a CAST)."""
        return marker

    def _dialect(self) -> Any:
        return self._conn().dialect

    def _q(self, name: str) -> str:
        quoted = self._quote_cache.get(name)
        if quoted is None:
            quoted = str(_sql.ident(name).sql(self._dialect()))
            if len(self._quote_cache) < 10_000:
                self._quote_cache[name] = quoted
        return quoted

    # ------------------------------------------------------------------ DDL
    def _column_defs(self, schema: Schema) -> str:
        parts = []
        for f in schema.fields:
            null = "" if f.nullable else " NOT NULL"
            parts.append(f"{self._q(f.name)} {self._ddl_type(f)}{null}")
        return ", ".join(parts)

    def _schemas_table_ddl(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self._q(SCHEMAS_TABLE)} "
            f"({self._q('name')} {self.ddl_types[DType.STR]} PRIMARY KEY, "
            f"{self._q('schema')} {self.ddl_types[DType.STR]} NOT NULL)"
        )

    def _render(self, tree: Any) -> str:
        return _sql.render(tree, self._dialect())

    _store_exists: bool | None = attrs.field(default=None, init=False, repr=False)
    _sql_cache: dict[Any, str] = attrs.field(factory=dict, init=False, repr=False)
    _quote_cache: dict[str, str] = attrs.field(factory=dict, init=False, repr=False)

    def _invalidate(self, name: str | None = None) -> None:
        super()._invalidate(name)
        self._store_exists = None
        self._sql_cache.clear()

    def _forget_cached(self, name: str) -> None:
        super()._forget_cached(name)
        for key in [k for k in self._sql_cache if k[0] == name]:
            del self._sql_cache[key]

    def _create_physical(self, name: str, schema: Schema) -> None:
        ddl = f"CREATE TABLE {self._q(name)} ({self._column_defs(schema)})"
        params = _sql.Params()
        row = [params.add(name), params.add(_schema_to_text(schema))]
        store = params.bind(
            self._render(_insert_values(SCHEMAS_TABLE, ["name", "schema"], row)), self.paramstyle
        )
        with self._tx() as cur:
            if not self._store_exists:
                cur.execute(self._schemas_table_ddl())
            cur.execute(ddl)
            cur.execute(store, params.values)
        self._store_exists = True

    def _drop_physical(self, name: str) -> None:
        import sqlglot.expressions as sge

        params = _sql.Params()
        cond = sge.EQ(this=sge_column("name"), expression=params.add(name))
        forget = params.bind(
            self._render(_sql.delete_statement(_sql.table_ref(SCHEMAS_TABLE), cond)),
            self.paramstyle,
        )
        has_store = self._store_exists
        if has_store is None:
            has_store = SCHEMAS_TABLE in self._physical_tables()
        with self._tx() as cur:
            cur.execute(f"DROP TABLE {self._q(name)}")
            if has_store:
                cur.execute(forget, params.values)

    def _drop_schema_store(self) -> None:
        if SCHEMAS_TABLE in self._physical_tables():
            with self._tx() as cur:
                cur.execute(f"DROP TABLE {self._q(SCHEMAS_TABLE)}")

    def _load_schemas(self) -> dict[str, Schema]:
        import sqlglot.expressions as sge

        exists = SCHEMAS_TABLE in self._physical_tables()
        if not exists:
            return {}
        stmt = sge.select(sge_column("name"), sge_column("schema")).from_(
            _sql.table_ref(SCHEMAS_TABLE)
        )
        rows = self._query(self._render(stmt))
        self._store_exists = True
        return {str(n): _schema_from_text(str(s)) for n, s in rows}

    # ------------------------------------------------------------------ reads
    def _table_expr(self, name: str, schema: Schema) -> ir.Table:
        cached = self._table_cache.get(name)
        if cached is None:
            import ibis.expr.operations as ops

            cached = ops.DatabaseTable(
                name,
                schema=self._ibis_schema(schema),
                source=self._conn(),
                namespace=ops.Namespace(catalog=None, database=None),
            ).to_expr()
            self._table_cache[name] = cached
        return cached

    def _compile(self, expr: Any) -> str:
        return _sql.compile_select(self._conn(), expr)

    def _fetch(self, expr: ir.Table, fields: Sequence[Field]) -> list[dict[str, Any]]:
        return self._tuple_rows(self._query(self._compile(expr)), fields)

    def _count(self, expr: ir.Table) -> int:
        rows = self._query(self._compile(expr.count()))
        return int(rows[0][0])

    def _condition(
        self,
        table: str,
        schema: Schema,
        where: Filter | None,
        params: _sql.Params,
        *,
        exact: bool = False,
    ) -> Any:
        """The sqlglot condition of a validated filter, compiled by ibis (None: every row).

        Float operands become driver parameters in ``params`` (see
        :func:`pinnacle_ibis._sql.parametrize_floats`). With ``exact`` the condition is never
        NULL (for use as a value); otherwise it is only fit for a WHERE.
        """
        from pinnacle_ibis.filters import to_ibis

        t = self._table_expr(table, schema)
        predicate = to_ibis(where, t, schema, literal=self._literal, validate=False, exact=exact)
        if predicate is None:
            return None
        cond = _sql.where_condition(self._conn(), t, predicate)
        return _sql.parametrize_floats(cond, params)

    def _select_expr(self, field: Field) -> Any:
        """The select-list expression of a column (e.g. JSON cast to text)."""
        return sge_column(field.name)

    def _select(self, table: str, schema: Schema, query: SelectQuery) -> list[dict[str, Any]]:
        import sqlglot.expressions as sge

        fields = [schema[n] for n in query.columns]
        plain = not query.where
        key = (
            (table, tuple(query.columns))
            if plain and not query.order and query.limit is None
            else None
        )
        sql = self._sql_cache.get(key) if key is not None else None
        params = _sql.Params()
        if sql is None:
            stmt = sge.select(*[self._select_expr(f) for f in fields]).from_(_sql.table_ref(table))
            cond = None if plain else self._condition(table, schema, query.where, params)
            if cond is not None:
                stmt = stmt.where(cond)
            if query.order:
                stmt = stmt.order_by(
                    *[
                        sge.Ordered(this=sge_column(c), desc=desc, nulls_first=not desc)
                        for c, desc in query.order
                    ]
                )
            if query.limit is not None:
                stmt = stmt.limit(query.limit)
            sql = self._render(stmt)
            if params.values:
                sql = params.bind(sql, self.paramstyle)
            elif key is not None:
                self._sql_cache[key] = sql
        return self._run_select(sql, fields, params.values or None)

    def _run_select(
        self, sql: str, fields: Sequence[Field], params: Sequence[Any] | None = None
    ) -> list[dict[str, Any]]:
        return self._tuple_rows(self._query(sql, params), fields)

    def _count_sql(
        self, table: str, schema: Schema, where: Filter | None, params: _sql.Params
    ) -> Any:
        """``SELECT COUNT(*) FROM table [WHERE ...]`` as a sqlglot tree."""
        import sqlglot.expressions as sge

        stmt = sge.select(sge.Count(this=sge.Star())).from_(_sql.table_ref(table))
        cond = None if not where else self._condition(table, schema, where, params)
        return stmt if cond is None else stmt.where(cond)

    def _count_where(self, table: str, schema: Schema, where: Filter | None) -> int:
        key = (table, None) if not where else None
        sql = self._sql_cache.get(key) if key is not None else None
        params = _sql.Params()
        if sql is None:
            sql = self._render(self._count_sql(table, schema, where, params))
            if params.values:
                sql = params.bind(sql, self.paramstyle)
            elif key is not None:
                self._sql_cache[key] = sql
        rows = self._query(sql, params.values or None)
        return int(rows[0][0])

    # ------------------------------------------------------------------ writes
    def _row_tuples(self, schema: Schema, data: pa.Table) -> list[tuple[Any, ...]]:
        columns = []
        for i, f in enumerate(schema.fields):
            values = data.column(i).to_pylist()
            enc = self._encoder(f)
            if enc is not None:
                values = [None if v is None else enc(v) for v in values]
            columns.append(values)
        return list(zip(*columns, strict=True))

    def _insert_sql(self, name: str, schema: Schema) -> str:
        params = _sql.Params()
        row = [self._param(f, params.add(None)) for f in schema.fields]
        stmt = _insert_values(name, list(schema.names), row)
        return params.bind(self._render(stmt), self.paramstyle)

    def _write(self, name: str, schema: Schema, data: pa.Table) -> None:
        rows = self._row_tuples(schema, data)
        sql = self._insert_sql(name, schema)
        with self._tx() as cur:
            cur.executemany(sql, rows)

    def _set_clause(
        self, schema: Schema, values: Mapping[str, Any]
    ) -> tuple[list[tuple[str, Any]], _sql.Params]:
        params = _sql.Params()
        assignments = []
        for col, value in values.items():
            field = schema[col]
            stored = _storage(field, value)
            enc = self._encoder(field)
            if enc is not None and stored is not None:
                stored = enc(stored)
            assignments.append((col, self._param(field, params.add(stored))))
        return assignments, params

    def _update(
        self, name: str, schema: Schema, where: Filter | None, values: Mapping[str, Any]
    ) -> int:
        assignments, params = self._set_clause(schema, values)
        cond = self._condition(name, schema, where, params)
        stmt = _sql.update_statement(_sql.table_ref(name), assignments, cond)
        sql = params.bind(self._render(stmt), self.paramstyle)
        with self._tx() as cur:
            return self._execute_dml(cur, sql, params.values)

    def _delete(self, name: str, schema: Schema, where: Filter | None) -> int:
        params = _sql.Params()
        cond = self._condition(name, schema, where, params)
        stmt = _sql.delete_statement(_sql.table_ref(name), cond)
        sql = params.bind(self._render(stmt), self.paramstyle)
        with self._tx() as cur:
            return self._execute_dml(cur, sql, params.values)

    def _execute_dml(self, cur: Any, sql: str, params: list[Any]) -> int:
        """Run UPDATE/DELETE and return how many rows matched."""
        cur.execute(sql, params)
        return int(cur.rowcount)

    # ------------------------------------------------------------------ raw SQL
    def _raw_sql(self, sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        with self._tx() as cur:
            if params is None:
                cur.execute(sql)
            else:
                cur.execute(sql, list(params))
            return [tuple(r) for r in cur.fetchall()] if cur.description is not None else []

    def _execute(self, query: Any) -> Any:
        return self._conn().to_pyarrow(query)


def _insert_values(table: str, columns: Sequence[str], row: Sequence[Any]) -> Any:
    """``INSERT INTO table (columns) VALUES (row)`` as a sqlglot tree."""
    import sqlglot.expressions as sge

    return sge.Insert(
        this=sge.Schema(this=_sql.table_ref(table), expressions=[_sql.ident(c) for c in columns]),
        expression=sge.Values(expressions=[sge.Tuple(expressions=list(row))]),
    )


def sge_column(name: str) -> Any:
    """An unqualified, quoted column reference."""
    import sqlglot.expressions as sge

    return sge.Column(this=_sql.ident(name))


def _storage(field: Field, value: Any) -> Any:
    if value is not None and field.dtype is DType.JSON:
        return dump_json(value)
    return value


# ====================================================================== DuckDB
@attrs.define(kw_only=True, eq=False, slots=False)
class DuckDBDataBackend(SQLDataBackend):
    """DuckDB (``duckdb://``, ``duckdb://file.db``): Arrow in and out, full CRUD."""

    paramstyle: ClassVar[str] = "qmark"
    ddl_types: ClassVar[Mapping[DType, str]] = {
        DType.INT: "BIGINT",
        DType.FLOAT: "DOUBLE",
        DType.STR: "VARCHAR",
        DType.BOOL: "BOOLEAN",
        DType.BYTES: "BLOB",
        DType.DATETIME: "TIMESTAMPTZ",
        DType.JSON: "JSON",
        DType.VECTOR: "DOUBLE[]",
    }

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        con = self._dbapi
        con.begin()
        try:
            yield con
            con.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                con.rollback()
            raise

    def _query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        table = self._arrow(sql, params)
        return list(zip(*(c.to_pylist() for c in table.columns), strict=True))

    def _arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        con = self._dbapi
        result = con.execute(sql) if params is None else con.execute(sql, list(params))
        fetch = getattr(result, "to_arrow_table", None) or result.fetch_arrow_table
        return fetch()

    tables_sql: ClassVar[str] = (
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = current_schema()"
    )

    def _fetch(self, expr: ir.Table, fields: Sequence[Field]) -> list[dict[str, Any]]:
        return self._arrow_rows(self._arrow(self._compile(expr)), fields)

    def _run_select(
        self, sql: str, fields: Sequence[Field], params: Sequence[Any] | None = None
    ) -> list[dict[str, Any]]:
        return self._arrow_rows(self._arrow(sql, params), fields)

    def _decoder(self, field: Field) -> Any:
        if field.dtype in (DType.INT, DType.STR, DType.BOOL, DType.BYTES, DType.FLOAT):
            return None
        return super()._decoder(field)

    def _encoder(self, field: Field) -> Encoder | None:
        if field.dtype is DType.DATETIME:
            return lambda v: v.astimezone(UTC).isoformat()
        return None

    def _param(self, field: Field, marker: Any) -> Any:
        import sqlglot.expressions as sge

        if field.dtype in (DType.JSON, DType.VECTOR, DType.DATETIME):
            return sge.Cast(
                this=marker, to=sge.DataType.build(self.ddl_types[field.dtype], dialect="duckdb")
            )
        return marker

    def _write(self, name: str, schema: Schema, data: pa.Table) -> None:
        import secrets

        import sqlglot.expressions as sge

        con = self._dbapi
        view = f"__pinnacle_insert_{secrets.token_hex(8)}"
        exprs = [
            sge.Cast(this=sge_column(f.name), to=sge.DataType.build("JSON", dialect="duckdb"))
            if f.dtype is DType.JSON
            else sge_column(f.name)
            for f in schema.fields
        ]
        select = sge.select(*exprs).from_(_sql.table_ref(view))
        stmt = sge.Insert(
            this=sge.Schema(
                this=_sql.table_ref(name), expressions=[_sql.ident(f.name) for f in schema.fields]
            ),
            expression=select,
        )
        con.register(view, data)
        try:
            with self._tx() as cur:
                cur.execute(self._render(stmt))
        finally:
            con.unregister(view)

    def _execute_dml(self, cur: Any, sql: str, params: list[Any]) -> int:
        rows = cur.execute(sql, params).fetchall()
        return int(rows[0][0]) if rows else 0

    def _raw_sql(self, sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        con = self._dbapi
        result = con.execute(sql) if params is None else con.execute(sql, list(params))
        if result.description is None:
            return []
        return [tuple(r) for r in result.fetchall()]


# ====================================================================== SQLite
@attrs.define(kw_only=True, eq=False, slots=False)
class SQLiteDataBackend(SQLDataBackend):
    """SQLite (``sqlite://file.db``, ``sqlite://`` in memory): full CRUD.

    Datetimes are ISO text in UTC (``YYYY-MM-DD HH:MM:SS[.ffffff]``, the format ibis compiles
    its timestamp literals to, so text order is time order); JSON and vectors are JSON text.
    """

    paramstyle: ClassVar[str] = "qmark"
    ddl_types: ClassVar[Mapping[DType, str]] = {
        DType.INT: "BIGINT",
        DType.FLOAT: "DOUBLE",
        DType.STR: "TEXT",
        DType.BOOL: "BOOLEAN",
        DType.BYTES: "BLOB",
        DType.DATETIME: "TIMESTAMP",
        DType.JSON: "TEXT",
        DType.VECTOR: "TEXT",
    }

    tables_sql: ClassVar[str] = "SELECT name FROM sqlite_master WHERE type = 'table'"

    def _ibis_dtype(self, field: Field) -> dt.DataType:
        import ibis.expr.datatypes as dt

        if field.dtype is DType.DATETIME:
            return dt.Timestamp(nullable=field.nullable)
        if field.dtype in (DType.JSON, DType.VECTOR):
            return dt.String(nullable=field.nullable)
        return super()._ibis_dtype(field)

    def _check_name(self, kind: str, name: str) -> None:
        if kind == "table" and name.lower().startswith("sqlite_"):
            raise SchemaError(f"table name {name!r}: SQLite reserves the prefix 'sqlite_'")

    def _encoder(self, field: Field) -> Encoder | None:
        if field.dtype is DType.DATETIME:
            return _iso_naive_utc
        if field.dtype is DType.VECTOR:
            return dump_json
        if field.dtype is DType.BOOL:
            return int
        return None

    def _decoder(self, field: Field) -> Any:
        if field.dtype in (DType.INT, DType.STR):
            return None
        return super()._decoder(field)


# ====================================================================== PostgreSQL
@attrs.define(kw_only=True, eq=False, slots=False)
class PostgresDataBackend(SQLDataBackend):
    """PostgreSQL (``postgres://`` / ``postgresql://``): full CRUD, ``COPY`` for inserts."""

    paramstyle: ClassVar[str] = "format"
    ddl_types: ClassVar[Mapping[DType, str]] = {
        DType.INT: "BIGINT",
        DType.FLOAT: "DOUBLE PRECISION",
        DType.STR: 'TEXT COLLATE "C"',
        DType.BOOL: "BOOLEAN",
        DType.BYTES: "BYTEA",
        DType.DATETIME: "TIMESTAMPTZ",
        DType.JSON: "JSON",
        DType.VECTOR: "DOUBLE PRECISION[]",
    }

    tables_sql: ClassVar[str] = (
        "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
    )

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        con = self._dbapi
        with con.transaction(), con.cursor() as cur:
            yield cur

    def _select_expr(self, field: Field) -> Any:
        # psycopg would parse JSON itself (a JSON string "x" would come back as x); read text.
        if field.dtype is DType.JSON:
            import sqlglot.expressions as sge

            return sge.Cast(this=sge_column(field.name), to=sge.DataType.build("TEXT"))
        return sge_column(field.name)

    def _check_name(self, kind: str, name: str) -> None:
        if len(name.encode("utf-8")) > 63:
            raise SchemaError(
                f"{kind} name {name!r} is longer than PostgreSQL's 63 bytes (it would be "
                "truncated silently); choose a shorter name"
            )

    def _param(self, field: Field, marker: Any) -> Any:
        import sqlglot.expressions as sge

        if field.dtype in (DType.JSON, DType.VECTOR):
            return sge.Cast(
                this=marker, to=sge.DataType.build(self.ddl_types[field.dtype], dialect="postgres")
            )
        return marker

    def _decoder(self, field: Field) -> Any:
        if field.dtype in (DType.INT, DType.STR, DType.BOOL, DType.FLOAT):
            return None
        return super()._decoder(field)

    def _write(self, name: str, schema: Schema, data: pa.Table) -> None:
        rows = self._row_tuples(schema, data)
        cols = ", ".join(self._q(f.name) for f in schema.fields)
        with self._tx() as cur, cur.copy(f"COPY {self._q(name)} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _raw_sql(self, sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        with self._tx() as cur:
            cur.execute(sql, None if params is None else list(params))
            return [tuple(r) for r in cur.fetchall()] if cur.description is not None else []


# ====================================================================== MySQL / MariaDB
@attrs.define(kw_only=True, eq=False, slots=False)
class MySQLDataBackend(SQLDataBackend):
    """MySQL and MariaDB (``mysql://``, ``mariadb://``), through mysqlclient: full CRUD.

    Strings use a binary, no-pad collation (``utf8mb4_nopad_bin`` on MariaDB,
    ``utf8mb4_0900_bin`` on MySQL 8), so comparisons are case- and trailing-space-sensitive
    and order by code point, as the reference. Vectors are stored as JSON (no array type);
    datetimes as ``DATETIME(6)`` in UTC.
    """

    paramstyle: ClassVar[str] = "format"
    ddl_types: ClassVar[Mapping[DType, str]] = {
        DType.INT: "BIGINT",
        DType.FLOAT: "DOUBLE",
        DType.STR: "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin",
        DType.BOOL: "BOOLEAN",
        DType.BYTES: "LONGBLOB",
        DType.DATETIME: "DATETIME(6)",
        DType.JSON: "JSON",
        DType.VECTOR: "JSON",
    }
    _collation: str = attrs.field(default="utf8mb4_nopad_bin", init=False, repr=False)
    tables_sql: ClassVar[str] = (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
        "AND table_type = 'BASE TABLE'"
    )

    def _after_connect(self, con: Any) -> None:
        cur = con.con.cursor()
        try:
            cur.execute("SELECT VERSION()")
            (version,) = cur.fetchone()
        finally:
            cur.close()
        text = str(version)
        if "mariadb" in text.lower():
            self._collation = "utf8mb4_nopad_bin"
        elif text.split(".", maxsplit=1)[0].isdigit() and int(text.split(".", maxsplit=1)[0]) >= 8:
            self._collation = "utf8mb4_0900_bin"
        else:  # MySQL 5.7: no no-pad binary collation exists
            self._collation = "utf8mb4_bin"

    def _ddl_type(self, field: Field) -> str:
        if field.dtype is DType.STR:
            return f"LONGTEXT CHARACTER SET utf8mb4 COLLATE {self._collation}"
        return self.ddl_types[field.dtype]

    def _schemas_table_ddl(self) -> str:
        text = f"CHARACTER SET utf8mb4 COLLATE {self._collation}"
        return (
            f"CREATE TABLE IF NOT EXISTS {self._q(SCHEMAS_TABLE)} "
            f"({self._q('name')} VARCHAR(255) {text} PRIMARY KEY, "
            f"{self._q('schema')} LONGTEXT {text} NOT NULL)"
        )

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        con = self._dbapi
        cur = con.cursor()
        try:
            cur.execute("START TRANSACTION")
            yield cur
            con.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                con.rollback()
            raise
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    def _check_name(self, kind: str, name: str) -> None:
        if len(name) > 64:
            raise SchemaError(f"{kind} name {name!r} is longer than MySQL's 64 characters")
        if name != name.rstrip(" "):
            raise SchemaError(f"{kind} name {name!r}: MySQL does not allow trailing spaces")
        if any(ord(c) > 0xFFFF for c in name):
            raise SchemaError(f"{kind} name {name!r}: MySQL names must be in the BMP")

    def _ibis_dtype(self, field: Field) -> dt.DataType:
        import ibis.expr.datatypes as dt

        if field.dtype is DType.DATETIME:
            return dt.Timestamp(scale=6, nullable=field.nullable)
        if field.dtype is DType.VECTOR:
            return dt.JSON(nullable=field.nullable)
        return super()._ibis_dtype(field)

    def _encoder(self, field: Field) -> Encoder | None:
        if field.dtype is DType.DATETIME:
            return _naive_utc
        if field.dtype is DType.VECTOR:
            return dump_json
        return None

    def _decoder(self, field: Field) -> Any:
        if field.dtype in (DType.INT, DType.STR):
            return None
        return super()._decoder(field)

    def _update(
        self, name: str, schema: Schema, where: Filter | None, values: Mapping[str, Any]
    ) -> int:
        # MySQL reports *changed* rows for UPDATE; count the matching rows first, with a
        # locking read in the same transaction, so the answer is "how many matched".
        count_params = _sql.Params()
        count = self._count_sql(name, schema, where, count_params).lock(update=True)
        count_sql = count_params.bind(self._render(count), self.paramstyle)
        assignments, params = self._set_clause(schema, values)
        cond = self._condition(name, schema, where, params)
        stmt = _sql.update_statement(_sql.table_ref(name), assignments, cond)
        sql = params.bind(self._render(stmt), self.paramstyle)
        with self._tx() as cur:
            cur.execute(count_sql, count_params.values)
            (matched,) = cur.fetchone()
            cur.execute(sql, params.values)
            return int(matched)

    def _raw_sql(self, sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        with self._tx() as cur:
            cur.execute(sql, None if params is None else list(params))
            return [tuple(r) for r in cur.fetchall()] if cur.description is not None else []


# ====================================================================== Arrow engines
@attrs.define(kw_only=True, eq=False, slots=False)
class _InMemoryArrowBackend(IbisDataBackend):
    """Engines holding Arrow data in process (Polars, DataFusion): no UPDATE/DELETE.

    The portable schemas live in this object (the engine's tables live in its connection).
    """

    supports_update: ClassVar[bool] = False
    supports_delete: ClassVar[bool] = False
    float_literals_as_text: ClassVar[bool] = False  # native literals are exact

    _portable: dict[str, Schema] = attrs.field(factory=dict, init=False, repr=False)

    def _ibis_dtype(self, field: Field) -> dt.DataType:
        import ibis.expr.datatypes as dt

        if field.dtype is DType.JSON:
            return dt.String(nullable=field.nullable)
        return super()._ibis_dtype(field)

    def _load_schemas(self) -> dict[str, Schema]:
        return dict(self._portable)

    def _physical_tables(self) -> list[str]:
        self._conn()
        return [str(n) for n in self._conn().list_tables()]

    def _create_physical(self, name: str, schema: Schema) -> None:
        from pinnacle_ibis._values import empty_table

        self._conn().create_table(name, empty_table(schema))
        self._portable[name] = schema

    def _drop_physical(self, name: str) -> None:
        self._conn().drop_table(name)
        self._portable.pop(name, None)

    def _drop_schema_store(self) -> None:
        self._portable.clear()

    def _decoder(self, field: Field) -> Any:
        if field.dtype in (DType.INT, DType.STR, DType.BOOL, DType.BYTES, DType.FLOAT):
            return None
        return super()._decoder(field)

    def _fetch(self, expr: ir.Table, fields: Sequence[Field]) -> list[dict[str, Any]]:
        return self._arrow_rows(expr.to_pyarrow(), fields)

    def _count(self, expr: ir.Table) -> int:
        return int(expr.count().to_pyarrow().as_py())

    def _execute(self, query: Any) -> Any:
        return query.to_pyarrow()

    def _update(
        self, name: str, schema: Schema, where: Filter | None, values: Mapping[str, Any]
    ) -> int:  # pragma: no cover - guarded by supports_update
        raise UnsupportedOperation(f"{self._uri}: this engine cannot update rows")

    def _delete(self, name: str, schema: Schema, where: Filter | None) -> int:  # pragma: no cover
        raise UnsupportedOperation(f"{self._uri}: this engine cannot delete rows")


@attrs.define(kw_only=True, eq=False, slots=False)
class PolarsDataBackend(_InMemoryArrowBackend):
    """Polars (``polars://``): in-process tables; insert, select and count, no UPDATE/DELETE.

    ibis's Polars backend has no ``insert``; an insert replaces the table with the old rows
    followed by the new ones.
    """

    def _write(self, name: str, schema: Schema, data: pa.Table) -> None:
        import pyarrow as pa

        con = self._conn()
        current = con.table(name).to_pyarrow().cast(data.schema)
        con.create_table(name, pa.concat_tables([current, data]), overwrite=True)
        self._table_cache.pop(name, None)

    def _raw_sql(self, sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        if params is not None:
            raise UnsupportedOperation(f"{self._uri}: Polars SQL takes no parameters")
        frame = self._conn().sql(sql).to_pyarrow()
        return [tuple(r.values()) for r in frame.to_pylist()]


@attrs.define(kw_only=True, eq=False, slots=False)
class DataFusionDataBackend(_InMemoryArrowBackend):
    """DataFusion (``datafusion://``): in-process tables; insert, select and count.

    DataFusion 51's in-memory tables reject DELETE and UPDATE ("Unsupported logical plan"),
    so ``supports_update`` and ``supports_delete`` are False.
    """

    def _physical_tables(self) -> list[str]:
        # ibis's list_tables plans SQL over information_schema (~10 ms); the catalog API is
        # instant and, unlike it, does not show ibis's registered memtables.
        ctx = self._conn().con
        try:
            return sorted(str(n) for n in ctx.catalog().schema().names())
        except Exception:  # another catalog layout: ask ibis
            return super()._physical_tables()

    def _write(self, name: str, schema: Schema, data: pa.Table) -> None:
        self._conn().insert(name, _positive_zeros(schema, data))

    def _select(self, table: str, schema: Schema, query: SelectQuery) -> list[dict[str, Any]]:
        if query.limit is None:
            return super()._select(table, schema, query)
        # DataFusion 51 drops a LIMIT that sits under a projection naming a column with an
        # apostrophe (``SELECT "it's" FROM t LIMIT 1`` returns every row): limit the whole
        # rows, project in Arrow.
        import ibis

        t = self._table_expr(table, schema)
        expr = self._filtered(table, schema, query.where)
        if query.order:
            expr = expr.order_by(
                [
                    ibis.desc(t[c], nulls_first=False) if desc else ibis.asc(t[c], nulls_first=True)
                    for c, desc in query.order
                ]
            )
        result = expr.limit(query.limit).to_pyarrow().select(query.columns)
        return self._arrow_rows(result, [schema[n] for n in query.columns])

    def _literal(self, field: Field, column: ir.Value, value: Any) -> ir.Value:
        # DataFusion orders -0.0 below 0.0 and finds them unequal; zeros are stored as +0.0
        # (see _positive_zeros), so the operand must be +0.0 too.
        if field.dtype is DType.FLOAT and value == 0:
            value = 0.0
        return super()._literal(field, column, value)


def _positive_zeros(schema: Schema, data: pa.Table) -> pa.Table:
    """``data`` with every -0.0 of a float column replaced by 0.0 (equal in Python)."""
    import pyarrow.compute as pc

    for i, field in enumerate(schema.fields):
        if field.dtype is DType.FLOAT:
            col = data.column(i)
            data = data.set_column(i, data.field(i), pc.add(col, 0.0))
    return data
