"""What SQL databackends keep next to the user's tables: names and stored text forms.

Every SQL databackend (pinnacle-ibis on any engine, pinnacle-sql on SQLite) keeps the portable
:class:`~pinnacle_protocols.records.Schema` of each table it creates in one table of the same
database, :data:`SCHEMAS_TABLE`, with two text columns ``name`` and ``schema`` (the text of
:func:`schema_to_text`). Because the format is defined once here, either package reads the
tables the other wrote. JSON and vector cells are stored as the text of :func:`dump_json`.
"""

from __future__ import annotations

import json
from typing import Any, Final

from pinnacle_protocols.errors import InvalidRecord, SchemaError
from pinnacle_protocols.records import DType, Field, Schema

__all__ = [
    "RESERVED_PREFIX",
    "SCHEMAS_TABLE",
    "dump_json",
    "load_json",
    "schema_from_text",
    "schema_to_text",
]

#: Tables whose names start with this belong to pinnacledb and are never user tables.
RESERVED_PREFIX: Final = "_pinnacle"

#: The table of portable schemas (columns ``name`` and ``schema``, both text).
#:
#: It keeps the name pinnacle-ibis gave it when it was the only package writing it: databases
#: written by earlier versions of pinnacle-ibis and pinnacle-sql already hold their schemas
#: there, and a new name would need a migration in every SQL engine for no gain (the name is
#: reserved by :data:`RESERVED_PREFIX` and never shown as a user table).
SCHEMAS_TABLE: Final = "_pinnacle_ibis_schemas"


def dump_json(value: Any) -> str:
    """The JSON text stored for a JSON cell (compact, non-ASCII kept, key order kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def load_json(text: Any) -> Any:
    """Parse JSON text read back from an engine (``None`` and already parsed values pass)."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8")
    return json.loads(text) if isinstance(text, str) else text


def schema_to_text(schema: Schema) -> str:
    """The stored form of a portable schema: JSON ``{"fields": [{name, dtype, nullable, dim}]}``."""
    return dump_json(
        {
            "fields": [
                {"name": f.name, "dtype": f.dtype.value, "nullable": f.nullable, "dim": f.dim}
                for f in schema.fields
            ]
        }
    )


def schema_from_text(text: str | bytes) -> Schema:
    """The schema :func:`schema_to_text` stored.

    Raises:
        SchemaError: the text is not a stored schema (corrupt or written by something else).
    """
    try:
        data = load_json(text)
        return Schema(
            fields=tuple(
                Field(
                    name=str(f["name"]),
                    dtype=DType(f["dtype"]),
                    nullable=bool(f.get("nullable", True)),
                    dim=f.get("dim"),
                )
                for f in data["fields"]
            )
        )
    except (InvalidRecord, SchemaError, ValueError, KeyError, TypeError) as exc:
        raise SchemaError(f"a stored table schema is unreadable: {exc}") from exc
