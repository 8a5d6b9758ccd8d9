"""Copy a whole deployment (components, artifacts, lineage, jobs and tables) to another one.

``pinnacle copy --from SRC --to DST`` and ``db.copy_to(other)`` use :func:`copy_deployment`.

What is copied, in this order:

1. **Component versions**, children before the components that use them. For each version:
   its artifacts first (streamed ``src.open(ref)`` -> ``dst.put(fileobj)``, skipped when the
   destination already has the blob: stores are content-addressed; ``workers`` uploads run in
   threads, in record order, and a record waits for its own artifacts), then the record with its
   exact ``type_id``/``identifier``/``version``/``created_at`` (``create_component`` with an
   explicit version), then its lineage edges (its children exist already). A crash therefore
   never leaves a destination record pointing at a missing artifact.
2. **Jobs**, with their ids (``create_job``).
3. **Tables** named with ``tables=`` (or every table with ``all_tables=True``), in batches.
4. **Vector index builds**: for each vector index whose pointer (metadata key
   ``pinnacledb.vector_index.<identifier>``) is missing at the destination, the artifacts it
   names (base build and change files) and then the pointer itself, so the destination searches
   without rebuilding. A destination pointer that differs is left as it is (listed in the
   plan); a source pointer that is malformed or names a missing artifact is not copied (the
   destination's first search says ``IndexNotBuilt``, and ``db.catch_up()`` or ``pinnacle
   index rebuild ID`` builds the index there from the listener's outputs). Copy the listener's
   source table and its outputs table too (``all_tables=True``), or the copied build indexes
   rows the destination does not have (search re-reads rows, so it never returns them, and
   ``catch_up`` rebuilds once the counts differ).

Copied listeners and vector indexes take effect at the destination at once: the copy moves the
destination's listener-set epoch, which every process there checks on its next write.

Idempotent and resumable: a version already at the destination with the same content hash is
skipped; one with *different* content is a conflict. Conflicts are collected before anything is
written and raised together as :class:`CopyConflict` (nothing is overwritten). Jobs present at
the destination are left as they are (jobs are mutable state, e.g. ``gc`` marks abandoned
journal jobs FAILED); differing ones are listed in the report, not overwritten.

Tables: the destination table is created by the copy from the source's declared portable schema
(``table_schema``); a table that already exists at the destination without a copy marker is a
conflict. Progress lives in the destination metadata key ``copy:<source-id>:<table>``
(``{"state": "copying" | "done", "rows": n}``). When a copy is resumed, the rows already at the
destination are counted and, if the source yields its rows in one total order (MongoDB: by
``_id``; other backends: when no column is ``json``/``vector``/``bytes``, so rows are ordered by
every column and equal rows are identical), the copy continues after them; otherwise the
destination table is emptied (it was created by this copy) and the copy starts again. Either
way the result equals one uninterrupted run, provided the source table does not change
meanwhile and each ``insert`` is all-or-nothing or writes a prefix of its batch (true for the SQL
engines, one statement per batch, and for MongoDB's ordered ``insert_many``). A table already
marked done is skipped (later changes of the source table are not synchronised).

Rows are read in batches of ``batch_size`` (:func:`read_batches`, memory: about one batch) and
written with ``insert``. MongoDB -> MongoDB is native and needs no declared schema: the raw BSON
documents (``_id``, every BSON type and the field order unchanged) are read with one cursor in
``_id`` order and written with ordered ``insert_many`` that skips ``_id`` already present; a
declared schema, if any, is recreated at the destination. Between the two families a table
needs a declared schema (otherwise :class:`SchemaError`).

The garbage collector of the destination may see copied-but-not-yet-referenced artifacts only
between an artifact's upload and its record's creation; ``gc`` keeps unknown artifacts for its
grace period (default one hour), and a re-run re-uploads anything missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any, Final, cast

from attrs import field, frozen

from pinnacle_protocols.errors import (
    ArtifactCorrupted,
    ComponentNotFound,
    IndexNotBuilt,
    JobNotFound,
    SchemaError,
    TableExists,
    TableNotFound,
    UnsupportedOperation,
    VersionConflict,
)
from pinnacle_protocols.protocols import SupportsNativeCopy, SupportsScan, SupportsSortedScan
from pinnacle_protocols.records import ArtifactRef, ComponentKey, ComponentRecord, DType, JobRecord
from pinnacledb._schemes import schemes_where

if TYPE_CHECKING:
    from pinnacle_protocols.filters import Filter
    from pinnacle_protocols.protocols import ArtifactStore, DataBackend, MetadataStore
    from pinnacle_protocols.records import Field, Schema
    from pinnacledb.base._host import StoreHost
    from pinnacledb.vector_search import Pointer

__all__ = [
    "Conflict",
    "CopyConflict",
    "CopyPlan",
    "CopyReport",
    "TablePlan",
    "copy_deployment",
    "plan_copy",
    "progress_key",
    "read_batches",
]

#: ``progress(phase, done, total)``: ``"artifacts"`` (bytes) and ``"rows <table>"`` (rows).
Progress = Callable[[str, int, int], None]

DEFAULT_BATCH_SIZE: Final = 10_000
DEFAULT_WORKERS: Final = 4
#: Columns of these types do not give a portable total order (ordering is left to the engine).
_UNORDERED: Final = frozenset({DType.JSON, DType.VECTOR, DType.BYTES})
#: Column types that keyset pages order and filter by.
_KEY_TYPES: Final = frozenset({DType.INT, DType.FLOAT, DType.STR, DType.BOOL, DType.DATETIME})
#: Artifact stores that publish a stream with a local rename (no spooling needed).
_LOCAL_SCHEMES: Final = schemes_where("local_publish")
_SPOOL_IN_MEMORY: Final = 8 << 20
#: Blobs up to this size are copied as one ``bytes`` value (memory: ``workers`` x this).
_IN_MEMORY: Final = _SPOOL_IN_MEMORY


@frozen(kw_only=True)
class Conflict:
    """Something at the destination that differs from the source and would be overwritten.

    Attributes:
        kind: ``"component"`` or ``"table"``.
        name: ``"model 'm' v2"`` or the table name.
        detail: What differs and how to resolve it.
    """

    kind: str
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.detail}"


class CopyConflict(VersionConflict):
    """The destination holds different content under names the copy would write; nothing was
    written. ``conflicts`` lists them."""

    def __init__(self, message: str, conflicts: Sequence[Conflict]) -> None:
        """Build the error from its message and the conflicts."""
        super().__init__(message)
        self.conflicts = tuple(conflicts)


@frozen(kw_only=True)
class TablePlan:
    """One table of the copy.

    Attributes:
        name: Table name (the same at both ends).
        rows: Rows in the source table.
        done: Rows already at the destination (by a previous run of this copy).
        state: ``"new"``, ``"copying"`` (resumable), ``"done"`` or ``"conflict"``.
    """

    name: str
    rows: int
    done: int
    state: str

    @property
    def to_copy(self) -> int:
        """Rows this run will copy (an estimate for a resumed copy that restarts)."""
        return 0 if self.state in ("done", "conflict") else max(self.rows - self.done, 0)


@frozen(kw_only=True)
class CopyPlan:
    """What a copy would do; :func:`plan_copy` computes it without writing.

    Attributes:
        source: Redacted URIs of the source stores (databackend, metadata, artifacts).
        destination: Redacted URIs of the destination stores.
        versions: Every source component version, children first.
        to_copy: Versions missing at the destination.
        artifacts: Artifacts of component records missing at the destination (unique).
        data_artifacts: Artifacts held by by-reference ``DataType`` columns of the tables to
            copy and missing at the destination (copied before the rows holding them).
        jobs_to_copy: Job ids missing at the destination.
        jobs_differing: Job ids present at the destination with other content (left alone).
        edges: Lineage edges of the source.
        tables: The tables to copy.
        conflicts: Differences that make the copy refuse to start.
        children: Each source version's children (lineage), for versions that have some.
        indexes_to_copy: Vector indexes whose stored build pointer the copy writes.
        indexes_differing: Vector indexes with another pointer at the destination (left).
        index_artifacts: Artifacts of those builds missing at the destination.
    """

    source: tuple[str, str, str]
    destination: tuple[str, str, str]
    versions: tuple[ComponentRecord, ...]
    to_copy: tuple[ComponentKey, ...]
    artifacts: tuple[ArtifactRef, ...]
    data_artifacts: tuple[ArtifactRef, ...]
    jobs_to_copy: tuple[str, ...]
    jobs_differing: tuple[str, ...]
    edges: int
    tables: tuple[TablePlan, ...]
    conflicts: tuple[Conflict, ...]
    children: Mapping[ComponentKey, tuple[ComponentKey, ...]] = field(factory=dict)
    indexes_to_copy: tuple[str, ...] = ()
    indexes_differing: tuple[str, ...] = ()
    index_artifacts: tuple[ArtifactRef, ...] = ()

    @property
    def bytes_to_copy(self) -> int:
        """Total size of the artifacts to copy."""
        return sum(r.size for r in self.artifacts)

    @property
    def rows_to_copy(self) -> int:
        """Rows the table copies will write."""
        return sum(t.to_copy for t in self.tables)

    def describe(self) -> str:
        """A human-readable summary (URIs redacted)."""
        lines = [
            f"from  {' | '.join(self.source)}",
            f"to    {' | '.join(self.destination)}",
            f"component versions: {len(self.versions)} at the source, {len(self.to_copy)} "
            f"to copy, {len(self.versions) - len(self.to_copy) - self._conflicting()} already "
            "present",
            f"artifacts to copy: {len(self.artifacts)} ({self.bytes_to_copy} B)",
            f"artifacts of table rows to copy: {len(self.data_artifacts)} "
            f"({sum(r.size for r in self.data_artifacts)} B)",
            f"lineage edges: {self.edges}",
            f"jobs to copy: {len(self.jobs_to_copy)}"
            + (
                f" ({len(self.jobs_differing)} differ at the destination, left as they are)"
                if self.jobs_differing
                else ""
            ),
        ]
        if self.indexes_to_copy or self.indexes_differing:
            lines.append(
                f"vector index builds to copy: {len(self.indexes_to_copy)} "
                f"({len(self.index_artifacts)} artifacts, "
                f"{sum(r.size for r in self.index_artifacts)} B)"
                + (
                    f"; {len(self.indexes_differing)} differ at the destination, left as they are"
                    if self.indexes_differing
                    else ""
                )
            )
        for t in self.tables:
            lines.append(
                f"table {t.name}: {t.rows} rows at the source, {t.done} at the destination, "
                f"{t.to_copy} to copy ({t.state})"
            )
        if self.tables:
            lines.append(f"rows to copy: {self.rows_to_copy}")
        lines.append(f"conflicts: {len(self.conflicts)}")
        lines += [f"  {c}" for c in self.conflicts]
        return "\n".join(lines)

    def _conflicting(self) -> int:
        return sum(1 for c in self.conflicts if c.kind == "component")


@frozen(kw_only=True)
class CopyReport:
    """What a copy did.

    Attributes:
        plan: The plan it executed.
        versions_copied: Component versions written.
        artifacts_copied: Artifacts uploaded.
        bytes_copied: Their total size.
        jobs_copied: Jobs written.
        rows_copied: Rows written per table.
        dry_run: Whether nothing was written.
        indexes_copied: Vector index build pointers written (their artifacts are counted in
            ``artifacts_copied`` and ``bytes_copied``).
    """

    plan: CopyPlan
    versions_copied: int
    artifacts_copied: int
    bytes_copied: int
    jobs_copied: int
    rows_copied: dict[str, int]
    dry_run: bool
    indexes_copied: int = 0


def progress_key(src: StoreHost, table: str) -> str:
    """The destination metadata key recording the copy of ``table`` from ``src``."""
    ident = hashlib.sha256(str(src.slots["databackend"].uri).encode()).hexdigest()[:16]
    return f"copy:{ident}:{table}"


def _show(key: ComponentKey) -> str:
    return f"{key.type_id} {key.identifier!r} v{key.version}"


def _uris(db: StoreHost) -> tuple[str, str, str]:
    s = db.slots
    return (str(s["databackend"].uri), str(s["metadata"].uri), str(s["artifact_store"].uri))


# ---------------------------------------------------------------------- planning
def _source_versions(
    md: MetadataStore,
) -> tuple[list[ComponentRecord], dict[ComponentKey, list[ComponentKey]]]:
    """Every version, children before parents, and each version's children."""
    records: dict[ComponentKey, ComponentRecord] = {}
    for latest in md.show_components():
        for v in md.show_versions(latest.type_id, latest.identifier):
            rec = md.get_component(latest.type_id, latest.identifier, v)
            records[rec.key] = rec
    children = {key: md.get_children(key) for key in records}
    ordered: list[ComponentRecord] = []
    state: dict[ComponentKey, int] = {}  # 1 visiting, 2 done
    for start in sorted(records):
        stack: list[tuple[ComponentKey, int]] = [(start, 0)]
        while stack:
            key, i = stack.pop()
            if i == 0:
                if state.get(key):
                    continue
                state[key] = 1
            kids = [c for c in children.get(key, []) if c in records and not state.get(c)]
            if kids:
                stack.append((key, i + 1))
                stack.append((kids[0], 0))
                continue
            state[key] = 2
            ordered.append(records[key])
    return ordered, children


def _present_versions(md: MetadataStore) -> set[ComponentKey]:
    """Every component version ``md`` holds."""
    return {
        ComponentKey(type_id=k.type_id, identifier=k.identifier, version=v)
        for k in md.show_components()
        for v in md.show_versions(k.type_id, k.identifier)
    }


def _table_names(src: DataBackend, tables: Iterable[str] | None, all_tables: bool) -> list[str]:
    if all_tables:
        return src.list_tables()
    names = list(dict.fromkeys(tables or ()))
    present = set(src.list_tables())
    missing = [n for n in names if n not in present]
    if missing:
        raise TableNotFound(
            f"tables {missing} do not exist in {src.uri}; its tables are {sorted(present)}"
        )
    return names


def _source_schema(src: DataBackend, dst: DataBackend, table: str) -> Schema:
    try:
        return src.table_schema(table)
    except (TableNotFound, NotImplementedError, SchemaError) as exc:
        raise SchemaError(
            f"table {table!r} of {src.uri} has no declared portable schema, so it cannot be "
            f"copied to {dst.uri} through the portable API; create it with create_table() / a "
            "Table component, or copy it with the engines' own tools"
        ) from exc


def _table_plan(src: StoreHost, dst: StoreHost, table: str) -> tuple[TablePlan, Conflict | None]:
    rows = src.databackend.count(table)
    marker = dst.metadata.get_metadata(progress_key(src, table))
    exists = table in dst.databackend.list_tables()
    if not isinstance(marker, dict):
        if exists:
            detail = (
                f"the table exists in {dst.slots['databackend'].uri} and was not created by a "
                "copy from this source; drop or rename it (nothing was overwritten)"
            )
            return TablePlan(name=table, rows=rows, done=0, state="conflict"), Conflict(
                kind="table", name=repr(table), detail=detail
            )
        return TablePlan(name=table, rows=rows, done=0, state="new"), None
    done = dst.databackend.count(table) if exists else 0
    state = "done" if marker.get("state") == "done" else "copying"
    return TablePlan(name=table, rows=rows, done=done, state=state), None


def plan_copy(
    src: StoreHost,
    dst: StoreHost,
    *,
    tables: Iterable[str] | None = None,
    all_tables: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = DEFAULT_WORKERS,
) -> CopyPlan:
    """What :func:`copy_deployment` would do, without writing anything (tables holding
    artifacts by reference are read in batches of ``batch_size`` rows; ``workers`` threads
    ask the destination store which artifacts it lacks)."""
    smd, dmd = src.metadata, dst.metadata
    records, children = _source_versions(smd)
    to_copy: list[ComponentKey] = []
    conflicts: list[Conflict] = []
    present = _present_versions(dmd)
    for rec in records:
        if rec.key not in present:
            to_copy.append(rec.key)
            continue
        try:
            have = dmd.get_component(rec.type_id, rec.identifier, rec.version)
        except ComponentNotFound:  # deleted meanwhile
            to_copy.append(rec.key)
            continue
        if have.content_hash != rec.content_hash:
            conflicts.append(
                Conflict(
                    kind="component",
                    name=_show(rec.key),
                    detail=f"{dmd.uri} holds different content under this version "
                    f"(content hash {have.content_hash[:12]} there, {rec.content_hash[:12]} "
                    "here); remove it there or copy to another destination (nothing was "
                    "overwritten)",
                )
            )
    dstore = dst.artifact_store
    unique = {ref.sha256: ref for rec in records for ref in rec.artifacts.values()}
    missing = {ref.sha256: ref for ref in _missing_at(dstore, list(unique.values()), workers)}
    jobs_to_copy: list[str] = []
    jobs_differing: list[str] = []
    for job in smd.show_jobs():
        try:
            have_job = dmd.get_job(job.job_id)
        except JobNotFound:
            jobs_to_copy.append(job.job_id)
            continue
        if not _same_job(have_job, job):
            jobs_differing.append(job.job_id)
    table_plans: list[TablePlan] = []
    data_missing: dict[str, ArtifactRef] = {}
    sb, db_ = src.databackend, dst.databackend
    for name in _table_names(sb, tables, all_tables):
        schema = (
            _declared_schema(sb, name) if _native_copy(sb, db_) else _source_schema(sb, db_, name)
        )
        plan, conflict = _table_plan(src, dst, name)
        table_plans.append(plan)
        if conflict is not None:
            conflicts.append(conflict)
        cols = _by_reference_columns(src, name)
        if cols and plan.state != "done":
            for batch in _column_batches(sb, name, schema, cols, batch_size):
                for row in batch:
                    for sha in _shas(row, cols):
                        if (
                            sha not in missing
                            and sha not in data_missing
                            and not dstore.exists(sha)
                        ):
                            size = src.artifact_store.size(sha)
                            data_missing[sha] = ArtifactRef(sha256=sha, size=size)
    indexes, differing, index_missing = _index_plan(src, dst, {*missing, *data_missing})
    return CopyPlan(
        source=_uris(src),
        destination=_uris(dst),
        versions=tuple(records),
        to_copy=tuple(to_copy),
        artifacts=tuple(missing.values()),
        data_artifacts=tuple(data_missing.values()),
        jobs_to_copy=tuple(jobs_to_copy),
        jobs_differing=tuple(jobs_differing),
        edges=sum(len(c) for c in children.values()),
        children={k: tuple(v) for k, v in children.items() if v},
        tables=tuple(table_plans),
        conflicts=tuple(conflicts),
        indexes_to_copy=indexes,
        indexes_differing=differing,
        index_artifacts=index_missing,
    )


def _source_pointer(src: StoreHost, identifier: str) -> Pointer | None:
    """The source index's pointer, if it is well formed and its artifacts are all there."""
    from pinnacledb.vector_search import Pointer, pointer_key

    try:
        ptr = Pointer.from_json(src.metadata.get_metadata(pointer_key(identifier)), identifier)
    except IndexNotBuilt:
        return None
    if ptr is None or not all(src.artifact_store.exists(r) for r in ptr.refs):
        return None
    return ptr


def _index_plan(
    src: StoreHost, dst: StoreHost, planned: set[str]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[ArtifactRef, ...]]:
    """Indexes whose pointer to copy, those differing at the destination, and the artifacts
    of the builds to copy that the destination lacks (and the plan does not copy already)."""
    from pinnacledb.vector_search import pointer_key

    to_copy: list[str] = []
    differing: list[str] = []
    missing: dict[str, ArtifactRef] = {}
    for identifier in sorted({k.identifier for k in src.metadata.show_components("vector_index")}):
        ptr = _source_pointer(src, identifier)
        if ptr is None:
            continue
        have = dst.metadata.get_metadata(pointer_key(identifier))
        if have is not None:
            if have != ptr.to_json():
                differing.append(identifier)
            continue
        to_copy.append(identifier)
        for ref in ptr.refs:
            if ref.sha256 not in planned and not dst.artifact_store.exists(ref):
                missing[ref.sha256] = ref
    return tuple(to_copy), tuple(differing), tuple(missing.values())


def _copy_index_pointers(src: StoreHost, dst: StoreHost, plan: CopyPlan) -> tuple[int, int, int]:
    """Each planned index's artifacts, then its pointer (unless one appeared meanwhile)."""
    from pinnacledb.vector_search import pointer_key

    copied = arts = nbytes = 0
    for identifier in plan.indexes_to_copy:
        ptr = _source_pointer(src, identifier)  # read again: it may have moved since the plan
        if ptr is None:
            continue
        for ref in ptr.refs:
            if not dst.artifact_store.exists(ref):
                nbytes += _copy_artifact(src.artifact_store, dst.artifact_store, ref)
                arts += 1
        key = pointer_key(identifier)
        if dst.metadata.get_metadata(key) is None:
            dst.metadata.set_metadata(key, ptr.to_json())
            copied += 1
    return copied, arts, nbytes


def _missing_at(store: ArtifactStore, refs: list[ArtifactRef], workers: int) -> list[ArtifactRef]:
    """The refs ``store`` does not hold, in their order (``workers`` requests in flight)."""
    if not refs:
        return []
    first = not store.exists(refs[0])  # connect once before the threads share the store
    if workers <= 1 or len(refs) == 1:
        rest = [not store.exists(r) for r in refs[1:]]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pinnacle-copy") as pool:
            rest = list(pool.map(lambda r: not store.exists(r), refs[1:]))
    return [r for r, lacks in zip(refs, [first, *rest], strict=True) if lacks]


def _column_batches(
    sb: DataBackend, table: str, schema: Schema | None, cols: list[str], batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    """The values of ``cols`` in every row of ``table``, streamed in batches."""
    if schema is None:  # a table without a portable schema, copied natively
        if isinstance(sb, SupportsScan):
            yield from sb.scan(table, columns=cols, batch_size=batch_size)
        return
    yield from read_batches(sb, table, schema=schema, batch_size=batch_size)[1]


def _by_reference_columns(src: StoreHost, table: str) -> list[str]:
    """Columns of ``table`` whose values are artifact sha256 (by-reference DataType)."""
    codec = src.table_codec(table)
    return [c for c, dt in (codec or {}).items() if dt.by_reference]


def _shas(row: dict[str, Any], cols: Sequence[str]) -> list[str]:
    return [v for c in cols if isinstance(v := row.get(c), str)]


def _same_job(a: JobRecord, b: JobRecord) -> bool:
    def strip(j: JobRecord) -> tuple[Any, ...]:
        return (j.job_id, j.kind, j.status, j.component, dict(j.args), j.error)

    return strip(a) == strip(b)


# ---------------------------------------------------------------------- execution
def _copy_artifact(src: ArtifactStore, dst: ArtifactStore, ref: ArtifactRef | str) -> int:
    """Copy one blob from ``src`` to ``dst`` (verified on both ends); return its size.

    A blob of at most ``_IN_MEMORY`` bytes is read whole (``get``) and stored as ``bytes`` (one
    hash pass at each end, straight to the final key); a larger one is streamed (spooled to a
    local temporary file first when the destination is remote and the reader cannot seek).
    """
    sha = ref if isinstance(ref, str) else ref.sha256
    if isinstance(ref, ArtifactRef) and ref.size <= _IN_MEMORY:
        got = dst.put(src.get(ref))  # ``get`` checks the hash
    else:
        got = _stream_artifact(src, dst, ref)
    if got.sha256 != sha or (isinstance(ref, ArtifactRef) and got.size != ref.size):
        raise ArtifactCorrupted(
            f"copying artifact {sha} from {src.uri} to {dst.uri} stored {got.sha256} "
            f"({got.size} B) instead; the source blob may be corrupt (the copy stopped; "
            "nothing references the stray blob, gc removes it)"
        )
    return got.size


def _stream_artifact(src: ArtifactStore, dst: ArtifactStore, ref: ArtifactRef | str) -> ArtifactRef:
    reader = src.open(ref)
    try:
        if _spool(reader, dst):
            # A remote store given a seekable file hashes it first and uploads straight to the
            # final key; a one-pass stream goes to a temp key plus a server-side copy (about
            # twice the work on S3). Spool to a local temp file (memory stays bounded).
            with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
                shutil.copyfileobj(reader, spool, 1 << 20)
                spool.seek(0)
                return dst.put(cast("IO[bytes]", spool))
        return dst.put(reader)
    finally:
        reader.close()


def _spool(reader: IO[bytes], dst: ArtifactStore) -> bool:
    try:
        seekable = reader.seekable()
    except (AttributeError, OSError, ValueError):
        seekable = False
    return not seekable and dst.uri.scheme not in _LOCAL_SCHEMES


def _create_record(md: MetadataStore, rec: ComponentRecord) -> bool:
    """Create ``rec`` with its version; False if an identical version exists already."""
    try:
        md.create_component(rec)
    except VersionConflict:
        have = md.get_component(rec.type_id, rec.identifier, rec.version)
        if have.content_hash != rec.content_hash:
            raise CopyConflict(
                f"{_show(rec.key)} appeared in {md.uri} with different content while copying "
                "(nothing was overwritten)",
                [Conflict(kind="component", name=_show(rec.key), detail="written concurrently")],
            ) from None
        return False
    return True


def _upload(src: ArtifactStore, dst: ArtifactStore, ref: ArtifactRef) -> int:
    """Copy one blob the plan found missing at ``dst``; return the bytes uploaded.

    Not asked again: stores are content-addressed, so storing a blob that a concurrent copy
    stored meanwhile changes nothing.
    """
    _copy_artifact(src, dst, ref)
    return ref.size


def _copy_components(
    src: StoreHost, dst: StoreHost, plan: CopyPlan, progress: Progress | None, workers: int
) -> tuple[int, int, int]:
    """Artifacts (``workers`` uploads in flight, in record order), each record once its own
    artifacts are stored, then its lineage edges."""
    dmd = dst.metadata
    sstore, dstore = src.artifact_store, dst.artifact_store
    pending = {r.sha256: r for r in plan.artifacts}
    tasks: list[ArtifactRef] = []
    for rec in plan.versions:
        for ref in rec.artifacts.values():
            if ref.sha256 in pending:
                tasks.append(pending.pop(ref.sha256))
    size_of = {t.sha256: t.size for t in tasks}
    total_bytes = plan.bytes_to_copy
    done_bytes = copied_bytes = copied_arts = copied_versions = 0
    if progress is not None and tasks:
        progress("artifacts", 0, total_bytes)
    missing_versions = set(plan.to_copy)
    futures: dict[str, Future[int]] = {}
    waited: set[str] = set()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pinnacle-copy")
    try:
        next_task = 0
        for rec in plan.versions:
            own = [r.sha256 for r in rec.artifacts.values() if r.sha256 in size_of]
            # keep ``2 * workers`` uploads submitted (running or queued), so that no thread
            # idles while this thread writes records
            in_flight = sum(1 for sha, f in futures.items() if sha not in waited and not f.done())
            while next_task < len(tasks) and (
                in_flight < 2 * workers or any(sha not in futures for sha in own)
            ):
                ref = tasks[next_task]
                futures[ref.sha256] = pool.submit(_upload, sstore, dstore, ref)
                next_task += 1
                in_flight += 1
            for sha in own:  # artifacts before the record
                if sha in waited:
                    continue
                uploaded = futures[sha].result()
                waited.add(sha)
                done_bytes += size_of[sha]
                if uploaded:
                    copied_arts += 1
                    copied_bytes += uploaded
                if progress is not None:
                    progress("artifacts", done_bytes, total_bytes)
            if rec.key in missing_versions and _create_record(dmd, rec):
                copied_versions += 1
            for child in plan.children.get(rec.key, ()):
                dmd.create_parent_child(rec.key, child)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return copied_versions, copied_arts, copied_bytes


def _copy_jobs(src: StoreHost, dst: StoreHost, plan: CopyPlan) -> int:
    wanted = set(plan.jobs_to_copy)
    copied = 0
    for job in src.metadata.show_jobs():
        if job.job_id not in wanted:
            continue
        try:
            dst.metadata.create_job(job)
        except VersionConflict:
            continue
        copied += 1
    return copied


# ---------------------------------------------------------------------- tables
def _native_copy(sb: DataBackend, db_: DataBackend) -> bool:
    """Whether a table goes from ``sb`` to ``db_`` as native rows (same engine, e.g. raw
    MongoDB documents)."""
    return (
        isinstance(sb, SupportsNativeCopy)
        and isinstance(db_, SupportsNativeCopy)
        and sb.copies_natively_to(db_)
    )


def _declared_schema(backend: DataBackend, table: str) -> Schema | None:
    """The table's portable schema, or None for a table without one (e.g. a MongoDB
    collection written by another program)."""
    try:
        return backend.table_schema(table)
    except (TableNotFound, NotImplementedError, SchemaError):
        if table in backend.list_tables():
            return None
        raise


def _resumable_order(sb: DataBackend, schema: Schema | None) -> bool:
    """Whether the source yields rows in one fixed total order, so that a resumed copy can
    continue after the rows already at the destination (else the copy restarts the table)."""
    if isinstance(sb, SupportsScan):
        return True  # rows are read in native id order
    return schema is not None and not any(f.dtype in _UNORDERED for f in schema.fields)


def _copy_table(
    src: StoreHost,
    dst: StoreHost,
    table: TablePlan,
    *,
    batch_size: int,
    progress: Progress | None,
) -> int:
    sb, db_ = src.databackend, dst.databackend
    dmd = dst.metadata
    key = progress_key(src, table.name)
    native = _native_copy(sb, db_)
    schema = _declared_schema(sb, table.name) if native else _source_schema(sb, db_, table.name)
    marker = dmd.get_metadata(key)
    if not isinstance(marker, dict):
        dmd.set_metadata(key, {"state": "copying", "rows": 0})
    elif marker.get("state") == "done":
        return 0
    _create_destination(db_, table.name, schema)
    done = db_.count(table.name)
    if done and not _resumable_order(sb, schema):
        _recreate(db_, table.name, schema)  # ours (marker present): restart from an empty table
        done = 0
    if native:
        total, batches, write = _native_documents(sb, db_, table.name, done, batch_size)
    else:
        keep_id = sb.has_native_ids and db_.has_native_ids
        assert schema is not None
        total, batches = read_batches(
            sb, table.name, schema=schema, skip=done, batch_size=batch_size, keep_id=keep_id
        )

        def write(rows: list[dict[str, Any]]) -> int:
            db_.insert(table.name, rows)
            return len(rows)

    blob_cols = _by_reference_columns(src, table.name)
    sstore, dstore = src.artifact_store, dst.artifact_store
    phase = f"rows {table.name}"
    if progress is not None:
        progress(phase, done, total)
    written = 0
    for batch in batches:
        for row in batch if blob_cols else ():  # artifacts before the rows holding them
            for sha in _shas(row, blob_cols):
                if not dstore.exists(sha):
                    _copy_artifact(sstore, dstore, sha)
        written += write(batch)
        dmd.set_metadata(key, {"state": "copying", "rows": done + written})
        if progress is not None:
            progress(phase, done + written, total)
    dmd.set_metadata(key, {"state": "done", "rows": done + written})
    return written


def _create_destination(db_: DataBackend, table: str, schema: Schema | None) -> None:
    if table in db_.list_tables():
        return
    with contextlib.suppress(TableExists):  # a concurrent copy created it
        if schema is not None:
            db_.create_table(table, schema)
        elif isinstance(db_, SupportsNativeCopy):  # copied natively, no portable schema
            db_.create_native_table(table)


def _recreate(db_: DataBackend, table: str, schema: Schema | None) -> None:
    if schema is not None:
        db_.drop_table(table)
        db_.create_table(table, schema)
    else:
        db_.delete(table, None)


# ---------------------------------------------------------------------- native copies
def _native_documents(
    sb: DataBackend, db_: DataBackend, table: str, done: int, batch_size: int
) -> tuple[int, Iterator[list[Any]], Callable[[list[Any]], int]]:
    """Native rows of ``table`` (MongoDB: raw BSON documents) in native id order after the
    first ``done``, in batches, and the writer that inserts a batch at the destination
    (skipping native ids already there); see :class:`SupportsNativeCopy`."""
    assert isinstance(sb, SupportsNativeCopy)
    assert isinstance(db_, SupportsNativeCopy)
    total = sb.count(table)

    def write(docs: list[Any]) -> int:
        return db_.insert_native(table, docs)

    return total, sb.native_rows(table, skip=done, batch_size=batch_size), write


# ---------------------------------------------------------------------- streamed reads
def read_batches(
    sb: DataBackend,
    table: str,
    *,
    schema: Schema,
    skip: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    keep_id: bool = False,
) -> tuple[int, Iterator[list[dict[str, Any]]]]:
    """The row count of ``table`` and its rows after the first ``skip``, in batches of at
    most ``batch_size`` rows, read without holding the table in memory.

    * A backend with :class:`SupportsScan` (MongoDB): its ``scan``, one cursor in native id
      order, ``batch_size`` rows per round trip; rows keep their ``_id`` only with ``keep_id``.
    * A backend with :class:`SupportsSortedScan` (the ibis engines, when every column is
      ``int``/``float``/``str``/``bool``): its ``scan_sorted``, batches streamed by the
      engine ordered by every column (``skip`` is an SQL offset).
    * Anything else (other column types, other backends): keyset pages through the portable
      API, ``select(where=<after the last key>, order_by=<key>, limit=batch_size)``, where the
      key is every ``int``/``float``/``str``/``bool``/``datetime`` column; the rows sharing the
      last key of a page are read together with one equality ``select`` (memory: a batch plus
      the largest group of rows with equal keys; a table with no such column is one group,
      and a page ending on a NaN key reads the rest of the table at once).

    The order is total (``skip`` is exact) for ``SupportsScan`` backends and for tables
    without ``json``/``vector``/``bytes`` columns.
    """
    names = list(schema.names)
    total = sb.count(table)
    if isinstance(sb, SupportsScan):
        return total, _scanned_rows(
            sb, table, schema, skip=skip, batch_size=batch_size, keep_id=keep_id
        )
    if isinstance(sb, SupportsSortedScan):
        try:
            pages = sb.scan_sorted(table, columns=names, batch_size=batch_size, skip=skip)
        except UnsupportedOperation:  # column types it does not stream
            pass
        else:
            return total, _skip(pages, 0, batch_size)
    return total, _skip(_keyset_pages(sb, table, schema, batch_size), skip, batch_size)


def _scanned_rows(
    sb: SupportsScan, table: str, schema: Schema, *, skip: int, batch_size: int, keep_id: bool
) -> Iterator[list[dict[str, Any]]]:
    for batch in sb.scan(table, columns=list(schema.names), batch_size=batch_size, skip=skip):
        if not keep_id:
            for row in batch:
                row.pop("_id", None)
        yield batch


def _keyset_pages(
    sb: DataBackend, table: str, schema: Schema, batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    names = list(schema.names)
    keys = [f for f in schema.fields if f.dtype in _KEY_TYPES]
    if not keys:
        yield sb.select(table, columns=names)
        return
    order = [f.name for f in keys]
    after: Filter | None = None
    while True:
        page = sb.select(table, after, columns=names, order_by=order, limit=batch_size)
        if len(page) < batch_size:
            if page:
                yield page
            return
        last = tuple(page[-1][k] for k in order)
        if any(isinstance(v, float) and math.isnan(v) for v in last):
            # NaN has no equality in filters: read the rest of the table at once
            yield sb.select(table, after, columns=names, order_by=order)
            return
        head = [r for r in page if tuple(r[k] for k in order) != last]
        if head:
            yield head
        del page, head
        yield sb.select(table, _key_equals(order, last), columns=names)
        after = _key_after(keys, last)
        if after is None:
            return


def _key_equals(order: Sequence[str], last: Sequence[Any]) -> Filter:
    return {"$and": [{c: {"$eq": v}} for c, v in zip(order, last, strict=True)]}


def _key_after(keys: Sequence[Field], last: Sequence[Any]) -> Filter | None:
    """Rows whose key is after ``last`` in the portable order (NULL first, ascending)."""
    ors: list[Filter] = []
    for i, (f, v) in enumerate(zip(keys, last, strict=True)):
        if v is None:
            greater: Filter | None = {f.name: {"$ne": None}}
        elif f.dtype is DType.BOOL:
            greater = {f.name: {"$eq": True}} if v is False else None
        else:
            greater = {f.name: {"$gt": v}}
        if greater is not None:
            ors.append(
                {"$and": [*_key_equals([k.name for k in keys[:i]], last[:i])["$and"], greater]}
            )
    return {"$or": ors} if ors else None


def _skip(
    pages: Iterator[list[dict[str, Any]]], skip: int, batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    """Drop the first ``skip`` rows and re-cut the pages into batches of ``batch_size`` (the
    last one may be shorter)."""
    buffer: list[dict[str, Any]] = []
    for page in pages:
        if skip >= len(page):
            skip -= len(page)
            continue
        buffer.extend(page[skip:] if skip else page)
        skip = 0
        while len(buffer) >= batch_size:
            yield buffer[:batch_size]
            del buffer[:batch_size]
    if buffer:
        yield buffer


def copy_deployment(
    src: StoreHost,
    dst: StoreHost,
    *,
    tables: Iterable[str] | None = None,
    all_tables: bool = False,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    workers: int = DEFAULT_WORKERS,
) -> CopyReport:
    """Copy every component version, artifact, lineage edge and job (and tables) to ``dst``.

    See the module docstring for the order, the conflict rules and the resume guarantee.

    Args:
        src: The deployment to read.
        dst: The deployment to write (its metadata schema is migrated to head first).
        tables: Tables to copy as well.
        all_tables: Copy every table of the source.
        dry_run: Only plan (the report's ``plan`` says what would be copied).
        batch_size: Rows per insert.
        progress: ``progress(phase, done, total)`` (``TextProgress`` draws a bar).
        workers: Artifact uploads in flight (threads); 1 copies one blob at a time.

    Raises:
        CopyConflict: the destination differs from the source under names the copy writes;
            nothing was written (the error lists every conflict).
        SchemaError: a table to copy has no declared portable schema.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if src is dst:
        raise ValueError("source and destination are the same Datalayer")
    if not dry_run:
        dst.metadata.migrate()
    plan = plan_copy(
        src, dst, tables=tables, all_tables=all_tables, batch_size=batch_size, workers=workers
    )
    if dry_run:
        return CopyReport(
            plan=plan,
            versions_copied=0,
            artifacts_copied=0,
            bytes_copied=0,
            jobs_copied=0,
            rows_copied={},
            dry_run=True,
        )
    if plan.conflicts:
        shown = "\n  ".join(str(c) for c in plan.conflicts)
        raise CopyConflict(
            f"copy to {' | '.join(plan.destination)} refused: {len(plan.conflicts)} "
            f"conflict(s); nothing was written:\n  {shown}",
            plan.conflicts,
        )
    versions, arts, nbytes = _copy_components(src, dst, plan, progress, workers)
    if any(k.type_id in ("listener", "vector_index") for k in plan.to_copy):
        from pinnacledb.listeners import bump_epoch

        bump_epoch(dst.metadata)  # every process at the destination sees the new listener set
    jobs = _copy_jobs(src, dst, plan)
    rows = {
        t.name: _copy_table(src, dst, t, batch_size=batch_size, progress=progress)
        for t in plan.tables
    }
    indexes, index_arts, index_bytes = _copy_index_pointers(src, dst, plan)
    return CopyReport(
        plan=plan,
        versions_copied=versions,
        artifacts_copied=arts + index_arts,
        bytes_copied=nbytes + index_bytes,
        jobs_copied=jobs,
        rows_copied=rows,
        dry_run=False,
        indexes_copied=indexes,
    )
