"""Portable rows <-> MongoDB documents: schema validation, field names and NULLs.

A table created through :meth:`MongoDataBackend.create_table` keeps its portable schema in the
``_pinnacle_schemas`` collection. Rows are validated against it exactly as the in-memory
reference backend validates them (same accepted values, same normalisation: floats are stored
as doubles, datetimes as UTC, vectors as lists of doubles), and every column is written, NULL
as ``null``, so a document always has one field per column.

Column names become document field names unchanged unless MongoDB would misread them: a name
containing ``.`` (a path separator in queries) or ``%``, or starting with ``$`` (an operator),
is percent-encoded (``a.b`` is stored as ``a%2Eb``). ``_id`` is the document id and cannot be
a column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from pinnacle_protocols.errors import SchemaError
from pinnacle_protocols.records import DType, Field, Schema

__all__ = ["RowPlace", "TableCodec", "decode_field", "encode_field"]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class RowPlace:
    """Names a row in error messages ("insert into 't', row 3"), formatted only when needed."""

    __slots__ = ("index", "table")

    def __init__(self, table: str, index: int) -> None:
        """The ``index``-th row of an insert into ``table``."""
        self.table = table
        self.index = index

    def __str__(self) -> str:
        return f"insert into {self.table!r}, row {self.index}"


def encode_field(name: str) -> str:
    """The document field name of a column (identity for ordinary names)."""
    if "%" not in name and "." not in name and not name.startswith("$"):
        return name
    encoded = name.replace("%", "%25").replace(".", "%2E")
    if encoded.startswith("$"):
        encoded = "%24" + encoded[1:]
    return encoded


def decode_field(field: str) -> str:
    """The column name of a document field written by :func:`encode_field`."""
    if "%" not in field:
        return field
    from urllib.parse import unquote

    return unquote(field)


Checker = Callable[[Any, object], Any]


def _wrong(field: Field, value: Any, where: object, expected: str) -> SchemaError:
    return SchemaError(
        f"{where}: column {field.name!r} is {field.dtype.value} and needs {expected}, got "
        f"{type(value).__name__} {value!r:.60}"
    )


def _check_text(value: str, where: object) -> None:
    if "\x00" in value:
        raise SchemaError(f"{where}: strings must not contain NUL bytes (no database stores them)")
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SchemaError(f"{where}: string {value!r:.60} is not valid Unicode") from None


def _check_json(value: Any, where: object) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        _check_text(value, where)
        return
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise SchemaError(f"{where}: integer {value} does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SchemaError(f"{where}: {value} is not representable in JSON")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SchemaError(f"{where}: dict keys must be strings, got {key!r}")
            if "\x00" in key:
                raise SchemaError(f"{where}: dict keys must not contain NUL bytes")
            _check_text(key, where)
            _check_json(item, f"{where}[{key!r}]")
        return
    raise SchemaError(
        f"{where}: {type(value).__name__} is not JSON data (use None, bool, int, float, str, "
        "list or dict with string keys)"
    )


def _null_check(field: Field) -> Callable[[object], None]:
    def null(where: object) -> None:
        if not field.nullable:
            raise SchemaError(f"{where}: column {field.name!r} is not nullable")

    return null


def _int_checker(field: Field) -> Checker:
    null = _null_check(field)

    def check_int(value: Any, where: object) -> Any:
        if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
            return value
        if value is None:
            return null(where)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(field, value, where, "an int")
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise SchemaError(f"{where}: {value} does not fit in a 64-bit int column")
        return int(value)

    return check_int


def _float_checker(field: Field) -> Checker:
    null = _null_check(field)

    def check_float(value: Any, where: object) -> Any:
        if type(value) is float and math.isfinite(value):
            return value
        if value is None:
            return null(where)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _wrong(field, value, where, "a float (or int)")
        try:
            number = float(value)
        except OverflowError:
            raise SchemaError(f"{where}: {value} is too large for a float column") from None
        if not math.isfinite(number):
            raise SchemaError(f"{where}: {value} is not finite; NaN and inf are not portable")
        return number

    return check_float


def _str_checker(field: Field) -> Checker:
    null = _null_check(field)

    def check_str(value: Any, where: object) -> Any:
        if value is None:
            return null(where)
        if not isinstance(value, str):
            raise _wrong(field, value, where, "a str")
        _check_text(value, where)
        return str(value)

    return check_str


def _bool_checker(field: Field) -> Checker:
    null = _null_check(field)

    def check_bool(value: Any, where: object) -> Any:
        if value is None:
            return null(where)
        if not isinstance(value, bool):
            raise _wrong(field, value, where, "a bool")
        return value

    return check_bool


def _bytes_checker(field: Field) -> Checker:
    null = _null_check(field)

    def check_bytes(value: Any, where: object) -> Any:
        if value is None:
            return null(where)
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _wrong(field, value, where, "bytes")
        return bytes(value)

    return check_bytes


def _datetime_checker(field: Field) -> Checker:
    null = _null_check(field)

    def check_datetime(value: Any, where: object) -> Any:
        if value is None:
            return null(where)
        if not isinstance(value, datetime):
            raise _wrong(field, value, where, "a datetime")
        if value.tzinfo is None or value.utcoffset() is None:
            raise SchemaError(
                f"{where}: datetime {value!r} is naive; use a timezone-aware datetime (UTC)"
            )
        # MongoDB keeps milliseconds: the driver truncates the rest.
        return value.astimezone(UTC)

    return check_datetime


def _json_checker(field: Field) -> Checker:
    null = _null_check(field)

    def check_json(value: Any, where: object) -> Any:
        if value is None:
            return null(where)
        _check_json(value, f"{where}: column {field.name!r}")
        return value

    return check_json


def _vector_checker(field: Field) -> Checker:
    null = _null_check(field)

    def check_vector(value: Any, where: object) -> Any:
        if value is None:
            return null(where)
        expected = f"{where}: column {field.name!r} is vector and needs a list of floats"
        if not isinstance(value, (list, tuple)):
            raise SchemaError(f"{expected}, got {type(value).__name__}")
        items: list[float] = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                raise SchemaError(f"{expected}, got an item {item!r:.60}")
            number = float(item)
            if not math.isfinite(number):
                raise SchemaError(f"{where}: vector column {field.name!r} holds a non-finite value")
            items.append(number)
        if field.dim is not None and len(items) != field.dim:
            raise SchemaError(
                f"{where}: vector column {field.name!r} has dimension {field.dim}, got {len(items)}"
            )
        return items

    return check_vector


_CHECKERS: dict[DType, Callable[[Field], Checker]] = {
    DType.INT: _int_checker,
    DType.FLOAT: _float_checker,
    DType.STR: _str_checker,
    DType.BOOL: _bool_checker,
    DType.BYTES: _bytes_checker,
    DType.DATETIME: _datetime_checker,
    DType.JSON: _json_checker,
    DType.VECTOR: _vector_checker,
}


def _checker(field: Field) -> Checker:
    """A function validating one cell of ``field`` and returning the value to store."""
    return _CHECKERS[field.dtype](field)


def check_schema_for_mongo(schema: Schema) -> None:
    """Reject schemas MongoDB cannot hold (a column named ``_id``)."""
    if "_id" in schema:
        raise SchemaError(
            "a column named '_id' is not possible on MongoDB: '_id' is the document id, which "
            "rows carry anyway; rename the column"
        )


@attrs.frozen(kw_only=True)
class TableCodec:
    """Validates rows of one table and converts between rows and documents.

    Attributes:
        schema: The table's portable schema.
    """

    schema: Schema
    names: tuple[str, ...] = attrs.field(init=False)
    fields: tuple[str, ...] = attrs.field(init=False)
    plain: bool = attrs.field(init=False)
    _checkers: tuple[tuple[str, str, Checker], ...] = attrs.field(init=False)
    _known: frozenset[str] = attrs.field(init=False)
    _doc_keys: frozenset[str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        names = self.schema.names
        fields = tuple(encode_field(n) for n in names)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "plain", names == fields)
        object.__setattr__(
            self,
            "_checkers",
            tuple(
                (f.name, fld, _checker(f))
                for f, fld in zip(self.schema.fields, fields, strict=False)
            ),
        )
        object.__setattr__(self, "_known", frozenset(names) | {"_id"})
        object.__setattr__(self, "_doc_keys", frozenset(fields) | {"_id"})

    def field(self, name: str) -> str:
        """The document field of column ``name``."""
        return encode_field(name)

    def array_valued(self, name: str) -> bool:
        """Whether column ``name`` may hold an array (JSON and vector columns)."""
        return name in self.schema and self.schema[name].dtype in (DType.JSON, DType.VECTOR)

    def document(self, row: object, where: object) -> dict[str, Any]:
        """A validated document for ``row`` (every column present, NULL as ``None``).

        ``where`` names the row in error messages; it is only formatted on an error.
        """
        if not isinstance(row, Mapping):
            raise SchemaError(f"{where}: a row must be a dict, got {type(row).__name__}")
        if not row.keys() <= self._known:
            unknown = [k for k in row if k not in self._known]
            raise SchemaError(
                f"{where}: unknown column(s) {unknown!r}; the table has {list(self.names)}"
            )
        doc: dict[str, Any] = {}
        if "_id" in row:
            doc["_id"] = row["_id"]
        get = row.get
        for name, fld, check in self._checkers:
            doc[fld] = check(get(name), where)
        return doc

    def values(self, values: Mapping[str, Any], where: object) -> dict[str, Any]:
        """Validated ``$set`` contents for an update."""
        out: dict[str, Any] = {}
        checkers = {name: (fld, check) for name, fld, check in self._checkers}
        for name, value in values.items():
            if name not in checkers:
                raise SchemaError(
                    f"{where}: unknown column {name!r}; the table has {list(self.names)}"
                )
            fld, check = checkers[name]
            out[fld] = check(value, where)
        return out

    def row(self, doc: dict[str, Any], names: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The portable row (``_id`` first, then ``names``, default every column) of a document.

        Returns ``doc`` itself when it already has exactly that shape (the common case).
        """
        if names is None:
            if self.plain and doc.keys() == self._doc_keys:
                return doc
            names = self.names
        out: dict[str, Any] = {}
        if "_id" in doc:
            out["_id"] = doc["_id"]
        get = doc.get
        if self.plain:
            for name in names:
                out[name] = get(name)
        else:
            for name in names:
                out[name] = get(encode_field(name))
        return out
