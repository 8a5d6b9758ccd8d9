"""The three store contracts: ArtifactStore, MetadataStore and DataBackend.

Implementations are plain classes that satisfy these ``typing.Protocol`` s structurally; they
register by URI scheme through entry points (``pinnacle.artifact_stores``,
``pinnacle.metadata_stores``, ``pinnacle.databackends``) pointing at a factory
``(uri: str, **options) -> store``, conventionally the class's ``from_uri`` classmethod.

Capabilities that not every implementation has are ``ClassVar[bool]`` flags on the class; the
contract suite in :mod:`pinnacle_protocols.testing` reads them.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import IO, Any, ClassVar, Literal, Protocol, TypeAlias, runtime_checkable

from pinnacle_protocols.errors import UnsupportedOperation
from pinnacle_protocols.filters import Filter
from pinnacle_protocols.records import (
    ArtifactRef,
    ComponentKey,
    ComponentRecord,
    CountQuery,
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
    "InsertReturningIds",
    "MetadataStore",
    "OrderBy",
    "ProgressCallback",
    "RefLike",
    "Rows",
    "StoreFactory",
    "SupportsAntiJoin",
    "SupportsArrowSelect",
    "SupportsChangeToken",
    "SupportsDefaultsFromURI",
    "SupportsGetMany",
    "SupportsIndexes",
    "SupportsInsertMany",
    "SupportsMatchCount",
    "SupportsMatchCounts",
    "SupportsMetadataSwap",
    "SupportsStaleTempCleanup",
    "count_many",
    "get_many",
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
class SupportsMetadataSwap(Protocol):
    """Optional MetadataStore capability: compare-and-set of one key/value metadata entry.

    Lets several processes move one small pointer (a vector index's stored build) without
    losing each other's updates: each reads the value, computes the next one, and swaps it in
    only if nobody moved it meanwhile (else re-reads and tries again). A store without it
    leaves callers with ``set_metadata``, where the later writer wins.
    """

    def swap_metadata(self, key: str, expected: JSONValue, value: JSONValue) -> bool:
        """Store ``value`` under ``key`` only if ``get_metadata(key)`` equals ``expected``
        (``None``: absent or None) at that moment, atomically for every process sharing the
        store; return whether it was stored.

        Values are compared as JSON data (dict key order does not matter).

        Raises:
            InvalidRecord: the key or ``value`` is invalid (as for ``set_metadata``).
        """
        ...


@runtime_checkable
class SupportsChangeToken(Protocol):
    """Optional MetadataStore capability: a cheap, exact "may anything have changed?" check.

    Lets a caller keep what it derived from records (the facade: a table's codec) and skip
    reading them again while nothing changed, in any process. Use it as: take a token, then
    read, and keep the result with that token; while later tokens equal it, the result is
    current. A store without it is read every time.
    """

    def change_token(self) -> Hashable | None:
        """A value that equals the one an earlier call returned only if no write to the store
        (record, lineage, job or key/value entry) was committed by any connection or process
        since that earlier call began; ``None`` when the store cannot tell right now (the
        caller reads).

        Tokens may differ without any change (never the reverse), and compare equal only
        within one store object in one process. Cheaper than a record read by design: no
        server round trip.

        Raises:
            BackendUnavailable: the store is closed or cannot be reached (as for any read).
        """
        ...


@runtime_checkable
class SupportsStaleTempCleanup(Protocol):
    """Optional capability of an artifact store whose puts stage bytes in temp files.

    A put killed half-way leaves its temp file behind; gc calls this to remove them.
    """

    def remove_stale_temp_files(self, older_than: float = 3600.0, *, dry_run: bool = False) -> int:
        """Delete temp files not modified for ``older_than`` seconds; return how many.

        With ``dry_run`` only count them.
        """
        ...


@runtime_checkable
class SupportsGetMany(Protocol):
    """Optional ArtifactStore capability: many blobs in one round trip (or one pass).

    Used by the facade to decode a batch of by-reference cells with one call instead of one
    ``get`` per cell. :func:`get_many` serves a store without it by one ``get`` per ref.
    """

    def get_many(self, refs: Sequence[RefLike]) -> list[bytes]:
        """The verified bytes of each ref, in order: what ``[get(r) for r in refs]`` returns.

        Every blob is verified exactly as ``get`` verifies it (sha256, and the size of an
        ArtifactRef); a ref may repeat; an empty ``refs`` reads nothing and returns ``[]``.

        Raises:
            InvalidArtifactRef: a ref is not a sha256 hex digest (before anything is read).
            ArtifactNotFound: a blob is absent (the message names its sha256).
            ArtifactCorrupted: a blob does not verify (the message names its sha256).
            When several refs fail, the error is the one of the first failing ref in order.
        """
        ...


def get_many(store: ArtifactStore, refs: Sequence[RefLike]) -> list[bytes]:
    """``store.get_many(refs)`` where the store has :class:`SupportsGetMany`, else one ``get``
    per ref (same results and errors, more round trips)."""
    if isinstance(store, SupportsGetMany):
        return store.get_many(refs)
    return [store.get(r) for r in refs]


@runtime_checkable
class MetadataStore(Protocol):
    """Versioned component records, lineage, jobs and small key/value metadata."""

    @property
    def uri(self) -> RedactedURI:
        """Where the store lives (password redacted when shown)."""
        ...

    def create_component(
        self, record: ComponentRecord, *, reuse_unchanged: bool = False
    ) -> ComponentRecord:
        """Store a new version of ``(record.type_id, record.identifier)`` and return it.

        With ``record.version is None`` the next version (1 + the highest ever allocated, starting
        at 0) is allocated atomically, even under concurrent writers. With an explicit version
        that exact version is stored. ``created_at`` is set by the store if missing.

        With ``reuse_unchanged`` (only for ``record.version is None``): when the latest stored
        version has the same ``content_hash`` as ``record``, that version is returned and
        nothing is written. The comparison and the allocation are one atomic step (the same
        transaction or lock), so writers racing with identical content create one version.

        Raises:
            VersionConflict: the explicit version already exists.
            InvalidRecord: ``reuse_unchanged`` with an explicit version.
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

    def delete_job(self, job_id: str) -> None:
        """Delete one job record (``db.remove_jobs``; JobNotFound if absent)."""
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
    ``supports_delete``, ``has_native_ids`` (rows carry the engine's own id as ``_id``: it
    comes back from ``select`` and may be given on ``insert``), and ``supports_transactions``.
    """

    supports_update: ClassVar[bool]
    supports_delete: ClassVar[bool]
    has_native_ids: ClassVar[bool]

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

    def default_metadata_uri(self) -> RedactedURI | None:
        """The metadata store URI that belongs with this backend by default, or None.

        A :class:`RedactedURI` (it may carry the backend's password): ``pinnacle()`` uses it
        when no metadata store is configured and a store for its scheme is installed.
        """
        ...

    def default_artifact_uri(self) -> RedactedURI | None:
        """The artifact store URI that belongs with this backend by default, or None (a
        :class:`RedactedURI`, like :meth:`default_metadata_uri`)."""
        ...

    def drop(self, *, force: bool = False) -> None:
        """Drop every user table of this backend (DropRefused without force)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


# ---------------------------------------------------------------------- optional capabilities
@runtime_checkable
class SupportsDefaultsFromURI(Protocol):
    """Optional capability of a DataBackend *class*: its default proposal from the URI alone.

    ``pinnacle()`` asks the class its entry point names, so the databackend is neither built
    nor connected just to learn where metadata and artifacts go by default (a backend class
    without it is built, and its instance asked). For a URI its ``from_uri`` accepts, each
    answer equals what ``from_uri(uri).default_metadata_uri()`` (or
    ``default_artifact_uri()``) returns; a URI ``from_uri`` refuses raises the same error.
    """

    @classmethod
    def default_metadata_uri_for(cls, uri: RedactedURI) -> RedactedURI | None:
        """:meth:`DataBackend.default_metadata_uri` of the backend ``from_uri(uri)`` builds."""
        ...

    @classmethod
    def default_artifact_uri_for(cls, uri: RedactedURI) -> RedactedURI | None:
        """:meth:`DataBackend.default_artifact_uri` of the backend ``from_uri(uri)`` builds."""
        ...


@runtime_checkable
class SupportsAntiJoin(Protocol):
    """Optional DataBackend capability: the keys of one table that another table lacks.

    Used by listeners (``db.catch_up``) to find source rows without outputs and outputs whose
    source row is gone, with the backend doing the work in batches. A backend without it is
    served by a portable fallback built on ``select`` (see ``pinnacledb.listeners``).
    """

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
        """Distinct non-NULL values of ``table.column`` (rows matching ``where``) that no row
        of ``other`` matching ``other_where`` has in ``other_column``: ascending, the first
        ``limit`` greater than ``after`` (all when ``after`` is None).

        Raises:
            TableNotFound: either table does not exist.
        """
        ...


@runtime_checkable
class SupportsMatchCount(Protocol):
    """Optional DataBackend capability: how many rows of one table no row of another matches.

    Used by listeners (``db.catch_up``) to decide in the database that nothing is missing,
    stale or orphaned, without reading the rows into Python.
    """

    def count_unmatched(
        self,
        table: str,
        other: str,
        on: Sequence[tuple[str, str]],
        *,
        where: Filter | None = None,
        other_where: Filter | None = None,
    ) -> int:
        """Rows of ``table`` matching ``where`` whose first ``on`` column is not NULL and that
        no row of ``other`` matching ``other_where`` equals on every ``(column, other_column)``
        pair of ``on``.

        Equality is exact and NULL-safe: NULL equals NULL and nothing else, strings compare by
        code point (case and trailing spaces count). Paired columns have the same dtype.

        Raises:
            TableNotFound: either table does not exist.
            SchemaError: ``on`` is empty or names a column a table lacks.
        """
        ...


@runtime_checkable
class SupportsMatchCounts(Protocol):
    """Optional DataBackend capability: several counts (plain and unmatched) in one statement.

    Used by listeners: a no-op ``db.catch_up`` is decided by one round trip instead of one per
    count. :func:`count_many` serves a backend without it by one call per count.
    """

    def count_many(self, queries: Sequence[CountQuery]) -> list[int]:
        """The count of each query, in order, computed by one statement of the engine.

        Each count is what ``count`` (no ``other``) or ``count_unmatched`` (with ``other``)
        returns for the same arguments, and raises what they raise (TableNotFound,
        SchemaError, FilterError); an empty ``queries`` runs nothing and returns ``[]``.
        """
        ...


def count_many(backend: DataBackend, queries: Sequence[CountQuery]) -> list[int]:
    """``backend.count_many(queries)`` where the backend has :class:`SupportsMatchCounts`, else
    one ``count`` / ``count_unmatched`` call per query (same results, more round trips).

    Raises:
        UnsupportedOperation: a query has ``other`` and the backend has no
            :class:`SupportsMatchCount`.
    """
    if isinstance(backend, SupportsMatchCounts):
        return backend.count_many(queries)
    counts: list[int] = []
    for q in queries:
        if q.other is None:
            counts.append(backend.count(q.table, q.where))
        elif isinstance(backend, SupportsMatchCount):
            counts.append(
                backend.count_unmatched(
                    q.table, q.other, q.on, where=q.where, other_where=q.other_where
                )
            )
        else:
            raise UnsupportedOperation(
                f"{backend.uri}: count_many of unmatched rows needs SupportsMatchCount"
            )
    return counts


@runtime_checkable
class SupportsInsertMany(Protocol):
    """Optional DataBackend capability: inserts into several tables as one transaction.

    Used by listeners: a small insert into a table with listeners writes its rows and their
    outputs with one commit (instead of one per table), and a crash leaves both or neither.
    """

    def insert_many(self, writes: Sequence[tuple[str, Rows | ArrowTableLike]]) -> list[int]:
        """Append each ``(table, rows)`` in order, all in one transaction; return the counts.

        ``rows`` as ``insert`` takes them: dicts or a ``pyarrow.Table``.

        Every row is validated as ``insert`` validates it before anything is written; an
        error anywhere writes nothing to any table. Raises what ``insert`` raises
        (TableNotFound, SchemaError).
        """
        ...


@runtime_checkable
class SupportsIndexes(Protocol):
    """Optional DataBackend capability: secondary indexes on a table's columns.

    Used by listeners on their outputs tables (lookups and deletes by source id, model version
    and output id).
    """

    def create_index(self, table: str, columns: Sequence[str], *, unique: bool = False) -> bool:
        """Make sure an index on ``columns`` (in that order) of ``table`` exists.

        Idempotent: calling it again (from any process) with the same arguments does nothing.
        The index name is derived from the table and columns.

        Returns:
            True when the index exists after the call; False when this engine keeps no
            secondary indexes (nothing was done and, for ``unique``, nothing is enforced).

        Raises:
            TableNotFound: ``table`` does not exist.
            SchemaError: ``columns`` is empty, repeats a column, names one the table lacks, or
                names a json or vector column (not indexable portably).
            UnsupportedOperation: ``unique`` on columns this engine can index only by prefix.
            PinnacleError: ``unique`` and the rows already stored repeat a key.
        """
        ...


@runtime_checkable
class InsertReturningIds(Protocol):
    """Optional DataBackend capability (backends with native ids): insert and say the ids."""

    def insert_returning_ids(self, table: str, rows: Rows) -> list[Any]:
        """Insert like ``insert`` and return each row's native id (``_id``), in row order."""
        ...


@runtime_checkable
class SupportsArrowSelect(Protocol):
    """Optional DataBackend capability: ``select`` straight into a ``pyarrow.Table``.

    The table has the canonical Arrow form of the selected columns
    (:func:`pinnacle_protocols.arrow.canonical_arrow_schema`: JSON as its text, datetimes as
    UTC microseconds), built without a Python object per row where the engine hands Arrow.
    """

    def select_arrow(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
    ) -> Any:
        """The rows ``select`` would return, as a canonical ``pyarrow.Table``."""
        ...


@runtime_checkable
class SupportsScan(Protocol):
    """Optional DataBackend capability: every row of a table in one fixed total order (the
    engine's native id order), batch by batch, in constant memory.

    Used by ``pinnacle copy`` to read whole tables and resume a copy after the rows already
    written (the order being total, skipping the first ``n`` rows is exact).
    """

    def scan(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        batch_size: int = 1000,
        skip: int = 0,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every row of ``table`` as ``select`` returns it (``columns``, all by default, plus
        the native id where the backend has ``has_native_ids``), in native id order, at most
        ``batch_size`` rows per batch, leaving out the first ``skip`` rows of that order.

        Raises:
            TableNotFound: no such table (when iteration starts).
            SchemaError: an unknown column in ``columns``.
            FilterError: ``batch_size`` is not an int > 0 or ``skip`` not an int >= 0.
        """
        ...


@runtime_checkable
class SupportsNativeCopy(Protocol):
    """Optional DataBackend capability: copy a table to another backend of the same engine
    without decoding its rows (every native type, the native ids and the field order kept),
    tables without a portable schema included.

    Used by ``pinnacle copy`` when :meth:`copies_natively_to` says the destination is of the
    same engine; otherwise rows go through the portable API.
    """

    def copies_natively_to(self, other: object) -> bool:
        """Whether ``other`` is a backend that :meth:`insert_native` rows of this one fit."""
        ...

    def native_rows(
        self, table: str, *, skip: int = 0, batch_size: int = 1000
    ) -> Iterator[list[Any]]:
        """The native rows of ``table`` in native id order after the first ``skip``, at most
        ``batch_size`` per batch, undecoded (opaque values for :meth:`insert_native`).

        Raises:
            FilterError: ``batch_size`` is not an int > 0 or ``skip`` not an int >= 0.
        """
        ...

    def insert_native(self, table: str, rows: Sequence[Any]) -> int:
        """Insert native rows read by :meth:`native_rows` of a backend of the same engine, in
        order, skipping those whose native id ``table`` has already; return how many were
        inserted. An interrupted call leaves a prefix of ``rows`` inserted."""
        ...

    def create_native_table(self, table: str) -> None:
        """Make sure ``table`` exists, creating it without a portable schema if it does not."""
        ...


@runtime_checkable
class SupportsSortedScan(Protocol):
    """Optional DataBackend capability: a whole table ordered by all the columns read, streamed
    by the engine batch by batch (e.g. as Arrow record batches), in constant memory.

    Used by ``pinnacle copy``; a backend without it, or one that raises UnsupportedOperation
    for a table's column types, is read by keyset pages through ``select``.
    """

    def scan_sorted(
        self, table: str, *, columns: Sequence[str], batch_size: int = 1000, skip: int = 0
    ) -> Iterator[list[dict[str, Any]]]:
        """The rows of ``table`` (only ``columns``, no native id) ordered by every one of
        ``columns`` in turn, ascending, leaving out the first ``skip`` rows of that order;
        batches hold about ``batch_size`` rows (the engine may cut them otherwise).

        Raises:
            UnsupportedOperation: a column has a type this backend does not stream (raised
                by the call, before anything is read).
            TableNotFound: no such table.
            SchemaError: an unknown column in ``columns``.
            FilterError: ``batch_size`` is not an int > 0 or ``skip`` not an int >= 0.
        """
        ...
