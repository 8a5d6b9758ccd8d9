"""Validation and normalisation of portable values before they reach an engine.

Every backend of this package accepts exactly what the reference
:class:`~pinnacle_protocols.memory.MemoryDataBackend` accepts and rejects the rest with
:class:`~pinnacle_protocols.errors.SchemaError` *before* anything is written, so an insert is
all-or-nothing. Rows end up in one *canonical* form, a ``pyarrow.Table`` whose columns follow the
portable schema's order with these types:

========  ==============================  =============================================
DType     canonical Arrow type            notes
========  ==============================  =============================================
int       ``int64``
float     ``float64``                     finite only
str       ``string``                      no NUL
bool      ``bool``
bytes     ``binary``
datetime  ``timestamp("us", tz="UTC")``   aware datetimes only, microsecond precision
json      ``string``                      the JSON text (``json.dumps``) of the value
vector    ``list<float64>``               finite items, ``dim`` checked
========  ==============================  =============================================

Lists of dicts go through a Python loop that mirrors the reference exactly; ``pyarrow.Table``
input takes a vectorised path (casts and compute kernels) for the common column types and falls
back to the Python loop for anything unusual, so both give the same answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pinnacle_protocols.errors import SchemaError
from pinnacle_protocols.records import DType, Field, Schema, coerce_value

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "arrow_type",
    "canonical_arrow_schema",
    "canonical_table",
    "coerce_value",
    "dump_json",
    "empty_table",
    "load_json",
    "storage_value",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def dump_json(value: Any) -> str:
    """The JSON text stored for a JSON cell (compact, non-ASCII kept, key order kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def load_json(text: Any) -> Any:
    """Parse a JSON cell read back from an engine (``None`` stays NULL)."""
    if text is None:
        return None
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8")
    if not isinstance(text, str):  # a driver that already parsed it
        return text
    return json.loads(text)


def arrow_type(field: Field) -> pa.DataType:
    """The canonical Arrow type of a portable column (see the module docstring)."""
    import pyarrow as pa

    dtype = field.dtype
    if dtype is DType.INT:
        return pa.int64()
    if dtype is DType.FLOAT:
        return pa.float64()
    if dtype in (DType.STR, DType.JSON):
        return pa.string()
    if dtype is DType.BOOL:
        return pa.bool_()
    if dtype is DType.BYTES:
        return pa.binary()
    if dtype is DType.DATETIME:
        return pa.timestamp("us", tz="UTC")
    return pa.list_(pa.float64())


def canonical_arrow_schema(schema: Schema) -> pa.Schema:
    """The Arrow schema of the canonical table of ``schema``."""
    import pyarrow as pa

    return pa.schema([pa.field(f.name, arrow_type(f), nullable=True) for f in schema.fields])


def empty_table(schema: Schema) -> pa.Table:
    """A canonical table without rows."""
    return canonical_arrow_schema(schema).empty_table()


def storage_value(field: Field, value: Any) -> Any:
    """A coerced cell in its canonical form (JSON becomes its text, the rest is unchanged)."""
    if value is not None and field.dtype is DType.JSON:
        return dump_json(value)
    return value


def coerce_rows(schema: Schema, rows: Sequence[Any], table: str) -> list[list[Any]]:
    """Validate dict rows; return them column-wise (canonical Python values, JSON as text)."""
    columns: list[list[Any]] = [[] for _ in schema.fields]
    names = set(schema.names)
    for i, row in enumerate(rows):
        where = f"insert into {table!r}, row {i}"
        if not isinstance(row, Mapping):
            raise SchemaError(f"{where}: a row must be a dict, got {type(row).__name__}")
        unknown = [k for k in row if k not in names]
        if unknown:
            raise SchemaError(
                f"{where}: unknown column(s) {unknown!r}; the table has {list(schema.names)}"
            )
        for col, field in zip(columns, schema.fields, strict=True):
            col.append(storage_value(field, coerce_value(field, row.get(field.name), where)))
    return columns


def canonical_table(schema: Schema, rows: Any, table: str) -> pa.Table:
    """Validate ``rows`` (dicts or an Arrow-like table) and return the canonical Arrow table.

    Raises:
        SchemaError: a row has an unknown column or a value of the wrong type; nothing is
            returned, so nothing gets written.
    """
    import pyarrow as pa

    if isinstance(rows, (Mapping, str, bytes)):
        raise SchemaError(f"insert into {table!r}: pass a list of dicts, not a single row")
    if isinstance(rows, pa.RecordBatch):
        rows = pa.Table.from_batches([rows])
    if isinstance(rows, pa.Table):
        return _canonical_from_arrow(schema, rows, table)
    if not isinstance(rows, Sequence) and hasattr(rows, "to_pylist"):
        rows = rows.to_pylist()
    elif not isinstance(rows, Sequence):
        try:
            rows = list(rows)
        except TypeError:
            raise SchemaError(
                f"insert into {table!r}: expected a list of dicts or a pyarrow Table, got "
                f"{type(rows).__name__}"
            ) from None
    columns = coerce_rows(schema, rows, table)
    arrays = [
        pa.array(col, type=arrow_type(f)) for col, f in zip(columns, schema.fields, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=canonical_arrow_schema(schema))


# ---------------------------------------------------------------------------- arrow input
def _canonical_from_arrow(schema: Schema, data: pa.Table, table: str) -> pa.Table:
    import pyarrow as pa

    names = set(schema.names)
    if len(set(data.column_names)) != len(data.column_names):
        raise SchemaError(f"insert into {table!r}: the Arrow table repeats a column name")
    unknown = [c for c in data.column_names if c not in names]
    if unknown and data.num_rows:
        raise SchemaError(
            f"insert into {table!r}, row 0: unknown column(s) {unknown!r}; the table has "
            f"{list(schema.names)}"
        )
    arrays = []
    for field in schema.fields:
        if field.name in data.column_names:
            arrays.append(_canonical_column(field, data.column(field.name), table))
        else:
            if not field.nullable and data.num_rows:
                raise SchemaError(
                    f"insert into {table!r}, row 0: column {field.name!r} is not nullable"
                )
            arrays.append(pa.chunked_array([pa.nulls(data.num_rows, type=arrow_type(field))]))
    return pa.Table.from_arrays(arrays, schema=canonical_arrow_schema(schema))


def _slow_column(field: Field, column: pa.ChunkedArray, table: str) -> pa.ChunkedArray:
    """Validate cell by cell in Python (exactly the reference rules); raises SchemaError."""
    import pyarrow as pa

    values = []
    for i, value in enumerate(column.to_pylist()):
        where = f"insert into {table!r}, row {i}"
        values.append(storage_value(field, coerce_value(field, value, where)))
    return pa.chunked_array([pa.array(values, type=arrow_type(field))])


def _may_hold_nul(column: pa.ChunkedArray) -> bool:
    """False when no chunk's character data holds a zero byte (a fast, conservative test)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with pandas/duckdb in practice
        return True
    for chunk in column.chunks:
        data = chunk.buffers()[2]
        if data is not None and data.size and not np.frombuffer(data, dtype=np.uint8).all():
            return True
    return False


def _canonical_column(field: Field, column: pa.ChunkedArray, table: str) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    typ = column.type
    if pa.types.is_dictionary(typ):
        column = pc.cast(column, typ.value_type)
        typ = column.type
    if column.null_count and not field.nullable:
        return _slow_column(field, column, table)  # raises with the row number
    if pa.types.is_null(typ):
        return pa.chunked_array([pa.nulls(len(column), type=arrow_type(field))])
    dtype = field.dtype
    if dtype is DType.INT and pa.types.is_integer(typ):
        if pa.types.is_uint64(typ) and len(column) - column.null_count:
            top = pc.max(column).as_py()
            if top is not None and top > INT64_MAX:
                return _slow_column(field, column, table)  # raises
        return column if pa.types.is_int64(typ) else pc.cast(column, pa.int64())
    if dtype is DType.FLOAT and (pa.types.is_integer(typ) or pa.types.is_floating(typ)):
        cast = pc.cast(column, pa.float64(), safe=False)
        if pa.types.is_floating(typ) and pc.all(pc.is_finite(cast)).as_py() is False:
            return _slow_column(field, column, table)  # raises
        return cast
    if dtype is DType.STR and (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        if _may_hold_nul(column) and pc.any(pc.match_substring(column, "\x00")).as_py():
            return _slow_column(field, column, table)  # raises
        return column if typ == pa.string() else pc.cast(column, pa.string())
    if dtype is DType.BOOL and pa.types.is_boolean(typ):
        return column
    if dtype is DType.BYTES and (
        pa.types.is_binary(typ)
        or pa.types.is_large_binary(typ)
        or pa.types.is_fixed_size_binary(typ)
    ):
        return pc.cast(column, pa.binary())
    if dtype is DType.DATETIME and pa.types.is_timestamp(typ) and typ.tz is not None:
        try:
            return pc.cast(column, pa.timestamp("us", tz="UTC"))
        except pa.ArrowInvalid as exc:
            raise SchemaError(
                f"insert into {table!r}: column {field.name!r} has sub-microsecond timestamps; "
                "round them to microseconds first"
            ) from exc
    if dtype is DType.VECTOR and (
        pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)
    ):
        vt = typ.value_type
        if pa.types.is_floating(vt) or pa.types.is_integer(vt):
            flat = pc.list_flatten(column)
            ok = flat.null_count == 0 and (
                pa.types.is_integer(vt) or pc.all(pc.is_finite(flat)).as_py() is not False
            )
            if ok and field.dim is not None:
                lengths = pc.list_value_length(column)
                ok = pc.all(pc.equal(lengths, field.dim)).as_py() is not False
            if ok:
                return pc.cast(column, pa.list_(pa.float64()), safe=False)
    return _slow_column(field, column, table)
