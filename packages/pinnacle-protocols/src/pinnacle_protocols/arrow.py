"""Portable rows as Arrow: the canonical Arrow form of a schema, and vectorised validation.

Needs ``pyarrow`` (imported on first use; this module imports nothing heavy at import time).
Databackends that speak Arrow (pinnacle-ibis) and the facade's ``db.insert`` / ``db.select``
use it, so every input is checked against exactly the rules of the reference
:class:`~pinnacle_protocols.memory.MemoryDataBackend`
(:func:`~pinnacle_protocols.records.coerce_value`) and rejected with
:class:`~pinnacle_protocols.errors.SchemaError` *before* anything is written, so an insert is
all-or-nothing. Rows end up in one *canonical* form, a ``pyarrow.Table`` whose
columns follow the portable schema's order with these types:

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

Lists of dicts are turned into columns once and checked per column in C (the set of Python
types in a column, then Arrow's own conversion and compute kernels for ranges, NUL bytes,
non-finite floats, time zones, vector dimensions); only JSON cells, which are Python values by
nature, are checked one by one. ``pyarrow.Table`` input takes the same vectorised checks. When
anything fails, the exact reference loop runs over the input to find the first bad row and
column and raise its error, so the fast path and the reference give the same answer.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timezone
from functools import partial
from itertools import chain, islice
from operator import attrgetter, is_not, itemgetter
from typing import TYPE_CHECKING, Any, Final, cast

from pinnacle_protocols.errors import ConfigError, SchemaError
from pinnacle_protocols.records import DType, Field, Schema, check_json, coerce_value
from pinnacle_protocols.tables import dump_json, load_json

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ABSENT",
    "CONVERT_ROWS",
    "DEFAULT_BATCH_ROWS",
    "INT64_MAX",
    "INT64_MIN",
    "arrow_python_columns",
    "arrow_type",
    "as_arrow",
    "canonical_arrow_schema",
    "canonical_columns",
    "canonical_table",
    "coerce_columns",
    "coerce_rows",
    "coerce_value",
    "dump_json",
    "empty_table",
    "insert_chunks",
    "is_insert_stream",
    "load_json",
    "python_values",
    "require_pyarrow",
    "rows_to_arrow",
    "storage_value",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Rows per batch when an insert streams an iterator (bounded memory: one batch at a time).
DEFAULT_BATCH_ROWS: Final = 100_000
#: Dicts gathered before ``insert_chunks``' ``convert`` turns them into Arrow (see there).
CONVERT_ROWS: Final = 4096


def require_pyarrow(what: str) -> Any:
    """Import and return ``pyarrow``, or raise ConfigError saying what needs it."""
    try:
        import pyarrow
    except ImportError as exc:
        raise ConfigError(f"{what} needs pyarrow: pip install pyarrow") from exc
    return pyarrow


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


def coerce_rows(schema: Schema, rows: Sequence[Any], table: str, first: int = 0) -> list[list[Any]]:
    """Validate dict rows cell by cell (the reference rules); return them column-wise.

    This is the exact loop: it raises the error of the first bad row (numbered from
    ``first``) and, within it, the first bad column. Values come back canonical (JSON as text).
    """
    return _exact_columns(schema, rows, table, first=first)


#: The value of an ``extra`` key a row does not have (see :func:`coerce_columns`).
ABSENT: Final[Any] = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()


def _exact_columns(
    schema: Schema,
    rows: Sequence[Any],
    table: str,
    *,
    first: int = 0,
    json_text: bool = True,
    extra: Sequence[str] = (),
) -> list[list[Any]]:
    """The reference loop behind :func:`coerce_rows` and :func:`coerce_columns`."""
    columns: list[list[Any]] = [[] for _ in schema.fields]
    extras: list[list[Any]] = [[] for _ in extra]
    names = set(schema.names) | set(extra)
    for i, row in enumerate(rows, first):
        where = f"insert into {table!r}, row {i}"
        if not isinstance(row, Mapping):
            raise SchemaError(f"{where}: a row must be a dict, got {type(row).__name__}")
        unknown = [k for k in row if k not in names]
        if unknown:
            raise SchemaError(
                f"{where}: unknown column(s) {unknown!r}; the table has {list(schema.names)}"
            )
        for col, field in zip(columns, schema.fields, strict=True):
            value = coerce_value(field, row.get(field.name), where)
            col.append(storage_value(field, value) if json_text else value)
        for col, key in zip(extras, extra, strict=True):
            col.append(row.get(key, ABSENT))
    return columns + extras


def coerce_columns(
    schema: Schema,
    rows: Any,
    table: str,
    *,
    json_text: bool = True,
    extra: Sequence[str] = (),
) -> list[list[Any]]:
    """Validate insert input vectorised; return the coerced Python values column by column.

    For databackends whose driver takes Python values (``executemany``, ``insert_many``).
    ``rows`` is a list of dicts or Arrow data (a ``pyarrow`` Table or RecordBatch, a pandas or
    polars DataFrame). Column ``i`` of the result equals
    ``[coerce_value(field_i, row.get(field_i.name), where) for row in rows]`` (JSON cells as
    their text with ``json_text``): the reference rules, checked per column with Arrow's
    conversions and compute kernels instead of per cell. When a check fails, the exact
    reference loop runs to raise the reference's error (first bad row, then first bad column).

    ``extra`` names keys a row may carry besides the columns (MongoDB's ``_id``): they are not
    checked, and come back as one more column each, after the schema's, holding the row's
    value or :data:`ABSENT`. Without pyarrow installed the reference loop does all the work.

    Raises:
        SchemaError: a row is not a dict, has an unknown column or a value that does not fit.
    """
    if isinstance(rows, (Mapping, str, bytes)):
        raise SchemaError(f"insert into {table!r}: pass a list of dicts, not a single row")
    arrow = as_arrow(rows)
    if arrow is not None:
        found = arrow_python_columns(schema, arrow, table, json_text=json_text)
        if found is not None:  # no column of the table is an ``extra`` key: none is present
            return found + [[ABSENT] * arrow.num_rows for _ in extra]
        rows = arrow.to_pylist()
    rows = _row_sequence(rows, table)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return _exact_columns(schema, rows, table, json_text=json_text, extra=extra)
    fast = _fast_python_columns(schema, rows, json_text, extra)
    if fast is None:  # something is off: the exact loop raises the first error
        return _exact_columns(schema, rows, table, json_text=json_text, extra=extra)
    return fast


def as_arrow(data: Any) -> pa.Table | None:
    """``data`` as a ``pyarrow.Table`` if it is a Table, RecordBatch, pandas or polars DataFrame.

    Returns None for anything else (a list of dicts, an iterator). Only libraries already
    imported are looked at, so this never imports pandas or polars.
    """
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        if isinstance(data, pa.Table):
            return data
        if isinstance(data, pa.RecordBatch):
            return pa.Table.from_batches([data])
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(data, pd.DataFrame):
        pa = require_pyarrow("inserting a pandas DataFrame")
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaError(
                f"the pandas DataFrame does not convert to Arrow ({exc}); give each column one "
                "type (object columns must hold one kind of value)"
            ) from exc
    pl = sys.modules.get("polars")
    if pl is not None and isinstance(data, pl.DataFrame):
        return data.to_arrow()
    return None


def is_insert_stream(data: Any) -> bool:
    """Whether :func:`insert_chunks` streams ``data`` (possibly many chunks) rather than
    taking it whole as one chunk (a list, an Arrow table, a DataFrame; also True for input it
    rejects, which it raises on)."""
    if isinstance(data, (Mapping, str, bytes, list, tuple)) or hasattr(data, "to_pylist"):
        return False
    for module, names in (
        ("pyarrow", ("Table", "RecordBatch")),
        ("pandas", ("DataFrame",)),
        ("polars", ("DataFrame",)),
    ):
        found = sys.modules.get(module)
        if found is not None and isinstance(data, tuple(getattr(found, n) for n in names)):
            return False
    return True


def insert_chunks(
    data: Any,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    *,
    convert: Callable[[list[Any], int], pa.Table] | None = None,
    convert_rows: int = CONVERT_ROWS,
) -> Iterator[list[Any] | pa.Table]:
    """Split insert input into chunks a databackend takes whole (a list of dicts or an Arrow table).

    A list (or tuple) of dicts, a ``pyarrow.Table``/``RecordBatch`` and a pandas or polars
    DataFrame are one chunk: they are in memory already and stay all-or-nothing. Any other
    iterable streams: dicts are gathered ``batch_rows`` at a time, and each Table, RecordBatch,
    DataFrame or list it yields becomes its own chunks of at most ``batch_rows`` rows, so memory
    stays bounded by one batch whatever the length of the stream. Nothing of a chunk is kept
    here once the next is asked for (so the stream's item before is not held while the next
    is made).

    ``convert(rows, first)`` (for a backend that writes Arrow): streamed dicts are turned into
    Arrow ``convert_rows`` at a time (``first``: the index of ``rows[0]`` in its batch, for
    error messages) and a batch is yielded as one Arrow table of those parts, so no more than
    ``convert_rows`` dicts of the stream are held at once instead of a whole batch of them.

    Raises:
        SchemaError: a single dict (not a list of them), a string, or something not iterable;
            whatever ``convert`` raises.
    """
    if batch_rows < 1:
        raise SchemaError(f"batch_rows must be at least 1, got {batch_rows!r}")
    if isinstance(data, (Mapping, str, bytes)):
        raise SchemaError("insert takes a list of dicts (or Arrow data), not a single row")
    if isinstance(data, (list, tuple)):
        yield data if isinstance(data, list) else list(data)
        return
    table = as_arrow(data)
    if table is not None:
        yield table
        return
    if hasattr(data, "to_pylist"):  # an Arrow-like table from another library
        rows: list[Any] = data.to_pylist()
        yield rows
        return
    try:
        items = iter(data)
    except TypeError:
        raise SchemaError(
            f"insert takes a list of dicts, a pyarrow Table or RecordBatch, a pandas or polars "
            f"DataFrame, or an iterator of those; got {type(data).__name__}"
        ) from None
    if convert is not None and convert_rows < 1:
        raise SchemaError(f"convert_rows must be at least 1, got {convert_rows!r}")
    pending: list[Any] = []  # dicts of the batch being gathered (not converted yet)
    parts: list[Any] = []  # with ``convert``: the batch's dicts converted so far
    done = 0  # rows in ``parts``
    for item in items:
        if isinstance(item, Mapping):
            pending.append(item)
            del item  # held by ``pending`` (or by ``parts`` once converted)
            if convert is None:
                if len(pending) >= batch_rows:
                    yield pending
                    pending = []
            elif len(pending) >= min(convert_rows, batch_rows - done):
                parts.append(convert(pending, done))
                done += len(pending)
                pending = []
                if done >= batch_rows:
                    yield _joined(parts)
                    parts, done = [], 0
            continue
        if pending or parts:
            yield _gathered(pending, parts, done, convert)
            pending, parts, done = [], [], 0
        part = as_arrow(item)
        if part is not None:
            for start in range(0, part.num_rows, batch_rows):
                yield part.slice(start, batch_rows)
        elif isinstance(item, (list, tuple)):
            for start in range(0, len(item), batch_rows):
                yield list(islice(item, start, start + batch_rows))
        else:
            raise SchemaError(
                f"an insert stream yields dicts, lists of dicts, pyarrow Tables or RecordBatches "
                f"or DataFrames; got {type(item).__name__}"
            )
        del item, part  # the next item is made without this one alive
    if pending or parts:
        yield _gathered(pending, parts, done, convert)


def _gathered(
    pending: list[Any],
    parts: list[Any],
    done: int,
    convert: Callable[[list[Any], int], pa.Table] | None,
) -> list[Any] | pa.Table:
    """The rest of a batch of streamed dicts as one chunk (``convert``: as one Arrow table)."""
    if convert is None:
        return pending
    if pending:
        parts.append(convert(pending, done))
        pending.clear()
    return _joined(parts)


def _joined(parts: list[Any]) -> pa.Table:
    """Arrow tables of one schema as one table (zero-copy: their chunks side by side)."""
    import pyarrow as pa

    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


def _row_sequence(rows: Any, table: str) -> Sequence[Any]:
    """``rows`` as a sequence: as given, a DataFrame-like's rows, or a one-pass iterable listed.

    Raises:
        SchemaError: ``rows`` is not iterable.
    """
    if isinstance(rows, Sequence):
        return rows
    if hasattr(rows, "to_pylist"):
        return cast(Sequence[Any], rows.to_pylist())
    try:
        return list(rows)
    except TypeError:
        raise SchemaError(
            f"insert into {table!r}: expected a list of dicts or a pyarrow Table, got "
            f"{type(rows).__name__}"
        ) from None


def canonical_table(schema: Schema, rows: Any, table: str, first: int = 0) -> pa.Table:
    """Validate ``rows`` (dicts, or Arrow data) and return the canonical Arrow table.

    An error names dict rows numbered from ``first`` (a part of a larger batch).

    Raises:
        SchemaError: a row has an unknown column or a value of the wrong type; nothing is
            returned, so nothing gets written.
    """
    import pyarrow as pa

    if isinstance(rows, (Mapping, str, bytes)):
        raise SchemaError(f"insert into {table!r}: pass a list of dicts, not a single row")
    arrow = as_arrow(rows)
    if arrow is not None:
        return _canonical_from_arrow(schema, arrow, table)
    rows = _row_sequence(rows, table)
    arrow_schema = canonical_arrow_schema(schema)
    arrays = _fast_dict_columns(schema, rows)
    if arrays is None:  # something is off: the exact loop raises the first error
        columns = coerce_rows(schema, rows, table, first)
        arrays = [
            pa.array(col, type=arrow_type(f)) for col, f in zip(columns, schema.fields, strict=True)
        ]
    return pa.Table.from_arrays(arrays, schema=arrow_schema)


def canonical_columns(
    schema: Schema, columns: Mapping[str, Sequence[Any] | pa.Array], table: str
) -> pa.Table:
    """:func:`canonical_table` of rows given column by column: ``columns`` maps a column name
    to its values (a list, or an Arrow array such as a ``FixedSizeList`` of a vector batch),
    all of one length; a column left out is null. No dict per row is made.

    Each column takes the vectorised checks of :func:`canonical_table`; when any is unsure, the
    rows are made into dicts and :func:`canonical_table` gives its own answer (the same table,
    or its SchemaError naming the first bad row and column).
    """
    import pyarrow as pa

    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise SchemaError(f"insert into {table!r}: the columns have different lengths {lengths}")
    n = lengths.pop() if lengths else 0
    arrays: list[pa.Array] = []
    usable = set(columns) <= set(schema.names)
    for field in schema.fields if usable else ():
        values = columns.get(field.name)
        array: pa.Array | None
        if values is None:
            array = pa.nulls(n, type=arrow_type(field))
        elif isinstance(values, (pa.Array, pa.ChunkedArray)):
            chunked = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
            column = _canonical_column(field, chunked, table)
            array = None if column is None else column.combine_chunks()
        else:
            array = _fast_column(field, list(values))
        if array is None or (array.null_count and not field.nullable):
            usable = False
            break
        arrays.append(array)
    if usable:
        return pa.Table.from_arrays(arrays, schema=canonical_arrow_schema(schema))
    names = list(columns)
    cells = [
        v.to_pylist() if isinstance(v, (pa.Array, pa.ChunkedArray)) else v for v in columns.values()
    ]
    return canonical_table(
        schema, [dict(zip(names, row, strict=True)) for row in zip(*cells, strict=True)], table
    )


def rows_to_arrow(fields: Sequence[Field], rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Portable rows read back from a store (valid already) as the canonical Arrow table.

    Keys of the rows that are not among ``fields`` (a native ``_id``) are left out.
    """
    import pyarrow as pa

    if not fields:
        return pa.table({})
    names = {f.name for f in fields}
    rows = [r if r.keys() <= names else {k: r[k] for k in names if k in r} for r in rows]
    return canonical_table(Schema(fields=tuple(fields)), rows, "result")


# ---------------------------------------------------------------------- dicts, vectorised
_NONE = type(None)
_ALLOWED: Final[Mapping[DType, frozenset[type]]] = {
    DType.INT: frozenset({int, _NONE}),
    DType.FLOAT: frozenset({float, int, _NONE}),
    DType.STR: frozenset({str, _NONE}),
    DType.BOOL: frozenset({bool, _NONE}),
    DType.BYTES: frozenset({bytes, _NONE}),
    DType.DATETIME: frozenset({datetime, _NONE}),
    DType.VECTOR: frozenset({list, tuple, _NONE}),
}
_not_none = partial(is_not, None)
_tzinfo = attrgetter("tzinfo")


def _fast_dict_columns(schema: Schema, rows: Sequence[Any]) -> list[pa.Array] | None:
    """The canonical arrays of valid dict rows, or None when any check fails (or is unsure).

    Python-level work is one pass per column to pick the values out (as
    ``pyarrow.Table.from_pylist`` does) and a C-level ``set(map(type, ...))``; the value
    checks are Arrow conversions and compute kernels.
    """
    import pyarrow as pa

    if not rows:
        return [pa.array([], type=arrow_type(f)) for f in schema.fields]
    if set(map(type, rows)) != {dict}:
        return None
    if not set().union(*rows) <= set(schema.names):
        return None
    arrays = []
    for field in schema.fields:
        name = field.name
        try:
            values = list(map(itemgetter(name), rows))  # C-level when every row has the key
        except KeyError:
            values = [r.get(name) for r in rows]
        array = _fast_column(field, values)
        if array is None or (array.null_count and not field.nullable):
            return None
        arrays.append(array)
    return arrays


def _fast_column(field: Field, values: list[Any]) -> pa.Array | None:
    import pyarrow as pa

    dtype = field.dtype
    if dtype is DType.JSON:
        texts: list[str | None] = []
        try:
            for v in values:
                if v is None:
                    texts.append(None)
                else:
                    check_json(v, "json", SchemaError)
                    texts.append(dump_json(v))
        except (SchemaError, ValueError, TypeError):
            return None
        return pa.array(texts, type=pa.string())
    types = set(map(type, values))
    if not types <= _ALLOWED[dtype]:
        return None
    if types == {_NONE}:
        return pa.nulls(len(values), type=arrow_type(field))
    if dtype is DType.DATETIME:
        present = values if _NONE not in types else list(filter(_not_none, values))
        # a fixed offset (datetime.timezone) has a utcoffset; other tzinfos: the exact loop
        if not all(type(tz) is timezone for tz in set(map(_tzinfo, present))):
            return None
    if dtype is DType.VECTOR:
        present = values if _NONE not in types else list(filter(_not_none, values))
        # Arrow's inference would turn a bool after a float into 1.0: check item types here
        if not set(map(type, chain.from_iterable(present))) <= {float, int}:
            return None
    try:
        array = pa.array(values, type=arrow_type(field))
    except (pa.ArrowException, OverflowError, UnicodeError, TypeError, ValueError):
        return None
    if dtype is DType.VECTOR:
        column = _canonical_column(field, pa.chunked_array([array]))
        return None if column is None else column.combine_chunks()
    return _checked(field, array)


def _fast_python_columns(
    schema: Schema, rows: Sequence[Any], json_text: bool, extra: Sequence[str]
) -> list[list[Any]] | None:
    """:func:`coerce_columns` of valid dict rows, or None when any check fails (or is unsure).

    The Python values are the input's own wherever the reference returns them unchanged;
    Arrow arrays are built only to run the checks (and to convert ints in float columns).
    """
    if not rows:
        return [[] for _ in (*schema.fields, *extra)]
    if set(map(type, rows)) != {dict}:
        return None
    # Rows of as many keys as the table has columns hold exactly its columns when each row has
    # each column (the picks below raise KeyError otherwise): no union of all keys is needed.
    full = not extra and set(map(len, rows)) == {len(schema.fields)}
    keys = set(schema.names) if full else set().union(*rows)
    if not keys <= {*schema.names, *extra}:
        return None
    try:
        picked = _picked(schema, rows) if full else None
    except KeyError:  # a row lacks a column, so it has an unknown key: the exact loop says which
        return None
    columns = []
    for i, field in enumerate(schema.fields):
        name = field.name
        try:
            if picked is not None:
                values = picked[i :: len(schema.fields)]
            else:
                values = list(map(itemgetter(name), rows))  # C-level when rows have the key
        except KeyError:
            if full:  # a row lacks a column, so it has an unknown key: the exact loop says which
                return None
            values = [r.get(name) for r in rows]
        column = _python_column(field, values, json_text)
        if column is None:
            return None
        columns.append(column)
    for key in extra:
        columns.append([r.get(key, ABSENT) for r in rows] if key in keys else [ABSENT] * len(rows))
    return columns


def _picked(schema: Schema, rows: Sequence[Any]) -> list[Any] | None:
    """Every row's values in the schema's column order, one flat list (column ``i`` is the
    slice ``[i::width]``), picked in one C-level pass; None for fewer than two columns.

    Raises:
        KeyError: a row lacks a column.
    """
    if len(schema.fields) < 2:
        return None
    # the row tuples are consumed as made (none is held): cheaper than one pass per column
    return list(chain.from_iterable(map(itemgetter(*schema.names), rows)))


def _python_column(field: Field, values: list[Any], json_text: bool) -> list[Any] | None:
    """``[coerce_value(field, v, ...) for v in values]`` when every value passes, else None."""
    import pyarrow as pa

    dtype = field.dtype
    types = set(map(type, values))
    if _NONE in types and not field.nullable:
        return None
    if dtype is DType.JSON:  # Python values by nature: checked one by one
        return _json_column(values, json_text)
    if not types <= _ALLOWED[dtype]:
        return None
    if types == {_NONE} or dtype in (DType.BOOL, DType.BYTES):
        return values  # exact bools and bytes are their own coerced values
    if len(types) == 1 and _plain_column(dtype, types, values):
        return values
    if dtype is DType.DATETIME:
        present = values if _NONE not in types else list(filter(_not_none, values))
        zones = set(map(_tzinfo, present))
        if not all(type(tz) is timezone for tz in zones):
            return None
        if zones == {UTC}:
            return values
        try:  # normalising, not checking: the values are known valid
            return [None if v is None else v.astimezone(UTC) for v in values]
        except (OverflowError, ValueError):
            return None
    if dtype is DType.VECTOR:
        present = values if _NONE not in types else list(filter(_not_none, values))
        items = set(map(type, chain.from_iterable(present)))
        if not items <= {float, int}:
            return None
    try:
        array = pa.array(values, type=arrow_type(field))
        if dtype is DType.VECTOR:
            column = _canonical_column(field, pa.chunked_array([array]))
            if column is None:
                return None
            plain = types <= {list, _NONE} and items <= {float}
            converted: list[Any] = values if plain else column.to_pylist()
            return converted
        if _checked(field, array) is None:
            return None
        if dtype is DType.FLOAT and int in types:
            return python_values(array)
    except (pa.ArrowException, OverflowError, UnicodeError, TypeError, ValueError):
        return None
    return values


def _plain_column(dtype: DType, types: set[type], values: list[Any]) -> bool:
    """Whether a column of only ``int``, only ``float`` or only ``str`` values (no None) passes
    the rules, proved with C-level passes over the list and no Arrow array.

    False means "not proved": the caller runs the Arrow checks, which decide. A 64-bit int
    column's extremes are in range; a float column's sum is finite only if every value is
    (an ``inf`` or ``NaN`` makes the sum ``inf`` or ``NaN``; finite values whose sum overflows
    are merely not proved); a string column's joined text holds NUL or a lone surrogate exactly
    when one of its strings does.
    """
    if dtype is DType.INT and types == {int}:
        return bool(min(values) >= INT64_MIN and max(values) <= INT64_MAX)
    if dtype is DType.FLOAT and types == {float}:
        return math.isfinite(sum(values))
    if dtype is DType.STR and types == {str}:
        text = "".join(values)
        if "\x00" in text:
            return False
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return False
        return True
    return False


def arrow_python_columns(
    schema: Schema, data: pa.Table, table: str, *, json_text: bool = True
) -> list[list[Any]] | None:
    """:func:`coerce_columns` of a ``pyarrow.Table`` when the vectorised checks prove it valid.

    Column ``i`` holds the Python values of column ``i`` of :func:`canonical_table` (JSON as
    its text with ``json_text``), made in one conversion per column (:func:`python_values`),
    without building the canonical table. None for unknown columns and for any column the
    checks do not prove valid: the caller then runs the exact rules (:func:`coerce_columns`'
    reference loop, or :func:`canonical_table`) to raise their error.

    Raises:
        SchemaError: the table repeats a column name, or a timestamp column has
            sub-microsecond values (the errors :func:`canonical_table` raises for them).
    """
    if len(set(data.column_names)) != len(data.column_names):
        raise SchemaError(f"insert into {table!r}: the Arrow table repeats a column name")
    if not set(data.column_names) <= set(schema.names):
        return None
    columns: list[list[Any]] = []
    for field in schema.fields:
        if field.name not in data.column_names:
            if data.num_rows and not field.nullable:
                return None
            columns.append([None] * data.num_rows)
            continue
        column = data.column(field.name)
        if column.null_count and not field.nullable:
            return None
        if field.dtype is DType.JSON:  # Python values by nature: checked one by one
            found = _json_column(column.to_pylist(), json_text)
            if found is None:
                return None
            columns.append(found)
            continue
        canonical = _canonical_column(field, column, table)
        if canonical is None:
            return None
        columns.append(python_values(canonical))
    return columns


def python_values(column: pa.Array | pa.ChunkedArray) -> list[Any]:
    """``column.to_pylist()``, faster for null-free ``int64``, ``float64`` and ``bool`` columns.

    Those go through NumPy's ``tolist``, which makes the same Python ints, floats and bools in
    about half the time; any other column (or one with nulls, or without NumPy) is converted
    by Arrow as usual.
    """
    import pyarrow as pa

    typ = column.type
    if not column.null_count and (
        pa.types.is_int64(typ) or pa.types.is_float64(typ) or pa.types.is_boolean(typ)
    ):
        if not len(column):
            return []
        try:
            values: list[Any] = column.to_numpy().tolist()
        except ImportError:  # pragma: no cover - numpy comes with pandas/duckdb in practice
            return cast(list[Any], column.to_pylist())
        return values
    return cast(list[Any], column.to_pylist())


def _json_column(values: list[Any], json_text: bool) -> list[Any] | None:
    """Checked JSON cells (their text with ``json_text``), or None if one is not JSON data."""
    try:
        for v in values:
            if v is not None:
                check_json(v, "json", SchemaError)
        if json_text:
            return [None if v is None else dump_json(v) for v in values]
    except (SchemaError, ValueError, TypeError):
        return None
    return values


def _checked(field: Field, array: pa.Array) -> pa.Array | None:
    """``array`` if its values pass the portable rules that Arrow's conversion does not check."""
    import pyarrow.compute as pc

    if field.dtype is DType.FLOAT and pc.all(pc.is_finite(array)).as_py() is False:
        return None
    if field.dtype is DType.STR and _may_hold_nul(array) and _has_nul(array):
        return None
    return array


def _has_nul(column: Any) -> bool:
    import pyarrow.compute as pc

    return bool(pc.any(pc.match_substring(column, "\x00")).as_py())


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
            column = data.column(field.name)
            fast = None
            if not (column.null_count and not field.nullable):
                fast = _canonical_column(field, column, table)
            arrays.append(fast if fast is not None else _slow_column(field, column, table))
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


def _may_hold_nul(column: Any) -> bool:
    """False when no chunk's character data holds a zero byte (a fast, conservative test)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with pandas/duckdb in practice
        return True
    chunks = column.chunks if hasattr(column, "chunks") else [column]
    for chunk in chunks:
        data = chunk.buffers()[2]
        if data is not None and data.size and not np.frombuffer(data, dtype=np.uint8).all():
            return True
    return False


def _canonical_column(
    field: Field, column: pa.ChunkedArray, table: str = "result"
) -> pa.ChunkedArray | None:
    """``column`` cast to its canonical type when vectorised checks prove it valid, else None.

    Nulls in a non-nullable column are the caller's to check.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    typ = column.type
    if pa.types.is_dictionary(typ):
        column = pc.cast(column, typ.value_type)
        typ = column.type
    if pa.types.is_null(typ):
        return pa.chunked_array([pa.nulls(len(column), type=arrow_type(field))])
    dtype = field.dtype
    if dtype is DType.INT and pa.types.is_integer(typ):
        if pa.types.is_uint64(typ) and len(column) - column.null_count:
            top = pc.max(column).as_py()
            if top is not None and top > INT64_MAX:
                return None
        return column if pa.types.is_int64(typ) else pc.cast(column, pa.int64())
    if dtype is DType.FLOAT and (pa.types.is_integer(typ) or pa.types.is_floating(typ)):
        cast = pc.cast(column, pa.float64(), safe=False)
        if pa.types.is_floating(typ) and pc.all(pc.is_finite(cast)).as_py() is False:
            return None
        return cast
    if dtype is DType.STR and (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        if _may_hold_nul(column) and _has_nul(column):
            return None
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
        if pa.types.is_null(vt) or pa.types.is_floating(vt) or pa.types.is_integer(vt):
            flat = pc.list_flatten(column)
            ok = flat.null_count == 0 and (
                not pa.types.is_floating(vt) or pc.all(pc.is_finite(flat)).as_py() is not False
            )
            if ok and field.dim is not None:
                lengths = pc.list_value_length(column)
                ok = pc.all(pc.equal(lengths, field.dim)).as_py() is not False
            if ok:
                return pc.cast(column, pa.list_(pa.float64()), safe=False)
    return None
