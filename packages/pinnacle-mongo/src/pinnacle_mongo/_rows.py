"""Portable rows <-> MongoDB documents: schema validation, field names and NULLs.

A table created through :meth:`MongoDataBackend.create_table` keeps its portable schema in the
``_pinnacle_schemas`` collection. Rows are validated against it with
:func:`pinnacle_protocols.records.cell_checker`, the rules every databackend shares (floats are
stored as doubles, datetimes as UTC, of which MongoDB keeps milliseconds, vectors as lists of
doubles), and every column is written, NULL as ``null``, so a document always has one field per
column.

Column names become document field names unchanged unless MongoDB would misread them: a name
containing ``.`` (a path separator in queries) or ``%``, or starting with ``$`` (an operator),
is percent-encoded (``a.b`` is stored as ``a%2Eb``). ``_id`` is the document id and cannot be
a column.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import repeat
from typing import Any

import attrs

from pinnacle_protocols.errors import SchemaError
from pinnacle_protocols.records import CellChecker, DType, Schema, cell_checker

__all__ = ["RowPlace", "TableCodec", "decode_field", "encode_field"]


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
    _checkers: tuple[tuple[str, str, CellChecker], ...] = attrs.field(init=False)
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
                (f.name, fld, cell_checker(f))
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

    def documents(self, rows: Any, table: str) -> list[dict[str, Any]]:
        """Validated documents for the rows of an insert (a list of dicts, or Arrow data).

        The checks run per column on Arrow
        (:func:`pinnacle_protocols.arrow.coerce_columns`, the rules of :meth:`document`, the
        same error for the first bad row and column), then every document is built in one
        pass. Without pyarrow installed, :meth:`document` runs row by row.
        """
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            return [self.document(row, RowPlace(table, i)) for i, row in enumerate(rows)]
        from pinnacle_protocols.arrow import ABSENT, coerce_columns

        columns = coerce_columns(self.schema, rows, table, json_text=False, extra=("_id",))
        ids = columns.pop()
        if not ids:
            return []
        keys: tuple[str, ...] = self.fields
        absent = ids.count(ABSENT)  # ABSENT equals only itself
        if absent < len(ids):
            keys, columns = ("_id", *keys), [ids, *columns]
        docs = list(map(dict, map(zip, repeat(keys), zip(*columns, strict=True))))
        if keys[0] == "_id" and absent:
            for doc in docs:
                if doc["_id"] is ABSENT:
                    del doc["_id"]
        return docs

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
