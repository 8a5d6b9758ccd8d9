"""Frozen attrs records shared by every store, and the portable schema type system."""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias

from attrs import Attribute, field, frozen

from pinnacle_protocols.errors import InvalidArtifactRef, InvalidRecord, PinnacleError, SchemaError

__all__ = [
    "MAX_DEPTH",
    "ArtifactRef",
    "CellChecker",
    "ComponentKey",
    "ComponentRecord",
    "CountQuery",
    "DType",
    "Field",
    "JSONValue",
    "JobRecord",
    "JobStatus",
    "Schema",
    "SchemaRevision",
    "cell_checker",
    "check_depth",
    "check_index_columns",
    "check_json",
    "check_match_pairs",
    "check_new_table",
    "check_reuse_unchanged",
    "check_version",
    "coerce_value",
    "index_name",
    "validate_sha256",
]

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

#: The deepest nesting of lists and dicts accepted anywhere input is structured: JSON cells,
#: record data and job args, filters, component fields. Deeper input raises a typed error
#: (InvalidRecord, SchemaError or FilterError) naming this limit, found without recursion.
#: 30 is what every backend keeps: MariaDB refuses JSON nested deeper than 32 levels (it counts
#: the innermost scalar as one, and a stored record wraps its data one level deeper), SQLite's
#: parser overflows at about 45 nested ``NOT (...)``, MongoDB's BSON stops at 100.
MAX_DEPTH: Final = 30
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


def check_reuse_unchanged(record: ComponentRecord, reuse_unchanged: bool) -> None:
    """Refuse ``create_component(..., reuse_unchanged=True)`` for a record with a version.

    Raises:
        InvalidRecord: the record has an explicit version (reuse needs allocation).
    """
    if reuse_unchanged and record.version is not None:
        raise InvalidRecord(
            f"{record.type_id}/{record.identifier}: reuse_unchanged needs version=None (the "
            f"store allocates the version), got version {record.version}"
        )


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


_DEPTH_HINT = "flatten the value or store it as an artifact"


def _too_deep(
    where: str, limit: int, error: type[PinnacleError], hint: str = _DEPTH_HINT
) -> PinnacleError:
    return error(
        f"{where}: nested more than {limit} levels deep (each list or dict is one level; "
        f"see pinnacle_protocols.records.MAX_DEPTH = {MAX_DEPTH}): {hint}"
    )


def check_depth(
    value: object,
    where: str = "value",
    error: type[PinnacleError] = InvalidRecord,
    limit: int | None = None,
    hint: str = _DEPTH_HINT,
) -> None:
    """Raise ``error`` if lists, tuples, sets and mappings in ``value`` nest deeper than the limit.

    The walk uses an explicit stack, so a value nested far deeper than Python's recursion limit
    (or a list that contains itself) gives the typed error instead of ``RecursionError``. A
    scalar has depth 0, ``[]`` depth 1, ``[[1]]`` depth 2.

    Args:
        value: The value to measure.
        where: Names the value in the error message (``"filter"``, ``"data"``).
        error: The error class to raise (InvalidRecord, SchemaError, FilterError, ...).
        limit: The deepest nesting allowed; :data:`MAX_DEPTH` when None.
        hint: What to do, appended to the message.
    """
    limit = MAX_DEPTH if limit is None else limit
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[object]
        if isinstance(item, Mapping):
            children = item.values()
        elif isinstance(item, (list, tuple, set, frozenset)):
            children = item
        else:
            continue
        if depth > limit:
            raise _too_deep(where, limit, error, hint)
        stack.extend((child, depth + 1) for child in children)


def check_json(
    value: object, where: str = "value", error: type[PinnacleError] = InvalidRecord
) -> None:
    """Raise InvalidRecord unless ``value`` is JSON data that every store keeps exactly.

    JSON data here is None, bool, 64-bit int, finite float, str without NUL bytes or lone
    surrogates, and lists and string-keyed dicts of those, nested at most :data:`MAX_DEPTH`
    levels deep. ``where`` names the value in the error message (for example
    ``"metadata 'owner'"``); ``error`` is the class raised (InvalidRecord unless given). The
    check is iterative: no input makes it raise ``RecursionError``.
    """
    stack: list[tuple[object, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            if "\x00" in item:
                raise error(f"{path}: strings must not contain NUL bytes")
            if _has_surrogate(item):
                raise error(f"{path}: strings must not contain lone surrogates (not UTF-8)")
            continue
        if isinstance(item, int):
            if not -(2**63) <= item < 2**63:
                raise error(f"{path}: integer {item} does not fit in 64 bits")
            continue
        if isinstance(item, float):
            if math.isnan(item) or item in (float("inf"), float("-inf")):
                raise error(f"{path}: {item} is not representable in JSON")
            continue
        if isinstance(item, (list, dict)) and depth >= MAX_DEPTH:
            raise _too_deep(where, MAX_DEPTH, error)  # the whole value, not a 64-step path
        if isinstance(item, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in reversed(list(enumerate(item))))
            continue
        if isinstance(item, dict):
            pending: list[tuple[object, str, int]] = []
            for k, v in item.items():
                if not isinstance(k, str):
                    raise error(f"{path}: dict keys must be strings, got {k!r}")
                if "\x00" in k or _has_surrogate(k):
                    raise error(f"{path}: dict keys must not contain NUL bytes or surrogates")
                pending.append((v, f"{path}[{k!r}]", depth + 1))
            stack.extend(reversed(pending))
            continue
        raise error(
            f"{path}: {type(item).__name__} is not JSON data (use None, bool, int, float, str, "
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


def check_version(version: object) -> int | None:
    """Return ``version`` if it is None (the latest) or a version number (an int >= 0).

    Raises:
        InvalidRecord: anything else (``"0"``, ``1.0``, ``True``, ``-1``), naming what was given,
            so a wrong type is never reported as a missing version.
    """
    if version is None or (
        isinstance(version, int) and not isinstance(version, bool) and version >= 0
    ):
        return version
    raise InvalidRecord(
        f"version must be an int >= 0 (or None for the latest), got {type(version).__name__} "
        f"{version!r:.40}"
    )


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
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the job has ended (success, failed or cancelled)."""
        return self in (JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.CANCELLED)


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


def _validate_count(_inst: object, attr: Attribute[Any], value: int | None) -> None:
    if value is None and attr.name == "rows_total":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRecord(f"{attr.name} must be a non-negative int, got {value!r}")


def _to_str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise InvalidRecord(f"failed_sources must be a sequence of strings, got {value!r}")
    return tuple(value)


@frozen(kw_only=True)
class JobRecord:
    """A unit of work (e.g. a prediction run), its progress and its outcome.

    ``status`` also accepts the status's string value (``"running"``). Every field after
    ``error`` was added with the compute runners and has a default, so records written before
    them still load.

    Attributes:
        job_id: Unique id (``predict-<hex>``).
        kind: What the job does (``predict``, ``insert``, ...).
        status: queued, running, success, failed or cancelled (pending: created, not submitted).
        component: The component version the job runs (None for bookkeeping jobs).
        args: JSON arguments of the job (never credentials).
        created_at: When the record was created.
        started_at: When the first task was submitted.
        finished_at: When the job ended.
        error: Why it failed (redacted), naming the failing source ids.
        runner: The compute backend's redacted URI (``local://``, ``dask://host:8786``).
        rows_total: Source rows the job covers (None while unknown).
        rows_done: Source rows whose outputs are written.
        tasks_total: Tasks the job was split into.
        tasks_done: Tasks that finished successfully.
        tasks_failed: Tasks that failed.
        failed_sources: The source ids (or id ranges) of the failed tasks, as text.
        updated_at: Last progress update.
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
    runner: str | None = field(default=None, validator=_validate_opt_str)
    rows_total: int | None = field(default=None, validator=_validate_count)
    rows_done: int = field(default=0, validator=_validate_count)
    tasks_total: int = field(default=0, validator=_validate_count)
    tasks_done: int = field(default=0, validator=_validate_count)
    tasks_failed: int = field(default=0, validator=_validate_count)
    failed_sources: tuple[str, ...] = field(default=(), converter=_to_str_tuple)
    updated_at: datetime | None = field(default=None, validator=_validate_datetime)

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


def check_new_table(name: str, schema: Schema, existing: Iterable[str], where: object) -> None:
    """The portable name rules of ``create_table``, the same on every databackend.

    Names that differ only in case are one name on SQLite, DuckDB and MariaDB (and on MongoDB
    over a case-insensitive file system), so they are refused everywhere: a table whose name
    matches an existing one but for case is TableExists, two such columns are SchemaError.
    An exactly equal existing name is left to the backend's own TableExists.

    Raises:
        TableExists: ``existing`` has a table whose name differs from ``name`` only in case.
        SchemaError: two columns of ``schema`` differ only in case.
    """
    from pinnacle_protocols.errors import TableExists

    folded = name.casefold()
    for other in existing:
        if other != name and other.casefold() == folded:
            raise TableExists(
                f"table {name!r} differs only in case from the existing table {other!r} in "
                f"{where}; SQLite, DuckDB and MariaDB take them as one name: use {other!r} or "
                "another name"
            )
    seen: dict[str, str] = {}
    for column in schema.names:
        first = seen.setdefault(column.casefold(), column)
        if first != column:
            raise SchemaError(
                f"table {name!r}: columns {first!r} and {column!r} differ only in case; "
                "SQLite, DuckDB and MariaDB take them as one column: rename one"
            )


_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _wrong(field: Field, value: Any, where: object, expected: str) -> SchemaError:
    return SchemaError(
        f"{where}: column {field.name!r} is {field.dtype.value} and needs {expected}, got "
        f"{type(value).__name__} {value!r:.60}"
    )


# One function a type, each taking a non-None value (dispatch by a dict: a chain of ``if dtype
# is ...`` costs more than the check itself on row-at-a-time writers).
def _coerce_int(field: Field, value: Any, where: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(field, value, where, "an int")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise SchemaError(f"{where}: {value} does not fit in a 64-bit int column")
    return int(value)


def _coerce_float(field: Field, value: Any, where: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _wrong(field, value, where, "a float (or int)")
    try:
        number = float(value)
    except OverflowError:
        raise SchemaError(f"{where}: {value} is too large for a float column") from None
    if not math.isfinite(number):
        raise SchemaError(f"{where}: {value} is not finite; NaN and inf are not portable")
    return number


def _coerce_str(field: Field, value: Any, where: object) -> str:
    if not isinstance(value, str):
        raise _wrong(field, value, where, "a str")
    if "\x00" in value:
        raise SchemaError(f"{where}: strings must not contain NUL bytes (no database stores them)")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise SchemaError(f"{where}: string {value!r:.60} is not valid Unicode") from None
    return str(value)


def _coerce_bool(field: Field, value: Any, where: object) -> bool:
    if not isinstance(value, bool):
        raise _wrong(field, value, where, "a bool")
    return value


def _coerce_bytes(field: Field, value: Any, where: object) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise _wrong(field, value, where, "bytes")
    return bytes(value)


def _coerce_datetime(field: Field, value: Any, where: object) -> datetime:
    if not isinstance(value, datetime):
        raise _wrong(field, value, where, "a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise SchemaError(
            f"{where}: datetime {value!r} is naive; use a timezone-aware datetime (UTC)"
        )
    return value.astimezone(UTC)


def _coerce_json(field: Field, value: Any, where: object) -> Any:
    check_json(value, f"{where}: column {field.name!r}", SchemaError)
    return value


def _coerce_vector(field: Field, value: Any, where: object) -> list[float]:
    if not isinstance(value, (list, tuple)):
        raise SchemaError(
            f"{where}: column {field.name!r} is vector and needs a list of floats, got "
            f"{type(value).__name__}"
        )
    items: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise SchemaError(
                f"{where}: column {field.name!r} is vector and needs a list of floats, got an "
                f"item {item!r:.60}"
            )
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


_COERCE: Final[Mapping[DType, Callable[[Field, Any, object], Any]]] = {
    DType.INT: _coerce_int,
    DType.FLOAT: _coerce_float,
    DType.STR: _coerce_str,
    DType.BOOL: _coerce_bool,
    DType.BYTES: _coerce_bytes,
    DType.DATETIME: _coerce_datetime,
    DType.JSON: _coerce_json,
    DType.VECTOR: _coerce_vector,
}


def _null(field: Field, where: object) -> None:
    if not field.nullable:
        raise SchemaError(f"{where}: column {field.name!r} is not nullable")


def coerce_value(field: Field, value: Any, where: object) -> Any:
    """Validate one cell of a portable column and return its normalised Python value.

    The one definition of what a cell accepts, used by every databackend (the in-memory
    reference, SQL, ibis and MongoDB): ints are 64-bit, floats finite, strings Unicode without
    NUL, datetimes aware (returned in UTC), JSON is :func:`check_json` data (returned as given),
    vectors are lists of finite floats of the column's ``dim``. ``where`` names the cell in the
    error message; it is only formatted on an error (so a cheap object with a ``__str__`` works).

    Raises:
        SchemaError: the value does not fit the column.
    """
    if value is None:
        return _null(field, where)
    return _COERCE[field.dtype](field, value, where)


#: Validates one cell and returns the value to store: ``check(value, where)``.
CellChecker: TypeAlias = Callable[[Any, object], Any]


def _plain_int(value: Any) -> bool:
    return type(value) is int and _INT64_MIN <= value <= _INT64_MAX


def _plain_float(value: Any) -> bool:
    return type(value) is float and math.isfinite(value)


def _plain_str(value: Any) -> bool:
    return type(value) is str and value.isascii() and "\x00" not in value


def _plain_bool(value: Any) -> bool:
    return type(value) is bool


#: Values :func:`coerce_value` returns unchanged, recognised cheaply.
_PLAIN: Final[Mapping[DType, Callable[[Any], bool]]] = {
    DType.INT: _plain_int,
    DType.FLOAT: _plain_float,
    DType.STR: _plain_str,
    DType.BOOL: _plain_bool,
}


def cell_checker(field: Field) -> CellChecker:
    """:func:`coerce_value` for one column, with a fast path for the common values.

    For row-at-a-time writers (MongoDB documents): an in-range ``int``, a finite ``float``, an
    ASCII ``str`` without NUL and a ``bool`` are returned as they are, the rest goes through
    the same checks as :func:`coerce_value`, so both accept and return exactly the same.
    """
    coerce = _COERCE[field.dtype]
    plain = _PLAIN.get(field.dtype)
    if plain is None:

        def check(value: Any, where: object) -> Any:
            if value is None:
                return _null(field, where)
            return coerce(field, value, where)

        return check
    is_plain = plain

    def check_plain_first(value: Any, where: object) -> Any:
        if is_plain(value):
            return value
        if value is None:
            return _null(field, where)
        return coerce(field, value, where)

    return check_plain_first


@frozen(kw_only=True, eq=False)
class CountQuery:
    """One count of ``SupportsMatchCounts.count_many``.

    Without ``other``: the rows of ``table`` matching ``where`` (``DataBackend.count``). With
    ``other``: the rows ``SupportsMatchCount.count_unmatched(table, other, on, where=where,
    other_where=other_where)`` counts (no row of ``other`` matches them on every pair of ``on``).
    """

    table: str
    where: Mapping[str, Any] | None = None
    other: str | None = None
    on: tuple[tuple[str, str], ...] = ()
    other_where: Mapping[str, Any] | None = None


def check_match_pairs(
    on: Sequence[tuple[str, str]], schema: Schema, other_schema: Schema
) -> list[tuple[str, str]]:
    """Validate ``count_unmatched`` column pairs against both schemas (SchemaError)."""
    pairs = [tuple(p) for p in on] if not isinstance(on, str) else []  # type: ignore[unreachable]
    if not pairs or any(len(p) != 2 for p in pairs):
        raise SchemaError(f"count_unmatched: on must be a non-empty list of column pairs: {on!r}")
    for left, right in pairs:
        for col, sch in ((left, schema), (right, other_schema)):
            if not isinstance(col, str) or col not in sch:
                raise SchemaError(f"count_unmatched: no column {col!r} to match on")
        dtypes = {schema[left].dtype, other_schema[right].dtype}
        if len(dtypes) != 1:
            raise SchemaError(
                f"count_unmatched: {left!r} and {right!r} have different dtypes "
                f"({sorted(d.value for d in dtypes)}); pair columns of one dtype"
            )
        if dtypes & {DType.JSON, DType.VECTOR}:
            raise SchemaError(
                f"count_unmatched: {left!r} is {schema[left].dtype.value}, which not every "
                "backend compares; match on scalar columns"
            )
    return [(str(a), str(b)) for a, b in pairs]


def check_index_columns(table: str, columns: Sequence[str], schema: Schema) -> list[str]:
    """Validate ``create_index`` columns against ``schema`` (SchemaError); return them."""
    if isinstance(columns, str) or not columns:
        raise SchemaError(
            f"create_index on {table!r}: columns must be a non-empty list of names, got {columns!r}"
        )
    names = list(columns)
    if len(set(names)) != len(names):
        raise SchemaError(f"create_index on {table!r}: a column is repeated in {names}")
    for name in names:
        if not isinstance(name, str) or name not in schema:
            raise SchemaError(
                f"create_index on {table!r}: no column {name!r}; the table has {list(schema.names)}"
            )
        if schema[name].dtype in (DType.JSON, DType.VECTOR):
            raise SchemaError(
                f"create_index on {table!r}: column {name!r} is {schema[name].dtype.value}, "
                "which is not indexable on every backend; index scalar columns"
            )
    return names


def index_name(table: str, columns: Sequence[str], *, unique: bool) -> str:
    """The name ``create_index`` gives an index: ``_pinnacle_ix_`` and a digest of the table,
    columns and uniqueness (short enough for every engine; stores sharing tables agree)."""
    digest = hashlib.sha256(
        "\x00".join([table, str(unique), *columns]).encode("utf-8", "surrogatepass")
    ).hexdigest()[:24]
    return f"_pinnacle_ix_{digest}"
