"""SQLAlchemyDataBackend: the portable DataBackend on SQLAlchemy 2 Core, on SQLite.

Scheme ``sqlalchemy+sqlite://`` (``sqlalchemy+sqlite://data.db`` relative, ``///abs/data.db``
absolute, ``sqlalchemy+sqlite://`` in memory). The plain ``sqlite://`` databackend scheme is
pinnacle-ibis's; this one needs nothing beyond SQLAlchemy (no ibis, no pyarrow).

Storage of the portable types (the same as pinnacle-ibis's SQLite backend, and the portable
schemas live in the same table, :data:`pinnacle_protocols.tables.SCHEMAS_TABLE`, so either package
reads the tables the other wrote):

========  ===========  ==========================================================
DType     column       stored value
========  ===========  ==========================================================
int       BIGINT       64-bit integer
float     DOUBLE       finite double
str       TEXT         UTF-8 text, compared by code point (BINARY collation)
bool      BOOLEAN      0 / 1
bytes     BLOB         compared bytewise
datetime  TIMESTAMP    naive UTC ISO text ``YYYY-MM-DD HH:MM:SS[.ffffff]``
json      TEXT         compact JSON text
vector    TEXT         JSON list of floats
========  ===========  ==========================================================

Filters compile (with :func:`pinnacle_protocols.filters.compile_filter`) to parameterized
SQLAlchemy expressions with the reference semantics of
:func:`pinnacle_protocols.filters.evaluate` (two-valued logic): a comparison is guarded with
``col IS NOT NULL AND ...`` wherever it is negated (``$ne``, ``$nin``, ``$not``), so negations
match NULL rows as in MongoDB. JSON and vector columns only take NULL tests (``$eq None``,
``$exists``...), as everywhere. Values are always bound parameters; table and column names are
quoted by SQLAlchemy, so any name without NUL works (``sqlite_*`` is reserved by SQLite).

Schemas are cached per process and trusted only while SQLite's ``PRAGMA schema_version`` (the
schema cookie, which every committed DDL of any connection raises) is the value they were read
at: a read runs in one read transaction that reads the cookie first, then the table list and
schema row only when it moved, then the query, so another process's ``DROP``/``CREATE`` is seen
by the very next call. The portable schema row changes only together with its table's DDL (both
packages write it in the DDL's transaction), so the cookie covers it too.

A point read, ``select(t, {col: v})`` or ``select(t, {col: {"$in": [...]}})``, runs by a plan
(:mod:`pinnacle_protocols.point`) on a sqlite3 connection the backend holds: the statement the
generic path compiled for that shape, wrapped as ``SELECT q.*, v.schema_version FROM
pragma_schema_version() AS v LEFT JOIN (<statement>) AS q``, one statement, so the rows and the
cookie come from one snapshot; a cookie other than the plan's, an operand the plan's check
refuses or any driver error sends the call the generic way, which answers or raises as before.
"""

from __future__ import annotations

import contextlib
import operator
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, cast

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator, UserDefinedType

from pinnacle_protocols.errors import (
    BackendUnavailable,
    DropRefused,
    FilterError,
    InvalidURIError,
    PinnacleError,
    SchemaError,
    TableExists,
    TableNotFound,
)
from pinnacle_protocols.filters import (
    Filter,
    check_limit,
    compile_filter,
    parse_order_by,
    validate_filter,
)
from pinnacle_protocols.point import SLOW, PointPlan, RowShape, operand_check, point_key
from pinnacle_protocols.protocols import ArrowTableLike, OrderBy, Rows
from pinnacle_protocols.records import (
    CountQuery,
    DType,
    Field,
    Schema,
    check_index_columns,
    check_match_pairs,
    check_new_table,
    coerce_value,
    index_name,
)
from pinnacle_protocols.tables import (
    RESERVED_PREFIX,
    SCHEMAS_TABLE,
    dump_json,
    load_json,
    schema_from_text,
    schema_to_text,
)
from pinnacle_protocols.uri import RedactedURI, redact
from pinnacle_sql._engine import EngineOptions, build_engine

__all__ = ["RESERVED_PREFIX", "SCHEMAS_TABLE", "SQLAlchemyDataBackend"]

#: URI schemes this class accepts (only ``sqlalchemy+sqlite`` is registered as entry point).
SCHEMES: Final = frozenset({"sqlalchemy+sqlite", "sqlite"})


# ============================================================================ column types
class _TimestampText(UserDefinedType[str]):
    """``TIMESTAMP`` in the DDL, text values, no driver conversion."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "TIMESTAMP"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as naive UTC ISO text (text order is time order)."""

    impl = _TimestampText
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            value = datetime.fromisoformat(str(value))
        result: datetime = value
        return result.replace(tzinfo=UTC) if result.tzinfo is None else result.astimezone(UTC)


class JSONText(TypeDecorator[Any]):
    """JSON data as compact JSON text (SQL NULL for None)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else dump_json(value)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else load_json(value)


class VectorText(TypeDecorator[list[float]]):
    """A list of floats as a JSON array."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else dump_json([float(v) for v in value])

    def process_result_value(self, value: Any, dialect: Any) -> list[float] | None:
        return None if value is None else [float(v) for v in load_json(value)]


class Float64(TypeDecorator[float]):
    """A double that always comes back as a Python float (ints are bound as floats)."""

    impl = sa.Double
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else float(value)

    def process_result_value(self, value: Any, dialect: Any) -> float | None:
        return None if value is None else float(value)


class Bytes(TypeDecorator[bytes]):
    """A BLOB that comes back as ``bytes``."""

    impl = sa.LargeBinary
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> bytes | None:
        return None if value is None else bytes(value)


def _column_type(field: Field) -> Any:
    dtype = field.dtype
    if dtype is DType.INT:
        return sa.BigInteger()
    if dtype is DType.FLOAT:
        return Float64()
    if dtype is DType.STR:
        return sa.Text()
    if dtype is DType.BOOL:
        return sa.Boolean(create_constraint=False)
    if dtype is DType.BYTES:
        return Bytes()
    if dtype is DType.DATETIME:
        return UTCDateTime()
    if dtype is DType.JSON:
        return JSONText()
    return VectorText()


def _utc_text(value: datetime) -> str:
    """A UTC datetime as the stored naive ISO text (what :class:`UTCDateTime` binds)."""
    return value.replace(tzinfo=None).isoformat(sep=" ")


def _vector_text(value: list[float]) -> str:
    """A list of floats as the stored JSON array (what :class:`VectorText` binds)."""
    return dump_json(value)


#: How coerced values (``coerce_columns(..., json_text=True)``: ints, finite floats, bools,
#: bytes, UTC datetimes, JSON text, lists of floats) become the sqlite3 driver's parameters.
#: The dtypes not listed go to the driver as they are.
_TO_DRIVER: Final[Mapping[DType, Callable[[Any], Any]]] = {
    DType.DATETIME: _utc_text,
    DType.VECTOR: _vector_text,
}


def _executemany(conn: Connection, sql: str, rows: Iterator[tuple[Any, ...]]) -> None:
    """sqlite3's ``executemany`` of ``rows`` on ``conn``'s connection, in its transaction.

    The driver takes the rows as they are made: SQLAlchemy's ``exec_driver_sql`` needs a list,
    which holds every row's tuple at once (100,000 per batch) for nothing. A driver error is
    wrapped as SQLAlchemy wraps it (``DBAPIError.instance``), so it is reported as before.
    """
    import sqlite3

    driver = cast(sqlite3.Connection, conn.connection.driver_connection)
    cursor = driver.cursor()
    try:
        cursor.executemany(sql, rows)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc
    finally:
        cursor.close()


def _sa_table(name: str, schema: Schema) -> sa.Table:
    columns = [
        sa.Column(f.name, _column_type(f), nullable=f.nullable, quote=True) for f in schema.fields
    ]
    return sa.Table(name, sa.MetaData(), *columns, quote=True)


_SCHEMAS = sa.Table(
    SCHEMAS_TABLE,
    sa.MetaData(),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("schema", sa.Text, nullable=False),
)


# ============================================================================ point plans
#: ``$in`` lists longer than this go the generic way (a plan per length: keep them few).
_MAX_PLAN_ITEMS: Final = 1000

#: Decoders the column types' result processors amount to, as builtins (the plan's row
#: builder skips None itself): :class:`Float64` and :class:`Bytes`.
_BUILTIN_DECODERS: Final[Mapping[DType, Callable[[Any], Any]]] = {
    DType.FLOAT: float,
    DType.BYTES: bytes,
}

#: The wrappers of a plan's statement: its rows, each with what the plan was made from as read
#: in the rows' snapshot, last (one row of NULLs and that when nothing matches). A table with
#: a schema row: that row's text (the schema is read from it; a PK lookup, ~1 µs cheaper than
#: the pragma). A table of another client (its schema derived from its DDL): the schema cookie.
_WITH_ROW: Final = (
    "SELECT q.*, v.schema FROM (SELECT schema FROM {schemas} WHERE name = {name}) AS v "
    "LEFT JOIN ({inner}) AS q"
)
_WITH_COOKIE: Final = (
    "SELECT q.*, v.schema_version FROM pragma_schema_version() AS v LEFT JOIN ({inner}) AS q"
)


@attrs.frozen
class _SQLitePlan(PointPlan):
    """A point plan for the sqlite3 connection, valid while its statement's last column reads
    ``version``: the table's schema row text or, for a table without one, the schema cookie."""

    version: str | int
    #: The filtered column's position: NULL there marks the LEFT JOIN's no-match row (a row
    #: that matches ``col = v`` / ``col IN (...)`` with non-NULL operands is not NULL there).
    column: int


# ============================================================================ values
def _affinity_dtype(declared: str) -> DType:
    """The portable type of a column of a table made outside pinnacledb (SQLite affinity)."""
    t = declared.upper()
    if "BOOL" in t:
        return DType.BOOL
    if "INT" in t:
        return DType.INT
    if any(k in t for k in ("CHAR", "CLOB", "TEXT")):
        return DType.STR
    if "BLOB" in t or not t:
        return DType.BYTES
    if "TIME" in t or "DATE" in t:
        return DType.DATETIME
    return DType.FLOAT


# ============================================================================ filters
class _Leaves:
    """The leaves of :func:`~pinnacle_protocols.filters.compile_filter` as SQLAlchemy Core.

    A never-NULL comparison is guarded with ``col IS NOT NULL AND ...``; the others may be NULL
    where the answer is "no", which is all a WHERE needs and keeps them index-friendly. Values
    are bound parameters.
    """

    def __init__(self, table: sa.Table) -> None:
        self.table = table

    def column(self, name: str) -> Any:
        return self.table.c[name]

    def literal(self, name: str, column: Any, value: Any) -> Any:
        return value

    def constant(self, value: bool) -> ColumnElement[bool]:
        return sa.true() if value else sa.false()

    @staticmethod
    def _guard(column: Any, cmp: ColumnElement[bool], never_null: bool) -> ColumnElement[bool]:
        return sa.and_(column.is_not(None), cmp) if never_null else cmp

    def compare(self, column: Any, op: str, literal: Any, never_null: bool) -> ColumnElement[bool]:
        return self._guard(column, _COMPARATORS[op](column, literal), never_null)

    def member(self, column: Any, literals: Sequence[Any], never_null: bool) -> ColumnElement[bool]:
        # An explicitly named expanding parameter: SQLAlchemy names it after the column
        # otherwise, and a column name with a control character (\x1c-\x1f count as
        # whitespace) leaves its __[POSTCOMPILE_...] placeholder unexpanded in the SQL.
        # typed like the column: its bind processing (datetimes, JSON...) applies to every item
        param: Any = sa.bindparam(
            "in_values", list(literals), expanding=True, unique=True, type_=column.type
        )
        return self._guard(column, column.in_(param), never_null)

    def is_null(self, column: Any, null: bool) -> ColumnElement[bool]:
        return cast("ColumnElement[bool]", column.is_(None) if null else column.is_not(None))

    def all_of(self, parts: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
        return sa.and_(*parts)

    def any_of(self, parts: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
        return sa.or_(*parts)

    def negate(self, part: ColumnElement[bool]) -> ColumnElement[bool]:
        return sa.not_(part)


_COMPARATORS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "$eq": operator.eq,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def _where_clause(table: sa.Table, schema: Schema, where: Filter) -> ColumnElement[bool]:
    """A validated, non-empty filter as a WHERE clause over ``table``."""
    return compile_filter(where, _Leaves(table), schema)


# ============================================================================ the backend
def _split_uri(uri: str | RedactedURI) -> tuple[RedactedURI, RedactedURI]:
    """``(shown URI, the same database as a sqlite:// URI)``."""
    text = uri.reveal() if isinstance(uri, RedactedURI) else uri
    if not isinstance(text, str):
        raise InvalidURIError(f"a databackend URI must be a string, got {type(text).__name__}")
    scheme, sep, rest = text.strip().partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        shown = RedactedURI.parse(text) if sep else text
        raise InvalidURIError(
            f"SQLAlchemyDataBackend takes 'sqlalchemy+sqlite://path.db' (or "
            f"'sqlalchemy+sqlite://' in memory), got {str(shown)!r}"
        )
    sqlite = RedactedURI.parse(f"sqlite://{rest}")
    return sqlite.with_scheme(scheme.lower()), sqlite


class SQLAlchemyDataBackend:
    """A DataBackend on a SQLAlchemy engine (SQLite): portable CRUD plus SQLAlchemy Core.

    Build it with :meth:`from_uri` (the ``pinnacle.databackends`` entry point of the
    ``sqlalchemy+sqlite`` scheme). It connects on first use and is safe to share between
    threads. Writes run in ``BEGIN IMMEDIATE`` transactions, so an insert is all or nothing.

    Native access: :meth:`native` returns the ``sqlalchemy.Table`` (its column types turn
    values into the portable Python types) and :meth:`execute` runs any SQLAlchemy executable
    or SQL text.
    """

    supports_update: ClassVar[bool] = True
    supports_delete: ClassVar[bool] = True
    supports_transactions: ClassVar[bool] = True
    has_native_ids: ClassVar[bool] = False

    def __init__(self, uri: RedactedURI, sqlite_uri: RedactedURI, options: EngineOptions) -> None:
        """Use :meth:`from_uri`."""
        self._uri = uri
        self._sqlite_uri = sqlite_uri
        self._options = options
        self._engine: Engine | None = None
        self._closed = False
        self._lock = threading.RLock()
        self._tables: dict[tuple[str, str], tuple[Schema, sa.Table]] = {}
        self._inserts: dict[int, tuple[sa.Table, str]] = {}
        #: The schema cookie (``PRAGMA schema_version``) ``_schemas`` and ``_plans`` hold for.
        self._version: int | None = None
        self._schemas: dict[str, tuple[Schema, sa.Table]] = {}
        #: The schema row text of the tables in ``_schemas`` (None: derived, no row).
        self._schema_rows: dict[str, str | None] = {}
        #: Point plans by (table, column, n, kind); None: that shape has no plan.
        self._plans: dict[tuple[Any, ...], _SQLitePlan | None] = {}
        #: Point reads by plan (False: always the generic way, for tests).
        self._point_reads = True
        #: The pooled connection point plans run on, held until close(), and its sqlite3 one.
        self._point_fairy: Any = None
        self._point_con: sqlite3.Connection | None = None

    @classmethod
    def from_uri(cls, uri: str | RedactedURI, **options: Any) -> SQLAlchemyDataBackend:
        """The backend for ``sqlalchemy+sqlite://...`` (connects lazily).

        ``options`` are those of :class:`pinnacle_sql.EngineOptions` (``busy_timeout``,
        ``sqlite_synchronous``, ``echo``, ``engine_options``...).

        Raises:
            InvalidURIError: not a ``sqlalchemy+sqlite://`` URI.
            ConfigError: an unknown option.
        """
        shown, sqlite = _split_uri(uri)
        return cls(shown, sqlite, EngineOptions.from_kwargs(options))

    def __repr__(self) -> str:
        return f"SQLAlchemyDataBackend({str(self._uri)!r})"

    @property
    def uri(self) -> RedactedURI:
        """Where the data lives."""
        return self._uri

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (created on first use)."""
        with self._lock:
            return self._get_engine()

    # ------------------------------------------------------------------ plumbing
    def _get_engine(self) -> Engine:
        if self._closed:
            raise BackendUnavailable(
                f"{self._uri} is closed; create a new backend with from_uri({str(self._uri)!r})"
            )
        if self._engine is None:
            self._engine = build_engine(self._sqlite_uri, self._options)
        return self._engine

    @contextlib.contextmanager
    def _read(self, op: str, table: str | None = None) -> Iterator[Connection]:
        # One read transaction: the schema cookie, the schema (when it moved) and the query
        # read one snapshot (see _lookup).
        with self._lock, self._translate(op, table), self._get_engine().connect() as conn:
            conn.execution_options(pinnacle_begin="DEFERRED")
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _write(self, op: str, table: str | None = None) -> Iterator[Connection]:
        with self._lock, self._translate(op, table), self._get_engine().connect() as conn:
            conn.execution_options(pinnacle_begin="IMMEDIATE")
            try:
                with conn.begin():
                    yield conn
            except BaseException:
                # A rolled-back DDL may have been seen at a cookie value another commit reuses.
                self._forget_schemas()
                raise

    def _forget_schemas(self) -> None:
        self._version = None
        self._schemas.clear()
        self._schema_rows.clear()
        self._plans.clear()

    @contextlib.contextmanager
    def _translate(self, op: str, table: str | None) -> Iterator[None]:
        try:
            yield
        except PinnacleError:
            raise
        except SQLAlchemyError as exc:
            self._tables.clear()
            self._forget_schemas()
            text = str(getattr(exc, "orig", None) or exc)
            if table is not None and "no such table" in text:
                raise TableNotFound(
                    f"no table {table!r} in {self._uri} (it was dropped meanwhile)"
                ) from exc
            if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                raise BackendUnavailable(f"{self._uri}: {op} lost its connection") from exc
            if "database is locked" in text or "unable to open database" in text:
                raise BackendUnavailable(f"{self._uri}: {op} failed: {redact(text)[:300]}") from exc
            where = f" on table {table!r}" if table is not None else ""
            raise PinnacleError(
                f"{self._uri}: {op}{where} failed: {type(exc).__name__}: {redact(text)[:500]}"
            ) from exc

    def _physical_tables(self, conn: Connection) -> list[str]:
        rows = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'table'"))
        return [str(r[0]) for r in rows]

    def _lookup(self, conn: Connection, name: str) -> tuple[Schema, sa.Table]:
        """The schema and SQLAlchemy table of ``name`` (TableNotFound) in ``conn``'s transaction.

        Cached per process while the schema cookie is the one they were read at: the cookie is
        read on ``conn`` in its open transaction, so the cache and the statements that follow
        see one snapshot of the schema (any committed DDL of any connection moves the cookie).
        """
        if not isinstance(name, str) or not name or name.startswith(RESERVED_PREFIX):
            raise TableNotFound(f"no table {name!r} in {self._uri}; create it with create_table()")
        version = conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
        if version != self._version:
            self._forget_schemas()
            self._version = version
        cached = self._schemas.get(name)
        if cached is not None:
            return cached
        physical = self._physical_tables(conn)
        if name not in physical:
            raise TableNotFound(f"no table {name!r} in {self._uri}; create it with create_table()")
        row: str | None = None
        if SCHEMAS_TABLE in physical:
            row = conn.execute(
                sa.select(_SCHEMAS.c.schema).where(_SCHEMAS.c.name == name)
            ).scalar_one_or_none()
        text = row if row is not None else schema_to_text(self._derive_schema(conn, name))
        key = (name, text)
        found = self._tables.get(key)
        if found is None:
            schema = schema_from_text(text)
            found = (schema, _sa_table(name, schema))
            if len(self._tables) > 1000:
                self._tables.clear()
            self._tables[key] = found
        if len(self._schemas) > 1000:
            self._schemas.clear()
            self._schema_rows.clear()
        self._schemas[name] = found
        self._schema_rows[name] = row
        return found

    def _derive_schema(self, conn: Connection, name: str) -> Schema:
        """A portable schema for a table not created through pinnacledb (best effort)."""
        rows = conn.execute(
            sa.text('SELECT name, type, "notnull" FROM pragma_table_info(:t)'), {"t": name}
        )
        fields = [
            Field(name=str(col), dtype=_affinity_dtype(str(typ or "")), nullable=not notnull)
            for col, typ, notnull in rows
        ]
        return Schema(fields=tuple(fields))

    # ------------------------------------------------------------------ tables
    def list_tables(self) -> list[str]:
        """User tables, sorted (``_pinnacle*`` and ``sqlite_*`` tables excluded)."""
        with self._read("list_tables") as conn:
            return sorted(
                n
                for n in self._physical_tables(conn)
                if not n.startswith(RESERVED_PREFIX) and not n.lower().startswith("sqlite_")
            )

    def create_table(self, name: str, schema: Schema) -> None:
        """Create a table with the portable schema.

        Raises:
            SchemaError: the name is empty, holds NUL, or starts with ``_pinnacle`` or
                ``sqlite_``; ``schema`` is not a Schema.
            TableExists: a table of that name exists (SQLite names ignore ASCII case).
        """
        if not isinstance(name, str) or not name or "\x00" in name:
            raise SchemaError(f"table names are non-empty strings without NUL, got {name!r}")
        if name.startswith(RESERVED_PREFIX):
            raise SchemaError(f"table name {name!r}: the prefix {RESERVED_PREFIX!r} is reserved")
        if name.lower().startswith("sqlite_"):
            raise SchemaError(f"table name {name!r}: SQLite reserves the prefix 'sqlite_'")
        if not isinstance(schema, Schema):
            raise SchemaError(f"expected a Schema, got {type(schema).__name__}")
        check_new_table(name, schema, (), self._uri)  # columns, before any write
        table = _sa_table(name, schema)
        with self._write("create_table") as conn:
            physical = list(self._physical_tables(conn))
            check_new_table(name, schema, physical, self._uri)
            existing = {n.casefold() for n in physical}
            if name.casefold() in existing:
                raise TableExists(f"table {name!r} already exists in {self._uri}")
            _SCHEMAS.create(conn, checkfirst=True)
            table.create(conn)
            conn.execute(_SCHEMAS.delete().where(_SCHEMAS.c.name == name))
            conn.execute(_SCHEMAS.insert().values(name=name, schema=schema_to_text(schema)))

    def drop_table(self, name: str) -> None:
        """Drop a table (TableNotFound if absent)."""
        with self._write("drop_table", name) as conn:
            _, table = self._lookup(conn, name)
            self._drop(conn, table)

    def _drop(self, conn: Connection, table: sa.Table) -> None:
        table.drop(conn)
        if SCHEMAS_TABLE in self._physical_tables(conn):
            conn.execute(_SCHEMAS.delete().where(_SCHEMAS.c.name == table.name))

    def table_schema(self, name: str) -> Schema:
        """The portable schema of a table (derived from SQLite types for foreign tables)."""
        with self._read("table_schema", name) as conn:
            return self._lookup(conn, name)[0]

    # ------------------------------------------------------------------ rows
    def insert(self, table: str, rows: Rows | ArrowTableLike) -> int:
        """Append rows: a list of dicts, or Arrow data (a ``pyarrow`` Table or RecordBatch, a
        pandas or polars DataFrame; anything else with ``to_pylist()``).

        Every row is validated before anything is written, in one transaction. With pyarrow
        installed the checks run per column on Arrow
        (:func:`pinnacle_protocols.arrow.coerce_columns`), then one ``executemany`` of the
        rows' tuples; the error of a bad value names its row and column as the per-cell rules
        do.

        Raises:
            TableNotFound: no such table.
            SchemaError: a row has an unknown column or a value of the wrong type.
        """
        from pinnacle_protocols.arrow import coerce_columns

        with self._write("insert", table) as conn:
            schema, sa_table = self._lookup(conn, table)
            columns = coerce_columns(schema, rows, table, json_text=True)
            count = len(columns[0])
            if not count:
                return 0
            for i, field in enumerate(schema.fields):
                to_driver = _TO_DRIVER.get(field.dtype)
                if to_driver is not None:
                    columns[i] = [None if v is None else to_driver(v) for v in columns[i]]
            _executemany(conn, self._insert_sql(conn, sa_table), zip(*columns, strict=True))
            return count

    def _insert_sql(self, conn: Connection, sa_table: sa.Table) -> str:
        """The positional INSERT of every column of ``sa_table``, compiled once per table."""
        found = self._inserts.get(id(sa_table))
        if found is None or found[0] is not sa_table:
            names = [c.name for c in sa_table.columns]
            compiled = sa_table.insert().compile(dialect=conn.dialect, column_keys=names)
            if len(self._inserts) > 1000:
                self._inserts.clear()
            found = self._inserts[id(sa_table)] = (sa_table, compiled.string)
        return found[1]

    def select(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
    ) -> list[dict[str, Any]]:
        """Rows matching ``where`` as dicts; ``order_by`` puts NULL first asc, last desc.

        Raises:
            TableNotFound: no such table.
            FilterError: the filter or ``limit`` is invalid.
            SchemaError: an unknown column in ``columns`` or ``order_by``.
        """
        point = (
            type(where) is dict
            and len(where) == 1
            and columns is None
            and limit is None
            and order_by is None
            and self._point_reads
        )
        if point:
            rows = self._point_select(table, where)  # type: ignore[arg-type]
            if rows is not None:
                return rows
        with self._read("select", table) as conn:
            schema, sa_table = self._lookup(conn, table)
            validate_filter(where, schema)
            if columns is not None:
                if isinstance(columns, str):
                    raise SchemaError("columns must be a list of column names, not a string")
                for c in columns:
                    if c not in schema:
                        raise SchemaError(f"select from {table!r}: unknown column {c!r}")
            check_limit(limit)
            order = parse_order_by(order_by, schema, table) if order_by else []
            names = list(dict.fromkeys(columns)) if columns is not None else list(schema.names)
            stmt = sa.select(*[sa_table.c[n] for n in names])
            cond = self._condition(sa_table, schema, where)
            if cond is not None:
                stmt = stmt.where(cond)
            for column, desc in order:
                col = sa_table.c[column]
                stmt = stmt.order_by(col.desc().nulls_last() if desc else col.asc().nulls_first())
            if limit is not None:
                stmt = stmt.limit(limit)
            if point:
                self._point_plan(
                    conn,
                    table,
                    schema=schema,
                    sa_table=sa_table,
                    where=cast(dict[str, Any], where),
                    stmt=stmt,
                )
            return [dict(zip(names, row, strict=True)) for row in conn.execute(stmt)]

    # ------------------------------------------------------------------ point reads
    def _point_select(self, table: str, where: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The rows of a one-column filter by its plan; None: the call goes the generic way.

        ~7 µs of the ~11 µs a warm call costs are sqlite3's, so the common case is inlined:
        ``{col: v}`` skips :func:`point_key` and :meth:`PointPlan.bind`.
        """
        ((column, operand),) = where.items()
        items: Any = None
        if type(operand) is dict:
            shape = point_key(table, where, _MAX_PLAN_ITEMS)
            if shape is None:
                return None
            key, operand, items = shape
        else:
            key = (table, column, 0, type(operand))
        with self._lock:
            plan = self._plans.get(key)
            con = self._point_con
            if plan is None or con is None:
                return None
            params: list[Any] | None
            if items is None:
                value = plan.check(operand)
                if value is SLOW:
                    return None
                convert = plan.convert
                params = [value if convert is None else convert(value)]
            else:
                params = plan.params(items)
                if params is None:
                    return None
            try:
                rows = con.execute(plan.sql, params).fetchall()
            except sqlite3.Error:
                return None  # e.g. the table was dropped: the generic path says so
        if not rows:
            return None  # the schema row is gone
        first = rows[0]
        if first[-1] != plan.version:
            return None  # the schema changed since the plan was made
        if first[plan.column] is None:
            return []
        return plan.shape.rows(rows)

    def _point_plan(
        self,
        conn: Connection,
        table: str,
        *,
        schema: Schema,
        sa_table: sa.Table,
        where: dict[str, Any],
        stmt: sa.Select[Any],
    ) -> None:
        """Make the plan of ``where``'s shape from ``stmt``, the generic path's statement for
        it, unless the operands are special (NaN, NUL...) or the shape has no plan."""
        shape = point_key(table, where, _MAX_PLAN_ITEMS)
        if shape is None:
            return
        key, operand, items = shape
        column = key[1]
        if not isinstance(column, str) or column not in schema:
            return  # {"$and": [...]} and the like
        if key in self._plans:
            return  # a plan at this cookie (the cache is emptied when it moves), or None
        dialect = conn.dialect
        check = operand_check(schema[column].dtype, key[3])
        con = self._point_connection(conn)
        version: str | int | None = self._schema_rows.get(table)
        wrapper = _WITH_ROW
        if version is None:
            version, wrapper = self._version, _WITH_COOKIE
        if check is None or con is None or version is None:
            self._plans[key] = None
            return
        operands = [operand] if items is None else list(items)
        checked = [check(v) for v in operands]
        if any(v is SLOW for v in checked):
            return  # special operands: their statement is not the shape's
        compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        bound = compiled.construct_params()
        names = compiled.positiontup or []
        got = [bound[n] for n in names]
        if len(got) != len(checked) or any(
            type(g) is not type(c) or g != c for g, c in zip(got, checked, strict=False)
        ):
            self._plans[key] = None  # e.g. bools: SQLAlchemy renders them as literals
            return
        col_type = sa_table.c[column].type.dialect_impl(dialect)

        def decoder(field: Field) -> Any:
            builtin = _BUILTIN_DECODERS.get(field.dtype)
            if builtin is not None:
                return builtin
            return sa_table.c[field.name].type.dialect_impl(dialect).result_processor(dialect, None)

        if len(self._plans) >= 1024:
            self._plans.clear()
        self._plans[key] = _SQLitePlan(
            schema,
            wrapper.format(
                schemas=_quote(SCHEMAS_TABLE),
                name="'" + table.replace("'", "''") + "'",
                inner=compiled.string,
            ),
            check,
            col_type.bind_processor(dialect),
            RowShape.of(schema.fields, decoder),
            version=version,
            column=schema.names.index(column),
        )

    def _point_connection(self, conn: Connection) -> sqlite3.Connection | None:
        """The sqlite3 connection point plans run on (pysqlite only), held until close()."""
        if self._point_con is None and conn.dialect.driver == "pysqlite":
            fairy = self._get_engine().raw_connection()
            driver = fairy.driver_connection
            if isinstance(driver, sqlite3.Connection):
                self._point_fairy, self._point_con = fairy, driver
            else:  # pragma: no cover - pysqlite always hands out sqlite3 connections
                fairy.close()
        return self._point_con

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
        """Keys of ``table`` that ``other`` lacks, as one ``NOT EXISTS`` query.

        See :class:`pinnacle_protocols.protocols.SupportsAntiJoin` (used by listeners).
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise FilterError(f"limit must be an int >= 1, got {limit!r}")
        with self._read("anti join", table) as conn:
            schema, left = self._lookup(conn, table)
            other_schema, right_table = self._lookup(conn, other)
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
            right = cast(sa.Table, right_table.alias("_pinnacle_other"))
            sub = sa.select(sa.literal(1)).where(right.c[other_column] == left.c[column])
            right_cond = self._condition(right, other_schema, other_where)
            if right_cond is not None:
                sub = sub.where(right_cond)
            key = left.c[column]
            stmt = (
                sa.select(key)
                .where(_where_clause(left, schema, left_where))
                .where(~sa.exists(sub))
                .distinct()
                .order_by(key)
                .limit(limit)
            )
            return [row[0] for row in conn.execute(stmt)]

    def count_unmatched(
        self,
        table: str,
        other: str,
        on: Sequence[tuple[str, str]],
        *,
        where: Filter | None = None,
        other_where: Filter | None = None,
    ) -> int:
        """Rows of ``table`` no row of ``other`` matches, as one ``NOT EXISTS`` count.

        See :class:`pinnacle_protocols.protocols.SupportsMatchCount` (used by listeners).
        """
        with self._read("count unmatched", table) as conn:
            query = CountQuery(
                table=table, where=where, other=other, on=tuple(on), other_where=other_where
            )
            return int(conn.execute(self._count_stmt(conn, query)).scalar_one())

    def count_many(self, queries: Sequence[CountQuery]) -> list[int]:
        """Several counts as one ``SELECT`` of scalar subqueries.

        See :class:`pinnacle_protocols.protocols.SupportsMatchCounts` (used by listeners).
        """
        if not queries:
            return []
        with self._read("count many", queries[0].table) as conn:
            stmts = [self._count_stmt(conn, q) for q in queries]
            if len(stmts) == 1:
                return [int(conn.execute(stmts[0]).scalar_one())]
            row = conn.execute(
                sa.select(*[s.scalar_subquery().label(f"n{i}") for i, s in enumerate(stmts)])
            ).one()
            return [int(v) for v in row]

    def _count_stmt(self, conn: Connection, query: CountQuery) -> sa.Select[Any]:
        """The validated ``SELECT count(*)`` of ``query``."""
        schema, left = self._lookup(conn, query.table)
        if query.other is None:
            validate_filter(query.where, schema)
            cond = self._condition(left, schema, query.where)
            stmt = sa.select(sa.func.count()).select_from(left)
            return stmt if cond is None else stmt.where(cond)
        other_schema, right_table = self._lookup(conn, query.other)
        pairs = check_match_pairs(query.on, schema, other_schema)
        key: Filter = {pairs[0][0]: {"$ne": None}}
        left_where: Filter = {"$and": [key, query.where]} if query.where else key
        validate_filter(left_where, schema)
        validate_filter(query.other_where, other_schema)
        right = cast(sa.Table, right_table.alias("_pinnacle_other"))
        first, first_other = pairs[0]
        sub = sa.select(sa.literal(1)).where(right.c[first_other] == left.c[first])
        for col, other_col in pairs[1:]:
            sub = sub.where(right.c[other_col].is_not_distinct_from(left.c[col]))
        right_cond = self._condition(right, other_schema, query.other_where)
        if right_cond is not None:
            sub = sub.where(right_cond)
        return (
            sa.select(sa.func.count())
            .select_from(left)
            .where(_where_clause(left, schema, left_where))
            .where(~sa.exists(sub))
        )

    def create_index(self, table: str, columns: Sequence[str], *, unique: bool = False) -> bool:
        """Ensure an index on ``columns`` (``CREATE INDEX IF NOT EXISTS``); always True.

        See :class:`pinnacle_protocols.protocols.SupportsIndexes` (used by listeners).
        """
        with self._write("create index", table) as conn:
            schema, sa_table = self._lookup(conn, table)
            names = check_index_columns(table, columns, schema)
            index = sa.Index(
                index_name(table, names, unique=unique),
                *[sa_table.c[n] for n in names],
                unique=unique,
            )
            index.create(conn, checkfirst=True)
            return True

    @staticmethod
    def _condition(
        sa_table: sa.Table, schema: Schema, where: Filter | None
    ) -> ColumnElement[bool] | None:
        if not where:
            return None
        return _where_clause(sa_table, schema, where)

    def update(self, table: str, where: Filter | None, values: Mapping[str, Any]) -> int:
        """Set ``values`` on the rows matching ``where``; return how many matched."""
        with self._write("update", table) as conn:
            schema, sa_table = self._lookup(conn, table)
            if not isinstance(values, Mapping):
                raise SchemaError(f"update {table!r}: values must be a dict")
            coerced = {}
            for name, value in values.items():
                if name not in schema:
                    raise SchemaError(
                        f"update {table!r}: unknown column {name!r}; the table has "
                        f"{list(schema.names)}"
                    )
                coerced[name] = coerce_value(schema[name], value, f"update {table!r}")
            validate_filter(where, schema)
            cond = self._condition(sa_table, schema, where)
            if not coerced:
                stmt = sa.select(sa.func.count()).select_from(sa_table)
                return int(conn.execute(stmt if cond is None else stmt.where(cond)).scalar_one())
            upd = sa_table.update().values({sa_table.c[k]: v for k, v in coerced.items()})
            result = conn.execute(upd if cond is None else upd.where(cond))
            return int(result.rowcount)

    def delete(self, table: str, where: Filter | None) -> int:
        """Delete the rows matching ``where`` (``None`` or ``{}``: every row); return how many."""
        with self._write("delete", table) as conn:
            schema, sa_table = self._lookup(conn, table)
            validate_filter(where, schema)
            cond = self._condition(sa_table, schema, where)
            stmt = sa_table.delete()
            result = conn.execute(stmt if cond is None else stmt.where(cond))
            return int(result.rowcount)

    def count(self, table: str, where: Filter | None = None) -> int:
        """How many rows match ``where``."""
        with self._read("count", table) as conn:
            schema, sa_table = self._lookup(conn, table)
            validate_filter(where, schema)
            cond = self._condition(sa_table, schema, where)
            stmt = sa.select(sa.func.count()).select_from(sa_table)
            return int(conn.execute(stmt if cond is None else stmt.where(cond)).scalar_one())

    # ------------------------------------------------------------------ native
    def native(self, table: str) -> sa.Table:
        """The ``sqlalchemy.Table`` of ``table``, typed with the portable column types."""
        with self._read("native", table) as conn:
            return self._lookup(conn, table)[1]

    def execute(self, query: Any, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a SQLAlchemy executable (``select(native(t))``...) or SQL text, in a transaction.

        SQL text takes its values as named ``:params``, never inside the text. Returns the
        rows as dicts (an empty list for statements without rows).

        Raises:
            FilterError: ``query`` is neither SQL text nor a SQLAlchemy executable.
        """
        if isinstance(query, str):
            stmt: Any = sa.text(query)
        elif isinstance(query, sa.Executable):
            stmt = query
        else:
            raise FilterError(
                f"execute() runs SQLAlchemy statements or SQL text, got {type(query).__name__}"
            )
        with self._write("execute") as conn:
            result = conn.execute(stmt, dict(params) if params is not None else None)
            if not result.returns_rows:
                return []
            return [dict(row) for row in result.mappings()]

    @classmethod
    def default_metadata_uri_for(cls, uri: RedactedURI) -> RedactedURI | None:
        """The same SQLite database as a ``sqlite://`` URI, without building the backend.

        Raises:
            InvalidURIError: not a ``sqlalchemy+sqlite://`` URI (as :meth:`from_uri`).
        """
        return _split_uri(uri)[1]

    @classmethod
    def default_artifact_uri_for(cls, uri: RedactedURI) -> RedactedURI | None:
        """None (SQLite holds no artifacts); InvalidURIError as :meth:`from_uri`."""
        _split_uri(uri)
        return None

    def default_metadata_uri(self) -> RedactedURI | None:
        """The same SQLite database as a ``sqlite://`` URI (pinnacle-sql's metadata store)."""
        return self._sqlite_uri

    def default_artifact_uri(self) -> RedactedURI | None:
        """None: SQLite holds no artifacts; the facade falls back to the filesystem."""
        return None

    def drop(self, *, force: bool = False) -> None:
        """Drop every user table and the schema table (DropRefused without ``force=True``).

        Other ``_pinnacle*`` tables (a metadata store in the same database) are left alone.
        """
        if force is not True:
            raise DropRefused(
                f"refusing to drop every table of {self._uri}; call drop(force=True) to confirm"
            )
        names = self.list_tables()
        with self._write("drop") as conn:
            for name in names:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_quote(name)}")
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_quote(SCHEMAS_TABLE)}")
        self._tables.clear()

    def close(self) -> None:
        """Release the connections; later calls raise BackendUnavailable."""
        with self._lock:
            self._closed = True
            engine, self._engine = self._engine, None
            self._tables.clear()
            self._forget_schemas()
            fairy, self._point_fairy, self._point_con = self._point_fairy, None, None
            if fairy is not None:
                fairy.close()
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> SQLAlchemyDataBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
