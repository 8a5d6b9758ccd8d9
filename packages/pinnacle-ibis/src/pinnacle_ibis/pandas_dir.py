"""``pandas://DIR``: a directory of Parquet files as a DataBackend, queried by DuckDB.

ibis 12 has no pandas backend any more, so the spec's "directory of pandas dataframes" is a
directory with one Parquet file per table (``DIR/<name>.parquet``), read through ibis's DuckDB
engine (each table is a DuckDB view over its file) and written with pyarrow:

* every write (insert, update, delete, create) builds the whole new table, writes it to a
  temporary file in ``DIR``, fsyncs it, and ``os.replace`` s it over the old file (then fsyncs
  the directory), so a crash leaves either the old or the new table, never a half-written one;
* writers take an exclusive ``flock`` on ``DIR/.pinnacle.lock`` around the read-modify-write,
  so concurrent writers (threads or processes) do not lose each other's rows;
* the portable schema is kept in the file's Parquet metadata (key ``pinnacle.schema``);
* :meth:`PandasDataBackend.select_df` returns a ``pandas.DataFrame`` instead of dicts.

File names are the table names with ``%``, ``/``, ``\\``, control characters and a leading
``.`` percent-encoded; on a case-insensitive file system (macOS, Windows) two names that differ
only in case are the same table.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from pinnacle_ibis import _sql
from pinnacle_ibis._values import arrow_type, canonical_arrow_schema, empty_table
from pinnacle_ibis.backend import (
    SelectQuery,
    _portable_dtype,
)
from pinnacle_ibis.engines import DuckDBDataBackend, _storage
from pinnacle_protocols.errors import BackendUnavailable, ConfigError, SchemaError
from pinnacle_protocols.filters import Filter
from pinnacle_protocols.protocols import OrderBy
from pinnacle_protocols.records import DType, Field, Schema
from pinnacle_protocols.tables import schema_from_text, schema_to_text
from pinnacle_protocols.uri import RedactedURI

if TYPE_CHECKING:
    import ibis.expr.datatypes as dt
    import pandas as pd
    import pyarrow as pa

__all__ = ["PandasDataBackend", "decode_table_name", "encode_table_name"]

SUFFIX = ".parquet"
SCHEMA_KEY = b"pinnacle.schema"
LOCK_FILE = ".pinnacle.lock"
_UNSAFE = set("%/\\")


def encode_table_name(name: str) -> str:
    """The file name of a table (reversible; see the module docstring)."""
    out: list[str] = []
    for i, ch in enumerate(name):
        if ch in _UNSAFE or ord(ch) < 0x20 or ord(ch) == 0x7F or (i == 0 and ch == "."):
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out) + SUFFIX


def decode_table_name(filename: str) -> str | None:
    """The table name of a file name, or None when the file is not a table."""
    from urllib.parse import unquote

    if not filename.endswith(SUFFIX) or filename.startswith("."):
        return None
    return unquote(filename[: -len(SUFFIX)], errors="strict")


@attrs.define(kw_only=True, eq=False, slots=False)
class PandasDataBackend(DuckDBDataBackend):
    """A directory of Parquet files, one per table; DuckDB reads, pyarrow writes atomically.

    UPDATE and DELETE are supported by rewriting the table's file.
    """

    supports_update: ClassVar[bool] = True
    supports_delete: ClassVar[bool] = True

    _directory: Path = attrs.field(alias="directory", converter=Path)
    _views: set[str] = attrs.field(factory=set, init=False, repr=False)

    @classmethod
    def _from_parsed(cls, uri: RedactedURI, options: dict[str, Any]) -> PandasDataBackend:
        if options:
            raise ConfigError(f"{uri} takes no options, got {sorted(options)}")
        return cls(uri=uri, directory=Path(uri.path or "."))

    @property
    def directory(self) -> Path:
        """The directory holding the Parquet files."""
        return self._directory

    def _connect(self) -> Any:
        import ibis

        self._make_directory()
        self._remove_stale_temporaries()
        return ibis.duckdb.connect()

    def _make_directory(self) -> None:
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailable(
                f"{self._uri}: cannot create the directory {str(self._directory)!r} "
                f"({exc.strerror or exc}); choose a directory you can write to, or create it first"
            ) from exc

    def _remove_stale_temporaries(self, age: float = 3600.0) -> None:
        """Remove temporary files a crashed writer left behind (older than ``age`` seconds)."""
        import time

        cutoff = time.time() - age
        for entry in self._directory.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()

    def _after_connect(self, con: Any) -> None:
        self._views = set()

    def _create_index(
        self, table: str, schema: Schema, columns: list[str], *, unique: bool
    ) -> bool:
        """Parquet files keep no secondary indexes."""
        del table, schema, columns, unique
        return False

    # ------------------------------------------------------------------ files
    def _path(self, name: str) -> Path:
        return self._directory / encode_table_name(name)

    def _check_name(self, kind: str, name: str) -> None:
        if kind == "table" and len(encode_table_name(name).encode("utf-8")) > 250:
            raise SchemaError(f"table name {name!r} is too long for a file name")

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        import fcntl

        self._make_directory()
        with open(self._directory / LOCK_FILE, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _replace_file(self, name: str, schema: Schema, table: pa.Table) -> None:
        """Write ``table`` as the table's file: temp file, fsync, os.replace, fsync dir."""
        import pyarrow.parquet as pq

        table = table.cast(canonical_arrow_schema(schema)).replace_schema_metadata(
            {SCHEMA_KEY: schema_to_text(schema).encode("utf-8")}
        )
        final = self._path(name)
        tmp = self._directory / f".{secrets.token_hex(8)}.tmp"
        try:
            with open(tmp, "wb") as fh:
                pq.write_table(table, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        fd = os.open(self._directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read_file(self, name: str, schema: Schema) -> pa.Table:
        import pyarrow.parquet as pq

        return pq.read_table(self._path(name)).cast(canonical_arrow_schema(schema))

    # ------------------------------------------------------------------ catalog
    def _physical_tables(self) -> list[str]:
        if not self._directory.is_dir():
            return []
        names = []
        for entry in os.listdir(self._directory):
            try:
                name = decode_table_name(entry)
            except UnicodeDecodeError:
                continue
            if name is not None:
                names.append(name)
        return names

    def _physical_exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def _exists_for_create(self, name: str) -> bool:
        return self._physical_exists(name)

    def _load_schemas(self) -> dict[str, Schema]:
        import pyarrow.parquet as pq

        out: dict[str, Schema] = {}
        for name in self._physical_tables():
            try:
                arrow_schema = pq.read_schema(self._path(name))
            except (OSError, ValueError):
                continue  # a file vanished meanwhile, or is not Parquet
            meta = arrow_schema.metadata or {}
            if SCHEMA_KEY in meta:
                out[name] = schema_from_text(meta[SCHEMA_KEY].decode("utf-8"))
            else:
                out[name] = _schema_from_arrow(arrow_schema)
        return out

    def _schema(self, name: str) -> Schema:
        schema = super()._schema(name)
        self._ensure_view(name)
        return schema

    def _ensure_view(self, name: str) -> None:
        import sqlglot.expressions as sge

        if name in self._views:
            return
        read = sge.Anonymous(
            this="read_parquet", expressions=[sge.Literal.string(str(self._path(name)))]
        )
        body = sge.select(sge.Star()).from_(read)
        sql = f"CREATE OR REPLACE VIEW {self._q(name)} AS {_sql.render(body, self._dialect())}"
        self._dbapi.execute(sql)
        self._views.add(name)

    def _drop_view(self, name: str) -> None:
        if name in self._views:
            self._dbapi.execute(f"DROP VIEW IF EXISTS {self._q(name)}")
            self._views.discard(name)

    def _ibis_dtype(self, field: Field) -> dt.DataType:
        import ibis.expr.datatypes as dt

        if field.dtype is DType.JSON:
            return dt.String(nullable=field.nullable)
        return super()._ibis_dtype(field)

    def _create_physical(self, name: str, schema: Schema) -> None:
        from pinnacle_protocols.errors import TableExists

        with self._file_lock():
            if self._physical_exists(name):
                raise TableExists(f"table {name!r} already exists in {self._uri}")
            self._replace_file(name, schema, empty_table(schema))
        self._drop_view(name)

    def _drop_physical(self, name: str) -> None:
        with self._file_lock():
            self._drop_view(name)
            with contextlib.suppress(FileNotFoundError):
                self._path(name).unlink()

    def _drop_schema_store(self) -> None:
        """Nothing to drop: schemas live in the table files."""

    def _native(self, table: str) -> Any:
        self._ensure_view(table)
        return self._conn().table(table)

    # ------------------------------------------------------------------ writes
    def _write(self, name: str, schema: Schema, data: pa.Table) -> None:
        import pyarrow as pa

        with self._file_lock():
            current = self._read_file(name, schema)
            self._replace_file(name, schema, pa.concat_tables([current, data]))

    def _masked(self, name: str, schema: Schema, where: Filter | None) -> tuple[pa.Table, Any]:
        """The table's rows and a boolean mask of the rows matching ``where``."""
        import pyarrow as pa
        import sqlglot.expressions as sge

        current = self._read_file(name, schema)
        params = _sql.Params()
        cond = self._condition(name, schema, where, params, exact=True)
        if cond is None:
            return current, pa.array([True] * current.num_rows, type=pa.bool_())
        self._dbapi.register("__pinnacle_rows", current)
        try:
            stmt = sge.select(sge.alias_(cond, "m", quoted=True)).from_(
                sge.to_identifier("__pinnacle_rows", quoted=True)
            )
            sql = params.bind(_sql.render(stmt, self._dialect()), self.paramstyle)
            mask = self._arrow(sql, params.values).column(0)
        finally:
            self._dbapi.unregister("__pinnacle_rows")
        return current, mask

    def _update(
        self, name: str, schema: Schema, where: Filter | None, values: Mapping[str, Any]
    ) -> int:
        import pyarrow as pa
        import pyarrow.compute as pc

        with self._file_lock():
            current, mask = self._masked(name, schema, where)
            matched = int(pc.sum(mask).as_py() or 0)
            if matched:
                columns = []
                for i, field in enumerate(schema.fields):
                    col = current.column(i)
                    if field.name in values:
                        value = pa.scalar(
                            _storage(field, values[field.name]), type=arrow_type(field)
                        )
                        col = pc.if_else(mask, value, col)
                    columns.append(col)
                new = pa.Table.from_arrays(columns, schema=canonical_arrow_schema(schema))
                self._replace_file(name, schema, new)
            return matched

    def _delete(self, name: str, schema: Schema, where: Filter | None) -> int:
        import pyarrow.compute as pc

        with self._file_lock():
            current, mask = self._masked(name, schema, where)
            matched = int(pc.sum(mask).as_py() or 0)
            if matched:
                self._replace_file(name, schema, current.filter(pc.invert(mask)))
            return matched

    # ------------------------------------------------------------------ pandas
    def select_df(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
    ) -> pd.DataFrame:
        """Like :meth:`select`, as a ``pandas.DataFrame`` (one column per selected column).

        Values are the portable Python values (JSON as Python objects, vectors as lists,
        datetimes timezone-aware UTC); NULL is ``None`` in object columns and ``NaN``/``NaT``
        where pandas chooses its own missing-value marker.
        """
        import pandas as pd

        rows = self.select(table, where, columns=columns, limit=limit, order_by=order_by)
        with self._lock:
            names = (
                list(dict.fromkeys(columns))
                if columns is not None
                else list(self._schema(table).names)
            )
        return pd.DataFrame.from_records(rows, columns=names)

    @classmethod
    def default_metadata_uri_for(cls, uri: RedactedURI) -> RedactedURI | None:
        """None: pinnacle-sql has no store for a Parquet directory (the facade picks SQLite)."""
        return None

    def _select(self, table: str, schema: Schema, query: SelectQuery) -> list[dict[str, Any]]:
        self._ensure_view(table)
        return super()._select(table, schema, query)


def _schema_from_arrow(arrow_schema: pa.Schema) -> Schema:
    """A portable schema for a Parquet file not written by this package (best effort)."""
    import ibis

    ibis_schema = ibis.Schema.from_pyarrow(arrow_schema)
    return Schema(
        fields=tuple(
            Field(name=col, dtype=_portable_dtype(typ), nullable=True)
            for col, typ in ibis_schema.items()
        )
    )
