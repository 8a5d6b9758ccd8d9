"""Engine families: DuckDB, SQLite, PostgreSQL, MySQL/MariaDB, Polars and DataFusion.

The four SQL engines share :class:`SQLDataBackend`: tables are created with explicit column
types (so strings compare by code point: ``COLLATE "C"`` on PostgreSQL, a binary no-pad
collation on MySQL/MariaDB), SELECT/COUNT/UPDATE/DELETE are sqlglot statements run on the
engine's DB-API connection with every filter operand and SET value a driver parameter, rendered
once per filter shape and cached (:mod:`pinnacle_ibis._bound`; very long ``$in`` lists go
through ibis's compiler instead), and inserts use the engine's bulk path (DuckDB: Arrow,
PostgreSQL: ``COPY``, the others: ``executemany``) inside a transaction.

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
import functools
import re
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any, ClassVar, Final, NoReturn

import attrs

from pinnacle_ibis import _sql
from pinnacle_ibis._bound import PARAM, BoundLeaves, StatementCache, finish
from pinnacle_ibis._values import arrow_type, canonical_table, dump_json
from pinnacle_ibis.backend import (
    IbisDataBackend,
    PythonColumns,
    SelectQuery,
    _as_bool,
    _as_bytes,
    _as_float,
)
from pinnacle_protocols.arrow import (
    arrow_python_columns,
    as_arrow,
    coerce_columns,
    python_values,
)
from pinnacle_protocols.errors import (
    BackendUnavailable,
    PinnacleError,
    SchemaError,
    UnsupportedOperation,
)
from pinnacle_protocols.filters import Filter, compile_filter, validate_filter
from pinnacle_protocols.point import SLOW, PointPlan, RowShape, operand_check, point_key
from pinnacle_protocols.protocols import ArrowTableLike, OrderBy, Rows
from pinnacle_protocols.records import DType, Field, Schema, index_name
from pinnacle_protocols.tables import SCHEMAS_TABLE, schema_from_text, schema_to_text
from pinnacle_protocols.uri import RedactedURI

#: Decoders that are ``None if v is None else builtin(v)``: a point plan calls the builtin.
_BUILTIN_DECODERS: dict[Any, Callable[[Any], Any]] = {
    _as_float: float,
    _as_bool: bool,
    _as_bytes: bytes,
}

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
    #: Whether ``_write`` hands the driver Python tuples (``_row_tuples``), so a list of dicts
    #: is validated into Python columns rather than an Arrow table.
    writes_python_rows: ClassVar[bool] = True
    float_literals_as_text: ClassVar[bool] = False  # floats are bound as parameters
    #: Column type per portable dtype (SQL text; identifiers are quoted separately).
    ddl_types: ClassVar[Mapping[DType, str]] = {}

    # ------------------------------------------------------------------ connection
    @property
    def _dbapi(self) -> Any:
        return self._conn().con

    #: The statement that opens a transaction on a DB-API cursor (see :meth:`_tx`).
    begin_sql: ClassVar[str] = "BEGIN"

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        """A cursor inside one transaction (committed on success, rolled back on error),
        opened by :attr:`begin_sql`. DuckDB and PostgreSQL override it with their drivers' own
        transaction API."""
        con = self._dbapi
        cur = con.cursor()
        try:
            cur.execute(self.begin_sql)
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
    #: Statements by shape (see :mod:`pinnacle_ibis._bound`), dropped with the schema cache.
    _statements: StatementCache = attrs.field(factory=StatementCache, init=False, repr=False)
    _quote_cache: dict[str, str] = attrs.field(factory=dict, init=False, repr=False)
    _placeholders: dict[DType, str] = attrs.field(factory=dict, init=False, repr=False)
    #: Filters as bound parameters (False: the ibis-compiled condition, for comparisons).
    _bind_filters: bool = attrs.field(default=True, init=False, repr=False)

    #: More parameters than this in one filter (a long ``$in`` list) and the filter goes the
    #: ibis way, with literals: SQLite takes at most 32,766 parameters, psycopg 65,535.
    max_bound_params: ClassVar[int] = 30_000

    #: Point reads by plan (see :mod:`pinnacle_protocols.point`; False: the generic way, for tests).
    _point_reads: bool = attrs.field(default=True, init=False, repr=False)
    _point_plans: dict[tuple[Any, ...], PointPlan] = attrs.field(
        factory=dict, init=False, repr=False
    )

    def _invalidate(self, name: str | None = None) -> None:
        super()._invalidate(name)
        self._store_exists = None
        self._statements.clear()
        self._point_plans.clear()

    def _forget_cached(self, name: str) -> None:
        super()._forget_cached(name)
        self._statements.forget(name)
        for key in [k for k in self._point_plans if k[0] == name]:
            del self._point_plans[key]

    def _create_physical(self, name: str, schema: Schema) -> None:
        ddl = f"CREATE TABLE {self._q(name)} ({self._column_defs(schema)})"
        params = _sql.Params()
        row = [params.add(name), params.add(schema_to_text(schema))]
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
        return {str(n): schema_from_text(str(s)) for n, s in rows}

    # ------------------------------------------------------------------ indexes
    def _index_column(self, field: Field, unique: bool, table: str) -> str:
        """How ``field`` is named in an index definition (MySQL indexes text by prefix)."""
        del unique, table
        return self._q(field.name)

    def _create_index(
        self, table: str, schema: Schema, columns: list[str], *, unique: bool
    ) -> bool:
        name = index_name(table, columns, unique=unique)
        cols = ", ".join(self._index_column(schema[c], unique, table) for c in columns)
        kind = "UNIQUE INDEX" if unique else "INDEX"
        self._create_index_sql(
            name, f"CREATE {kind} {{}}{self._q(name)} ON {self._q(table)} ({cols})"
        )
        return True

    def _create_index_sql(self, name: str, ddl: str) -> None:
        """Run ``ddl`` (``{}`` is where ``IF NOT EXISTS`` goes) unless the index exists."""
        del name
        with self._tx() as cur:
            cur.execute(ddl.format("IF NOT EXISTS "))

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

    def _counts(self, counts: Sequence[Any]) -> list[int]:
        rows = self._query(self._compile(self._one_row(counts)))
        return [int(v) for v in rows[0]]

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
        sql, params = self._select_sql(table, schema, query)
        return self._run_select(sql, [schema[n] for n in query.columns], params)

    # ------------------------------------------------------------------ point reads
    def select(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
    ) -> list[dict[str, Any]]:
        """See :meth:`IbisDataBackend.select`; ``{col: v}`` and ``{col: {"$in": [...]}}``
        reuse a cached plan (:mod:`pinnacle_protocols.point`), with the same answers."""
        if (
            type(where) is dict
            and len(where) == 1
            and columns is None
            and limit is None
            and order_by is None
            and self._bind_filters
            and self._point_reads
            and type(self)._select is SQLDataBackend._select  # not an engine with its own
        ):
            rows = self._point_select(table, where)
            if rows is not None:
                return rows
        return super().select(table, where, columns=columns, limit=limit, order_by=order_by)

    def _point_select(self, table: str, where: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The rows of a one-column filter by a cached plan; None: it goes the generic way."""
        shape = point_key(table, where, self.max_bound_params)
        if shape is None:
            return None
        key, operand, items = shape
        with self._lock:
            # A warm plan of this shape on the table's current schema: the name and the schema
            # were checked when it was built, so straight to the operand check and the query.
            plan = self._point_plans.get(key) if type(table) is str else None
            cache = self._schema_cache
            if plan is None or cache is None or cache.get(table) is not plan.schema:
                return self._point_select_cold(key, table, where, operand, items)
            try:
                if items is None:  # bind() inlined: one Python call less on the commonest read
                    value = plan.check(operand)
                    if value is SLOW:
                        return None
                    convert = plan.convert
                    return self._point_run(plan, [value if convert is None else convert(value)])
                params = plan.params(items)
                return None if params is None else self._point_run(plan, params)
            except Exception as exc:
                self._reraise("select", table, exc)

    def _point_select_cold(
        self, key: tuple[Any, ...], table: str, where: dict[str, Any], operand: Any, items: Any
    ) -> list[dict[str, Any]] | None:
        """:meth:`_point_select` without a warm plan: look the schema up, build the plan."""
        try:
            schema = self._schema(table)
        except Exception as exc:
            self._reraise("select", None, exc)
        try:
            plan = self._point_plans.get(key)
            if plan is None or plan.schema is not schema:
                plan = self._point_plan(key, table, schema, where, kind=key[3], items=items)
                if plan is None:
                    return None
            params = plan.bind(operand, items)
            return None if params is None else self._point_run(plan, params)
        except Exception as exc:
            self._reraise("select", table, exc)

    def _point_run(self, plan: PointPlan, params: list[Any]) -> list[dict[str, Any]]:
        """The rows of a point plan's statement (SQLite skips the generic layers)."""
        return self._run_select(plan.sql, plan.shape.fields, params, plan.shape)

    def _reraise(self, op: str, table: str | None, exc: Exception) -> NoReturn:
        """Raise ``exc`` as :meth:`_serialised` (and with ``table``, :meth:`_guard`) would."""
        with self._serialised(op):
            if table is None:
                raise exc
            with self._guard(op, table):
                raise exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _point_plan(
        self,
        key: tuple[Any, ...],
        table: str,
        schema: Schema,
        where: dict[str, Any],
        *,
        kind: type,
        items: Sequence[Any] | None,
    ) -> PointPlan | None:
        """Build (and cache) the plan of ``where``'s shape from the generic path, or None."""
        column = key[1]
        if not isinstance(column, str):
            return None
        if column.startswith("$") or column not in schema:
            return None  # the generic way says what is wrong
        field = schema[column]
        check = operand_check(field.dtype, kind)
        if check is None:
            return None
        operands = list(where.values()) if items is None else list(items)
        checked = [check(v) for v in operands]
        if any(v is SLOW for v in checked):
            return None  # a special operand: its statement is not the shape's
        validate_filter(where, schema)
        query = SelectQuery(where=where, columns=list(schema.names), order=[], limit=None)
        sql, params = self._select_sql(table, schema, query)
        convert: Callable[[Any], Any] | None = None
        if type(self)._bound_value is not SQLDataBackend._bound_value or not (
            field.dtype in (DType.INT, DType.FLOAT)
            or (field.dtype is DType.STR and self._encoder(field) is None)
        ):
            convert = functools.partial(self._bound_value, field)
        expected = [v if convert is None else convert(v) for v in checked]
        if params is None or len(params) != len(expected):
            return None
        for got, want in zip(params, expected, strict=True):
            if type(got) is not type(want) or got != want:
                return None  # pragma: no cover - the generic path bound something else
        fields = [schema[n] for n in query.columns]
        plan = PointPlan(schema, sql, check, convert, RowShape.of(fields, self._plan_decoder))
        if len(self._point_plans) >= 1024:
            self._point_plans.clear()
        self._point_plans[key] = plan
        return plan

    def _plan_decoder(self, field: Field) -> Any:
        """:meth:`_decoder`, with the builtin in place of a wrapper that only adds the None
        check (the plan's rows skip None themselves): one Python call less per value."""
        dec = self._decoder(field)
        return _BUILTIN_DECODERS.get(dec, dec) if dec is not None else None

    def _select_arrow(self, table: str, schema: Schema, query: SelectQuery) -> pa.Table:
        if type(self)._select is not SQLDataBackend._select:  # an engine with its own select
            return super()._select_arrow(table, schema, query)
        sql, params = self._select_sql(table, schema, query)
        return self._run_select_arrow(sql, [schema[n] for n in query.columns], params)

    def _select_sql(
        self, table: str, schema: Schema, query: SelectQuery
    ) -> tuple[str, list[Any] | None]:
        """The SQL text and parameters of a validated select."""

        def build(cond: Any) -> Any:
            return self._select_tree(table, schema, query, cond)

        kind = ("select", tuple(query.columns), tuple(query.order), query.limit)
        found = self._bound_statement(kind, table, schema, query.where, build)
        if found is None:
            return self._ibis_statement(table, schema, query.where, build)
        return found

    def _select_tree(self, table: str, schema: Schema, query: SelectQuery, cond: Any) -> Any:
        """``SELECT columns FROM table [WHERE cond] [ORDER BY ...] [LIMIT n]`` (sqlglot)."""
        import sqlglot.expressions as sge

        fields = [schema[n] for n in query.columns]
        stmt = sge.select(*[self._select_expr(f) for f in fields]).from_(_sql.table_ref(table))
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
        return stmt

    # ------------------------------------------------------------------ bound filters
    #: FALSE as the engine reads it (SQLite: 0, see :class:`pinnacle_ibis._bound.BoundLeaves`).
    sql_false: ClassVar[str] = "FALSE"

    def _placeholder(self, field: Field) -> str:
        """The SQL of one parameter compared with ``field`` (:data:`_bound.PARAM`, maybe cast)."""
        found = self._placeholders.get(field.dtype)
        if found is None:
            import sqlglot.expressions as sge

            found = self._render(self._param(field, sge.Var(this=PARAM)))
            self._placeholders[field.dtype] = found
        return found

    def _bound_value(self, field: Field, value: Any) -> Any:
        """A filter operand (never None) as the parameter the driver compares ``field`` with.

        The value the ibis literal would have held (float columns compare doubles, datetimes
        in UTC), written as the engine stores it (:meth:`_encoder`).
        """
        dtype = field.dtype
        if dtype is DType.FLOAT:
            return float(value)
        if dtype is DType.INT:
            return int(value)
        if dtype is DType.DATETIME:
            value = value.astimezone(UTC)
        enc = self._encoder(field)
        return value if enc is None else enc(value)

    def _bound_where(
        self, schema: Schema, where: Filter | None
    ) -> tuple[str | None, list[Any]] | None:
        """The ``WHERE`` fragment (None: every row) and parameters of a validated filter.

        None when the filter goes the ibis way: :attr:`_bind_filters` is off, or it has more
        than :attr:`max_bound_params` operands.
        """
        if not where:
            return None, []
        if not self._bind_filters:
            return None
        leaves = BoundLeaves(
            schema,
            quote=self._q,
            placeholder=self._placeholder,
            value=self._bound_value,
            false=self.sql_false,
        )
        fragment = compile_filter(where, leaves, schema)
        if len(leaves.values) > self.max_bound_params:
            return None
        return fragment, leaves.values

    def _bound_statement(
        self,
        kind: tuple[Hashable, ...],
        table: str,
        schema: Schema,
        where: Filter | None,
        build: Callable[[Any], Any],
    ) -> tuple[str, list[Any]] | None:
        """``build(condition)`` rendered once per filter shape, and this filter's parameters.

        ``kind`` names the statement apart from its filter (and must hold everything ``build``
        depends on besides ``table``). None when the filter goes the ibis way.
        """
        bound = self._bound_where(schema, where)
        if bound is None:
            return None
        fragment, values = bound

        def render() -> str:
            import sqlglot.expressions as sge

            cond = None if fragment is None else sge.Var(this=fragment)
            return finish(self._render(build(cond)), self.paramstyle)

        return self._statements.get((table, *kind, fragment), render), values

    def _ibis_statement(
        self,
        table: str,
        schema: Schema,
        where: Filter | None,
        build: Callable[[Any], Any],
        params: _sql.Params | None = None,
    ) -> tuple[str, list[Any] | None]:
        """``build(condition)`` with the filter compiled by ibis (floats bound in ``params``)."""
        params = params if params is not None else _sql.Params()
        sql = self._render(build(self._condition(table, schema, where, params)))
        if params.values:
            return params.bind(sql, self.paramstyle), params.values
        return sql, None

    def _run_select(
        self,
        sql: str,
        fields: Sequence[Field],
        params: Sequence[Any] | None = None,
        shape: RowShape | None = None,
    ) -> list[dict[str, Any]]:
        """Run a select; rows built by ``shape`` (a point plan's) when given."""
        rows = self._query(sql, params)
        return self._tuple_rows(rows, fields) if shape is None else shape.rows(rows)

    def _run_select_arrow(
        self, sql: str, fields: Sequence[Field], params: Sequence[Any] | None = None
    ) -> pa.Table:
        """Driver tuples to canonical Arrow column by column (no dict per row)."""
        import pyarrow as pa

        rows = self._query(sql, params)
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in fields]
        arrays = []
        for f, values in zip(fields, columns, strict=True):
            dec = self._decoder(f)
            cells: list[Any] = list(values)
            if dec is not None:
                cells = [None if v is None else dec(v) for v in cells]
            if f.dtype is DType.JSON:
                cells = [None if v is None else dump_json(v) for v in cells]
            arrays.append(pa.array(cells, type=arrow_type(f)))
        return pa.Table.from_arrays(arrays, names=[f.name for f in fields])

    def _count_tree(self, table: str, cond: Any) -> Any:
        """``SELECT COUNT(*) FROM table [WHERE cond]`` as a sqlglot tree."""
        import sqlglot.expressions as sge

        stmt = sge.select(sge.Count(this=sge.Star())).from_(_sql.table_ref(table))
        return stmt if cond is None else stmt.where(cond)

    def _count_statement(
        self, table: str, schema: Schema, where: Filter | None, *, lock: bool = False
    ) -> tuple[str, list[Any] | None]:
        """The SQL text and parameters of a count (``lock``: a locking read, MySQL)."""

        def build(cond: Any) -> Any:
            tree = self._count_tree(table, cond)
            return tree.lock(update=True) if lock else tree

        found = self._bound_statement(("count", lock), table, schema, where, build)
        return found if found is not None else self._ibis_statement(table, schema, where, build)

    def _count_where(self, table: str, schema: Schema, where: Filter | None) -> int:
        sql, params = self._count_statement(table, schema, where)
        rows = self._query(sql, params)
        return int(rows[0][0])

    # ------------------------------------------------------------------ writes
    def _validated(self, schema: Schema, rows: Any, table: str) -> Any:
        """For an engine that writes Python tuples: Python columns, checked per column on Arrow
        (no round trip through a canonical Arrow table).

        Dicts go through :func:`coerce_columns`. Arrow data (converted once, for a DataFrame)
        goes through :func:`arrow_python_columns`; when its checks do not prove the data valid,
        :func:`canonical_table` runs as for the other engines, so errors stay its own."""
        if not self.writes_python_rows:
            return super()._validated(schema, rows, table)
        arrow = as_arrow(rows)
        if arrow is None:
            return PythonColumns(coerce_columns(schema, rows, table, json_text=True))
        found = arrow_python_columns(schema, arrow, table, json_text=True)
        if found is None:
            return super()._validated(schema, arrow, table)
        return PythonColumns(found)

    def _row_columns(self, schema: Schema, data: Any) -> list[list[Any]]:
        """The driver parameters of validated rows, column by column (encoders applied)."""
        columns = []
        for i, f in enumerate(schema.fields):
            if isinstance(data, PythonColumns):
                values = data.columns[i]
            else:
                values = python_values(data.column(i))
            enc = self._encoder(f)
            if enc is not None:
                values = [None if v is None else enc(v) for v in values]
            columns.append(values)
        return columns

    def _row_tuples(self, schema: Schema, data: Any) -> list[tuple[Any, ...]]:
        return list(zip(*self._row_columns(schema, data), strict=True))

    def _insert_sql(self, name: str, schema: Schema) -> str:
        params = _sql.Params()
        row = [self._param(f, params.add(None)) for f in schema.fields]
        stmt = _insert_values(name, list(schema.names), row)
        return params.bind(self._render(stmt), self.paramstyle)

    def _write(self, name: str, schema: Schema, data: pa.Table) -> None:
        columns = self._row_columns(schema, data)
        sql = self._insert_sql(name, schema)
        with self._tx() as cur:
            # the rows' tuples are made as the driver takes them, not held all at once
            cur.executemany(sql, zip(*columns, strict=True))

    def _set_value(self, field: Field, value: Any) -> Any:
        """A coerced SET value as the driver parameter."""
        stored = _storage(field, value)
        enc = self._encoder(field)
        return enc(stored) if enc is not None and stored is not None else stored

    def _update_statement(
        self, name: str, schema: Schema, where: Filter | None, values: Mapping[str, Any]
    ) -> tuple[str, list[Any]]:
        """The UPDATE's SQL text and parameters (the SET values, then the filter's)."""
        set_values = [self._set_value(schema[c], v) for c, v in values.items()]
        bound = self._bound_where(schema, where)
        if bound is None:  # the filter the ibis way: SET and WHERE parameters as markers
            params = _sql.Params()
            assignments = [
                (c, self._param(schema[c], params.add(v)))
                for c, v in zip(values, set_values, strict=True)
            ]
            cond = self._condition(name, schema, where, params)
            stmt = _sql.update_statement(_sql.table_ref(name), assignments, cond)
            return params.bind(self._render(stmt), self.paramstyle), params.values

        def build(cond: Any) -> Any:
            import sqlglot.expressions as sge

            assignments = [(c, self._param(schema[c], sge.Var(this=PARAM))) for c in values]
            return _sql.update_statement(_sql.table_ref(name), assignments, cond)

        found = self._bound_statement(("update", tuple(values)), name, schema, where, build)
        assert found is not None  # the filter was bound above
        sql, where_values = found
        return sql, set_values + where_values

    def _delete_statement(
        self, name: str, schema: Schema, where: Filter | None
    ) -> tuple[str, list[Any]]:
        """The DELETE's SQL text and parameters."""

        def build(cond: Any) -> Any:
            return _sql.delete_statement(_sql.table_ref(name), cond)

        found = self._bound_statement(("delete",), name, schema, where, build)
        if found is not None:
            return found
        params = _sql.Params()  # bound even when empty: the driver reads every "%" then
        sql = self._render(build(self._condition(name, schema, where, params)))
        return params.bind(sql, self.paramstyle), params.values

    def _update(
        self, name: str, schema: Schema, where: Filter | None, values: Mapping[str, Any]
    ) -> int:
        sql, params = self._update_statement(name, schema, where, values)
        with self._tx() as cur:
            return self._execute_dml(cur, sql, params)

    def _delete(self, name: str, schema: Schema, where: Filter | None) -> int:
        sql, params = self._delete_statement(name, schema, where)
        with self._tx() as cur:
            return self._execute_dml(cur, sql, params)

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


def _castable(have: Any, want: Any) -> bool:
    """Whether an engine's Arrow type becomes the canonical one by a lossless cast."""
    import pyarrow as pa

    t = pa.types
    if t.is_timestamp(want):
        return bool(t.is_timestamp(have) and have.tz is not None)
    if t.is_list(want):
        return bool(
            (t.is_list(have) or t.is_large_list(have))
            and (t.is_floating(have.value_type) or t.is_integer(have.value_type))
        )
    if t.is_string(want):
        return bool(t.is_string(have) or t.is_large_string(have))
    if t.is_binary(want):
        return bool(t.is_binary(have) or t.is_large_binary(have))
    return bool(have == want or t.is_null(have))


def _value_bytes(value: Any) -> int:
    """The least number of bytes ``value`` takes in a statement (strings as UTF-8)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    return 8


#: Types whose values :func:`_value_bytes` counts as 8 bytes whatever they hold.
_EIGHT_BYTES: Final = frozenset({int, float, bool, type(None), datetime, date, time})


def _column_bytes_bound(values: Sequence[Any]) -> int | None:
    """At least :func:`_value_bytes` of every value of a column, found at C level; None when
    the column holds a type this does not know (then only the per-row loop can tell)."""
    types = set(map(type, values))
    if types <= _EIGHT_BYTES:
        return 8
    present = filter(None, values)  # None and empty values count 8 and 0 at most
    if types <= {str, type(None)}:  # a code point is at most 4 bytes of UTF-8
        return max(8, 4 * max(map(len, present), default=0))
    if types <= {bytes, bytearray, type(None)}:
        return max(8, max(map(len, present), default=0))
    return None


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


_DUCKDB_LOCK = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")


def _file_hint(uri: RedactedURI) -> str:
    return (
        f"check that the directory of the {uri.scheme} file {uri.path!r} exists and that you "
        "may read and write there"
    )


# ====================================================================== DuckDB
@attrs.define(kw_only=True, eq=False, slots=False)
class DuckDBDataBackend(SQLDataBackend):
    """DuckDB (``duckdb://``, ``duckdb://file.db``): Arrow in and out, full CRUD."""

    paramstyle: ClassVar[str] = "qmark"
    writes_python_rows: ClassVar[bool] = False  # Arrow goes to DuckDB as is
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

    def _create_index(
        self, table: str, schema: Schema, columns: list[str], *, unique: bool
    ) -> bool:
        """DuckDB keeps no secondary indexes here (False): its ART indexes broke crash recovery
        (a file with one, killed during a delete, failed WAL replay with "Failed to delete all
        rows from index" and could not be opened, DuckDB 1.5; tests-integration
        test_fault_kill_listener.py), and its scans prune by min/max zone maps anyway."""
        del table, schema, columns, unique
        return False

    def _connect_hint(self, exc: Exception) -> str:
        return _file_hint(self._uri)

    def _connect_error(self, exc: Exception) -> PinnacleError:
        # "Could not set lock on file "/x.duckdb": Conflicting lock is held in
        # /usr/bin/python3 (PID 1234) by user me": say who holds it, not "check the server"
        found = _DUCKDB_LOCK.search(str(exc))
        if found is None:
            return super()._connect_error(exc)
        program, pid = found.group(1), found.group(2)
        return BackendUnavailable(
            f"{self._uri}: the DuckDB file is locked by another process, PID {pid} ({program}); "
            "DuckDB lets one process open a file for writing: stop that process or close its "
            "connection, then retry"
        )

    # ------------------------------------------------------------------ connection
    # Portable CRUD runs on DuckDB's own connection; the ibis backend (whose import loads
    # ibis and every dialect's compiler: ~0.2 s of CPU per process) is built on that same
    # connection only when an ibis expression is needed (native(), execute(), a filter the
    # bound statements cannot express...). See benchmarks/RESULTS.md, "Fixed costs".

    #: The DuckDB connection opened without ibis (None: not yet, or ibis opened it).
    _raw: Any = attrs.field(default=None, init=False, repr=False)

    @property
    def _dbapi(self) -> Any:
        con = self._con
        if con is not None:
            return con.con
        raw = self._raw
        return raw if raw is not None else self._open_raw()

    def _plain_database(self) -> str | None:
        """The database ``ibis.connect(target, **options)`` would open, when it is a local
        file or ``:memory:`` opened with no option but ``read_only`` (None: ibis opens it).

        Computed as ibis 12's DuckDB backend does (``_from_url``, ``do_connect``).
        """
        from pathlib import Path
        from urllib.parse import urlparse

        if type(self)._connect is not IbisDataBackend._connect or (
            type(self)._after_connect is not IbisDataBackend._after_connect
        ):
            return None  # an engine that connects its own way
        options = self._options
        if self._target is None or any(k != "read_only" for k in options):
            return None
        if not isinstance(options.get("read_only", False), bool):
            return None
        url = urlparse(self._target)
        if url.scheme != "duckdb" or url.query or url.params or url.fragment:
            return None
        netloc = url.netloc
        parts = [p for p in (netloc, url.path[bool(netloc) :]) if p]
        if not parts or parts == [":memory:"]:
            return ":memory:"
        database = str(Path(*parts))
        if database.startswith(("md:", "motherduck:")):
            return None
        return str(Path(database).absolute())

    def _open_raw(self) -> Any:
        """Connect DuckDB without ibis, set up as ibis's ``_post_connect`` does."""
        self._check_open()
        database = self._plain_database()
        if database is None:
            return self._conn().con
        raw = None
        try:
            import duckdb

            raw = duckdb.connect(database, read_only=bool(self._options.get("read_only", False)))
            # what ibis.duckdb's _post_connect sets (its settings["..."] = value)
            raw.execute("SET timezone = 'UTC'")
            raw.execute("SET python_enable_replacements = 'False'")
        except Exception as exc:
            if raw is not None:
                with contextlib.suppress(Exception):
                    raw.close()
            raise self._connect_error(exc) from exc
        self._raw = raw
        self._owns_connection = True
        self._invalidate()  # nothing cached from an earlier connection is trusted
        return raw

    def _conn(self) -> Any:
        raw = self._raw
        if self._con is None and raw is not None:
            self._check_open()
            try:
                import ibis

                self._con = ibis.duckdb.from_connection(raw)
            except Exception as exc:
                raise self._connect_error(exc) from exc
            return self._con
        return super()._conn()

    def _engine(self) -> str:
        return "duckdb"

    def _dialect(self) -> Any:
        if self._con is not None:
            return self._con.dialect
        from sqlglot.dialects.duckdb import DuckDB  # what ibis's DuckDB backend renders with

        return DuckDB

    def _lost(self, op: str, exc: Exception) -> BackendUnavailable:
        raw, self._raw = self._raw, None
        if raw is not None and self._con is None and self._owns_connection:
            with contextlib.suppress(Exception):
                raw.close()
        return super()._lost(op, exc)

    def close(self) -> None:
        """Release the connection (a borrowed one is left open); later calls raise."""
        with self._lock:
            raw, self._raw = self._raw, None
            super().close()
            if raw is not None:  # only ever a connection this backend opened
                with contextlib.suppress(Exception):
                    raw.close()

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

    #: A statement whose last result had at most this many rows is fetched as Python tuples
    #: next time: an Arrow result costs ~0.15 ms more than ``fetchall()`` for one row, while
    #: ``fetchall()`` of 100,000 rows is ~2x slower than Arrow (benchmarks/select).
    SMALL_RESULT: ClassVar[int] = 16

    _small: dict[str, bool] = attrs.field(factory=dict, init=False, repr=False)

    def _run_select(
        self,
        sql: str,
        fields: Sequence[Field],
        params: Sequence[Any] | None = None,
        shape: RowShape | None = None,
    ) -> list[dict[str, Any]]:
        # DuckDB's fetchall() needs pytz for TIMESTAMPTZ: datetimes always come as Arrow
        if self._small.get(sql) and not (
            shape.datetimes if shape is not None else any(f.dtype is DType.DATETIME for f in fields)
        ):
            con = self._dbapi
            result = con.execute(sql) if params is None else con.execute(sql, list(params))
            rows = result.fetchall()
            self._remember(sql, len(rows))
            return self._tuple_rows(rows, fields) if shape is None else shape.rows(rows)
        table = self._arrow(sql, params)
        self._remember(sql, table.num_rows)
        return self._arrow_rows(table, fields)

    def _remember(self, sql: str, rows: int) -> None:
        if len(self._small) >= 1024:
            self._small.clear()
        self._small[sql] = rows <= self.SMALL_RESULT

    def _run_select_arrow(
        self, sql: str, fields: Sequence[Field], params: Sequence[Any] | None = None
    ) -> pa.Table:
        """DuckDB's Arrow result, cast to the canonical types (no Python object per row)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        data = self._arrow(sql, params)
        arrays = []
        for i, f in enumerate(fields):
            column = data.column(i)
            want = arrow_type(f)
            if column.type == want:
                arrays.append(column)
            elif f.dtype is not DType.JSON and _castable(column.type, want):
                arrays.append(pc.cast(column, want))
            else:  # JSON read back as another type: through Python, as select does
                cells = [None if v is None else dump_json(v) for v in self._arrow_column(f, column)]
                arrays.append(pa.chunked_array([pa.array(cells, type=want)]))
        return pa.Table.from_arrays(arrays, names=[f.name for f in fields])

    def _arrow_column(self, field: Field, column: Any) -> list[Any]:
        dec = self._decoder(field)
        values: list[Any] = column.to_pylist()
        return values if dec is None else [None if v is None else dec(v) for v in values]

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
        if data.num_rows == 1:
            # One row binds its values to a cached INSERT ... VALUES statement instead of
            # registering an Arrow view: ~1 ms instead of ~4 ms file-backed (DuckDB 1.5), which
            # is most of a single-row insert (a listener's output, an application's one row).
            # Binding grows with the rows (16: ~10 ms) while the Arrow way stays flat, so more
            # rows go that way. One statement is atomic on its own, as below.
            sql = self._statements.get((name, "insert-row"), lambda: self._insert_sql(name, schema))
            con.execute(sql, list(self._row_tuples(schema, data)[0]))
            return
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
            # One statement is atomic on its own; an explicit BEGIN/COMMIT around it made
            # DuckDB's file-backed inserts ~1.3x slower (benchmarks/insert).
            con.execute(self._render(stmt))
        finally:
            con.unregister(view)

    def insert_many(self, writes: Sequence[tuple[str, Rows | ArrowTableLike]]) -> list[int]:
        """Append rows to several tables in one transaction (one commit); see
        :class:`pinnacle_protocols.protocols.SupportsInsertMany` (used by listeners: a row and
        its outputs).

        Raises:
            TableNotFound: a table does not exist (nothing is written).
            SchemaError: a row has an unknown column or a value of the wrong type (nothing is
                written).
        """
        with self._serialised("insert"):
            prepared = []
            for table, rows in writes:
                schema = self._schema(table)
                prepared.append((table, schema, canonical_table(schema, rows, table)))
            con = self._dbapi
            failing: str | None = None
            try:
                con.begin()
                for table, schema, data in prepared:
                    failing = table
                    if data.num_rows:
                        self._write(table, schema, data)
                failing = None
                con.commit()
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    con.rollback()
                if not isinstance(exc, Exception):
                    raise
                with self._guard("insert", failing):  # TableNotFound, chained engine errors
                    raise exc
            return [int(data.num_rows) for _, _, data in prepared]

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

    def _connect_hint(self, exc: Exception) -> str:
        return _file_hint(self._uri)

    def _connect(self) -> Any:
        """ibis's connection, reopened so that any thread may use it.

        ibis opens SQLite with sqlite3's default ``check_same_thread=True``, so a backend made
        in one thread failed in every other one ("SQLite objects created in a thread can only
        be used in that same thread") although it serialises its calls on the connection (the
        README's promise). The database ibis resolved from the URI (its path rules, or
        ``:memory:``) is opened again with ``check_same_thread=False`` and wrapped by ibis's
        ``from_connection``, which sets the connection up as ``connect`` does; the first
        connection is closed before anything was written through it.
        """
        import sqlite3

        con = super()._connect()
        first = con.con
        try:
            path = next(
                (row[2] for row in first.execute("PRAGMA database_list") if row[1] == "main"), ""
            )
        finally:
            first.close()
        raw = sqlite3.connect(path or ":memory:", check_same_thread=False)
        try:
            return type(con).from_connection(raw, type_map=self._options.get("type_map"))
        except BaseException:
            raw.close()
            raise

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
    sql_false: ClassVar[str] = "0"  # a bare FALSE is a column named "false" when one exists

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

    def _point_run(self, plan: PointPlan, params: list[Any]) -> list[dict[str, Any]]:
        # What _run_select -> _query does, without its layers: a point read is ~10 µs of
        # sqlite3, so every Python call counts (benchmarks/select/bench_point_reads.py).
        con = self._con
        if con is None or self._closed:
            con = self._conn()  # raises BackendUnavailable once closed
        return plan.shape.rows(con.con.execute(plan.sql, params).fetchall())


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
        rows = zip(*self._row_columns(schema, data), strict=True)
        cols = ", ".join(self._q(f.name) for f in schema.fields)
        with self._tx() as cur, cur.copy(f"COPY {self._q(name)} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _raw_sql(self, sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        with self._tx() as cur:
            cur.execute(sql, None if params is None else list(params))
            return [tuple(r) for r in cur.fetchall()] if cur.description is not None else []


# ====================================================================== MySQL / MariaDB
#: What MySQL/MariaDB count as trailing space in names (error 1103/1166 otherwise).
_MYSQL_SPACE = " \t\n\x0b\x0c\r"


@attrs.define(kw_only=True, eq=False, slots=False)
class MySQLDataBackend(SQLDataBackend):
    """MySQL and MariaDB (``mysql://``, ``mariadb://``), through mysqlclient: full CRUD.

    Strings use a binary, no-pad collation (``utf8mb4_nopad_bin`` on MariaDB,
    ``utf8mb4_0900_bin`` on MySQL 8), so comparisons are case- and trailing-space-sensitive
    and order by code point, as the reference. Vectors are stored as JSON (no array type);
    datetimes as ``DATETIME(6)`` in UTC.
    """

    paramstyle: ClassVar[str] = "format"
    begin_sql: ClassVar[str] = "START TRANSACTION"
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

    _max_packet: int = attrs.field(default=0, init=False, repr=False)

    def _after_connect(self, con: Any) -> None:
        cur = con.con.cursor()
        try:
            cur.execute("SELECT VERSION(), @@max_allowed_packet")
            version, packet = cur.fetchone()
        finally:
            cur.close()
        self._max_packet = int(packet)
        text = str(version)
        if "mariadb" in text.lower():
            self._collation = "utf8mb4_nopad_bin"
        elif text.split(".", maxsplit=1)[0].isdigit() and int(text.split(".", maxsplit=1)[0]) >= 8:
            self._collation = "utf8mb4_0900_bin"
        else:  # MySQL 5.7: no no-pad binary collation exists
            self._collation = "utf8mb4_bin"

    # ------------------------------------------------------------ indexes
    _PREFIX: ClassVar[int] = 191  # characters; 4 text columns stay under InnoDB's 3072 bytes

    def _index_column(self, field: Field, unique: bool, table: str) -> str:
        if field.dtype not in (DType.STR, DType.BYTES):
            return self._q(field.name)
        if unique:
            raise UnsupportedOperation(
                f"{self._uri}: a unique index on {table!r}.{field.name!r} is not possible: "
                f"MySQL/MariaDB index {field.dtype.value} columns by a prefix only, which "
                "cannot enforce uniqueness of whole values; enforce it in your writes instead"
            )
        return f"{self._q(field.name)}({self._PREFIX})"

    def _create_index_sql(self, name: str, ddl: str) -> None:
        # MySQL has no CREATE INDEX IF NOT EXISTS (MariaDB has): look first, and take error
        # 1061 (duplicate key name) from a concurrent creator as done
        found = self._query(
            "SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE() "
            "AND index_name = %s LIMIT 1",
            [name],
        )
        if found:
            return
        try:
            self._query(ddl.format(""))
        except Exception as exc:
            if getattr(exc, "args", (None,))[0] != 1061:
                raise

    # ------------------------------------------------------------ oversized values
    # A statement larger than the server's max_allowed_packet makes MariaDB answer error 1153
    # and close the session (or, for some payloads, just drop it: "server has gone away"), which
    # reads like an outage. A row whose values alone exceed the limit is refused before it is
    # sent; a 1153 that still happens (escaping can double a value) gets the same clear error.
    def _check_packet(self, table: str, columns: Sequence[str], rows: Sequence[Any]) -> int:
        """Refuse a row whose values alone exceed the limit; return the largest row's bytes."""
        limit = self._max_packet
        largest = 0
        if not limit:
            return largest
        for i, row in enumerate(rows):
            sizes = [_value_bytes(v) for v in row]
            largest = max(largest, sum(sizes))
            if sum(sizes) >= limit:
                col = columns[max(range(len(sizes)), key=sizes.__getitem__)]
                raise self._too_large(table, f"row {i} ({sum(sizes)} bytes, column {col!r})")
        return largest

    def _packet_bound(self, columns: Sequence[Sequence[Any]]) -> int | None:
        """A bound on every row's :func:`_value_bytes`, when it is under half the limit (so
        no row can reach it, even escaped: :meth:`_check_packet` would refuse none and
        :meth:`_packet_errors` would read a dropped session the same way); else None.

        Summed per column at C level (``max(map(len, ...))``) instead of per cell in Python:
        the per-row loop was a quarter of a 100,000-row insert's client time.
        """
        limit = self._max_packet
        if not limit:
            return 0
        bound = 0
        for values in columns:
            found = _column_bytes_bound(values)
            if found is None:
                return None
            bound += found
        return bound if 2 * bound < limit else None

    def _too_large(self, table: str, what: str) -> SchemaError:
        return SchemaError(
            f"{self._uri}: a write to table {table!r} is too large for the server: {what} "
            f"exceeds its max_allowed_packet of {self._max_packet} bytes. Raise it (SET GLOBAL "
            "max_allowed_packet = ..., or max_allowed_packet in the server's config) or keep "
            "large values in the artifact store (a by-reference DataType column)"
        )

    @contextlib.contextmanager
    def _packet_errors(self, table: str, largest: int) -> Iterator[None]:
        """Error 1153, or a session dropped while sending a row that escaping can double past
        the limit, is the oversized-value SchemaError (the connection is reset either way)."""
        try:
            yield
        except Exception as exc:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            dropped = code in (2006, 2013) and 2 * largest >= self._max_packet > 0
            if code == 1153 or dropped:  # ER_NET_PACKET_TOO_LARGE also closes the session
                with contextlib.suppress(Exception):
                    self._lost("write", exc)
                what = "the statement" if code == 1153 else f"a row of {largest} bytes, escaped,"
                raise self._too_large(table, what) from exc
            raise

    def _write(self, name: str, schema: Schema, data: pa.Table) -> None:
        columns = self._row_columns(schema, data)
        rows = list(zip(*columns, strict=True))
        largest = self._packet_bound(columns)
        if largest is None:  # some row may come near the limit: measure row by row
            largest = self._check_packet(name, list(schema.names), rows)
        sql = self._insert_sql(name, schema)
        with self._packet_errors(name, largest), self._tx() as cur:
            cur.executemany(sql, rows)

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

    def _check_name(self, kind: str, name: str) -> None:
        if len(name) > 64:
            raise SchemaError(f"{kind} name {name!r} is longer than MySQL's 64 characters")
        if name != name.rstrip(_MYSQL_SPACE):
            raise SchemaError(
                f"{kind} name {name!r}: MySQL does not allow trailing whitespace "
                "(space, tab, newline, VT, FF, CR); remove it"
            )
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
        count_sql, count_params = self._count_statement(name, schema, where, lock=True)
        sql, params = self._update_statement(name, schema, where, values)
        largest = self._check_packet(name, list(values), [list(values.values())])
        with self._packet_errors(name, largest), self._tx() as cur:
            cur.execute(count_sql, count_params)
            (matched,) = cur.fetchone()
            cur.execute(sql, params)
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

    #: A value of each dtype standing in for NULL in equality-only joins (see below).
    _FILL: ClassVar[Mapping[DType, Any]] = {
        DType.INT: 0,
        DType.FLOAT: 0.0,
        DType.STR: "",
        DType.BOOL: False,
        DType.BYTES: b"",
    }

    def _null_safe_equal(self, a: Any, b: Any, field: Field) -> list[Any]:
        # Polars joins take equality predicates only: NULL-ness and the value with NULL
        # replaced by a constant, both compared by equality, are NULL-safe equality
        fill = self._FILL.get(field.dtype)
        if fill is None:
            return super()._null_safe_equal(a, b, field)
        return [a.isnull() == b.isnull(), a.fill_null(fill) == b.fill_null(fill)]

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

    def _counts(self, counts: Sequence[Any]) -> list[int]:
        row = self._one_row(counts).to_pyarrow()
        return [int(row.column(i)[0].as_py()) for i in range(len(counts))]

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
