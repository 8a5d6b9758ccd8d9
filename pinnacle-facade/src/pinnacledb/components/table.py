"""Typed tables: ``DataType`` (how a column's values are encoded), ``Schema`` and ``Table``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from attrs import define, field

from pinnacle_protocols.errors import SchemaError
from pinnacle_protocols.records import DType, Field
from pinnacle_protocols.records import Schema as PortableSchema
from pinnacledb.components._base import Component

if TYPE_CHECKING:
    from pinnacledb.serializers import SerializerRegistry

__all__ = ["DataType", "Schema", "Table"]


@define(kw_only=True)
class DataType(Component):
    """Encode/decode for a column whose Python values are not portable column types.

    Values are serialized with ``encoder`` (a serializer name such as ``"numpy"``). Inline
    values live in a bytes column; with ``by_reference=True`` the bytes go to the artifact
    store and the column holds their sha256, resolved (and hash-verified) on ``db.select``.
    """

    type_id: ClassVar[str] = "datatype"

    encoder: str = "json"
    by_reference: bool = False

    @property
    def storage_dtype(self) -> DType:
        """The portable column type that holds the encoded value."""
        return DType.STR if self.by_reference else DType.BYTES

    def encode(self, value: Any, serializers: SerializerRegistry) -> bytes:
        """The bytes for ``value``."""
        return serializers.dumps(self.encoder, value)

    def decode(self, data: bytes, serializers: SerializerRegistry) -> Any:
        """The value for verified ``data`` (refuses untrusted pickle-family encoders)."""
        return serializers.loads(
            self.encoder, data, what=f"a value of datatype {self.identifier!r}"
        )

    def decoder(self, serializers: SerializerRegistry) -> Callable[[bytes], Any]:
        """:meth:`decode` as a function of the bytes, checked and looked up once (for a
        column of values)."""
        return serializers.loader(self.encoder, what=f"a value of datatype {self.identifier!r}")


def _check_fields(_inst: object, _attr: object, value: Mapping[str, Any]) -> None:
    if not isinstance(value, Mapping) or not value:
        raise SchemaError("a schema needs a non-empty dict of column name -> type")
    for name, kind in value.items():
        if isinstance(kind, DataType):
            continue
        if not isinstance(kind, str) or kind not in DType._value2member_map_:
            allowed = ", ".join(d.value for d in DType)
            raise SchemaError(
                f"column {name!r}: type must be one of {allowed} or a DataType, got {kind!r}"
            )


@define(kw_only=True)
class Schema(Component):
    """Column name -> portable type name (``"int"``, ``"float"``, ...) or a ``DataType``."""

    type_id: ClassVar[str] = "schema"

    fields: dict[str, str | DataType] = field(validator=_check_fields)

    def portable(self) -> PortableSchema:
        """The schema the databackend stores (encoded columns become bytes or str)."""
        return PortableSchema(
            fields=tuple(
                Field(
                    name=name,
                    dtype=kind.storage_dtype if isinstance(kind, DataType) else DType(kind),
                )
                for name, kind in self.fields.items()
            )
        )

    def encoded(self) -> dict[str, DataType]:
        """Columns that have a DataType."""
        return {n: k for n, k in self.fields.items() if isinstance(k, DataType)}


@define(kw_only=True)
class Table(Component):
    """A databackend table with a typed schema; ``db.apply`` creates it if needed.

    ``db.insert`` encodes and ``db.select`` decodes its DataType columns.
    """

    type_id: ClassVar[str] = "table"

    schema: Schema

    @classmethod
    def of(cls, identifier: str, **columns: str | DataType) -> Table:
        """Shorthand: ``Table.of("images", id="int", img=array_type)``."""
        return cls(identifier=identifier, schema=Schema(identifier=identifier, fields=columns))
