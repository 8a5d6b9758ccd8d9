"""In-memory reference implementations of the three store protocols (scheme ``memory://``).

These stores define the observable behaviour every other store is compared against by the
contract suite (:mod:`pinnacle_protocols.testing`). They keep everything in process memory,
need no dependency beyond attrs and cattrs, and ``from_uri("memory://...")`` returns a fresh,
empty store on every call (the path part is only a label shown in ``uri``).

Semantics worth knowing (the contract suite checks them on every store):

* :class:`MemoryArtifactStore`: keys are validated with
  :func:`~pinnacle_protocols.records.validate_sha256` before use; ``open`` returns a reader that
  verifies the sha256 and size at EOF and raises ArtifactCorrupted on a mismatch.
* :class:`MemoryMetadataStore`: versions are allocated as 1 + the highest version ever allocated
  for ``(type_id, identifier)`` (explicit versions count), starting at 0, so a number is never
  reused, even after the latest version is deleted. Records are stored and returned through the
  shared cattrs converter, exactly as SQL and MongoDB stores keep them.
* :class:`MemoryDataBackend`: rows are validated against the table's portable schema, filters
  are validated with the schema and evaluated by :func:`pinnacle_protocols.filters.matcher`,
  and returned rows are copies. ``order_by`` puts NULL first when ascending and last when
  descending (NULL sorts below every value), on every backend.
"""

from __future__ import annotations

import copy
import hashlib
import io
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any, ClassVar, Self

import attrs

from pinnacle_protocols.errors import (
    ArtifactCorrupted,
    ArtifactNotFound,
    BackendUnavailable,
    ComponentInUse,
    ComponentNotFound,
    ConfigError,
    DropRefused,
    FilterError,
    InvalidRecord,
    InvalidURIError,
    JobNotFound,
    SchemaError,
    TableExists,
    TableNotFound,
    VersionConflict,
)
from pinnacle_protocols.filters import (
    Filter,
    check_limit,
    matcher,
    parse_order_by,
    validate_filter,
)
from pinnacle_protocols.protocols import ArrowTableLike, OrderBy, ProgressCallback, RefLike, Rows
from pinnacle_protocols.records import (
    ArtifactRef,
    ComponentKey,
    ComponentRecord,
    DType,
    Field,
    JobRecord,
    JobStatus,
    JSONValue,
    Schema,
    SchemaRevision,
    check_index_columns,
    check_json,
    check_match_pairs,
    check_new_table,
    check_reuse_unchanged,
    coerce_value,
    validate_sha256,
)
from pinnacle_protocols.serialization import structure, unstructure, utcnow
from pinnacle_protocols.tables import RESERVED_PREFIX
from pinnacle_protocols.uri import RedactedURI

__all__ = ["MemoryArtifactStore", "MemoryDataBackend", "MemoryMetadataStore"]

_DEFAULT_CHUNK = 1 << 20
_SCHEMA_HEAD = "memory-1"


def _parse_memory_uri(uri: str | RedactedURI) -> RedactedURI:
    parsed = RedactedURI.parse(uri)
    if parsed.scheme != "memory":
        raise InvalidURIError(
            f"{parsed} is not a memory:// URI; the in-memory stores only accept 'memory://'"
        )
    return parsed


def _no_options(kind: str, options: Mapping[str, Any]) -> None:
    if options:
        raise ConfigError(f"{kind} takes no options, got {sorted(options)}")


class _Closable:
    _closed: bool
    _uri: RedactedURI

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._uri)!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailable(
                f"{self._uri} is closed; create a new store with from_uri({str(self._uri)!r})"
            )


# ============================================================================ artifacts
def _ref_key(ref: RefLike) -> str:
    """The validated sha256 of a ref or hex digest."""
    if isinstance(ref, ArtifactRef):
        return ref.sha256
    return validate_sha256(ref)


class _VerifyingReader(io.RawIOBase):
    """Streams a blob and checks its sha256 and size once the end is reached."""

    def __init__(
        self,
        data: bytes,
        *,
        sha256: str,
        size: int,
        where: str,
        callback: ProgressCallback | None,
    ) -> None:
        super().__init__()
        self._view = memoryview(data)
        self._pos = 0
        self._sha256 = sha256
        self._size = size
        self._where = where
        self._hasher = hashlib.sha256()
        self._callback = callback
        self._verified = False
        if callback is not None:
            callback.set_size(size)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        chunk = self._view[self._pos : self._pos + len(target)]
        n = len(chunk)
        if n == 0 and len(target) > 0:
            self._verify()
            return 0
        target[:n] = chunk
        self._pos += n
        self._hasher.update(chunk)
        if self._callback is not None and n:
            self._callback.relative_update(n)
        return n

    def _verify(self) -> None:
        if self._verified:
            return
        digest = self._hasher.hexdigest()
        if digest != self._sha256 or self._pos != self._size:
            raise ArtifactCorrupted(
                f"blob {self._sha256} in {self._where} is corrupted: its {self._pos} bytes hash "
                f"to {digest}; delete it and put the original bytes again"
            )
        self._verified = True


@attrs.define(kw_only=True, eq=False, repr=False)
class MemoryArtifactStore(_Closable):
    """A content-addressed blob store kept in a dict (reference semantics).

    Attributes:
        chunk_size: Bytes per read when streaming a file object into the store.
    """

    _uri: RedactedURI = attrs.field(factory=lambda: RedactedURI.parse("memory://"), alias="uri")
    chunk_size: int = _DEFAULT_CHUNK
    _blobs: dict[str, bytes] = attrs.field(factory=dict, init=False)
    _closed: bool = attrs.field(default=False, init=False)

    @classmethod
    def from_uri(cls, uri: str = "memory://", **options: Any) -> Self:
        """A fresh, empty store; ``options`` may set ``chunk_size``."""
        parsed = _parse_memory_uri(uri)
        chunk_size = options.pop("chunk_size", _DEFAULT_CHUNK)
        _no_options("MemoryArtifactStore", options)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
            raise ConfigError(f"chunk_size must be a positive int, got {chunk_size!r}")
        return cls(uri=parsed, chunk_size=chunk_size)

    @property
    def uri(self) -> RedactedURI:
        """Where the store lives (``memory://...``)."""
        return self._uri

    def put(
        self, data: bytes | IO[bytes], *, callback: ProgressCallback | None = None
    ) -> ArtifactRef:
        """Store ``data`` (bytes or a binary file object read to EOF) and return its ref."""
        self._check_open()
        hasher = hashlib.sha256()
        parts: list[bytes] = []
        if isinstance(data, (bytes, bytearray, memoryview)):
            whole = bytes(data)
            if callback is not None:
                callback.set_size(len(whole))
            for start in range(0, len(whole), self.chunk_size):
                chunk = whole[start : start + self.chunk_size]
                hasher.update(chunk)
                parts.append(chunk)
                if callback is not None:
                    callback.relative_update(len(chunk))
        elif hasattr(data, "read"):
            while True:
                chunk = data.read(self.chunk_size)
                if not isinstance(chunk, (bytes, bytearray)):
                    raise TypeError(
                        f"put() needs a binary file object; read() returned {type(chunk).__name__}"
                    )
                if not chunk:
                    break
                chunk = bytes(chunk)
                hasher.update(chunk)
                parts.append(chunk)
                if callback is not None:
                    callback.relative_update(len(chunk))
        else:
            raise TypeError(f"put() needs bytes or a binary file object, got {type(data).__name__}")
        blob = b"".join(parts)
        sha = hasher.hexdigest()
        # setdefault publishes atomically and keeps the first copy (idempotent).
        self._blobs.setdefault(sha, blob)
        return ArtifactRef(sha256=sha, size=len(blob))

    def _lookup(self, ref: RefLike) -> tuple[str, bytes]:
        key = _ref_key(ref)
        self._check_open()
        try:
            return key, self._blobs[key]
        except KeyError:
            raise ArtifactNotFound(f"no blob {key} in {self._uri}") from None

    def open(self, ref: RefLike, *, callback: ProgressCallback | None = None) -> IO[bytes]:
        """A streaming reader that raises ArtifactCorrupted at EOF on a mismatch."""
        key, blob = self._lookup(ref)
        raw = _VerifyingReader(
            blob, sha256=key, size=len(blob), where=str(self._uri), callback=callback
        )
        return io.BufferedReader(raw, buffer_size=self.chunk_size)

    def get(self, ref: RefLike) -> bytes:
        """The verified bytes (ArtifactCorrupted on mismatch, ArtifactNotFound if absent)."""
        key, blob = self._lookup(ref)
        if hashlib.sha256(blob).hexdigest() != key:
            raise ArtifactCorrupted(
                f"blob {key} in {self._uri} is corrupted; delete it and put the original again"
            )
        return blob

    def exists(self, ref: RefLike) -> bool:
        """Whether a blob with this key is stored."""
        key = _ref_key(ref)
        self._check_open()
        return key in self._blobs

    def size(self, ref: RefLike) -> int:
        """The blob's size in bytes (ArtifactNotFound if absent)."""
        return len(self._lookup(ref)[1])

    def delete(self, ref: RefLike) -> None:
        """Remove the blob; deleting an absent blob is not an error."""
        key = _ref_key(ref)
        self._check_open()
        self._blobs.pop(key, None)

    def iter_refs(self) -> Iterator[ArtifactRef]:
        """Every stored blob (a snapshot taken when called)."""
        self._check_open()
        snapshot = [(k, len(v)) for k, v in list(self._blobs.items())]
        return iter([ArtifactRef(sha256=k, size=n) for k, n in snapshot])

    def drop(self, *, force: bool = False) -> None:
        """Delete every blob (DropRefused unless ``force=True``)."""
        if force is not True:
            raise DropRefused(
                f"refusing to delete every blob of {self._uri}; call drop(force=True) to confirm"
            )
        self._check_open()
        self._blobs.clear()

    def close(self) -> None:
        """Mark the store closed; later calls raise BackendUnavailable."""
        self._closed = True


# ============================================================================ metadata
def _copy_component(record: ComponentRecord) -> ComponentRecord:
    return structure(unstructure(record), ComponentRecord)


def _copy_job(job: JobRecord) -> JobRecord:
    return structure(unstructure(job), JobRecord)


def _check_aware(value: datetime | None, what: str) -> None:
    if value is not None and value.tzinfo is None:
        raise InvalidRecord(f"{what} {value!r} is naive: use timezone-aware datetimes (UTC)")


@attrs.define(kw_only=True, eq=False, repr=False)
class MemoryMetadataStore(_Closable):
    """Versioned component records, lineage, jobs and metadata kept in dicts."""

    _uri: RedactedURI = attrs.field(factory=lambda: RedactedURI.parse("memory://"), alias="uri")
    _components: dict[tuple[str, str], dict[int, ComponentRecord]] = attrs.field(
        factory=dict, init=False
    )
    _highest: dict[tuple[str, str], int] = attrs.field(factory=dict, init=False)
    _edges: set[tuple[ComponentKey, ComponentKey]] = attrs.field(factory=set, init=False)
    _jobs: dict[str, JobRecord] = attrs.field(factory=dict, init=False)
    _metadata: dict[str, JSONValue] = attrs.field(factory=dict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _closed: bool = attrs.field(default=False, init=False)

    @classmethod
    def from_uri(cls, uri: str = "memory://", **options: Any) -> Self:
        """A fresh, empty store (takes no options)."""
        parsed = _parse_memory_uri(uri)
        _no_options("MemoryMetadataStore", options)
        return cls(uri=parsed)

    @property
    def uri(self) -> RedactedURI:
        """Where the store lives (``memory://...``)."""
        return self._uri

    # ------------------------------------------------------------------ components
    def create_component(
        self, record: ComponentRecord, *, reuse_unchanged: bool = False
    ) -> ComponentRecord:
        """Store a new version; allocate 1 + the highest ever allocated if ``version`` is None.

        ``reuse_unchanged``: return the latest version instead if its content is the same.
        """
        self._check_open()
        if not isinstance(record, ComponentRecord):
            raise InvalidRecord(f"expected a ComponentRecord, got {type(record).__name__}")
        _check_aware(record.created_at, "created_at")
        check_reuse_unchanged(record, reuse_unchanged)
        name = (record.type_id, record.identifier)
        with self._lock:
            versions = self._components.get(name, {})
            if reuse_unchanged and versions:
                latest = versions[max(versions)]
                if latest.content_hash == record.content_hash:
                    return _copy_component(latest)
            if record.version is None:
                version = self._highest.get(name, -1) + 1
            else:
                version = record.version
                if version in versions:
                    raise VersionConflict(
                        f"{record.type_id}/{record.identifier} version {version} already exists "
                        f"in {self._uri}; omit the version to allocate the next one"
                    )
            stored = _copy_component(
                attrs.evolve(record, version=version, created_at=record.created_at or utcnow())
            )
            self._components.setdefault(name, {})[version] = stored
            self._highest[name] = max(self._highest.get(name, -1), version)
        return _copy_component(stored)

    def _find(self, type_id: str, identifier: str, version: int | None) -> ComponentRecord:
        versions = self._components.get((type_id, identifier))
        if not versions:
            raise ComponentNotFound(f"no component {type_id}/{identifier} in {self._uri}")
        if version is None:
            return versions[max(versions)]
        try:
            return versions[version]
        except KeyError:
            raise ComponentNotFound(
                f"component {type_id}/{identifier} has no version {version} in {self._uri}; "
                f"stored versions: {sorted(versions)}"
            ) from None

    def get_component(
        self, type_id: str, identifier: str, version: int | None = None
    ) -> ComponentRecord:
        """One version (``None`` = the latest); ComponentNotFound if absent."""
        self._check_open()
        return _copy_component(self._find(type_id, identifier, version))

    def show_components(self, type_id: str | None = None) -> list[ComponentKey]:
        """The latest version of every component (of ``type_id``), sorted by type and id."""
        self._check_open()
        keys = [
            ComponentKey(type_id=t, identifier=i, version=max(versions))
            for (t, i), versions in self._components.items()
            if versions and (type_id is None or t == type_id)
        ]
        return sorted(keys)

    def show_versions(self, type_id: str, identifier: str) -> list[int]:
        """Every stored version of a component, ascending (empty if none)."""
        self._check_open()
        return sorted(self._components.get((type_id, identifier), {}))

    def delete_component_version(
        self, type_id: str, identifier: str, version: int, *, force: bool = False
    ) -> None:
        """Delete one version and its lineage edges (ComponentInUse if depended on)."""
        self._check_open()
        with self._lock:
            record = self._find(type_id, identifier, version)
            key = record.key
            parents = self.get_parents(key)
            if parents and not force:
                shown = ", ".join(f"{p.type_id}/{p.identifier}@{p.version}" for p in parents)
                raise ComponentInUse(
                    f"{type_id}/{identifier}@{version} is used by {shown} in {self._uri}; "
                    "remove those first or pass force=True"
                )
            versions = self._components[(type_id, identifier)]
            del versions[version]
            if not versions:
                del self._components[(type_id, identifier)]
            self._edges = {(p, c) for p, c in self._edges if key not in (p, c)}

    def referenced_artifacts(self) -> set[str]:
        """sha256 of every artifact referenced by a stored record."""
        self._check_open()
        return {
            ref.sha256
            for versions in self._components.values()
            for record in versions.values()
            for ref in record.artifacts.values()
        }

    # ------------------------------------------------------------------ lineage
    def _require(self, key: ComponentKey) -> None:
        if not isinstance(key, ComponentKey):
            raise InvalidRecord(f"expected a ComponentKey, got {type(key).__name__}")
        self._find(key.type_id, key.identifier, key.version)

    def create_parent_child(self, parent: ComponentKey, child: ComponentKey) -> None:
        """Record that ``parent`` depends on ``child`` (idempotent)."""
        self._check_open()
        with self._lock:
            self._require(parent)
            self._require(child)
            self._edges.add((parent, child))

    def get_parents(self, child: ComponentKey) -> list[ComponentKey]:
        """Components that depend on ``child``, sorted."""
        self._check_open()
        return sorted(p for p, c in self._edges if c == child)

    def get_children(self, parent: ComponentKey) -> list[ComponentKey]:
        """Components that ``parent`` depends on, sorted."""
        self._check_open()
        return sorted(c for p, c in self._edges if p == parent)

    # ------------------------------------------------------------------ jobs
    def create_job(self, job: JobRecord) -> JobRecord:
        """Store a new job (VersionConflict if the id exists)."""
        self._check_open()
        if not isinstance(job, JobRecord):
            raise InvalidRecord(f"expected a JobRecord, got {type(job).__name__}")
        for name in ("created_at", "started_at", "finished_at", "updated_at"):
            _check_aware(getattr(job, name), name)
        with self._lock:
            if job.job_id in self._jobs:
                raise VersionConflict(
                    f"job {job.job_id!r} already exists in {self._uri}; use update_job"
                )
            stored = _copy_job(attrs.evolve(job, created_at=job.created_at or utcnow()))
            self._jobs[job.job_id] = stored
        return _copy_job(stored)

    def get_job(self, job_id: str) -> JobRecord:
        """One job (JobNotFound if absent)."""
        self._check_open()
        try:
            return _copy_job(self._jobs[job_id])
        except KeyError:
            raise JobNotFound(f"no job {job_id!r} in {self._uri}") from None

    def update_job(self, job: JobRecord) -> JobRecord:
        """Replace a stored job; a ``created_at`` of None keeps the stored creation time."""
        self._check_open()
        if not isinstance(job, JobRecord):
            raise InvalidRecord(f"expected a JobRecord, got {type(job).__name__}")
        for name in ("created_at", "started_at", "finished_at", "updated_at"):
            _check_aware(getattr(job, name), name)
        with self._lock:
            old = self._jobs.get(job.job_id)
            if old is None:
                raise JobNotFound(f"no job {job.job_id!r} in {self._uri}; create it first")
            stored = _copy_job(attrs.evolve(job, created_at=job.created_at or old.created_at))
            self._jobs[job.job_id] = stored
        return _copy_job(stored)

    def delete_job(self, job_id: str) -> None:
        """Delete one job record (JobNotFound if absent)."""
        self._check_open()
        with self._lock:
            if self._jobs.pop(job_id, None) is None:
                raise JobNotFound(f"no job {job_id!r} in {self._uri}")

    def show_jobs(
        self, *, component: ComponentKey | None = None, status: JobStatus | None = None
    ) -> list[JobRecord]:
        """Jobs, optionally filtered, ordered by creation time then id."""
        self._check_open()
        jobs = [
            j
            for j in self._jobs.values()
            if (component is None or j.component == component)
            and (status is None or j.status == status)
        ]
        epoch = datetime.min.replace(tzinfo=UTC)
        jobs.sort(key=lambda j: (j.created_at or epoch, j.job_id))
        return [_copy_job(j) for j in jobs]

    # ------------------------------------------------------------------ metadata
    def get_metadata(self, key: str, default: JSONValue = None) -> JSONValue:
        """The JSON value stored under ``key``, or ``default``."""
        self._check_open()
        if key not in self._metadata:
            return default
        return copy.deepcopy(self._metadata[key])

    def set_metadata(self, key: str, value: JSONValue) -> None:
        """Store a JSON value under ``key`` (overwrites)."""
        self._check_open()
        if not isinstance(key, str) or not key or "\x00" in key:
            raise InvalidRecord(f"metadata keys are non-empty strings without NUL, got {key!r}")
        check_json(value, f"metadata {key!r}")
        self._metadata[key] = copy.deepcopy(value)

    def swap_metadata(self, key: str, expected: JSONValue, value: JSONValue) -> bool:
        """Store ``value`` under ``key`` only if it holds ``expected`` (SupportsMetadataSwap)."""
        self._check_open()
        if not isinstance(key, str) or not key or "\x00" in key:
            raise InvalidRecord(f"metadata keys are non-empty strings without NUL, got {key!r}")
        check_json(value, f"metadata {key!r}")
        with self._lock:
            if self._metadata.get(key) != expected:
                return False
            self._metadata[key] = copy.deepcopy(value)
            return True

    # ------------------------------------------------------------------ lifecycle
    def schema_revision(self) -> SchemaRevision:
        """Always up to date: memory stores have no on-disk schema."""
        self._check_open()
        return SchemaRevision(current=_SCHEMA_HEAD, head=_SCHEMA_HEAD)

    def migrate(self) -> None:
        """Nothing to migrate."""
        self._check_open()

    def drop(self, *, force: bool = False) -> None:
        """Delete everything, including version counters (DropRefused unless ``force=True``)."""
        if force is not True:
            raise DropRefused(
                f"refusing to delete every record of {self._uri}; call drop(force=True) to confirm"
            )
        self._check_open()
        with self._lock:
            self._components.clear()
            self._highest.clear()
            self._edges.clear()
            self._jobs.clear()
            self._metadata.clear()

    def close(self) -> None:
        """Mark the store closed; later calls raise BackendUnavailable."""
        self._closed = True


# ============================================================================ data
def _coerce(field: Field, value: Any, where: str) -> Any:
    """:func:`~pinnacle_protocols.records.coerce_value`, JSON copied (the store keeps objects)."""
    value = coerce_value(field, value, where)
    return copy.deepcopy(value) if field.dtype is DType.JSON else value


@attrs.define(kw_only=True, eq=False)
class _Table:
    schema: Schema
    rows: list[dict[str, Any]] = attrs.field(factory=list)


@attrs.define(kw_only=True, eq=False, repr=False)
class MemoryDataBackend(_Closable):
    """Tables of dict rows with the portable schema and the reference filter semantics.

    ``native(table)`` returns a copy of the table's rows; ``execute(query)`` takes a mapping with
    ``"table"`` and optionally ``"where"``, ``"columns"``, ``"limit"`` and ``"order_by"`` (the
    keyword arguments of :meth:`select`).
    """

    supports_update: ClassVar[bool] = True
    supports_delete: ClassVar[bool] = True
    supports_transactions: ClassVar[bool] = False
    has_native_ids: ClassVar[bool] = False

    _uri: RedactedURI = attrs.field(factory=lambda: RedactedURI.parse("memory://"), alias="uri")
    _tables: dict[str, _Table] = attrs.field(factory=dict, init=False)
    _closed: bool = attrs.field(default=False, init=False)

    @classmethod
    def from_uri(cls, uri: str = "memory://", **options: Any) -> Self:
        """A fresh, empty backend (takes no options)."""
        parsed = _parse_memory_uri(uri)
        _no_options("MemoryDataBackend", options)
        return cls(uri=parsed)

    @property
    def uri(self) -> RedactedURI:
        """Where the data lives (``memory://...``)."""
        return self._uri

    def _table(self, name: str) -> _Table:
        self._check_open()
        try:
            return self._tables[name]
        except (KeyError, TypeError):
            raise TableNotFound(
                f"no table {name!r} in {self._uri}; create it with create_table()"
            ) from None

    def list_tables(self) -> list[str]:
        """User tables, sorted."""
        self._check_open()
        return sorted(self._tables)

    def create_table(self, name: str, schema: Schema) -> None:
        """Create a table (TableExists if the name is taken)."""
        self._check_open()
        if not isinstance(name, str) or not name or "\x00" in name:
            raise SchemaError(f"table names are non-empty strings without NUL, got {name!r}")
        if name.startswith(RESERVED_PREFIX):
            raise SchemaError(f"table name {name!r}: the prefix {RESERVED_PREFIX!r} is reserved")
        if not isinstance(schema, Schema):
            raise SchemaError(f"expected a Schema, got {type(schema).__name__}")
        if name in self._tables:
            raise TableExists(f"table {name!r} already exists in {self._uri}")
        check_new_table(name, schema, self._tables, self._uri)
        self._tables[name] = _Table(schema=schema)

    def drop_table(self, name: str) -> None:
        """Drop a table (TableNotFound if absent)."""
        self._table(name)
        del self._tables[name]

    def table_schema(self, name: str) -> Schema:
        """The schema the table was created with."""
        return self._table(name).schema

    def _row(self, schema: Schema, row: object, where: str) -> dict[str, Any]:
        if not isinstance(row, Mapping):
            raise SchemaError(f"{where}: a row must be a dict, got {type(row).__name__}")
        unknown = [k for k in row if k not in schema]
        if unknown:
            raise SchemaError(
                f"{where}: unknown column(s) {unknown!r}; the table has {list(schema.names)}"
            )
        return {f.name: _coerce(f, row.get(f.name), where) for f in schema.fields}

    def insert(self, table: str, rows: Rows | ArrowTableLike) -> int:
        """Validate every row, then append them all (nothing is written on a SchemaError)."""
        tbl = self._table(table)
        if isinstance(rows, (Mapping, str, bytes)):
            raise SchemaError(f"insert into {table!r}: pass a list of dicts, not a single row")
        if not isinstance(rows, Sequence) and isinstance(rows, ArrowTableLike):
            items: Sequence[Any] = rows.to_pylist()
        else:
            items = list(rows)
        new = [
            self._row(tbl.schema, row, f"insert into {table!r}, row {i}")
            for i, row in enumerate(items)
        ]
        tbl.rows.extend(new)
        return len(new)

    def _matching(self, table: str, where: Filter | None) -> tuple[_Table, list[dict[str, Any]]]:
        tbl = self._table(table)
        validate_filter(where, tbl.schema)
        match = matcher(where)
        return tbl, [r for r in tbl.rows if match(r)]

    def select(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
    ) -> list[dict[str, Any]]:
        """Matching rows as new dicts; NULL sorts first ascending and last descending."""
        tbl, rows = self._matching(table, where)
        schema = tbl.schema
        if columns is not None:
            if isinstance(columns, str):
                raise SchemaError("columns must be a list of column names, not a string")
            for c in columns:
                if c not in schema:
                    raise SchemaError(f"select from {table!r}: unknown column {c!r}")
        check_limit(limit)
        if order_by:
            for column, descending in reversed(parse_order_by(order_by, schema, table)):
                rows.sort(key=_sort_key(column), reverse=descending)
        if limit is not None:
            rows = rows[:limit]
        names = list(columns) if columns is not None else list(schema.names)
        return [{n: copy.deepcopy(r[n]) for n in names} for r in rows]

    def update(self, table: str, where: Filter | None, values: Mapping[str, Any]) -> int:
        """Set ``values`` on every matching row; return how many matched."""
        tbl = self._table(table)
        if not isinstance(values, Mapping):
            raise SchemaError(f"update {table!r}: values must be a dict")
        where_text = f"update {table!r}"
        coerced = {}
        for name, value in values.items():
            if name not in tbl.schema:
                raise SchemaError(
                    f"{where_text}: unknown column {name!r}; the table has {list(tbl.schema.names)}"
                )
            coerced[name] = _coerce(tbl.schema[name], value, where_text)
        _, rows = self._matching(table, where)
        for row in rows:
            row.update(copy.deepcopy(coerced))
        return len(rows)

    def delete(self, table: str, where: Filter | None) -> int:
        """Delete matching rows (``None`` or ``{}`` deletes every row); return how many."""
        tbl, rows = self._matching(table, where)
        doomed = {id(r) for r in rows}
        tbl.rows = [r for r in tbl.rows if id(r) not in doomed]
        return len(rows)

    def count(self, table: str, where: Filter | None = None) -> int:
        """How many rows match."""
        return len(self._matching(table, where)[1])

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
        """See :class:`pinnacle_protocols.protocols.SupportsAntiJoin`."""
        for name, tbl, col in ((table, self._table(table), column), (other, None, other_column)):
            schema = tbl.schema if tbl is not None else self._table(other).schema
            if col not in schema:
                raise SchemaError(f"anti join: table {name!r} has no column {col!r}")
        present = {r[other_column] for r in self._matching(other, other_where)[1]}
        keys = {
            r[column]
            for r in self._matching(table, where)[1]
            if r[column] is not None and r[column] not in present
        }
        if after is not None:
            keys = {k for k in keys if k > after}
        return sorted(keys)[:limit]

    def count_unmatched(
        self,
        table: str,
        other: str,
        on: Sequence[tuple[str, str]],
        *,
        where: Filter | None = None,
        other_where: Filter | None = None,
    ) -> int:
        """See :class:`pinnacle_protocols.protocols.SupportsMatchCount`."""
        pairs = check_match_pairs(on, self._table(table).schema, self._table(other).schema)
        left = [c for c, _ in pairs]
        right = [c for _, c in pairs]
        present = {_match_key(r, right) for r in self._matching(other, other_where)[1]}
        return sum(
            1
            for r in self._matching(table, where)[1]
            if r[left[0]] is not None and _match_key(r, left) not in present
        )

    def create_index(self, table: str, columns: Sequence[str], *, unique: bool = False) -> bool:
        """See :class:`pinnacle_protocols.protocols.SupportsIndexes`: the columns are checked;
        the memory backend keeps no indexes (False)."""
        del unique
        check_index_columns(table, columns, self._table(table).schema)
        return False

    def native(self, table: str) -> list[dict[str, Any]]:
        """A deep copy of the table's rows (the memory backend has no richer handle)."""
        return copy.deepcopy(self._table(table).rows)

    def execute(self, query: Any) -> list[dict[str, Any]]:
        """Run ``{"table": name, "where": ..., "columns": ..., "limit": ..., "order_by": ...}``."""
        if not isinstance(query, Mapping) or "table" not in query:
            raise FilterError(
                "the memory backend executes mappings such as {'table': 't', 'where': {...}}"
            )
        extra = set(query) - {"table", "where", "columns", "limit", "order_by"}
        if extra:
            raise FilterError(f"unknown query keys {sorted(extra)}")
        return self.select(
            query["table"],
            query.get("where"),
            columns=query.get("columns"),
            limit=query.get("limit"),
            order_by=query.get("order_by"),
        )

    @classmethod
    def default_metadata_uri_for(cls, uri: RedactedURI) -> RedactedURI | None:
        """``memory://`` for any ``memory://`` URI (InvalidURIError for another scheme)."""
        _parse_memory_uri(uri)
        return RedactedURI.parse("memory://")

    @classmethod
    def default_artifact_uri_for(cls, uri: RedactedURI) -> RedactedURI | None:
        """``memory://`` for any ``memory://`` URI (InvalidURIError for another scheme)."""
        _parse_memory_uri(uri)
        return RedactedURI.parse("memory://")

    def default_metadata_uri(self) -> RedactedURI | None:
        """``memory://``: a fresh in-memory metadata store."""
        return self.default_metadata_uri_for(self._uri)

    def default_artifact_uri(self) -> RedactedURI | None:
        """``memory://``: a fresh in-memory artifact store."""
        return self.default_artifact_uri_for(self._uri)

    def drop(self, *, force: bool = False) -> None:
        """Drop every table (DropRefused unless ``force=True``)."""
        if force is not True:
            raise DropRefused(
                f"refusing to drop every table of {self._uri}; call drop(force=True) to confirm"
            )
        self._check_open()
        self._tables.clear()

    def close(self) -> None:
        """Mark the backend closed; later calls raise BackendUnavailable."""
        self._closed = True


def _sort_key(column: str) -> Any:
    def key(row: Mapping[str, Any]) -> tuple[Any, ...]:
        value = row[column]
        # NULL sorts below every value: first ascending, last descending.
        return (0,) if value is None else (1, value)

    return key


def _match_key(row: Mapping[str, Any], columns: Sequence[str]) -> tuple[Any, ...]:
    # (type, value): True and 1, or 1 and 1.0, are different stored values for equality
    return tuple((type(row[c]).__name__, row[c]) for c in columns)
