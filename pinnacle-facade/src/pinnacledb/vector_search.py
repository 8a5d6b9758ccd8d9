"""The machinery behind :class:`~pinnacledb.components.vector_index.VectorIndex`.

How an index is stored, kept current and searched:

* **Stored build.** An index is stored as a base build plus a chain of change files. The base
  is the engine's own bytes (:meth:`~pinnacle_protocols.VectorEngine.to_bytes`: a checksummed
  header plus what the library writes, never pickle); a change file
  (:mod:`pinnacledb.vectors.delta`) holds which ids one write removed and which it added, names
  the base and its position in the chain, and is checksummed too. Both go into the artifact
  store (content-addressed; the store verifies the sha256 when it reads them back, the
  envelopes check their own checksums again), and the metadata key
  ``pinnacledb.vector_index.<identifier>`` holds a :class:`Pointer` to them: the index version
  and listener model version the build is for, the base ref, the change file refs in order,
  the count and dimension, and a fresh ``stamp``. Another process reads the pointer, loads the
  base, applies the change files and searches, without recomputing or rebuilding anything; a
  process that already holds the engine for a prefix of the chain applies only the new change
  files. gc keeps every artifact a pointer names.
* **Vectors stored once.** A change file holds ids, not vectors (format 2; format 1 files,
  which carried float32 vectors, are still read). The vectors are the listener's outputs, which
  the listener stored durably in its outputs table before the index upkeep runs: a 1,000-row
  write of 384-float vectors stores a change file of a few KB instead of 1.5 MB of vectors a
  second time. The writing process adds the vectors it has in memory to its engine. A process
  that *loads* change files (:meth:`VectorIndexEngine.engine_at`) works out the chain's net
  change (each id as its last change file left it), then reads the added ids' *current*
  outputs from the outputs table at the pointer's model version, ``READ_BATCH`` ids per read
  (Arrow where the backend selects into Arrow), and checks them exactly as a write does
  (:func:`_as_vector`, :func:`_usable`): an id whose output is gone, None or unusable (not
  finite; zero under cosine) is left out, i.e. removed if the base holds it. Reading the
  current output is right for the current state: a write that changed the id after the change
  file also lists it in its own change file (or its upkeep failed, which catch_up repairs). An
  id left out that way is remembered, so that when the loading process's own write removes it
  the change file says so. An outputs table that cannot be read (dropped, or holding
  non-vectors or vectors of another dimension) raises
  :class:`~pinnacle_protocols.errors.IndexNotBuilt`, as an unreadable build does. The
  trade-off: loading costs a read of the pending vectors from the data backend instead of an
  artifact read (on DuckDB an Arrow read of ``DOUBLE[]``; with JSON outputs, as on SQLite,
  each output's text is parsed, which costs more), once per process and change file; the base
  build still carries its vectors, and compaction bounds what is pending.
* **Which vectors.** The outputs of the listener's current model version (the listener
  identifier's latest version), keyed by the source row id. An index whose pointer is for an
  older index or model version is rebuilt from the outputs table when the listener or the
  index is applied, by the next write's upkeep, by ``db.catch_up`` or ``pinnacle index
  rebuild``; a search meeting one raises :class:`~pinnacle_protocols.errors.IndexNotBuilt`.
* **Upkeep.** The listener machinery reports each batch of outputs it writes or removes
  (insert, update, delete, backfill, catch_up). Changes are collected for the duration of one
  ``db`` write and applied once at its end: the process's engine (cached per pointer stamp,
  brought forward when another process moved the pointer) gets the removals and additions, one
  change file of that write is stored and the pointer names it, so a write costs in proportion
  to what it changed, not to the size of the index. When the change files hold more than
  ``max(vector_compact_min_rows, vector_compact_fraction * count)`` ids (10,000 and 10% by
  default: a longer chain only costs a loading process the read-back of its vectors from the
  outputs table, while a compaction rewrites the whole build) or number ``vector_max_deltas``
  (100), the write stores the whole engine as a new base instead (compaction; the old base and
  change files become garbage for ``pinnacle gc``).
  These thresholds (and ``vector_fold_min_rows`` below) are settings like ``trigger_job_rows``:
  ``pinnacle(..., vector_max_deltas=20)``, ``CFG.vector_max_deltas``,
  ``PINNACLEDB_VECTOR_MAX_DELTAS`` or the config file key ``vector_max_deltas``, and are
  ``db.vector_max_deltas`` etc. on the Datalayer (read at each write). A base build's put is
  journaled (a RUNNING job of kind ``vector_index`` naming the sha256, so gc keeps the bytes
  until the pointer names them); once the pointer names them the journal job is deleted, so
  writes do not pile up job records. A change file (a few KB) is put without a journal job
  (two metadata writes fewer per write): gc keeps a change file that follows a current
  pointer's base at a position the pointer has not passed (:func:`upcoming_change_files`), and
  the write passes the gc fence (:mod:`pinnacledb.base._gcfence`) between reading the pointer
  and its put. A failure does not fail the user's write (as for listeners): it is logged,
  recorded as a FAILED ``vector_index.upkeep`` job, and the next write's upkeep or
  ``db.catch_up`` rebuilds.
* **Two tiers (approximate engines).** A write does not pay the library's graph add (an HNSW
  add of 1,000 vectors costs 0.5-6 s at 10,000-100,000 vectors): the engine of an approximate
  index is a :class:`~pinnacledb.vectors.tiered.TieredEngine`, whose writes go into an exact
  *pending* segment (and remove replaced ids from the graph); a search asks the graph and scans
  the pending segment and merges the two. The pending vectors are exactly those the change
  files after the base added (a process loading base + change files reads them from the
  outputs table and puts them there, with no graph add); they are durable before the write
  returns (in the outputs table, and the change file naming them is stored). They are folded
  into the graph (one batch add) when a new base is stored: at compaction, which for these
  engines is due when the change files touch more than ``max(vector_fold_min_rows,
  vector_compact_fraction * count)`` ids (10,000 and 10%: a scan of 10,000 pending 384-float
  vectors is a few ms a search; one fold per 10,000 changed ids keeps the number of base
  builds stored low), by ``db.catch_up`` (also with ``stale=False``: "folded") and by
  ``pinnacle index rebuild``. The fold is where the graph-add cost goes: the same work per row
  as before, paid by one write in many (or by catch_up). ``exact`` (and the memory engine) are
  used as they are.
* **Concurrency.** Several processes may write the same indexed table at once. The pointer is
  moved by compare-and-set (:class:`~pinnacle_protocols.SupportsMetadataSwap`, which every
  metadata store of this project has): a write reads the pointer, brings its engine to that
  chain, applies its changes and swaps in the pointer naming its change file only if the
  pointer is still the one it read. When another process moved it meanwhile, the write
  re-reads the pointer, reloads the engine at the new chain, applies its changes again on top
  and retries (with a short random backoff); a rebuild re-reads the outputs table and
  retries. So no writer's change file is left out of the chain, and a stale writer never
  points the index back at an older chain. The change file of a lost attempt is garbage for
  ``pinnacle gc``. What the index holds for a row is what its listener wrote for it; two
  processes writing *different* content to the same row at once leave listener outputs
  whose input hash ``db.catch_up()`` finds stale, and that rebuilds the index too. With a
  third-party metadata store without the capability the later pointer wins, as before:
  ``db.catch_up()`` finds the count off and rebuilds. Search never returns a row that is gone
  or does not match ``where`` (rows are re-read from the table).
* **Search.** ``where`` is exact: the engine is asked for an over-fetched candidate list, the
  candidates are re-read from the table with ``where``; when fewer than ``n`` survive and the
  engine holds more vectors, the ids matching ``where`` are selected and the engine searches
  only among them (every engine's ``allowed=`` promises ``n`` results when ``n`` allowed ids
  are live; a two-tier engine asks both tiers for ``n``, so the merge keeps the promise). The
  exact engine's answer then equals a brute-force scan of the matching rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import numbers
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs
import numpy as np
from attrs import frozen

from pinnacle_protocols.errors import (
    ArtifactCorrupted,
    ArtifactNotFound,
    BackendUnavailable,
    ComponentNotFound,
    IndexNotBuilt,
    InvalidRecord,
    InvalidVector,
    NotVectorOutputs,
    PinnacleError,
    SerializationError,
    TableNotFound,
    VectorIndexError,
)
from pinnacle_protocols.protocols import SupportsArrowSelect, SupportsMetadataSwap
from pinnacle_protocols.records import (
    ArtifactRef,
    ComponentKey,
    ComponentRecord,
    DType,
    JobRecord,
    JobStatus,
    JSONValue,
)
from pinnacle_protocols.serialization import utcnow
from pinnacle_protocols.uri import redact
from pinnacle_protocols.vectors import Measure, VectorEngine, VectorId, check_measure
from pinnacledb.base._gcfence import wait_while_deleting
from pinnacledb.vectors.delta import Delta, delta_position, pack_delta, unpack_delta
from pinnacledb.vectors.tiered import TieredEngine, tiered

if TYPE_CHECKING:
    from pinnacle_protocols.filters import Filter
    from pinnacledb.base._host import StoreHost
    from pinnacledb.base.datalayer import Datalayer
    from pinnacledb.components.vector_index import VectorIndex
    from pinnacledb.listeners import Active, Snapshot

__all__ = [
    "POINTER_PREFIX",
    "IndexInfo",
    "Pointer",
    "SearchHit",
    "VectorIndexEngine",
    "index_from_record",
    "pointer_references",
    "upcoming_change_files",
]

logger = logging.getLogger("pinnacledb")

#: Metadata key prefix of an index's pointer to its stored build.
POINTER_PREFIX: Final = "pinnacledb.vector_index."
#: Candidates asked of the engine per wanted result when ``where`` is given.
OVERFETCH: Final = 4
#: Tries of one write's (or rebuild's) pointer swap before it gives up (module docstring).
SWAP_ATTEMPTS: Final = 60
#: Change files up to this size are put without a journal job: gc reads such an artifact and
#: keeps it while a write may still name it (:func:`upcoming_change_files`).
UNJOURNALED_MAX: Final = 1 << 20
#: Source ids per read of the outputs table when a process loads format-2 change files.
READ_BATCH: Final = 1000
#: In a chain being loaded: an id whose last change added it, its vector to be read back.
_READ: Final[Any] = object()


class _Moved(Exception):
    """Another process moved the pointer between reading it and swapping it."""


def _backoff(attempt: int) -> None:
    """A short random pause before trying a lost pointer swap again (spreads the writers)."""
    import random

    time.sleep(min(0.05, 0.001 * 2 ** min(attempt, 6)) * random.random())  # noqa: S311


def _gave_up(identifier: str, what: str) -> VectorIndexError:
    return VectorIndexError(
        f"vector index {identifier!r}: {what} lost the pointer swap to other processes' "
        f"writes {SWAP_ATTEMPTS} times in a row; db.catch_up() or `pinnacle index rebuild "
        f"{identifier}` repairs the index"
    )


# ---------------------------------------------------------------------- records
@frozen(kw_only=True)
class IndexInfo:
    """One applied vector index (latest version), from its record (no artifact read)."""

    identifier: str
    key: ComponentKey
    listener: str
    measure: Measure
    engine: str
    options: Mapping[str, Any]


def index_from_record(record: ComponentRecord) -> IndexInfo:
    """An :class:`IndexInfo` from a stored ``vector_index`` record."""
    from pinnacledb.base._components import REF_KEY

    raw: Any = record.data.get("fields")
    fields: dict[str, Any] = raw if isinstance(raw, dict) else {}
    ref = fields.get("listener")
    ref = ref.get(REF_KEY) if isinstance(ref, dict) else None
    options = fields.get("options") or {}
    if not isinstance(ref, dict) or not isinstance(options, dict):
        raise InvalidRecord(
            f"vector_index {record.identifier!r} v{record.version}: the record has no listener "
            "reference (it was not stored by db.apply)"
        )
    return IndexInfo(
        identifier=record.identifier,
        key=record.key,
        listener=str(ref.get("identifier")),
        measure=check_measure(fields.get("measure", "cosine")),
        engine=str(fields.get("engine", "exact")),
        options=dict(options),
    )


def _ref_json(ref: ArtifactRef) -> JSONValue:
    return {"sha256": ref.sha256, "size": ref.size}


def _ref_from(value: JSONValue) -> ArtifactRef:
    assert isinstance(value, dict)
    return ArtifactRef(sha256=str(value["sha256"]), size=int(str(value["size"])))


@frozen(kw_only=True)
class Pointer:
    """What the metadata key of an index holds: which stored build is current.

    Attributes:
        artifact: The base build (None: no vectors yet).
        deltas: Change files applied on top of the base, in order (module docstring).
        delta_rows: Ids the change files touch in all (weighs toward compaction).
    """

    index_version: int
    model_version: int
    artifact: ArtifactRef | None  # None: no vectors yet
    count: int
    dim: int | None
    stamp: str
    deltas: tuple[ArtifactRef, ...] = ()
    delta_rows: int = 0

    @property
    def refs(self) -> list[ArtifactRef]:
        """Every artifact the pointer names: the base build and its change files."""
        return ([] if self.artifact is None else [self.artifact]) + list(self.deltas)

    def to_json(self) -> JSONValue:
        """The JSON value stored in the metadata store."""
        return {
            "index_version": self.index_version,
            "model_version": self.model_version,
            "artifact": None if self.artifact is None else _ref_json(self.artifact),
            "count": self.count,
            "dim": self.dim,
            "stamp": self.stamp,
            "deltas": [_ref_json(d) for d in self.deltas],
            "delta_rows": self.delta_rows,
        }

    @classmethod
    def from_json(cls, value: JSONValue, identifier: str) -> Pointer | None:
        """The pointer in ``value`` (None when absent); a malformed one raises IndexNotBuilt."""
        if value is None:
            return None
        try:
            assert isinstance(value, dict)
            art = value["artifact"]
            dim = value["dim"]
            deltas = value.get("deltas", [])  # pointers written before change files: none
            assert isinstance(deltas, list)
            ptr = cls(
                index_version=int(str(value["index_version"])),
                model_version=int(str(value["model_version"])),
                artifact=None if art is None else _ref_from(art),
                count=int(str(value["count"])),
                dim=None if dim is None else int(str(dim)),
                stamp=str(value["stamp"]),
                deltas=tuple(_ref_from(d) for d in deltas),
                delta_rows=int(str(value.get("delta_rows", 0))),
            )
            assert ptr.artifact is not None or not ptr.deltas, "change files without a base"
            return ptr
        except (AssertionError, KeyError, TypeError, ValueError, InvalidRecord) as exc:
            raise IndexNotBuilt(
                f"vector index {identifier!r}: its pointer in the metadata store is malformed "
                f"({type(exc).__name__}: {exc}); run `pinnacle index rebuild {identifier}` or "
                "db.catch_up()"
            ) from exc


def pointer_key(identifier: str) -> str:
    """The metadata key of an index's pointer."""
    return POINTER_PREFIX + identifier


def pointer_references(db: StoreHost) -> set[str]:
    """sha256 of every stored build and change file a vector index pointer names (kept by
    gc)."""
    md = db.metadata
    refs: set[str] = set()
    for key in md.show_components("vector_index"):
        with contextlib.suppress(IndexNotBuilt):
            ptr = Pointer.from_json(md.get_metadata(pointer_key(key.identifier)), key.identifier)
            if ptr is not None:
                refs.update(r.sha256 for r in ptr.refs)
    return refs


def upcoming_change_files(
    db: StoreHost,
    refs: Iterable[ArtifactRef],
    heads: dict[str, tuple[str, int] | None] | None = None,
) -> set[str]:
    """sha256 of the artifacts among ``refs`` a write may be about to name: format-2 change
    files (of at most ``UNJOURNALED_MAX`` bytes, read here) that follow the base build of a
    current pointer at a position the pointer has not passed (gc keeps them).

    A write reads the pointer, then the gc fence, then puts its change file and swaps the
    pointer only if it is still the one it read; so while the pointer has not moved past the
    file's position on the file's base, the file may yet be named, and once it has, the file
    never will be. ``heads`` caches what each artifact's header said, across calls.
    """
    md = db.metadata
    tips: dict[str, int] = {}  # base sha256 -> fewest change files a pointer on it names
    for key in md.show_components("vector_index"):
        with contextlib.suppress(IndexNotBuilt):
            ptr = Pointer.from_json(md.get_metadata(pointer_key(key.identifier)), key.identifier)
            if ptr is not None and ptr.artifact is not None:
                base = ptr.artifact.sha256
                tips[base] = min(tips.get(base, len(ptr.deltas)), len(ptr.deltas))
    if not tips:
        return set()
    heads = {} if heads is None else heads
    out: set[str] = set()
    for ref in refs:
        if ref.size > UNJOURNALED_MAX:
            continue
        if ref.sha256 not in heads:
            heads[ref.sha256] = None
            with contextlib.suppress(PinnacleError, OSError):
                heads[ref.sha256] = delta_position(db.artifact_store.get(ref))
        head = heads[ref.sha256]
        if head is not None and head[0] in tips and head[1] >= tips[head[0]]:
            out.add(ref.sha256)
    return out


class SearchHit(dict[str, Any]):
    """One search result: the row, decoded like ``db.select``, with ``id`` and ``score``.

    Attributes:
        id: The row's id (the listener's ``id_column`` value).
        score: Higher is better: cosine similarity, inner product, or minus the L2 distance.
    """

    def __init__(self, row: Mapping[str, Any], *, id: Any, score: float) -> None:
        """The row plus its id and score."""
        super().__init__(row)
        self.id = id
        self.score = score

    def __repr__(self) -> str:
        """Id, score and the row."""
        return f"SearchHit(id={self.id!r}, score={self.score:.6g}, row={dict(self)!r})"


@frozen(kw_only=True)
class _Loaded:
    """This process's copy of an index's engine, and which pointer and chain it reflects."""

    stamp: str
    chain: tuple[str, ...]  # sha256 of the base build and of each change file applied
    engine: VectorEngine | None
    #: Ids the chain holds that were left out at load: their current output is gone or
    #: unusable (a later write changes them; when that write is this process's, its change
    #: file must still remove them).
    absent: frozenset[VectorId] = frozenset()


@attrs.define(kw_only=True, eq=False)
class _Pending:
    info: IndexInfo
    active: Active
    adds: dict[VectorId, Any] = attrs.field(factory=dict)
    removes: set[VectorId] = attrs.field(factory=set)


# ---------------------------------------------------------------------- vectors from outputs
def _vector_error(active: Active, what: str) -> NotVectorOutputs:
    return NotVectorOutputs(
        f"listener {active.identifier!r} does not output vectors: {what}; a vector index needs "
        "outputs of dtype 'vector' (Listener(output_type='vector')) or JSON arrays of numbers "
        "of one length"
    )


def _as_vector(active: Active, value: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    """One output as a 1-d float32 array (raises NotVectorOutputs naming the listener)."""
    if isinstance(value, (str, bytes, bool, numbers.Number, Mapping)):
        raise _vector_error(active, f"found a {type(value).__name__} output {value!r:.60}")
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise _vector_error(active, f"found an output {value!r:.60} ({exc})") from exc
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise _vector_error(active, f"found an output of shape {arr.shape}")
    return arr


def _usable(measure: Measure, matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Mask of rows an engine accepts (finite; non-zero under cosine)."""
    ok: np.ndarray[Any, Any] = np.isfinite(matrix).all(axis=1)
    if measure == "cosine":
        ok &= np.any(matrix != 0, axis=1)
    return ok


def _as_matrix(
    active: Active, values: Sequence[Any], dim: int | None = None
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Outputs as one ``(len(values), dim)`` float32 matrix, each read as :func:`_as_vector`
    reads it (raises NotVectorOutputs naming the listener, also when the outputs, or the
    outputs and ``dim``, differ in dimension). 1-d float numpy rows (a model's batch) are
    stacked at once."""
    if values and all(
        type(v) is np.ndarray and v.ndim == 1 and v.dtype.kind == "f" and v.shape[0] for v in values
    ):
        dims = {v.shape[0] for v in values}
        if len(dims) == 1 and dim in (None, *dims):
            return np.stack(values).astype(np.float32, copy=False)
    vectors = [_as_vector(active, v) for v in values]
    dims = {v.shape[0] for v in vectors}
    if dim is not None:
        dims.add(dim)
    if len(dims) > 1:
        raise _vector_error(active, f"found outputs of dimensions {sorted(dims)}")
    return np.stack(vectors)


def _arrow_outputs(table: Any) -> tuple[list[VectorId], Any] | dict[VectorId, Any]:
    """The non-null outputs of a canonical Arrow select of ``source_id, output``: a float
    list column (a ``vector`` output) whose rows have one length, no null item and distinct
    ids as ``(ids, matrix)`` (no Python object per float); otherwise ``source_id -> output``
    (JSON text decoded, anything else as Python values; the last row of an id wins)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    sids: list[VectorId] = table.column("source_id").to_pylist()
    col = table.column("output").combine_chunks()
    if col.null_count:
        valid = col.is_valid()
        sids = [i for i, ok in zip(sids, valid.to_pylist(), strict=True) if ok]
        col = col.filter(valid)
    typ = col.type
    if (
        (pa.types.is_list(typ) or pa.types.is_large_list(typ))
        and pa.types.is_floating(typ.value_type)
        and len(col)
        and len(set(sids)) == len(sids)
    ):
        lengths = pc.list_value_length(col)
        first = lengths[0].as_py()
        flat = col.flatten()
        if (
            first
            and pc.all(pc.equal(lengths, first)).as_py()
            and not flat.null_count
            and len(flat) == first * len(col)
        ):
            return sids, flat.to_numpy(zero_copy_only=False).reshape(len(col), first)
    values = col.to_pylist()
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        import json

        values = [json.loads(v) for v in values]
    return {sid: v for sid, v in zip(sids, values, strict=True) if v is not None}


# ---------------------------------------------------------------------- the engine
class VectorIndexEngine:
    """Build, upkeep and search of the vector indexes of one Datalayer (module docstring).

    The upkeep thresholds are the Datalayer's settings (``db.vector_max_deltas``,
    ``db.vector_compact_min_rows``, ``db.vector_compact_fraction``,
    ``db.vector_fold_min_rows``), read at each write; the properties below are views of them.
    """

    def __init__(self, db: Datalayer) -> None:
        """Work for ``db``."""
        self._db = db
        self._cache: dict[str, _Loaded] = {}
        self._pending: dict[str, _Pending] = {}
        self._depth = 0

    @property
    def max_deltas(self) -> int:
        """A write that finds this many change files compacts into a new base."""
        return self._db.vector_max_deltas

    @max_deltas.setter
    def max_deltas(self, value: int) -> None:
        self._db.vector_max_deltas = value

    @property
    def compact_min_rows(self) -> int:
        """Change files may touch this many ids in all before compaction..."""
        return self._db.vector_compact_min_rows

    @compact_min_rows.setter
    def compact_min_rows(self, value: int) -> None:
        self._db.vector_compact_min_rows = value

    @property
    def compact_fraction(self) -> float:
        """...or this fraction of the index's vectors, whichever is larger."""
        return self._db.vector_compact_fraction

    @compact_fraction.setter
    def compact_fraction(self, value: float) -> None:
        self._db.vector_compact_fraction = value

    @property
    def fold_min_rows(self) -> int:
        """What ``compact_min_rows`` is for an approximate engine, whose compaction folds its
        pending segment into the graph (module docstring)."""
        return self._db.vector_fold_min_rows

    @fold_min_rows.setter
    def fold_min_rows(self, value: int) -> None:
        self._db.vector_fold_min_rows = value

    # ------------------------------------------------------------------ pointers, loading
    def pointer(self, identifier: str) -> Pointer | None:
        """The stored pointer of an index (None when there is none)."""
        return self._read_pointer(identifier)[1]

    def _read_pointer(self, identifier: str) -> tuple[JSONValue, Pointer | None]:
        """The stored JSON of an index's pointer (what a swap must find) and the pointer."""
        raw = self._db.metadata.get_metadata(pointer_key(identifier))
        return raw, Pointer.from_json(raw, identifier)

    def _current(self, info: IndexInfo, active: Active, ptr: Pointer | None) -> bool:
        return (
            ptr is not None
            and ptr.index_version == info.key.version
            and ptr.model_version == active.model_version
        )

    def engine_at(
        self, info: IndexInfo, ptr: Pointer, active: Active | None = None
    ) -> VectorEngine | None:
        """The engine of the build ``ptr`` names: base plus change files, each read and
        verified; this process's copy when it has it, brought forward by the change files it
        has not applied yet.

        The vectors of the ids a format-2 change file added are read back from the outputs
        table of the index's listener (``active``, else the current one), at the pointer's
        model version: each id's *current* output, checked as a write checks it; an id whose
        output is gone, None or unusable is left out (removed), as a write leaves it out.
        """
        chain = tuple(r.sha256 for r in ptr.refs)
        cached = self._cache.get(info.identifier)
        if cached is not None and cached.stamp == ptr.stamp:
            return cached.engine
        engine: VectorEngine | None = None
        start = 0
        if (
            cached is not None
            and cached.engine is not None
            and cached.chain
            and chain[: len(cached.chain)] == cached.chain  # same base, more change files
        ):
            engine, start = cached.engine, len(cached.chain) - 1
            absent = set(cached.absent)
        else:
            absent = set()
        self._cache.pop(info.identifier, None)  # the copy is changed below
        if ptr.artifact is not None:
            store = self._db.artifact_store
            try:
                if engine is None:
                    from pinnacledb.vectors import engine_type

                    data = store.get(ptr.artifact)  # sha256 verified
                    # the engine named by the index record, never one named by the bytes; an
                    # approximate one gets the change files below in its pending segment
                    engine = tiered(engine_type(info.engine).from_bytes(data))
                    if engine.measure != info.measure:
                        raise IndexNotBuilt(
                            f"vector index {info.identifier!r}: the stored build uses measure "
                            f"{engine.measure!r}, the index {info.measure!r}; rebuild it"
                        )
                gone, adds = self._net_change(ptr, start, engine.dim)
            except (ArtifactNotFound, ArtifactCorrupted, SerializationError, InvalidVector) as exc:
                raise IndexNotBuilt(
                    f"vector index {info.identifier!r}: its stored build cannot be read "
                    f"({type(exc).__name__}: {exc}); run `pinnacle index rebuild "
                    f"{info.identifier}` or db.catch_up()"
                ) from exc
            absent -= gone | adds.keys()
            wanted = [i for i, v in adds.items() if v is _READ]
            got_ids: list[VectorId] = []
            got: np.ndarray[Any, Any] = np.empty((0, engine.dim), np.float32)
            if wanted:
                got_ids, got = self._read_back(info, ptr, engine.dim, wanted, active)
                have = set(got_ids)
                for i in wanted:
                    del adds[i]
                    if i not in have:
                        gone.add(i)
                        absent.add(i)
                gone -= have
            drop = [i for i in gone if i not in adds and i in engine]
            if drop:
                engine.remove(drop)
            if adds:  # format-1 vectors
                engine.add(list(adds), np.stack(list(adds.values())))
            if got_ids:
                engine.add(got_ids, got)
        self._cache[info.identifier] = _Loaded(
            stamp=ptr.stamp, chain=chain, engine=engine, absent=frozenset(absent)
        )
        return engine

    def _net_change(
        self, ptr: Pointer, start: int, dim: int
    ) -> tuple[set[VectorId], dict[VectorId, Any]]:
        """The net change of the pointer's change files from position ``start`` on, each id as
        its last change file left it: the ids removed, and the ids added with their float32
        row (format 1) or ``_READ`` (format 2: the vector is read back)."""
        assert ptr.artifact is not None
        gone: set[VectorId] = set()
        adds: dict[VectorId, Any] = {}
        for seq in range(start, len(ptr.deltas)):
            delta = unpack_delta(
                self._db.artifact_store.get(ptr.deltas[seq]),
                base=ptr.artifact.sha256,
                seq=seq,
                dim=dim,
            )
            for i in delta.removed:
                adds.pop(i, None)
                gone.add(i)
            if delta.vectors is None:
                adds.update(dict.fromkeys(delta.added, _READ))
            else:
                adds.update(zip(delta.added, delta.vectors, strict=True))
        return gone, adds

    def _read_back(
        self,
        info: IndexInfo,
        ptr: Pointer,
        dim: int,
        ids: Sequence[VectorId],
        active: Active | None,
    ) -> tuple[list[VectorId], np.ndarray[Any, np.dtype[np.float32]]]:
        """The ids among ``ids`` with a current, usable vector in the outputs table of the
        index's listener at the pointer's model version, and those vectors (float32), read
        ``READ_BATCH`` ids at a time. Raises IndexNotBuilt when the table cannot be read or
        holds non-vectors (or vectors of another dimension than ``dim``)."""
        if active is None:
            active = self._db._listeners.snapshot().by_id.get(info.listener)
        backend = self._db.databackend
        found: list[VectorId] = []
        blocks: list[np.ndarray[Any, Any]] = []
        try:
            if active is None:
                raise ComponentNotFound(f"its listener {info.listener!r} is not applied")
            loose: dict[VectorId, Any] = {}
            for at in range(0, len(ids), READ_BATCH):
                cond: Filter = {
                    "$and": [
                        {"model_version": ptr.model_version},
                        {"source_id": {"$in": list(ids[at : at + READ_BATCH])}},
                    ]
                }
                columns = ["source_id", "output"]
                if isinstance(backend, SupportsArrowSelect):
                    got = _arrow_outputs(
                        backend.select_arrow(active.output_table, cond, columns=columns)
                    )
                    if isinstance(got, dict):
                        loose.update(got)
                    else:  # one matrix per read (each id is in one read)
                        if got[1].shape[1] != dim:
                            dims = sorted({dim, got[1].shape[1]})
                            raise _vector_error(active, f"found outputs of dimensions {dims}")
                        found += got[0]
                        blocks.append(got[1])
                else:
                    for row in backend.select(active.output_table, cond, columns=columns):
                        if row["output"] is not None:
                            loose[row["source_id"]] = row["output"]
            if loose:
                found += list(loose)
                blocks.append(_as_matrix(active, list(loose.values()), dim))
        except BackendUnavailable:
            raise
        except (PinnacleError, ValueError, TypeError) as exc:
            raise IndexNotBuilt(
                f"vector index {info.identifier!r}: the vectors its change files add cannot be "
                f"read from the outputs table of listener {info.listener!r} "
                f"({type(exc).__name__}: {exc}); run `pinnacle index rebuild "
                f"{info.identifier}` or db.catch_up()"
            ) from exc
        if not found:
            return [], np.empty((0, dim), np.float32)
        matrix = np.concatenate(blocks).astype(np.float32, copy=False)
        ok = _usable(info.measure, matrix)
        if ok.all():
            return found, matrix
        return [i for i, keep in zip(found, ok.tolist(), strict=True) if keep], matrix[ok]

    def _store(
        self,
        info: IndexInfo,
        data: bytes,
        then: Callable[[ArtifactRef], Pointer],
        *,
        journal: bool = True,
    ) -> Pointer:
        """Put ``data`` (a build or a change file), then move the pointer with ``then(ref)``.

        A build's put is journaled (kind ``vector_index``) so gc keeps the bytes until the
        pointer names them; once it does, the journal job has done its work and is deleted (one
        write leaves no record behind). A failure leaves the job FAILED, with the error. A small
        format-2 change file (``journal=False``) needs no job: gc keeps it while it follows the
        pointer's chain (:func:`upcoming_change_files`); the put only passes the gc fence first
        (after the pointer was read), so a gc run deleting the same bytes finishes first.
        """
        ref = ArtifactRef(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        io = self._db._io
        md = self._db.metadata
        job: JobRecord | None = None
        if journal:
            job = io.journal_start("vector_index", {"index": info.identifier}, [ref.sha256])
        else:
            wait_while_deleting(md, [ref.sha256])
        try:
            stored = self._db.artifact_store.put(data)
            if stored.sha256 != ref.sha256:
                raise ArtifactCorrupted(
                    f"{self._db.artifact_store.uri} stored the build of vector index "
                    f"{info.identifier!r} under another sha256"
                )
            ptr = then(ref)
        except _Moved:
            # not a failure: the bytes are garbage for gc, the caller tries again
            if job is not None:
                with contextlib.suppress(Exception):
                    md.delete_job(job.job_id)
            raise
        except BaseException as exc:
            if job is not None:
                with contextlib.suppress(Exception):
                    io.journal_finish(job, error=exc)
            raise
        if job is not None:
            try:
                md.delete_job(job.job_id)
            except Exception:  # the write is done; a finished job left behind is harmless
                with contextlib.suppress(Exception):
                    io.journal_finish(job, component=info.key)
        return ptr

    def _persist(
        self, info: IndexInfo, active: Active, engine: VectorEngine | None, expected: JSONValue
    ) -> Pointer:
        """Store ``engine``'s bytes as a new base build and point the index at it alone, if
        the pointer still is ``expected`` (raises _Moved otherwise)."""
        if engine is None:
            return self._point(info, active, engine, None, expected=expected)
        return self._store(
            info,
            engine.to_bytes(),
            lambda ref: self._point(info, active, engine, ref, expected=expected),
        )

    def _point(
        self,
        info: IndexInfo,
        active: Active,
        engine: VectorEngine | None,
        ref: ArtifactRef | None,
        *,
        expected: JSONValue,
        deltas: tuple[ArtifactRef, ...] = (),
        delta_rows: int = 0,
    ) -> Pointer:
        """Swap in a pointer to ``ref`` (+ ``deltas``) if the stored one is still ``expected``
        (raises _Moved otherwise); without a swap-capable store, overwrite it."""
        ptr = Pointer(
            index_version=int(info.key.version),
            model_version=active.model_version,
            artifact=ref,
            count=0 if engine is None else len(engine),
            dim=None if engine is None else engine.dim,
            stamp=uuid.uuid4().hex,
            deltas=deltas,
            delta_rows=delta_rows,
        )
        md = self._db.metadata
        key = pointer_key(info.identifier)
        if isinstance(md, SupportsMetadataSwap):
            if not md.swap_metadata(key, expected, ptr.to_json()):
                raise _Moved
        else:  # a third-party store: the later pointer wins (module docstring)
            md.set_metadata(key, ptr.to_json())
        self._cache[info.identifier] = _Loaded(
            stamp=ptr.stamp, chain=tuple(r.sha256 for r in ptr.refs), engine=engine
        )
        return ptr

    def _compact_due(self, ptr: Pointer, rows: int, engine: VectorEngine) -> bool:
        """Whether the next change should be folded into a new base build instead (for a
        two-tier engine the pending segment is folded into its graph then)."""
        least = self.fold_min_rows if isinstance(engine, TieredEngine) else self.compact_min_rows
        return len(ptr.deltas) >= self.max_deltas or rows > max(
            least, self.compact_fraction * len(engine)
        )

    def _append(
        self,
        info: IndexInfo,
        active: Active,
        ptr: Pointer,
        engine: VectorEngine,
        delta: Delta,
        *,
        expected: JSONValue,
    ) -> Pointer:
        """Store one change file after the pointer's chain and point the index at it (if the
        stored pointer is still ``expected``: raises _Moved otherwise)."""
        assert ptr.artifact is not None
        data = pack_delta(delta)
        return self._store(
            info,
            data,
            journal=delta.vectors is not None or len(data) > UNJOURNALED_MAX,
            then=lambda ref: self._point(
                info,
                active,
                engine,
                ptr.artifact,
                expected=expected,
                deltas=(*ptr.deltas, ref),
                delta_rows=ptr.delta_rows + delta.rows,
            ),
        )

    # ------------------------------------------------------------------ build
    def read_outputs(self, active: Active) -> dict[VectorId, Any]:
        """The listener's current outputs, by source id (None outputs left out)."""
        backend = self._db.databackend
        if active.output_table not in backend.list_tables():
            return {}
        out: dict[VectorId, Any] = {}
        last: Any = None
        batch = 10_000
        while True:
            cond: dict[str, Any] = {"model_version": active.model_version}
            if last is not None:
                cond = {"$and": [cond, {"source_id": {"$gt": last}}]}
            rows = backend.select(
                active.output_table,
                cond,
                columns=["source_id", "output"],
                order_by=["source_id"],
                limit=batch,
            )
            for row in rows:
                if row["output"] is not None:
                    out[row["source_id"]] = row["output"]
            if len(rows) < batch:
                return out
            last = rows[-1]["source_id"]

    def check_outputs(self, index_id: str, active: Active) -> None:
        """Refuse a listener whose outputs column is not of a type that can hold vectors."""
        backend = self._db.databackend
        dtype: str | None = active.output_type
        if active.output_table in backend.list_tables():
            with contextlib.suppress(NotImplementedError, TableNotFound, KeyError):
                dtype = backend.table_schema(active.output_table)["output"].dtype.value
        if dtype is not None and dtype not in (DType.VECTOR.value, DType.JSON.value):
            raise NotVectorOutputs(
                f"vector index {index_id!r}: listener {active.identifier!r} outputs dtype "
                f"{dtype!r}, not vectors; index a listener whose model returns vectors (outputs "
                "of dtype 'vector', or JSON arrays of numbers of one length)"
            )

    def build_engine(self, info: IndexInfo, active: Active) -> VectorEngine | None:
        """A new engine over the listener's current outputs (None when there are none)."""
        from pinnacledb.vectors import engine_type

        outputs = self.read_outputs(active)
        if not outputs:
            return None
        ids = list(outputs)
        matrix = _as_matrix(active, list(outputs.values()))
        ok = _usable(info.measure, matrix)
        if not ok.all():
            logger.warning(
                "vector index %r: %d outputs of listener %r are not finite%s and are left out",
                info.identifier,
                int((~ok).sum()),
                active.identifier,
                " or are zero vectors (no direction under cosine)"
                if info.measure == "cosine"
                else "",
            )
            ids = [i for i, keep in zip(ids, ok.tolist(), strict=True) if keep]
            matrix = matrix[ok]
        return tiered(
            engine_type(info.engine).build(
                ids, matrix, measure=info.measure, dim=matrix.shape[1], **dict(info.options)
            )
        )

    def build(
        self, info: IndexInfo, active: Active, *, kind: str = "vector_index.build"
    ) -> Pointer:
        """Build from the outputs table and store it, recorded as a job of ``kind``."""
        md = self._db.metadata
        started = time.perf_counter()
        job = md.create_job(
            JobRecord(
                job_id=f"{kind}-{uuid.uuid4().hex}",
                kind=kind,
                status=JobStatus.RUNNING,
                component=info.key,
                args={"index": info.identifier, "listener": active.identifier},
                started_at=utcnow(),
            )
        )
        try:
            for attempt in range(SWAP_ATTEMPTS):
                # the pointer first, then the outputs: a write that lands in between moves
                # the pointer, so the swap fails and the outputs are read again
                expected = self._db.metadata.get_metadata(pointer_key(info.identifier))
                engine = self.build_engine(info, active)
                try:
                    ptr = self._persist(info, active, engine, expected)
                    break
                except _Moved:
                    _backoff(attempt)
            else:
                raise _gave_up(info.identifier, "a rebuild")
        except Exception as exc:
            md.update_job(
                attrs.evolve(
                    job,
                    status=JobStatus.FAILED,
                    finished_at=utcnow(),
                    error=redact(f"{type(exc).__name__}: {exc}"),
                )
            )
            raise
        md.update_job(
            attrs.evolve(
                job,
                status=JobStatus.SUCCESS,
                finished_at=utcnow(),
                args={
                    **job.args,
                    "count": ptr.count,
                    "dim": ptr.dim,
                    "model_version": ptr.model_version,
                    "seconds": round(time.perf_counter() - started, 6),
                },
            )
        )
        return ptr

    # ------------------------------------------------------------------ apply / remove
    def apply(self, index: VectorIndex) -> ComponentRecord:
        """``db.apply(VectorIndex(...))``: check, record, build and store (see the component)."""
        from pinnacledb.vectors import engine_type

        db = self._db
        db.apply(index.listener)  # the Datalayer path: checks, backfill when new
        engine_type(index.engine)  # not installed: ConfigError naming the extra, nothing stored
        listeners = db._listeners
        active = listeners.snapshot().by_id.get(index.listener.identifier)
        if active is None:  # pragma: no cover - applied just above
            raise ComponentNotFound(f"listener {index.listener.identifier!r} is not applied")
        self.check_outputs(index.identifier, active)
        md = db.metadata
        before = set(md.show_versions(index.type_id, index.identifier))
        record = db._io.apply(index)
        info = index_from_record(record)
        new = record.version not in before
        if not new and self._current(info, active, self.pointer(index.identifier)):
            return record
        try:
            self.build(info, active)
        except Exception:
            if new:  # nothing half-applied: the record goes with the build that failed
                with contextlib.suppress(Exception):
                    md.delete_component_version(index.type_id, index.identifier, record.key.version)
            raise
        listeners.bump()  # every process's writes now keep this index current
        return record

    def forget(self, identifier: str) -> None:
        """After the index's last version was removed: drop its pointer and cached engine."""
        self._db.metadata.set_metadata(pointer_key(identifier), None)
        self._cache.pop(identifier, None)
        self._pending.pop(identifier, None)

    # ------------------------------------------------------------------ upkeep
    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Collect upkeep during one db write; apply it once when the outermost one ends."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._pending:
                self.flush()

    def written(self, snap: Snapshot, active: Active, pairs: Sequence[tuple[Any, Any]]) -> None:
        """The listener wrote these ``(source id, output)`` pairs (current model version)."""
        for info in snap.indexes.get(active.identifier, ()):
            p = self._pending.setdefault(info.identifier, _Pending(info=info, active=active))
            for sid, y in pairs:
                p.removes.discard(sid)
                if y is None:
                    p.adds.pop(sid, None)
                    p.removes.add(sid)
                else:
                    p.adds[sid] = y
        if self._depth == 0 and self._pending:
            self.flush()

    def removed(self, snap: Snapshot, active: Active, sids: Sequence[Any]) -> None:
        """The listener removed the outputs of these source ids."""
        for info in snap.indexes.get(active.identifier, ()):
            p = self._pending.setdefault(info.identifier, _Pending(info=info, active=active))
            for sid in sids:
                p.adds.pop(sid, None)
                p.removes.add(sid)
        if self._depth == 0 and self._pending:
            self.flush()

    def flush(self) -> None:
        """Apply the collected changes to each index and store the new builds."""
        pending, self._pending = self._pending, {}
        for identifier, p in pending.items():
            try:
                self._upkeep(p)
            except Exception as exc:
                self._cache.pop(identifier, None)
                self._failed(p, exc)

    def _upkeep(self, p: _Pending) -> None:
        """Apply one write's changes and swap in the pointer; on a lost swap, again on top of
        the chain that won (module docstring)."""
        for attempt in range(SWAP_ATTEMPTS):
            raw, ptr = self._read_pointer(p.info.identifier)
            try:
                self._upkeep_at(p, raw, ptr)
                return
            except _Moved:
                # the engine copy got this write's changes for a chain never published
                self._cache.pop(p.info.identifier, None)
                _backoff(attempt)
        raise _gave_up(p.info.identifier, "a write's upkeep")

    def _upkeep_at(self, p: _Pending, raw: JSONValue, ptr: Pointer | None) -> None:
        info, active = p.info, p.active
        if ptr is None or not self._current(info, active, ptr):
            # removed meanwhile, or for another model version: the outputs table is the truth
            if ptr is not None or info.identifier in self._db.show("vector_index"):
                self.build(info, active, kind="vector_index.rebuild")
            return
        engine = self.engine_at(info, ptr, active)
        loaded = self._cache.get(info.identifier)
        absent = frozenset() if loaded is None else loaded.absent
        removes = [] if engine is None else [i for i in p.removes if i in engine or i in absent]
        ids: list[VectorId] = []
        matrix: np.ndarray[Any, Any] = np.empty((0, 0), np.float32)
        if p.adds:
            ids = list(p.adds)
            matrix = _as_matrix(
                active, list(p.adds.values()), None if engine is None else engine.dim
            )
            ok = _usable(info.measure, matrix)
            if not ok.all():
                logger.warning(
                    "vector index %r: %d new outputs of listener %r cannot be indexed (not "
                    "finite, or zero under cosine) and are left out",
                    info.identifier,
                    int((~ok).sum()),
                    active.identifier,
                )
                if engine is not None:
                    removes += [
                        i
                        for i, keep in zip(ids, ok.tolist(), strict=True)
                        if not keep and (i in engine or i in absent)
                    ]
                ids = [i for i, keep in zip(ids, ok.tolist(), strict=True) if keep]
                matrix = matrix[ok]
        if engine is None:
            if ids:  # the first vectors: a base build
                from pinnacledb.vectors import engine_type

                engine = tiered(
                    engine_type(info.engine).build(
                        ids, matrix, measure=info.measure, **dict(info.options)
                    )
                )
                self._persist(info, active, engine, raw)
            return
        if not removes and not ids:
            return  # nothing the index holds changed: no write
        if removes:
            engine.remove(removes)
        if ids:
            engine.add(ids, matrix)
        assert ptr.artifact is not None
        # format 2: ids only; the vectors are in the outputs table already (module docstring)
        delta = Delta(
            base=ptr.artifact.sha256,
            seq=len(ptr.deltas),
            dim=engine.dim,
            removed=tuple(removes),
            added=tuple(ids),
        )
        if self._compact_due(ptr, ptr.delta_rows + delta.rows, engine):
            self._persist(info, active, engine, raw)
        else:
            self._append(info, active, ptr, engine, delta, expected=raw)

    def _failed(self, p: _Pending, exc: BaseException) -> None:
        text = redact(f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):  # bookkeeping must not hide the user's write
            self._db.metadata.create_job(
                JobRecord(
                    job_id=f"vector_index.upkeep-{uuid.uuid4().hex}",
                    kind="vector_index.upkeep",
                    status=JobStatus.FAILED,
                    component=p.info.key,
                    args={"index": p.info.identifier, "listener": p.active.identifier},
                    started_at=utcnow(),
                    finished_at=utcnow(),
                    error=text,
                )
            )
        logger.warning(
            "vector index %r could not be kept current: %s; the data write was kept and "
            "db.catch_up() rebuilds the index",
            p.info.identifier,
            text,
        )

    # ------------------------------------------------------------------ repair
    def _resolve(self, identifier: str) -> tuple[IndexInfo, Active]:
        snap = self._db._listeners.snapshot()
        info = snap.index_by_id.get(identifier)
        if info is None:
            known = ", ".join(sorted(snap.index_by_id)) or "none"
            raise ComponentNotFound(
                f"no vector index {identifier!r} in {self._db.metadata.uri} (indexes: {known})"
            )
        active = snap.by_id.get(info.listener)
        if active is None:
            raise ComponentNotFound(
                f"vector index {identifier!r}: its listener {info.listener!r} was removed; "
                "re-apply the listener, or remove the index"
            )
        return info, active

    def rebuild(self, identifier: str) -> Pointer:
        """Build the index again from its listener's outputs table and store it."""
        info, active = self._resolve(identifier)
        return self.build(info, active, kind="vector_index.rebuild")

    def catch_up(self, listener: str | None, *, stale: bool) -> dict[str, str]:
        """Repair the indexes of every listener (or one's); return identifier -> what was done.

        ``stale=True`` rebuilds each index from its outputs table; otherwise an index is
        rebuilt only when its build is missing, unreadable, for another model version, or holds
        a different number of vectors than the outputs table.
        """
        snap = self._db._listeners.snapshot()
        done: dict[str, str] = {}
        for info in sorted(snap.index_by_id.values(), key=lambda i: i.identifier):
            if listener is not None and info.listener != listener:
                continue
            active = snap.by_id.get(info.listener)
            if active is None:
                done[info.identifier] = "listener removed"
                continue
            if stale or not self._intact(info, active):
                self.build(info, active, kind="vector_index.rebuild")
                done[info.identifier] = "rebuilt"
            elif self.fold(info, active):
                done[info.identifier] = "folded"
            else:
                done[info.identifier] = "current"
        return done

    def fold(self, info: IndexInfo, active: Active) -> bool:
        """Fold the pending segment of a two-tier engine into its graph and store the result as
        a new base build (a compaction); False when nothing was pending."""
        for attempt in range(SWAP_ATTEMPTS):
            raw, ptr = self._read_pointer(info.identifier)
            if ptr is None or not self._current(info, active, ptr):
                return False
            engine = self.engine_at(info, ptr, active)
            if not isinstance(engine, TieredEngine) or engine.pending == 0:
                return False
            try:
                self._persist(info, active, engine, raw)  # to_bytes folds
                return True
            except _Moved:
                self._cache.pop(info.identifier, None)
                _backoff(attempt)
        raise _gave_up(info.identifier, "a fold")

    def _intact(self, info: IndexInfo, active: Active) -> bool:
        try:
            ptr = self.pointer(info.identifier)
            if ptr is None or not self._current(info, active, ptr):
                return False
            engine = self.engine_at(info, ptr, active)
        except IndexNotBuilt:
            return False
        have = 0 if engine is None else len(engine)
        backend = self._db.databackend
        if active.output_table not in backend.list_tables():
            return have == 0
        where: Filter = {
            "$and": [{"model_version": active.model_version}, {"output": {"$ne": None}}]
        }
        return backend.count(active.output_table, where) == have

    def refresh_listener(self, listener: str) -> None:
        """After a listener apply: rebuild its indexes whose build is for another version."""
        snap = self._db._listeners.snapshot()
        active = snap.by_id.get(listener)
        if active is None:
            return
        for info in snap.indexes.get(listener, ()):
            try:
                if not self._current(info, active, self.pointer(info.identifier)):
                    self.build(info, active, kind="vector_index.rebuild")
            except Exception as exc:
                self._failed(_Pending(info=info, active=active), exc)

    # ------------------------------------------------------------------ search
    def search(
        self,
        identifier: str,
        like: Any,
        n: int = 10,
        where: Filter | None = None,
    ) -> list[SearchHit]:
        """See :meth:`pinnacledb.base.datalayer.Datalayer.search`."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        if where is not None:
            from pinnacle_protocols.filters import validate_filter

            validate_filter(where)
        info, active = self._resolve(identifier)
        ptr = self.pointer(identifier)
        if ptr is None or not self._current(info, active, ptr):
            why = (
                "has no stored build"
                if ptr is None
                else f"was built for listener model version {ptr.model_version} / index "
                f"version {ptr.index_version}, not {active.model_version} / {info.key.version}"
            )
            raise IndexNotBuilt(
                f"vector index {identifier!r} {why}; run `pinnacle index rebuild {identifier}` "
                "or db.catch_up()"
            )
        engine = self.engine_at(info, ptr, active)
        if engine is None or n == 0 or len(engine) == 0:
            return []
        query = self._query(info, active, like, engine.dim)
        total = len(engine)
        k = min(total, n if where is None else max(OVERFETCH * n, n + 16))
        found = engine.search(query, k)
        hits = self._rows(active, found.ids, found.scores, where)
        if len(hits) < n and k < total:
            # fewer than n of the over-fetched candidates are current matching rows: search
            # among exactly the ids that match (the engine returns n of them if it holds n)
            allowed = self._matching_ids(active, where)
            found = engine.search(query, n, allowed=allowed)
            hits = self._rows(active, found.ids, found.scores, where)
        return hits[:n]

    def _query(self, info: IndexInfo, active: Active, like: Any, dim: int) -> Any:
        """``like`` as a query vector: used as is when it is ``dim`` numbers, else the
        listener's model turns it into one."""
        if _is_vector(like, dim):
            return np.asarray(like, dtype=np.float32)
        x = like
        if not active.single:
            if isinstance(like, Mapping):
                x = [like.get(c) for c in active.columns]
            elif not isinstance(like, (list, tuple)) or len(like) != len(active.columns):
                raise InvalidVector(
                    f"vector index {info.identifier!r}: like= must be a vector of {dim} numbers "
                    f"or an input for listener {active.identifier!r}, whose model takes the "
                    f"columns {active.columns} (a dict or a list of {len(active.columns)} values)"
                )
        model = active.component(self._db).model
        ys = model.predict([x])
        if len(ys) != 1:
            raise InvalidVector(
                f"model {model.identifier!r} returned {len(ys)} outputs for one like= input"
            )
        y = ys[0]
        if hasattr(y, "tolist") and callable(y.tolist):
            y = y.tolist()
        vector = _as_vector(active, y)
        if vector.shape[0] != dim:
            raise InvalidVector(
                f"vector index {info.identifier!r}: the model made a vector of dimension "
                f"{vector.shape[0]} from like=, the index holds dimension {dim}"
            )
        return vector

    def _rows(
        self,
        active: Active,
        ids: Sequence[VectorId],
        scores: Sequence[float],
        where: Filter | None,
    ) -> list[SearchHit]:
        """The current rows of these ids that match ``where``, in the engine's order."""
        if not ids:
            return []
        from pinnacledb.listeners import _and

        idc = active.id_column
        by_sid: dict[Any, dict[str, Any]] = {}
        for start in range(0, len(ids), 1000):
            chunk = list(ids[start : start + 1000])
            cond = _and(active.where, where, {idc: {"$in": chunk}})
            for row in self._db.select(active.table, cond):
                by_sid[active.sid(self._db, row[idc])] = row
        return [
            SearchHit(by_sid[i], id=by_sid[i][idc], score=float(s))
            for i, s in zip(ids, scores, strict=True)
            if i in by_sid
        ]

    def _matching_ids(self, active: Active, where: Filter | None) -> list[VectorId]:
        from pinnacledb.listeners import _and

        idc = active.id_column
        rows = self._db.databackend.select(active.table, _and(active.where, where), columns=[idc])
        return [active.sid(self._db, r[idc]) for r in rows if r.get(idc) is not None]


def _is_vector(like: Any, dim: int) -> bool:
    """Whether ``like`` is ``dim`` numbers (a 1-d numeric array or a sequence of numbers)."""
    if isinstance(like, np.ndarray):
        return like.ndim == 1 and like.shape[0] == dim and like.dtype.kind in "iuf"
    if isinstance(like, (list, tuple)) and len(like) == dim:
        return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in like)
    return False
