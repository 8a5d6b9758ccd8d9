"""The three store contracts: ArtifactStore, MetadataStore and DataBackend.

Implementations are plain classes that satisfy these ``typing.Protocol`` s structurally; they
register by URI scheme through entry points (``pinnacle.artifact_stores``,
``pinnacle.metadata_stores``, ``pinnacle.databackends``) pointing at a factory
``(uri: str, **options) -> store``, conventionally the class's ``from_uri`` classmethod.

Capabilities that not every implementation has are ``ClassVar[bool]`` flags on the class; the
contract suite in :mod:`pinnacle_protocols.testing` reads them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any, ClassVar, Literal, Protocol, TypeAlias, runtime_checkable

from pinnacle_protocols.filters import Filter
from pinnacle_protocols.records import (
    ArtifactRef,
    ComponentKey,
    ComponentRecord,
    JobRecord,
    JobStatus,
    JSONValue,
    Schema,
    SchemaRevision,
)
from pinnacle_protocols.uri import RedactedURI

__all__ = [
    "ArrowTableLike",
    "ArtifactStore",
    "DataBackend",
    "MetadataStore",
    "OrderBy",
    "ProgressCallback",
    "RefLike",
    "Rows",
    "StoreFactory",
]

#: An artifact address: a ref, or its sha256 hex digest.
RefLike: TypeAlias = ArtifactRef | str
#: Rows for insert: a sequence of dicts.
Rows: TypeAlias = Sequence[Mapping[str, Any]]
#: ``"col"`` (ascending) or ``("col", "asc" | "desc")``.
OrderBy: TypeAlias = Sequence[str | tuple[str, Literal["asc", "desc"]]]


@runtime_checkable
class ProgressCallback(Protocol):
    """Progress reporting for large transfers; ``fsspec.callbacks.Callback`` satisfies it."""

    def set_size(self, size: int) -> None:
        """Announce the total number of bytes (called once, when known)."""

    def relative_update(self, inc: int = 1) -> None:
        """Report ``inc`` more bytes transferred."""


@runtime_checkable
class ArrowTableLike(Protocol):
    """Anything with ``to_pylist()`` (a ``pyarrow.Table``), accepted by ``insert``."""

    def to_pylist(self) -> list[dict[str, Any]]:
        """Rows as a list of dicts."""
        ...


class StoreFactory(Protocol):
    """What an entry point loads: builds a store from a URI (connects lazily)."""

    def __call__(self, uri: str, **options: Any) -> Any:
        """Build the store for ``uri``; options are implementation specific."""
        ...


@runtime_checkable
class ArtifactStore(Protocol):
    """A content-addressed blob store: keys are sha256 hex digests of the bytes.

    Writes are atomic (a reader never sees a partial blob) and idempotent (the same bytes give
    the same ref and are stored once). Keys are validated as sha256 hex before they touch a path
    or a query, so a key can never escape the store.
    """

    @property
    def uri(self) -> RedactedURI:
        """Where the store lives (password redacted when shown)."""
        ...

    def put(
        self, data: bytes | IO[bytes], *, callback: ProgressCallback | None = None
    ) -> ArtifactRef:
        """Store ``data`` (bytes or a binary file object read to EOF) and return its ref.

        Streams in chunks, hashing while writing; memory is bounded by the chunk size.
        """
        ...

    def open(self, ref: RefLike, *, callback: ProgressCallback | None = None) -> IO[bytes]:
        """A streaming reader of the blob that raises ArtifactCorrupted at EOF on a mismatch.

        Raises:
            ArtifactNotFound: no such blob.
            InvalidArtifactRef: ``ref`` is not a sha256 hex digest.
        """
        ...

    def get(self, ref: RefLike) -> bytes:
        """The verified bytes (ArtifactCorrupted on mismatch, ArtifactNotFound if absent)."""
        ...

    def exists(self, ref: RefLike) -> bool:
        """Whether a complete blob with this key is stored."""
        ...

    def size(self, ref: RefLike) -> int:
        """The blob's size in bytes (ArtifactNotFound if absent)."""
        ...

    def delete(self, ref: RefLike) -> None:
        """Remove the blob; deleting an absent blob is not an error."""
        ...

    def iter_refs(self) -> Iterator[ArtifactRef]:
        """Every complete blob, in no particular order (never a partial one)."""
        ...

    def drop(self, *, force: bool = False) -> None:
        """Delete every blob of this store (and nothing outside it).

        Raises:
            DropRefused: ``force`` is not True; nothing was deleted.
        """
        ...

    def close(self) -> None:
        """Release connections; the store may not be used afterwards."""
        ...


@runtime_checkable
class MetadataStore(Protocol):
    """Versioned component records, lineage, jobs and small key/value metadata."""

    @property
    def uri(self) -> RedactedURI:
        """Where the store lives (password redacted when shown)."""
        ...

    def create_component(self, record: ComponentRecord) -> ComponentRecord:
        """Store a new version of ``(record.type_id, record.identifier)`` and return it.

        With ``record.version is None`` the next version (1 + the highest ever allocated, starting
        at 0) is allocated atomically, even under concurrent writers. With an explicit version
        that exact version is stored. ``created_at`` is set by the store if missing.

        Raises:
            VersionConflict: the explicit version already exists.
        """
        ...

    def get_component(
        self, type_id: str, identifier: str, version: int | None = None
    ) -> ComponentRecord:
        """One version (``None`` = the latest).

        Raises:
            ComponentNotFound: no such component or version.
        """
        ...

    def show_components(self, type_id: str | None = None) -> list[ComponentKey]:
        """The latest version of every component (of ``type_id``), sorted by type and id."""
        ...

    def show_versions(self, type_id: str, identifier: str) -> list[int]:
        """Every stored version of a component, ascending (empty if none)."""
        ...

    def delete_component_version(
        self, type_id: str, identifier: str, version: int, *, force: bool = False
    ) -> None:
        """Delete one version, its artifact references and its lineage edges.

        Raises:
            ComponentNotFound: no such version.
            ComponentInUse: another component depends on it (``get_parents`` is not empty) and
                ``force`` is False.
        """
        ...

    def referenced_artifacts(self) -> set[str]:
        """sha256 of every artifact referenced by any stored record (for garbage collection)."""
        ...

    def create_parent_child(self, parent: ComponentKey, child: ComponentKey) -> None:
        """Record that ``parent`` depends on ``child`` (idempotent).

        Raises:
            ComponentNotFound: either version does not exist.
        """
        ...

    def get_parents(self, child: ComponentKey) -> list[ComponentKey]:
        """Components that depend on ``child``, sorted."""
        ...

    def get_children(self, parent: ComponentKey) -> list[ComponentKey]:
        """Components that ``parent`` depends on, sorted."""
        ...

    def create_job(self, job: JobRecord) -> JobRecord:
        """Store a new job (``created_at`` set if missing).

        Raises:
            VersionConflict: a job with this id exists.
        """
        ...

    def get_job(self, job_id: str) -> JobRecord:
        """One job (JobNotFound if absent)."""
        ...

    def update_job(self, job: JobRecord) -> JobRecord:
        """Replace a stored job with ``job`` (same ``job_id``; JobNotFound if absent)."""
        ...

    def show_jobs(
        self, *, component: ComponentKey | None = None, status: JobStatus | None = None
    ) -> list[JobRecord]:
        """Jobs, optionally of one component version and/or status, by creation time then id."""
        ...

    def get_metadata(self, key: str, default: JSONValue = None) -> JSONValue:
        """A small JSON value stored under ``key``, or ``default``."""
        ...

    def set_metadata(self, key: str, value: JSONValue) -> None:
        """Store a small JSON value under ``key`` (overwrites)."""
        ...

    def schema_revision(self) -> SchemaRevision:
        """The store's schema revision against this package's head."""
        ...

    def migrate(self) -> None:
        """Bring the store's schema to head; safe to run concurrently and repeatedly."""
        ...

    def drop(self, *, force: bool = False) -> None:
        """Delete every pinnacledb table/collection of this store (never user data).

        Raises:
            DropRefused: ``force`` is not True; nothing was deleted.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class DataBackend(Protocol):
    """The user's data: portable CRUD with the filter language, plus native access.

    Capability flags (``ClassVar[bool]``) on implementations: ``supports_update``,
    ``supports_delete``, ``supports_transactions``, ``has_native_ids`` (rows carry ``_id``).
    """

    supports_update: ClassVar[bool]
    supports_delete: ClassVar[bool]

    @property
    def uri(self) -> RedactedURI:
        """Where the data lives (password redacted when shown)."""
        ...

    def list_tables(self) -> list[str]:
        """User tables/collections, sorted (pinnacledb's own ``_pinnacle_*`` tables excluded)."""
        ...

    def create_table(self, name: str, schema: Schema) -> None:
        """Create a table with the portable schema.

        Raises:
            TableExists: a table of that name exists.
        """
        ...

    def drop_table(self, name: str) -> None:
        """Drop a table (TableNotFound if absent)."""
        ...

    def table_schema(self, name: str) -> Schema:
        """The portable schema of a table created through ``create_table`` (TableNotFound)."""
        ...

    def insert(self, table: str, rows: Rows | ArrowTableLike) -> int:
        """Append rows (dicts keyed by column, missing columns are NULL); return the count.

        Raises:
            TableNotFound: no such table.
            SchemaError: a row has an unknown column or a value of the wrong type.
        """
        ...

    def select(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
    ) -> list[dict[str, Any]]:
        """Rows matching ``where`` as dicts (NULL as None); unordered unless ``order_by``."""
        ...

    def update(self, table: str, where: Filter | None, values: Mapping[str, Any]) -> int:
        """Set ``values`` on matching rows; return how many matched.

        Raises:
            UnsupportedOperation: the engine cannot update (``supports_update`` is False).
        """
        ...

    def delete(self, table: str, where: Filter | None) -> int:
        """Delete matching rows (``None`` or ``{}`` deletes every row); return how many."""
        ...

    def count(self, table: str, where: Filter | None = None) -> int:
        """How many rows match."""
        ...

    def native(self, table: str) -> Any:
        """The native handle of a table: a pymongo Collection, an ibis Table expression."""
        ...

    def execute(self, query: Any) -> Any:
        """Run a native query (ibis expression, MongoDB find/aggregate spec) and return rows."""
        ...

    def default_metadata_uri(self) -> str | None:
        """The metadata store URI that belongs with this backend by default, or None."""
        ...

    def default_artifact_uri(self) -> str | None:
        """The artifact store URI that belongs with this backend by default, or None."""
        ...

    def drop(self, *, force: bool = False) -> None:
        """Drop every user table of this backend (DropRefused without force)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
