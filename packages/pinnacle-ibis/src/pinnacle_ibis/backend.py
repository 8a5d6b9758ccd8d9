"""IbisDataBackend: the portable DataBackend on top of any ibis engine.

``IbisDataBackend.from_uri(uri)`` picks the class for the URI's scheme:

=========================  ==============================================  ===========
scheme                     class                                           update/delete
=========================  ==============================================  ===========
duckdb                     :class:`~pinnacle_ibis.engines.DuckDBDataBackend`     yes
sqlite                     :class:`~pinnacle_ibis.engines.SQLiteDataBackend`     yes
postgres, postgresql       :class:`~pinnacle_ibis.engines.PostgresDataBackend`   yes
mysql, mariadb             :class:`~pinnacle_ibis.engines.MySQLDataBackend`      yes
polars                     :class:`~pinnacle_ibis.engines.PolarsDataBackend`     no
datafusion                 :class:`~pinnacle_ibis.engines.DataFusionDataBackend` no
pyspark                    :class:`~pinnacle_ibis.spark.PySparkDataBackend`      no
pandas                     :class:`~pinnacle_ibis.pandas_dir.PandasDataBackend`  yes
anything else ibis knows   :class:`IbisDataBackend` (generic SQL through ibis)   yes
=========================  ==============================================  ===========

Capability flags are ``ClassVar`` s, so each engine family is a small subclass.

Every class keeps the portable :class:`~pinnacle_protocols.records.Schema` of the tables it
creates (SQL engines in a ``_pinnacle_ibis_schemas`` table of the same database), so JSON and
vector columns come back as JSON and vectors even where the engine stores them as text.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final

import attrs

from pinnacle_ibis import _sql
from pinnacle_ibis._values import (
    canonical_table,
    coerce_value,
    dump_json,
    load_json,
)
from pinnacle_ibis.filters import default_literal, to_ibis
from pinnacle_protocols.arrow import rows_to_arrow
from pinnacle_protocols.errors import (
    BackendUnavailable,
    ConfigError,
    DropRefused,
    FilterError,
    PinnacleError,
    SchemaError,
    TableExists,
    TableNotFound,
    UnknownSchemeError,
    UnsupportedOperation,
)
from pinnacle_protocols.filters import Filter, check_limit, parse_order_by, validate_filter
from pinnacle_protocols.protocols import ArrowTableLike, OrderBy, Rows
from pinnacle_protocols.records import (
    CountQuery,
    DType,
    Field,
    Schema,
    check_index_columns,
    check_match_pairs,
    check_new_table,
)
from pinnacle_protocols.tables import (
    RESERVED_PREFIX,
    SCHEMAS_TABLE,
    schema_from_text,
    schema_to_text,
)
from pinnacle_protocols.uri import RedactedURI, redact, translate_uri

if TYPE_CHECKING:
    import ibis.expr.datatypes as dt
    import ibis.expr.types as ir
    import pyarrow as pa

__all__ = ["RESERVED_PREFIX", "SCHEMAS_TABLE", "IbisDataBackend"]


_MEMTABLE_PREFIXES = ("ibis_pandas_memtable_", "ibis_pyarrow_memtable_", "ibis_polars_memtable_")

Decoder = Callable[[Any], Any]


#: Column types :meth:`IbisDataBackend.scan_sorted` streams as Arrow batches without
#: engine-specific decoding, and the Python type each value is made.
_STREAMABLE: Final = {DType.INT: int, DType.FLOAT: float, DType.STR: str, DType.BOOL: bool}


def _arrow_batches(
    expr: Any, fields: Sequence[Field], batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    casts = [(f.name, _STREAMABLE[f.dtype]) for f in fields]
    for batch in expr.to_pyarrow_batches(chunk_size=batch_size):
        rows = batch.to_pylist()
        for row in rows:
            for name, cast_ in casts:
                value = row[name]
                if value is not None:
                    row[name] = cast_(value)
        if rows:
            yield rows


@attrs.frozen
class _Engine:
    """What pinnacle-ibis knows about a scheme it has its own class for."""

    module: str
    cls: str
    extra: str  # the pinnacle-ibis extra that installs the driver
    metadata: bool = False  # pinnacle-sql keeps the metadata in the same database by default


#: scheme -> its engine class (imported only when the scheme is used), extra and default. The
#: ``pinnacle.databackends`` entry point of each of these schemes names the same class (tested).
#: Not metadata on duckdb: a DuckDB file has one process at a time and this backend already
#: holds it, so DuckDB data keeps its metadata on SQLite next to it (``metadata="duckdb://..."``
#: still works).
_ENGINES: Final[Mapping[str, _Engine]] = {
    "duckdb": _Engine(module="pinnacle_ibis.engines", cls="DuckDBDataBackend", extra="duckdb"),
    "sqlite": _Engine(
        module="pinnacle_ibis.engines", cls="SQLiteDataBackend", extra="sqlite", metadata=True
    ),
    **{
        scheme: _Engine(
            module="pinnacle_ibis.engines",
            cls="PostgresDataBackend",
            extra="postgres",
            metadata=True,
        )
        for scheme in ("postgres", "postgresql")
    },
    **{
        scheme: _Engine(
            module="pinnacle_ibis.engines", cls="MySQLDataBackend", extra="mysql", metadata=True
        )
        for scheme in ("mysql", "mariadb")
    },
    "polars": _Engine(module="pinnacle_ibis.engines", cls="PolarsDataBackend", extra="polars"),
    "datafusion": _Engine(
        module="pinnacle_ibis.engines", cls="DataFusionDataBackend", extra="datafusion"
    ),
    "pyspark": _Engine(module="pinnacle_ibis.spark", cls="PySparkDataBackend", extra="pyspark"),
    "pandas": _Engine(module="pinnacle_ibis.pandas_dir", cls="PandasDataBackend", extra="pandas"),
}


def missing_driver_error(uri: RedactedURI, exc: ImportError) -> ConfigError:
    """ConfigError for a Python driver that is not installed, with the ``pip install`` line."""
    engine = _ENGINES.get(uri.scheme)
    extra = f"pinnacle-ibis[{engine.extra}]" if engine else "ibis-framework[...]"
    line = f"pip install '{extra}'"
    module: str | None = None
    seen: BaseException | None = exc
    while seen is not None and module is None:  # ibis re-raises the driver's ImportError
        module = seen.name if isinstance(seen, ImportError) else None
        seen = seen.__cause__ or seen.__context__
    module = module or str(exc)[:200]
    return ConfigError(f"{uri} needs the Python driver {module!r}, which is not installed: {line}")


def _load_class(scheme: str) -> type[IbisDataBackend]:
    import importlib

    engine = _ENGINES.get(scheme)
    if engine is None:
        return IbisDataBackend
    cls = getattr(importlib.import_module(engine.module), engine.cls)
    assert isinstance(cls, type)
    assert issubclass(cls, IbisDataBackend)
    return cls


def utc(value: Any) -> datetime | None:
    """A datetime read back from an engine as an aware UTC datetime (``datetime.UTC``)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):  # pandas Timestamp and friends
        value = value.to_pydatetime()
    result: datetime = value
    if result.tzinfo is None:
        return result.replace(tzinfo=UTC)
    if result.tzinfo is UTC:
        return result
    return result.astimezone(UTC)


def _vector(value: Any) -> list[float] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        value = load_json(value)
    return [float(v) for v in value]


def _as_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _as_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _as_float(value: Any) -> float | None:
    return None if value is None else float(value)


@attrs.frozen(kw_only=True)
class SelectQuery:
    """A validated select: filter, output columns, order keys ``(column, descending)``, limit."""

    where: Filter | None
    columns: list[str]
    order: list[tuple[str, bool]]
    limit: int | None


@attrs.frozen
class PythonColumns:
    """Validated insert rows as Python columns (``coerce_columns(..., json_text=True)``)."""

    columns: list[list[Any]]

    @property
    def num_rows(self) -> int:
        """How many rows."""
        return len(self.columns[0]) if self.columns else 0


@attrs.define(kw_only=True, eq=False, slots=False)
class IbisDataBackend:
    """A DataBackend on an ibis connection: portable CRUD plus native ibis expressions.

    Build it with :meth:`from_uri` (the ``pinnacle.databackends`` entry point of every scheme)
    or :meth:`from_connection`. It connects on first use and is safe to share between threads
    (calls are serialised on one connection).

    Native access: :meth:`native` returns the ibis table expression, :meth:`execute` runs any
    ibis expression and returns a ``pyarrow.Table`` (or rows with ``rows=True``), and
    :meth:`raw_sql` runs SQL text with driver parameters; nothing else accepts SQL text.

    This class itself is the generic fallback for ibis engines without a dedicated subclass
    (ClickHouse, BigQuery, Snowflake, Trino, MSSQL, Oracle, ...): DDL, inserts and reads go
    through ibis, UPDATE/DELETE through sqlglot with literal values. It is not tested against
    those engines here.
    """

    supports_update: ClassVar[bool] = True
    supports_delete: ClassVar[bool] = True
    supports_transactions: ClassVar[bool] = False
    has_native_ids: ClassVar[bool] = False

    _uri: RedactedURI = attrs.field(alias="uri")
    _target: str | None = attrs.field(default=None, alias="target", repr=False)
    _options: dict[str, Any] = attrs.field(factory=dict, alias="options", repr=False)
    _con: Any = attrs.field(default=None, alias="connection", repr=False)
    _owns_connection: bool = attrs.field(default=True, alias="owns_connection", repr=False)
    _closed: bool = attrs.field(default=False, init=False, repr=False)
    _lock: threading.RLock = attrs.field(factory=threading.RLock, init=False, repr=False)
    _schema_cache: dict[str, Schema] | None = attrs.field(default=None, init=False, repr=False)
    _table_cache: dict[str, Any] = attrs.field(factory=dict, init=False, repr=False)

    # ================================================================== construction
    @classmethod
    def from_uri(cls, uri: str | RedactedURI, **options: Any) -> IbisDataBackend:
        """The backend for ``uri`` (connects lazily).

        The scheme picks the engine class (see the module docstring); ``options`` go to the
        engine's ``ibis.<engine>.connect`` (for example ``read_only=True`` for DuckDB).

        Raises:
            InvalidURIError: ``uri`` does not parse.
        """
        parsed = RedactedURI.parse(uri)
        klass = _load_class(parsed.scheme) if cls is IbisDataBackend else cls
        return klass._from_parsed(parsed, dict(options))

    @classmethod
    def _from_parsed(cls, uri: RedactedURI, options: dict[str, Any]) -> IbisDataBackend:
        return cls(uri=uri, target=translate_uri(uri, "ibis"), options=options)

    @classmethod
    def from_connection(
        cls, connection: Any, *, uri: str | RedactedURI | None = None
    ) -> IbisDataBackend:
        """Wrap an existing ibis backend object (``ibis.duckdb.connect()`` ...).

        The connection stays the caller's: :meth:`close` does not disconnect it.
        """
        name = getattr(connection, "name", None)
        if not isinstance(name, str):
            raise UnknownSchemeError(f"{connection!r} is not an ibis backend connection")
        # ibis's backend names are the schemes
        parsed = RedactedURI.parse(uri if uri is not None else f"{name}://")
        klass = _load_class(name) if cls is IbisDataBackend else cls
        return klass(uri=parsed, connection=connection, owns_connection=False)

    @property
    def uri(self) -> RedactedURI:
        """Where the data lives (password redacted when shown)."""
        return self._uri

    @property
    def connection(self) -> Any:
        """The ibis backend object (connecting on first use)."""
        with self._serialised("connect"):
            return self._conn()

    def _connect(self) -> Any:
        import ibis

        assert self._target is not None
        return ibis.connect(self._target, **self._options)

    def _after_connect(self, con: Any) -> None:
        """Hook: engine-specific checks right after connecting."""

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailable(
                f"{self._uri} is closed; create a new backend with from_uri({str(self._uri)!r})"
            )

    def _conn(self) -> Any:
        self._check_open()
        if self._con is None:
            try:
                con = self._connect()
            except PinnacleError:
                raise
            except Exception as exc:
                raise self._connect_error(exc) from exc
            try:
                self._after_connect(con)
            except BaseException as exc:
                self._disconnect(con)
                if isinstance(exc, Exception) and _is_connection_error(exc):
                    raise BackendUnavailable(
                        f"cannot connect to {self._uri}: {redact(str(exc))[:300]}"
                    ) from exc
                raise
            self._con = con
            self._owns_connection = True
            self._invalidate()  # nothing cached from an earlier connection is trusted
        return self._con

    def _connect_error(self, exc: Exception) -> PinnacleError:
        """The error for a failed connect: a missing Python driver is a ConfigError with the
        ``pip install`` line; anything else BackendUnavailable with a hint
        (:meth:`_connect_hint`)."""
        if isinstance(exc, ImportError):
            return missing_driver_error(self._uri, exc)
        return BackendUnavailable(
            f"cannot connect to {self._uri}: {redact(str(exc))[:300]} ({self._connect_hint(exc)})"
        )

    def _connect_hint(self, exc: Exception) -> str:
        """What to check when connecting failed (engines with files override it)."""
        return "check that the server runs and the URI's host, port, user and database are right"

    def _lost(self, op: str, exc: Exception) -> BackendUnavailable:
        """The error for a call that found the connection broken; forgets the connection.

        A connection this backend made is dropped, so the next call connects again (and
        raises BackendUnavailable while the server is still down). A borrowed connection
        (:meth:`from_connection`) is left to its owner.
        """
        con = self._con
        reconnects = self._owns_connection
        if reconnects:
            self._con = None
            if con is not None:
                self._disconnect(con)
        self._invalidate()
        hint = (
            "the next call reconnects"
            if reconnects
            else "this backend wraps a borrowed connection: reconnect it and wrap the new one"
        )
        return BackendUnavailable(
            f"{self._uri}: {op} failed because the connection to the server was lost "
            f"({redact(str(exc))[:300]}); {hint}"
        )

    @contextlib.contextmanager
    def _serialised(self, op: str) -> Iterator[None]:
        """Serialise a public call; a broken connection becomes BackendUnavailable.

        Other engine errors pass through unchanged (``_guard`` translates them).
        """
        with self._lock:
            try:
                yield
            except PinnacleError:
                raise
            except Exception as exc:
                if self._is_lost(exc):
                    raise self._lost(op, exc) from exc
                raise

    def _is_lost(self, exc: Exception) -> bool:
        """Whether ``exc`` means this backend's server connection is gone."""
        dbapi = getattr(self._con, "con", None)
        closed = getattr(dbapi, "closed", None)
        return _is_connection_error(exc, closed=closed if isinstance(closed, bool) else None)

    # ================================================================== engine hooks
    def _engine(self) -> str:
        """The ibis backend name (``"duckdb"``, ``"postgres"``...), used for sqlglot repairs."""
        return str(getattr(self._conn(), "name", ""))

    def _ibis_dtype(self, field: Field) -> dt.DataType:
        """The ibis type this engine sees for a portable column."""
        import ibis.expr.datatypes as dt

        dtype = field.dtype
        nullable = field.nullable
        if dtype is DType.INT:
            return dt.Int64(nullable=nullable)
        if dtype is DType.FLOAT:
            return dt.Float64(nullable=nullable)
        if dtype is DType.STR:
            return dt.String(nullable=nullable)
        if dtype is DType.BOOL:
            return dt.Boolean(nullable=nullable)
        if dtype is DType.BYTES:
            return dt.Binary(nullable=nullable)
        if dtype is DType.DATETIME:
            return dt.Timestamp(timezone="UTC", scale=6, nullable=nullable)
        if dtype is DType.JSON:
            return dt.JSON(nullable=nullable)
        return dt.Array(value_type=dt.float64, nullable=nullable)

    def _ibis_schema(self, schema: Schema) -> Any:
        import ibis

        return ibis.schema({f.name: self._ibis_dtype(f) for f in schema.fields})

    def _decoder(self, field: Field) -> Decoder | None:
        """How a value read back from the engine becomes portable (None: unchanged)."""
        dtype = field.dtype
        if dtype is DType.DATETIME:
            return utc
        if dtype is DType.JSON:
            return load_json
        if dtype is DType.VECTOR:
            return _vector
        if dtype is DType.BOOL:
            return _as_bool
        if dtype is DType.BYTES:
            return _as_bytes
        if dtype is DType.FLOAT:
            return _as_float
        return None

    #: Build float operands as ``CAST('<repr>' AS DOUBLE)``: for engines whose plain decimal
    #: literals may not be read as the exact double (the generic class, which cannot bind
    #: parameters); subclasses bind floats as parameters or have exact literals.
    float_literals_as_text: ClassVar[bool] = True

    def _literal(self, field: Field, column: ir.Value, value: Any) -> ir.Value:
        if (
            self.float_literals_as_text
            and field.dtype is DType.FLOAT
            and isinstance(value, (int, float))
        ):
            import ibis

            return ibis.literal(repr(float(value))).cast("float64")
        return default_literal(field, column, value)

    def _check_name(self, kind: str, name: str) -> None:
        """Hook: engine limits on table and column names (raise SchemaError)."""

    # ---------------------------------------------------------------- catalog
    def _physical_tables(self) -> list[str]:
        return [str(n) for n in self._conn().list_tables()]

    def _physical_exists(self, name: str) -> bool:
        return name in self._physical_tables()

    def _list_for_create(self) -> list[str]:
        """Every user table, for the case-only collision check of ``create_table``."""
        return [t for t in self._physical_tables() if not t.startswith(RESERVED_PREFIX)]

    def _exists_for_create(self, name: str) -> bool:
        """Whether ``create_table(name)`` must raise TableExists before trying."""
        return name in self._schemas() or self._physical_exists(name)

    def _create_physical(self, name: str, schema: Schema) -> None:
        self._conn().create_table(name, schema=self._ibis_schema(schema))
        self._store_schema(name, schema)

    def _drop_physical(self, name: str) -> None:
        self._conn().drop_table(name)
        self._forget_schema(name)

    # ---------------------------------------------------------------- schema store
    def _load_schemas(self) -> dict[str, Schema]:
        con = self._conn()
        if SCHEMAS_TABLE not in self._physical_tables():
            return {}
        t = con.table(SCHEMAS_TABLE)
        rows = t.select("name", "schema").to_pyarrow().to_pylist()
        return {r["name"]: schema_from_text(r["schema"]) for r in rows}

    def _ensure_schemas_table(self) -> None:
        import ibis

        con = self._conn()
        if SCHEMAS_TABLE not in self._physical_tables():
            con.create_table(
                SCHEMAS_TABLE, schema=ibis.schema({"name": "string", "schema": "string"})
            )

    def _store_schema(self, name: str, schema: Schema) -> None:
        import pyarrow as pa

        self._ensure_schemas_table()
        self._conn().insert(
            SCHEMAS_TABLE, pa.table({"name": [name], "schema": [schema_to_text(schema)]})
        )

    def _forget_schema(self, name: str) -> None:
        con = self._conn()
        if SCHEMAS_TABLE not in self._physical_tables():
            return
        t = con.table(SCHEMAS_TABLE)
        cond = _sql.where_condition(con, t, t["name"] == name)
        stmt = _sql.delete_statement(_sql.table_ref(SCHEMAS_TABLE), cond)
        self._run_statement(_sql.render(stmt, con.dialect))

    def _derive_schema(self, name: str) -> Schema:
        """A portable schema for a table not created through this package (best effort)."""
        ibis_schema = self._conn().table(name).schema()
        fields = []
        for col, typ in ibis_schema.items():
            fields.append(Field(name=col, dtype=_portable_dtype(typ), nullable=typ.nullable))
        return Schema(fields=tuple(fields))

    # ---------------------------------------------------------------- data path
    def _table_expr(self, name: str, schema: Schema) -> ir.Table:
        """The ibis table expression used internally (cached per table)."""
        cached = self._table_cache.get(name)
        if cached is None:
            cached = self._conn().table(name)
            self._table_cache[name] = cached
        return cached

    def _write(self, name: str, schema: Schema, data: pa.Table) -> None:
        """Append a validated canonical table (engine hook; this one uses ``con.insert``)."""
        self._conn().insert(name, data)

    def _fetch(self, expr: ir.Table, fields: Sequence[Field]) -> list[dict[str, Any]]:
        """Run a table expression and return portable rows (decoded)."""
        table = self._conn().to_pyarrow(expr)
        return self._arrow_rows(table, fields)

    def _arrow_rows(self, table: pa.Table, fields: Sequence[Field]) -> list[dict[str, Any]]:
        names = [f.name for f in fields]
        if table.column_names != names:
            table = table.rename_columns(names)
        rows: list[dict[str, Any]] = table.to_pylist()
        for f in fields:
            dec = self._decoder(f)
            if dec is None:
                continue
            name = f.name
            for row in rows:
                value = row[name]
                if value is not None:
                    row[name] = dec(value)
        return rows

    def _tuple_rows(
        self, rows: Sequence[Sequence[Any]], fields: Sequence[Field]
    ) -> list[dict[str, Any]]:
        names = [f.name for f in fields]
        out = [dict(zip(names, row)) for row in rows]  # noqa: B905 - rows match the query
        for f in fields:
            dec = self._decoder(f)
            if dec is None:
                continue
            name = f.name
            for row in out:
                value = row[name]
                if value is not None:
                    row[name] = dec(value)
        return out

    def _count(self, expr: ir.Table) -> int:
        return int(self._conn().to_pyarrow(expr.count()).as_py())

    def _predicate(self, table: str, schema: Schema, where: Filter | None) -> Any:
        """The ibis predicate of an already validated filter (None: every row)."""
        t = self._table_expr(table, schema)
        return to_ibis(where, t, schema, literal=self._literal, validate=False, exact=False)

    def _filtered(self, table: str, schema: Schema, where: Filter | None) -> Any:
        t = self._table_expr(table, schema)
        predicate = self._predicate(table, schema, where)
        return t if predicate is None else t.filter(predicate)

    def _select(self, table: str, schema: Schema, query: SelectQuery) -> list[dict[str, Any]]:
        """Run a validated select (engine hook; this one builds an ibis expression)."""
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
        if query.limit is not None:
            expr = expr.limit(query.limit)
        expr = expr.select(*query.columns)
        return self._fetch(expr, [schema[n] for n in query.columns])

    def _count_where(self, table: str, schema: Schema, where: Filter | None) -> int:
        """How many rows match a validated filter (engine hook)."""
        return self._count(self._filtered(table, schema, where))

    def _update(
        self, name: str, schema: Schema, where: Filter | None, values: Mapping[str, Any]
    ) -> int:
        con = self._conn()
        t = self._table_expr(name, schema)
        predicate = self._predicate(name, schema, where)
        matched = self._count(t if predicate is None else t.filter(predicate))
        assignments = [(col, self._sql_literal(schema[col], v)) for col, v in values.items()]
        cond = _sql.where_condition(con, t, predicate)
        if cond is not None:
            cond = _sql.exponent_floats(cond)
        stmt = _sql.update_statement(_sql.table_ref(name), assignments, cond)
        self._run_statement(_sql.render(stmt, con.dialect))
        return matched

    def _delete(self, name: str, schema: Schema, where: Filter | None) -> int:
        con = self._conn()
        t = self._table_expr(name, schema)
        predicate = self._predicate(name, schema, where)
        matched = self._count(t if predicate is None else t.filter(predicate))
        cond = _sql.where_condition(con, t, predicate)
        if cond is not None:
            cond = _sql.exponent_floats(cond)
        stmt = _sql.delete_statement(_sql.table_ref(name), cond)
        self._run_statement(_sql.render(stmt, con.dialect))
        return matched

    def _sql_literal(self, field: Field, value: Any) -> Any:
        """A sqlglot literal for a SET value (generic engines only; others use parameters)."""
        import ibis

        con = self._conn()
        typ = self._ibis_dtype(field)
        if value is None:
            lit = ibis.null(typ)
        elif field.dtype is DType.JSON:
            lit = ibis.literal(dump_json(value), type="string")
        elif field.dtype is DType.DATETIME and typ.is_timestamp() and typ.timezone is None:
            lit = ibis.literal(value.astimezone(UTC).replace(tzinfo=None), type=typ)
        else:
            lit = ibis.literal(value, type=typ)
        tree = con.compiler.to_sqlglot(lit.name("v"))
        value_tree = _sql.fixup(tree.expressions[0].unalias().copy(), self._engine())
        return _sql.exponent_floats(value_tree)

    def _run_statement(self, sql: str) -> None:
        con = self._conn()
        _result_rows(con.raw_sql(sql), con)

    # ================================================================== helpers
    def _schemas(self) -> dict[str, Schema]:
        if self._schema_cache is None:
            self._schema_cache = self._load_schemas()
        return self._schema_cache

    def _invalidate(self, name: str | None = None) -> None:
        """Forget every cached schema (and the cached expressions of ``name``, or of all)."""
        self._schema_cache = None
        if name is None:
            self._table_cache.clear()
        else:
            self._forget_cached(name)

    def _forget_cached(self, name: str) -> None:
        """Forget cached expressions of one table (its schema changed or it is gone)."""
        self._table_cache.pop(name, None)

    def _schema(self, name: str) -> Schema:
        if not isinstance(name, str) or not name or name.startswith(RESERVED_PREFIX):
            raise TableNotFound(f"no table {name!r} in {self._uri}; create it with create_table()")
        found = self._schemas().get(name)
        if found is None:
            self._invalidate(name)
            found = self._schemas().get(name)
        if found is None:
            if not self._physical_exists(name):
                raise TableNotFound(
                    f"no table {name!r} in {self._uri}; create it with create_table()"
                )
            found = self._derive_schema(name)
            assert self._schema_cache is not None
            self._schema_cache[name] = found
        return found

    @contextlib.contextmanager
    def _guard(self, op: str, name: str | None = None) -> Iterator[None]:
        """Translate engine errors: a vanished table is TableNotFound, the rest is chained."""
        try:
            yield
        except PinnacleError:
            raise
        except Exception as exc:
            if self._is_lost(exc):
                raise self._lost(op, exc) from exc
            self._invalidate(name)
            if name is not None:
                try:
                    exists = name in self._schemas() or self._physical_exists(name)
                except Exception:
                    exists = True
                if not exists:
                    raise TableNotFound(
                        f"no table {name!r} in {self._uri} (it was dropped meanwhile)"
                    ) from exc
            where = f" on table {name!r}" if name is not None else ""
            raise PinnacleError(
                f"{self._uri}: {op}{where} failed: {type(exc).__name__}: {redact(str(exc))[:500]}"
            ) from exc

    # ================================================================== protocol
    def list_tables(self) -> list[str]:
        """User tables, sorted (``_pinnacle*`` tables and ibis temporaries excluded)."""
        with self._serialised("list_tables"), self._guard("list_tables"):
            return sorted(
                n
                for n in self._physical_tables()
                if not n.startswith(RESERVED_PREFIX) and not n.startswith(_MEMTABLE_PREFIXES)
            )

    def create_table(self, name: str, schema: Schema) -> None:
        """Create a table with the portable schema.

        Raises:
            SchemaError: the name is invalid (empty, NUL, the ``_pinnacle`` prefix, too long for
                the engine) or ``schema`` is not a Schema.
            TableExists: a table of that name exists.
        """
        if not isinstance(name, str) or not name or "\x00" in name:
            raise SchemaError(f"table names are non-empty strings without NUL, got {name!r}")
        if name.startswith(RESERVED_PREFIX):
            raise SchemaError(f"table name {name!r}: the prefix {RESERVED_PREFIX!r} is reserved")
        if not isinstance(schema, Schema):
            raise SchemaError(f"expected a Schema, got {type(schema).__name__}")
        self._check_name("table", name)
        for f in schema.fields:
            self._check_name("column", f.name)
        with self._serialised("create_table"), self._guard("create_table"):
            if self._exists_for_create(name):
                raise TableExists(f"table {name!r} already exists in {self._uri}")
            check_new_table(name, schema, self._list_for_create(), self._uri)
            try:
                self._create_physical(name, schema)
            except PinnacleError:
                self._invalidate()
                raise
            except Exception as exc:
                self._invalidate()
                if self._physical_exists(name):
                    raise TableExists(f"table {name!r} already exists in {self._uri}") from exc
                raise
            self._forget_cached(name)
            if self._schema_cache is not None:
                self._schema_cache[name] = schema

    def drop_table(self, name: str) -> None:
        """Drop a table (TableNotFound if absent)."""
        with self._serialised("drop_table"):
            self._schema(name)
            with self._guard("drop_table", name):
                self._drop_physical(name)
            self._forget_cached(name)
            if self._schema_cache is not None:
                self._schema_cache.pop(name, None)

    def table_schema(self, name: str) -> Schema:
        """The portable schema of a table (TableNotFound if absent).

        Tables not created through this package get a schema derived from the engine's types.
        """
        with self._serialised("table_schema"):
            return self._schema(name)

    def insert(self, table: str, rows: Rows | ArrowTableLike) -> int:
        """Append rows (dicts keyed by column or a ``pyarrow.Table``); return the count.

        Every row is validated first, and the write is one transaction where the engine has
        them, so nothing is written when a row is rejected.

        Raises:
            TableNotFound: no such table.
            SchemaError: a row has an unknown column or a value of the wrong type.
        """
        with self._serialised("insert"):
            schema = self._schema(table)
            data = self._validated(schema, rows, table)
            if data.num_rows:
                with self._guard("insert", table):
                    self._write(table, schema, data)
            return int(data.num_rows)

    def _validated(self, schema: Schema, rows: Any, table: str) -> Any:
        """The rows of an insert, validated: the canonical Arrow table (engine hook).

        Engines whose driver takes Python values may return :class:`PythonColumns` instead,
        which only their ``_write`` sees.
        """
        return canonical_table(schema, rows, table)

    def _select_query(
        self,
        table: str,
        *,
        schema: Schema,
        where: Filter | None,
        columns: Sequence[str] | None,
        limit: int | None,
        order_by: OrderBy | None,
    ) -> SelectQuery:
        validate_filter(where, schema)
        if columns is not None:
            if isinstance(columns, str):
                raise SchemaError("columns must be a list of column names, not a string")
            for c in columns:
                if c not in schema:
                    raise SchemaError(f"select from {table!r}: unknown column {c!r}")
        check_limit(limit)
        keys = parse_order_by(order_by, schema, table) if order_by else []
        names = list(dict.fromkeys(columns)) if columns is not None else list(schema.names)
        return SelectQuery(where=where, columns=names, order=keys, limit=limit)

    def select(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
    ) -> list[dict[str, Any]]:
        """Rows matching ``where`` as dicts (NULL as None); unordered unless ``order_by``.

        ``order_by`` puts NULL first when ascending and last when descending, like the
        reference backend.

        Raises:
            TableNotFound: no such table.
            FilterError: the filter or ``limit`` is invalid.
            SchemaError: an unknown column in ``columns`` or ``order_by``.
        """
        with self._serialised("select"):
            schema = self._schema(table)
            query = self._select_query(
                table, schema=schema, where=where, columns=columns, limit=limit, order_by=order_by
            )
            with self._guard("select", table):
                return self._select(table, schema, query)

    def select_arrow(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
    ) -> pa.Table:
        """The rows :meth:`select` returns, as a canonical ``pyarrow.Table``.

        Column types are :func:`pinnacle_protocols.arrow.canonical_arrow_schema`'s (JSON as its
        text). Engines that hand Arrow (DuckDB) build it without a Python object per row.

        Raises:
            TableNotFound, FilterError, SchemaError: as for :meth:`select`.
        """
        with self._serialised("select"):
            schema = self._schema(table)
            query = self._select_query(
                table, schema=schema, where=where, columns=columns, limit=limit, order_by=order_by
            )
            with self._guard("select", table):
                return self._select_arrow(table, schema, query)

    def _select_arrow(self, table: str, schema: Schema, query: SelectQuery) -> pa.Table:
        """Run a validated select into canonical Arrow (engine hook; this one goes via rows)."""
        fields = [schema[n] for n in query.columns]
        return rows_to_arrow(fields, self._select(table, schema, query))

    def _coerce_values(
        self, table: str, schema: Schema, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        if not isinstance(values, Mapping):
            raise SchemaError(f"update {table!r}: values must be a dict")
        where_text = f"update {table!r}"
        coerced = {}
        for name, value in values.items():
            if name not in schema:
                raise SchemaError(
                    f"{where_text}: unknown column {name!r}; the table has {list(schema.names)}"
                )
            coerced[name] = coerce_value(schema[name], value, where_text)
        return coerced

    def update(self, table: str, where: Filter | None, values: Mapping[str, Any]) -> int:
        """Set ``values`` on the rows matching ``where``; return how many matched.

        Raises:
            UnsupportedOperation: the engine cannot update (``supports_update`` is False).
            TableNotFound, SchemaError, FilterError: as for insert and select.
        """
        if not self.supports_update:
            raise UnsupportedOperation(
                f"{self._uri}: the {type(self).__name__} engine cannot update rows in place "
                "(supports_update is False); rewrite the table or use another engine"
            )
        with self._serialised("update"):
            schema = self._schema(table)
            coerced = self._coerce_values(table, schema, values)
            validate_filter(where, schema)
            with self._guard("update", table):
                if not coerced:
                    return self._count_where(table, schema, where)
                return self._update(table, schema, where, coerced)

    def delete(self, table: str, where: Filter | None) -> int:
        """Delete the rows matching ``where`` (``None`` or ``{}``: every row); return how many.

        Raises:
            UnsupportedOperation: the engine cannot delete (``supports_delete`` is False).
        """
        if not self.supports_delete:
            raise UnsupportedOperation(
                f"{self._uri}: the {type(self).__name__} engine cannot delete rows "
                "(supports_delete is False); drop and recreate the table instead"
            )
        with self._serialised("delete"):
            schema = self._schema(table)
            validate_filter(where, schema)
            with self._guard("delete", table):
                return self._delete(table, schema, where)

    def count(self, table: str, where: Filter | None = None) -> int:
        """How many rows match ``where``."""
        with self._serialised("count"):
            schema = self._schema(table)
            validate_filter(where, schema)
            with self._guard("count", table):
                return self._count_where(table, schema, where)

    def anti_join_keys(
        self,
        table: str,
        column: str,
        other: str,
        other_column: str,
        *,
        where: Filter | None = None,
        other_where: Filter | None = None,
        after: Any = None,
        limit: int = 1000,
    ) -> list[Any]:
        """Keys of ``table`` that ``other`` lacks, run by the engine as an ibis anti join.

        See :class:`pinnacle_protocols.protocols.SupportsAntiJoin` (used by listeners).
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise FilterError(f"limit must be an int >= 1, got {limit!r}")
        with self._serialised("anti join"):
            schema = self._schema(table)
            other_schema = self._schema(other)
            for name, sch, col in ((table, schema, column), (other, other_schema, other_column)):
                if col not in sch:
                    raise SchemaError(f"anti join: table {name!r} has no column {col!r}")
            parts: list[Filter] = [{column: {"$ne": None}}]
            if where:
                parts.append(where)
            if after is not None:
                parts.append({column: {"$gt": after}})
            left_where: Filter = {"$and": parts}
            validate_filter(left_where, schema)
            validate_filter(other_where, other_schema)
            with self._guard("anti join", table):
                keys = self._filtered(table, schema, left_where).select(column).distinct()
                right = self._filtered(other, other_schema, other_where)
                right = right.select(_pinnacle_key=right[other_column])
                expr = (
                    keys.anti_join(right, keys[column] == right["_pinnacle_key"])
                    .order_by(column)
                    .limit(limit)
                )
                return [r[column] for r in self._fetch(expr, [schema[column]])]

    def count_unmatched(
        self,
        table: str,
        other: str,
        on: Sequence[tuple[str, str]],
        *,
        where: Filter | None = None,
        other_where: Filter | None = None,
    ) -> int:
        """Rows of ``table`` no row of ``other`` matches, counted by the engine (anti join).

        See :class:`pinnacle_protocols.protocols.SupportsMatchCount` (used by listeners).
        """
        with self._serialised("count unmatched"):
            query = CountQuery(
                table=table, where=where, other=other, on=tuple(on), other_where=other_where
            )
            with self._guard("count unmatched", table):
                return self._count(self._count_query_expr(query))

    def count_many(self, queries: Sequence[CountQuery]) -> list[int]:
        """Several counts as one statement: each count a one-row subquery, cross joined.

        See :class:`pinnacle_protocols.protocols.SupportsMatchCounts` (used by listeners).
        """
        with self._serialised("count many"):
            if not queries:
                return []
            with self._guard("count many", queries[0].table):
                exprs = [self._count_query_expr(q) for q in queries]
                if len(exprs) == 1:
                    return [self._count(exprs[0])]
                return self._counts([e.count() for e in exprs])

    def _count_query_expr(self, query: CountQuery) -> Any:
        """The validated ibis table expression whose row count is ``query``'s count."""
        schema = self._schema(query.table)
        if query.other is None:
            validate_filter(query.where, schema)
            return self._filtered(query.table, schema, query.where)
        other_schema = self._schema(query.other)
        pairs = check_match_pairs(query.on, schema, other_schema)
        key: Filter = {pairs[0][0]: {"$ne": None}}
        left_where: Filter = {"$and": [key, query.where]} if query.where else key
        validate_filter(left_where, schema)
        validate_filter(query.other_where, other_schema)
        left = self._filtered(query.table, schema, left_where)
        right = self._filtered(query.other, other_schema, query.other_where)
        right = right.select(**{f"_pinnacle_k{i}": right[col] for i, (_, col) in enumerate(pairs)})
        # the key by plain equality (a hash join everywhere), the rest NULL-safe
        predicates = [left[pairs[0][0]] == right["_pinnacle_k0"]]
        for i, (col, _) in enumerate(pairs[1:], start=1):
            predicates += self._null_safe_equal(left[col], right[f"_pinnacle_k{i}"], schema[col])
        return left.anti_join(right, predicates)

    @staticmethod
    def _one_row(counts: Sequence[Any]) -> Any:
        """One row of the scalar ``counts`` (columns ``_pinnacle_n0``...), cross joined."""
        tables = [c.name(f"_pinnacle_n{i}").as_table() for i, c in enumerate(counts)]
        row = tables[0]
        for t in tables[1:]:
            row = row.cross_join(t)
        return row

    def _counts(self, counts: Sequence[Any]) -> list[int]:
        """Run scalar count expressions as one statement (engine hook)."""
        row = self._conn().to_pyarrow(self._one_row(counts)).to_pylist()[0]
        return [int(row[f"_pinnacle_n{i}"]) for i in range(len(counts))]

    def _null_safe_equal(self, a: Any, b: Any, field: Field) -> list[Any]:
        """Join predicates: ``a`` and ``b`` are equal or both NULL (``IS NOT DISTINCT FROM``)."""
        del field
        return [a.identical_to(b)]

    def create_index(self, table: str, columns: Sequence[str], *, unique: bool = False) -> bool:
        """Ensure an index on ``columns`` (SQL engines); False where the engine has none.

        See :class:`pinnacle_protocols.protocols.SupportsIndexes` (used by listeners).
        """
        with self._serialised("create index"):
            names = check_index_columns(table, columns, self._schema(table))
            with self._guard("create index", table):
                return self._create_index(table, self._schema(table), names, unique=unique)

    def _create_index(
        self, table: str, schema: Schema, columns: list[str], *, unique: bool
    ) -> bool:
        """Engine hook: create the index if missing; False when the engine keeps none."""
        del table, schema, columns, unique
        return False

    def native(self, table: str) -> Any:
        """The ibis Table expression of ``table`` as the engine reports it (TableNotFound)."""
        with self._serialised("native"):
            self._schema(table)
            with self._guard("native", table):
                return self._native(table)

    def _native(self, table: str) -> Any:
        return self._conn().table(table)

    def scan_sorted(
        self, table: str, *, columns: Sequence[str], batch_size: int = 1000, skip: int = 0
    ) -> Iterator[list[dict[str, Any]]]:
        """The rows of ``table`` (only ``columns``) ordered by every one of ``columns``, as the
        engine's Arrow record batches of ``native(table)`` (``skip`` is an SQL offset).

        See :class:`pinnacle_protocols.protocols.SupportsSortedScan` (used by copy).

        Raises:
            UnsupportedOperation: a column is not ``int``/``float``/``str``/``bool`` (those
                need engine-specific decoding; read them with ``select``).
            TableNotFound: no such table.
            SchemaError: an unknown column in ``columns``.
            FilterError: ``batch_size`` is not an int > 0 or ``skip`` not an int >= 0.
        """
        for name, value, least in (("batch_size", batch_size, 1), ("skip", skip, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise FilterError(f"{name} must be an int >= {least}, got {value!r}")
        if isinstance(columns, str):
            raise SchemaError("columns must be a list of column names, not a string")
        schema = self.table_schema(table)
        names = list(columns)
        for c in names:
            if c not in schema:
                raise SchemaError(f"scan of {table!r}: unknown column {c!r}")
        fields = [schema[c] for c in names]
        others = [f.name for f in fields if f.dtype not in _STREAMABLE]
        if others:
            raise UnsupportedOperation(
                f"{self._uri}: scan_sorted streams int/float/str/bool columns only; columns "
                f"{others} of {table!r} are read with select"
            )
        expr = self.native(table).select(*names).order_by(names)
        if skip:
            # select and order again: an outer query keeps no order of its own, and PySpark's
            # offset adds a column of its own otherwise
            expr = expr.limit(None, offset=skip).select(*names).order_by(names)
        return _arrow_batches(expr, fields, batch_size)

    def execute(self, query: Any, *, rows: bool = False) -> Any:
        """Run an ibis expression on this backend's connection.

        Args:
            query: Any ibis expression (build it from :meth:`native`).
            rows: Return Python values instead of Arrow: a list of dicts for a table, a list
                for a column, a scalar for a scalar.

        Returns:
            A ``pyarrow.Table`` for a table expression, a ``pyarrow.ChunkedArray`` for a
            column, a ``pyarrow.Scalar`` for a scalar (or their Python values with ``rows``).

        Raises:
            FilterError: ``query`` is not an ibis expression (SQL text goes to :meth:`raw_sql`).
        """
        try:
            import ibis.expr.types as ir
        except ImportError as exc:  # pragma: no cover - ibis is a dependency
            raise UnsupportedOperation("ibis is not installed") from exc
        if not isinstance(query, ir.Expr):
            raise FilterError(
                f"execute() runs ibis expressions, got {type(query).__name__}; build one from "
                "native(table), or run SQL text with raw_sql(sql, params)"
            )
        with self._serialised("execute"), self._guard("execute"):
            result = self._execute(query)
        if not rows:
            return result
        if hasattr(result, "to_pylist"):
            return result.to_pylist()
        return result.as_py()

    def _execute(self, query: Any) -> Any:
        return self._conn().to_pyarrow(query)

    def raw_sql(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run SQL text on the engine and return its rows (empty for statements without).

        This is the only entry for SQL text; values belong in ``params`` (the driver's
        paramstyle: ``?`` for DuckDB and SQLite, ``%s`` for PostgreSQL and MySQL), never in
        the text. Engines without driver parameters (the generic fallback, DataFusion,
        PySpark) accept ``params=None`` only.

        Raises:
            UnsupportedOperation: ``params`` given on an engine without driver parameters.
        """
        if not isinstance(sql, str):
            raise FilterError(f"raw_sql takes SQL text, got {type(sql).__name__}")
        with self._serialised("raw_sql"), self._guard("raw_sql"):
            out = self._raw_sql(sql, params)
            self._invalidate()
            return out

    def _raw_sql(self, sql: str, params: Sequence[Any] | None) -> list[tuple[Any, ...]]:
        if params is not None:
            raise UnsupportedOperation(
                f"{self._uri}: this engine takes no SQL parameters; use native() expressions"
            )
        con = self._conn()
        return _result_rows(con.raw_sql(sql), con)

    @classmethod
    def default_metadata_uri_for(cls, uri: RedactedURI) -> RedactedURI | None:
        """``uri`` when pinnacle-sql keeps metadata there by default (sqlite, postgres, mysql),
        else None; decided by the scheme, without building or connecting the backend."""
        engine = _ENGINES.get(uri.scheme)
        if engine is not None and engine.metadata:
            return uri
        return None

    @classmethod
    def default_artifact_uri_for(cls, uri: RedactedURI) -> RedactedURI | None:
        """None: SQL databases hold no artifacts, the facade falls back to the filesystem."""
        return None

    def default_metadata_uri(self) -> RedactedURI | None:
        """This URI when pinnacle-sql keeps metadata there by default (sqlite, postgres, mysql)."""
        return self.default_metadata_uri_for(self._uri)

    def default_artifact_uri(self) -> RedactedURI | None:
        """None: SQL databases hold no artifacts, the facade falls back to the filesystem."""
        return self.default_artifact_uri_for(self._uri)

    def drop(self, *, force: bool = False) -> None:
        """Drop every user table and this package's schema table (DropRefused without force).

        Other ``_pinnacle*`` tables (a metadata store in the same database) are left alone.
        """
        if force is not True:
            raise DropRefused(
                f"refusing to drop every table of {self._uri}; call drop(force=True) to confirm"
            )
        with self._serialised("drop"):
            for name in self.list_tables():
                with self._guard("drop", name):
                    self._drop_physical(name)
                    self._invalidate(name)
            with self._guard("drop"):
                self._drop_schema_store()
            self._invalidate()

    def _drop_schema_store(self) -> None:
        if SCHEMAS_TABLE in self._physical_tables():
            self._conn().drop_table(SCHEMAS_TABLE)

    def close(self) -> None:
        """Release the connection (a borrowed one is left open); later calls raise."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            con, self._con = self._con, None
            self._invalidate()
            if con is not None and self._owns_connection:
                self._disconnect(con)

    def _disconnect(self, con: Any) -> None:
        with contextlib.suppress(Exception):
            con.disconnect()

    def __enter__(self) -> IbisDataBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ====================================================================== module helpers
def _portable_dtype(typ: Any) -> DType:
    if typ.is_integer():
        return DType.INT
    if typ.is_floating() or typ.is_decimal():
        return DType.FLOAT
    if typ.is_boolean():
        return DType.BOOL
    if typ.is_binary():
        return DType.BYTES
    if typ.is_timestamp():
        return DType.DATETIME
    if typ.is_json():
        return DType.JSON
    if typ.is_array() and (typ.value_type.is_floating() or typ.value_type.is_integer()):
        return DType.VECTOR
    if typ.is_string():
        return DType.STR
    return DType.JSON


def _result_rows(result: Any, con: Any) -> list[tuple[Any, ...]]:
    """Rows of whatever an ibis ``raw_sql`` returned (cursor, Spark or DataFusion frame).

    A DB-API cursor is closed afterwards, unless it is the connection itself (DuckDB).
    """
    if result is None:
        return []
    try:
        if hasattr(result, "description"):  # DB-API cursor
            if result.description is None:
                return []
            return [tuple(r) for r in result.fetchall()]
        if hasattr(result, "collect") and hasattr(result, "schema"):
            collected = result.collect()
            if collected and hasattr(collected[0], "to_pylist"):  # DataFusion record batches
                out: list[tuple[Any, ...]] = []
                for batch in collected:
                    out.extend(tuple(r.values()) for r in batch.to_pylist())
                return out
            return [tuple(r) for r in collected]
        return []
    finally:
        close = getattr(result, "close", None)
        if (
            callable(close)
            and hasattr(result, "description")
            and result is not getattr(con, "con", None)
        ):
            with contextlib.suppress(Exception):
                close()


#: MySQL/MariaDB client and server error codes that mean the session is gone: can't connect
#: (2002 socket, 2003 TCP), server gone away (2006), lost during a query (2013, 2055),
#: server shutting down (1053), connection killed (MariaDB 1927), closed for inactivity (4031).
_MYSQL_CONNECTION_CODES = frozenset({1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031})
#: PostgreSQL SQLSTATEs that end the session: admin/crash shutdown, cannot connect now.
_PG_CONNECTION_STATES = frozenset({"57P01", "57P02", "57P03"})


def _is_connection_error(exc: BaseException, *, closed: bool | None = None) -> bool:
    """Whether ``exc`` (or what it was raised from) says the server connection is gone.

    psycopg: SQLSTATE class 08 (connection exception) or 57P01-57P03 (the server terminated
    the session or is shutting down), or an ``OperationalError``/``InterfaceError`` raised by
    the client itself (no SQLSTATE: "the connection is closed", "server closed the connection
    unexpectedly"...) unless ``closed`` is False, i.e. the driver connection is known to be
    alive (client-side errors such as "number of parameters must be between 0 and 65535"); a
    statement timeout (57014) is not one. MySQLdb/PyMySQL: an ``OperationalError`` with one of
    :data:`_MYSQL_CONNECTION_CODES`, or an ``InterfaceError`` (a closed connection used again).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_connection_error_one(current, closed):
            return True
        current = current.__cause__
    return False


def _is_connection_error_one(exc: BaseException, closed: bool | None) -> bool:
    if isinstance(exc, PinnacleError):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    names = {(k.__module__.split(".", 1)[0], k.__name__) for k in type(exc).__mro__}
    if ("psycopg", "OperationalError") in names or ("psycopg", "InterfaceError") in names:
        state = getattr(exc, "sqlstate", None)
        if state is None:
            return closed is not False
        return state.startswith("08") or state in _PG_CONNECTION_STATES
    for driver in ("MySQLdb", "pymysql"):
        if (driver, "InterfaceError") in names:
            return True
        if (driver, "OperationalError") in names:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            return code in _MYSQL_CONNECTION_CODES
    return False
