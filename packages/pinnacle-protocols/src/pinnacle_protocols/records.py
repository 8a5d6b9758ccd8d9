"""Frozen attrs records shared by every store, and the portable schema type system."""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeAlias

from attrs import Attribute, field, frozen

from pinnacle_protocols.errors import InvalidArtifactRef, InvalidRecord, SchemaError

__all__ = [
    "ArtifactRef",
    "ComponentKey",
    "ComponentRecord",
    "DType",
    "Field",
    "JSONValue",
    "JobRecord",
    "JobStatus",
    "Schema",
    "SchemaRevision",
    "check_json",
    "coerce_value",
    "validate_sha256",
]

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_NAME = 255


def validate_sha256(value: object) -> str:
    """Return ``value`` if it is a lowercase sha256 hex digest, else raise InvalidArtifactRef.

    This runs before a key touches a path or a query, so path traversal is impossible.
    """
    if not isinstance(value, str) or _SHA256_RE.fullmatch(value) is None:
        shown = value if isinstance(value, str) and len(value) < 100 else type(value).__name__
        raise InvalidArtifactRef(
            f"artifact key {shown!r} is not a sha256 hex digest (64 lowercase hex characters)"
        )
    return value


def _has_surrogate(value: str) -> bool:
    # A lone surrogate is not Unicode text: it cannot be encoded as UTF-8, stored or hashed.
    return not value.isascii() and any("\ud800" <= c <= "\udfff" for c in value)


def _check_name(kind: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidRecord(f"{kind} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise InvalidRecord(f"{kind} {value!r} contains a NUL byte, which no database stores")
    if _has_surrogate(value):
        raise InvalidRecord(f"{kind} {value!r} contains a lone surrogate, which is not UTF-8")
    if len(value) > _MAX_NAME:
        raise InvalidRecord(f"{kind} is {len(value)} characters long; the limit is {_MAX_NAME}")


def check_json(value: object, where: str = "value") -> None:
    """Raise InvalidRecord unless ``value`` is JSON data that every store keeps exactly.

    JSON data here is None, bool, 64-bit int, finite float, str without NUL bytes or lone
    surrogates, and lists and string-keyed dicts of those. ``where`` names the value in the
    error message (for example ``"metadata 'owner'"``).
    """
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str) and "\x00" in value:
            raise InvalidRecord(f"{where}: strings must not contain NUL bytes")
        if isinstance(value, str) and _has_surrogate(value):
            raise InvalidRecord(f"{where}: strings must not contain lone surrogates (not UTF-8)")
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise InvalidRecord(f"{where}: integer {value} does not fit in 64 bits")
        return
    if isinstance(value, float):
        if math.isnan(value) or value in (float("inf"), float("-inf")):
            raise InvalidRecord(f"{where}: {value} is not representable in JSON")
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            check_json(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidRecord(f"{where}: dict keys must be strings, got {k!r}")
            if "\x00" in k or _has_surrogate(k):
                raise InvalidRecord(f"{where}: dict keys must not contain NUL bytes or surrogates")
            check_json(v, f"{where}[{k!r}]")
        return
    raise InvalidRecord(
        f"{where}: {type(value).__name__} is not JSON data (use None, bool, int, float, str, "
        "list or dict with string keys; store large or binary values as artifacts)"
    )


def _validate_datetime(_inst: object, attr: Attribute[Any], value: datetime | None) -> None:
    # Naive datetimes are accepted here and refused when the record is serialized.
    if value is not None and not isinstance(value, datetime):
        raise InvalidRecord(f"{attr.name} must be a datetime or None, got {value!r}")


def _validate_opt_str(_inst: object, attr: Attribute[Any], value: str | None) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidRecord(f"{attr.name} must be a string or None, got {value!r}")


def _validate_sha_field(_inst: object, _attr: object, value: str) -> None:
    validate_sha256(value)


def _validate_size(_inst: object, _attr: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArtifactRef(f"artifact size must be a non-negative int, got {value!r}")


@frozen(kw_only=True)
class ArtifactRef:
    """The address of a blob: its sha256 hex digest and size in bytes."""

    sha256: str = field(validator=_validate_sha_field)
    size: int = field(validator=_validate_size)


def _validate_version(_inst: object, _attr: object, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidRecord(f"version must be a non-negative int or None, got {value!r}")


def _validate_key_version(_inst: object, _attr: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRecord(f"version must be a non-negative int, got {value!r}")


@frozen(kw_only=True, order=True)
class ComponentKey:
    """Identifies one version of a component."""

    type_id: str
    identifier: str
    version: int = field(validator=_validate_key_version)

    def __attrs_post_init__(self) -> None:
        _check_name("type_id", self.type_id)
        _check_name("identifier", self.identifier)


@frozen(kw_only=True, eq=True)
class ComponentRecord:
    """A versioned component as stored in a metadata store.

    Attributes:
        type_id: Component kind, e.g. ``"model"``.
        identifier: Name chosen by the user; any non-empty string without NUL bytes.
        version: ``None`` asks the store to allocate the next version; an int asks for exactly
            that version (used by copy) and fails with VersionConflict if taken.
        data: JSON-safe parameters of the component.
        artifacts: Named artifacts (weights, large values) stored in the artifact store.
        created_at: Set by the store (UTC) when the record is created.
    """

    type_id: str
    identifier: str
    version: int | None = field(default=None, validator=_validate_version)
    data: Mapping[str, JSONValue] = field(factory=dict)
    artifacts: Mapping[str, ArtifactRef] = field(factory=dict)
    created_at: datetime | None = field(default=None, validator=_validate_datetime)

    def __attrs_post_init__(self) -> None:
        _check_name("type_id", self.type_id)
        _check_name("identifier", self.identifier)
        if not isinstance(self.data, Mapping):
            raise InvalidRecord(f"data must be a mapping, got {type(self.data).__name__}")
        check_json(dict(self.data), "data")
        if not isinstance(self.artifacts, Mapping):
            raise InvalidRecord(
                f"artifacts must be a mapping of name to ArtifactRef, got "
                f"{type(self.artifacts).__name__}"
            )
        for name, ref in self.artifacts.items():
            if not isinstance(name, str) or not name or "\x00" in name:
                raise InvalidRecord(f"artifact names must be non-empty strings, got {name!r}")
            if not isinstance(ref, ArtifactRef):
                raise InvalidRecord(f"artifact {name!r} must be an ArtifactRef, got {ref!r}")

    @property
    def key(self) -> ComponentKey:
        """The key of this version; raises InvalidRecord if no version is allocated yet."""
        if self.version is None:
            raise InvalidRecord(f"{self.type_id}/{self.identifier} has no version yet")
        return ComponentKey(type_id=self.type_id, identifier=self.identifier, version=self.version)

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON of type, identifier, data and artifacts.

        Two records with the same content hash describe the same component content, whatever
        their version or creation time.
        """
        payload = {
            "type_id": self.type_id,
            "identifier": self.identifier,
            "data": self.data,
            "artifacts": {k: [r.sha256, r.size] for k, r in sorted(self.artifacts.items())},
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


class JobStatus(enum.StrEnum):
    """Lifecycle of a job."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


def _to_job_status(value: JobStatus | str) -> JobStatus:
    try:
        return JobStatus(value)
    except ValueError:
        raise InvalidRecord(
            f"job status {value!r} is not one of {[s.value for s in JobStatus]}"
        ) from None


def _validate_component(_inst: object, _attr: object, value: ComponentKey | None) -> None:
    if value is not None and not isinstance(value, ComponentKey):
        raise InvalidRecord(f"component must be a ComponentKey or None, got {value!r}")


@frozen(kw_only=True)
class JobRecord:
    """A unit of work (e.g. a prediction run) and its outcome.

    ``status`` also accepts the status's string value (``"running"``).
    """

    job_id: str
    kind: str
    status: JobStatus = field(default=JobStatus.PENDING, converter=_to_job_status)
    component: ComponentKey | None = field(default=None, validator=_validate_component)
    args: Mapping[str, JSONValue] = field(factory=dict)
    created_at: datetime | None = field(default=None, validator=_validate_datetime)
    started_at: datetime | None = field(default=None, validator=_validate_datetime)
    finished_at: datetime | None = field(default=None, validator=_validate_datetime)
    error: str | None = field(default=None, validator=_validate_opt_str)

    def __attrs_post_init__(self) -> None:
        _check_name("job_id", self.job_id)
        _check_name("kind", self.kind)
        if not isinstance(self.args, Mapping):
            raise InvalidRecord(f"args must be a mapping, got {type(self.args).__name__}")
        check_json(dict(self.args), "args")


class DType(enum.StrEnum):
    """The portable column types every databackend maps to its own."""

    INT = "int"
    FLOAT = "float"
    STR = "str"
    BOOL = "bool"
    BYTES = "bytes"
    DATETIME = "datetime"  # timezone-aware, UTC
    JSON = "json"
    VECTOR = "vector"  # list of float, optional fixed dimension


def _dtype(column: str, value: DType | str) -> DType:
    try:
        return DType(value)
    except ValueError:
        choices = ", ".join(repr(d.value) for d in DType)
        raise SchemaError(
            f"column {column!r}: unknown dtype {value!r}; use one of {choices}"
        ) from None


@frozen(kw_only=True)
class Field:
    """One column of a portable schema."""

    name: str
    dtype: DType
    nullable: bool = True
    dim: int | None = None  # only for VECTOR

    def __attrs_post_init__(self) -> None:
        _check_name("column name", self.name)
        if not isinstance(self.dtype, DType):
            raise SchemaError(f"column {self.name!r}: dtype must be a DType, got {self.dtype!r}")
        if not isinstance(self.nullable, bool):
            raise SchemaError(f"column {self.name!r}: nullable must be a bool")
        if self.dim is not None and (
            isinstance(self.dim, bool)
            or not isinstance(self.dim, int)
            or self.dtype is not DType.VECTOR
            or self.dim <= 0
        ):
            raise SchemaError(
                f"column {self.name!r}: dim is only for vector columns, and an int > 0"
            )


def _to_fields(fields: Iterable[Field]) -> tuple[Field, ...]:
    if isinstance(fields, (str, bytes, Mapping)) or not isinstance(fields, Iterable):
        raise SchemaError(f"schema fields must be a sequence of Field, got {fields!r}")
    return tuple(fields)


@frozen(kw_only=True)
class Schema:
    """An ordered set of uniquely named fields."""

    fields: tuple[Field, ...] = field(converter=_to_fields)

    def __attrs_post_init__(self) -> None:
        if not self.fields:
            raise SchemaError("a schema needs at least one field")
        for f in self.fields:
            if not isinstance(f, Field):
                raise SchemaError(f"schema fields must be Field objects, got {f!r}")
        names = [f.name for f in self.fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"duplicate column names: {dupes}")

    @classmethod
    def of(cls, **columns: DType | str) -> Schema:
        """Shorthand: ``Schema.of(id="int", name="str")`` (all columns nullable)."""
        return cls(fields=tuple(Field(name=k, dtype=_dtype(k, v)) for k, v in columns.items()))

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in order."""
        return tuple(f.name for f in self.fields)

    def __getitem__(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(f.name == name for f in self.fields)


@frozen(kw_only=True)
class SchemaRevision:
    """Where a store's on-disk schema stands against this package's migrations."""

    current: str | None = field(validator=_validate_opt_str)
    head: str

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.head, str):
            raise InvalidRecord(f"head must be a string, got {self.head!r}")

    @property
    def up_to_date(self) -> bool:
        """Whether no migration is pending."""
        return self.current == self.head


_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _wrong(field: Field, value: Any, where: str, expected: str) -> SchemaError:
    return SchemaError(
        f"{where}: column {field.name!r} is {field.dtype.value} and needs {expected}, got "
        f"{type(value).__name__} {value!r:.60}"
    )


def coerce_value(field: Field, value: Any, where: str) -> Any:
    """Validate one cell of a portable column and return its normalised Python value.

    The rules of the reference in-memory backend, shared by every databackend (JSON stays a
    Python value, datetimes come back in UTC).

    Raises:
        SchemaError: the value does not fit the column (same rules as the reference backend).
    """
    if value is None:
        if not field.nullable:
            raise SchemaError(f"{where}: column {field.name!r} is not nullable")
        return None
    dtype = field.dtype
    if dtype is DType.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(field, value, where, "an int")
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise SchemaError(f"{where}: {value} does not fit in a 64-bit int column")
        return int(value)
    if dtype is DType.FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _wrong(field, value, where, "a float (or int)")
        try:
            number = float(value)
        except OverflowError:
            raise SchemaError(f"{where}: {value} is too large for a float column") from None
        if not math.isfinite(number):
            raise SchemaError(f"{where}: {value} is not finite; NaN and inf are not portable")
        return number
    if dtype is DType.STR:
        if not isinstance(value, str):
            raise _wrong(field, value, where, "a str")
        if "\x00" in value:
            raise SchemaError(
                f"{where}: strings must not contain NUL bytes (no database stores them)"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise SchemaError(f"{where}: string {value!r:.60} is not valid Unicode") from None
        return str(value)
    if dtype is DType.BOOL:
        if not isinstance(value, bool):
            raise _wrong(field, value, where, "a bool")
        return value
    if dtype is DType.BYTES:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _wrong(field, value, where, "bytes")
        return bytes(value)
    if dtype is DType.DATETIME:
        if not isinstance(value, datetime):
            raise _wrong(field, value, where, "a datetime")
        if value.tzinfo is None or value.utcoffset() is None:
            raise SchemaError(
                f"{where}: datetime {value!r} is naive; use a timezone-aware datetime (UTC)"
            )
        return value.astimezone(UTC)
    if dtype is DType.JSON:
        try:
            check_json(value, f"{where}: column {field.name!r}")
        except InvalidRecord as exc:
            raise SchemaError(str(exc)) from None
        return value
    return _coerce_vector(field, value, where)


def _coerce_vector(field: Field, value: Any, where: str) -> list[float]:
    expected = f"{where}: column {field.name!r} is vector and needs a list of floats"
    if not isinstance(value, (list, tuple)):
        raise SchemaError(f"{expected}, got {type(value).__name__}")
    items: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise SchemaError(f"{expected}, got an item {item!r:.60}")
        try:
            number = float(item)
        except OverflowError:
            raise SchemaError(f"{where}: vector column {field.name!r} holds a huge int") from None
        if not math.isfinite(number):
            raise SchemaError(f"{where}: vector column {field.name!r} holds a non-finite value")
        items.append(number)
    if field.dim is not None and len(items) != field.dim:
        raise SchemaError(
            f"{where}: vector column {field.name!r} has dimension {field.dim}, got {len(items)}"
        )
    return items


# Kept for code written against the earlier private name.
_check_json = check_json
