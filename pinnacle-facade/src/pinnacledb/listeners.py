"""The machinery behind :class:`~pinnacledb.components.listener.Listener`.

How outputs stay current, and why it is correct:

* **Outputs table.** One row per (source row, model version): ``id`` is
  ``"<model_version>:<source id>"`` (deterministic, so rewriting a row is delete-by-id then
  insert, never a duplicate), then ``source_id, model, model_version, job_id, input_hash,
  output``. ``input_hash`` is :func:`input_hash` of the stored input values the output was
  computed from, which is how stale outputs are found. Where the databackend can count
  unmatched rows (``SupportsMatchCount``) and the inputs are scalar, the table also keeps a
  copy of the input values (``input_0``, ``input_1``...), so a ``catch_up`` with nothing to do
  is decided by the database (:meth:`ListenerEngine.up_to_date`) without hashing rows in
  Python. Indexes on ``(source_id, model_version)`` and ``(id)`` are created where the
  backend keeps them (``SupportsIndexes``). Because it has an ``id`` column, an outputs table
  can itself be a listener's source (a chain).
* **Triggers.** ``Datalayer.insert/update/delete`` do the listener work for exactly the rows
  they changed before returning. In-process by default; on a compute backend that runs tasks
  in other processes (``processes://``, ``dask://``, ``ray://``...), an insert batch or an
  update changing at least ``db.trigger_job_rows`` rows (default 10,000) runs it as a
  partitioned ``listener.trigger`` job there instead (:meth:`ListenerEngine._trigger_job`;
  mode ``backfill`` for inserted rows, ``reconcile`` for updated ones), one listener after
  another, and the write waits for it. Each worker opens its own Datalayer (``local://``), so
  a downstream listener of a chain runs on the worker after its upstream outputs are written.
  The rows are committed before the job is submitted: a failing model, a failed task or an
  unreachable runner is reported like an in-process failure (a FAILED job with the rows
  without outputs, in the write's result; never raised, so nobody retries a committed
  write), and ``catch_up`` completes the outputs. Rows whose ids are not JSON (ObjectIds), a
  ``where`` that is not, or stores that live in this process only (``memory://``, objects)
  keep the in-process path; deletes always do (they run no model). Writes to an outputs
  table go through the same path, so downstream listeners of a chain run after their
  upstream outputs are written (dependency order).
  Where the databackend has ``SupportsInsertMany`` (DuckDB), a small insert (dicts or an
  Arrow table) whose listeners are cached writes its rows and their outputs in one
  transaction, one commit instead of two (:meth:`ListenerEngine.insert_with_outputs`; the
  epoch is still read after it, and a changed listener set is corrected then). That path
  works column by column: an Arrow insert's inputs are read as columns, the input hashes are
  computed a column at a time (:func:`input_hashes`), and the outputs go as one Arrow table,
  a vector model's 2-D numpy batch as one ``FixedSizeList`` (no Python float per value).
* **Seeing other processes' listeners.** The listener set is cached per Datalayer, keyed by
  the value of the metadata key :data:`EPOCH_KEY`, which every listener apply/remove sets to a
  new uuid. A write reads that one key *after* its data write; ``apply`` sets it *before* the
  backfill selects rows. So a row written concurrently with an apply is either written before
  the backfill's select (which then sees it) or after it, and then after the epoch change too,
  so its writer sees the new listener and computes the output itself: at least one of them
  does.
* **Jobs.** A backfill and the row pass of ``catch_up`` are partitioned jobs on the
  Datalayer's compute backend (task kind ``listener``, :mod:`pinnacledb.jobs._listener`,
  partitions cut like ``db.predict``'s); each task runs :meth:`ListenerEngine.run_partition`
  on the worker's own Datalayer. Orphan removal and the in-database up-to-date check stay in
  the caller (one query each).
* **Failures.** A model raising keeps the user's data write; the failing rows are isolated
  (the batch is retried row by row), a FAILED job records the error and their source ids, a
  warning is logged, and the write returns normally (its result lists the failure).
  :meth:`ListenerEngine.catch_up` recomputes them.
* **Crashes.** Each batch of outputs is delete-by-id then insert (outputs of just-inserted
  rows, and backfill batches a range count shows have no output yet: insert only, see
  :meth:`ListenerEngine._write_outputs`); a crash leaves each output either absent
  (``catch_up`` computes it) or complete (tests-integration/test_fault_kill_listener.py).
  Two processes racing on the same row can both insert it; ``catch_up`` finds and repairs
  such duplicates (stale pass).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast

import attrs
from attrs import frozen

from pinnacle_protocols.errors import (
    ComponentNotFound,
    ConfigError,
    InvalidRecord,
    JobFailed,
    PinnacleError,
    SchemaError,
    TableExists,
    TableNotFound,
    VersionConflict,
)
from pinnacle_protocols.filters import matcher
from pinnacle_protocols.protocols import (
    InsertReturningIds,
    SupportsAntiJoin,
    SupportsIndexes,
    SupportsInsertMany,
    SupportsMatchCount,
    count_many,
)
from pinnacle_protocols.records import (
    ComponentKey,
    CountQuery,
    DType,
    Field,
    JobRecord,
    JobStatus,
    JSONValue,
    Schema,
)
from pinnacle_protocols.serialization import utcnow
from pinnacle_protocols.uri import redact
from pinnacledb.components.listener import Listener
from pinnacledb.jobs._predict import python_value

if TYPE_CHECKING:
    import pyarrow as pa

    from pinnacle_protocols.filters import Filter
    from pinnacle_protocols.protocols import MetadataStore
    from pinnacledb.base._host import EngineHost, JobHost
    from pinnacledb.vector_search import IndexInfo, VectorIndexEngine

__all__ = [
    "EPOCH_KEY",
    "LISTENER_OUTPUT_COLUMNS",
    "CatchUpReport",
    "InsertResult",
    "ListenerEngine",
    "ListenerFailure",
    "input_hash",
]

logger = logging.getLogger("pinnacledb")

#: Metadata key whose value changes on every listener apply/remove.
EPOCH_KEY: Final = "pinnacledb.listeners.epoch"
#: Columns of a listener's outputs table.
LISTENER_OUTPUT_COLUMNS: Final = (
    "id",
    "source_id",
    "model",
    "model_version",
    "job_id",
    "input_hash",
    "output",
)
#: Input column dtypes an outputs table keeps a copy of (compared in the database by catch_up).
COPIED_DTYPES: Final = frozenset({DType.INT, DType.FLOAT, DType.STR, DType.BOOL, DType.DATETIME})
#: Indexes of an outputs table (where the backend has them): lookups and deletes by source id
#: and model version, rewrites by output id.
OUTPUT_INDEXES: Final = (("source_id", "model_version"), ("id",))
#: Ids per ``$in`` lookup and rows per batch.
BATCH: Final = 1000
#: Failing source ids kept in a job record.
MAX_FAILED_IDS: Final = 1000


def bump_epoch(metadata: MetadataStore) -> None:
    """Tell every process of the deployment in ``metadata`` that its listener set changed."""
    metadata.set_metadata(EPOCH_KEY, uuid.uuid4().hex)


# ---------------------------------------------------------------------- hashing
def _canonical(value: Any) -> Any:
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        value = value.tolist()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        # 3 and 3.0 are the same stored number (backends coerce int to a float column)
        if math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        return {"\x00float": repr(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"\x00bytes": bytes(value).hex()}
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return {"\x00datetime": value.isoformat()}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return {"\x00repr": f"{type(value).__name__}:{value}"}


#: The encoder of :func:`input_hash` (built once: ``json.dumps`` with options builds one per call).
_HASH_ENCODER: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True
)
_encode_str: Final[Callable[[str], str]] = json.encoder.encode_basestring


def _hash_piece(value: Any) -> str:
    """The JSON text of ``_canonical(value)`` as :data:`_HASH_ENCODER` writes it inside a list.

    Plain ints, floats, strings, bools and None (every scalar a backend reads back) are written
    directly, the same text the encoder writes; anything else goes through the encoder.
    """
    kind = type(value)
    if kind is float:
        if math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
            return int.__repr__(int(value))
        return '{"\\u0000float":"' + float.__repr__(value) + '"}'
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        return _encode_str(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    return _HASH_ENCODER.encode(_canonical(value))


def input_hash(values: Sequence[Any]) -> str:
    """sha256 (hex) of a canonical JSON encoding of a row's stored input values, in order.

    Integral floats hash like the equal int, bytes by their hex, datetimes as UTC ISO text, so
    the values a writer passed and the values a backend reads back hash the same. The text is
    ``json.dumps([_canonical(v) for v in values], sort_keys=True, separators=(",", ":"),
    ensure_ascii=False, allow_nan=True)``, built a value at a time (:func:`_hash_piece`).
    """
    text = "[" + ",".join([_hash_piece(v) for v in values]) + "]"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _hash_pieces(values: Sequence[Any]) -> list[str]:
    """``[_hash_piece(v) for v in values]``, a column of ints or of strings in one C-level map."""
    kinds = set(map(type, values))
    if kinds == {int}:
        return list(map(int.__repr__, values))
    if kinds == {str}:
        return list(map(_encode_str, values))
    return list(map(_hash_piece, values))


def input_hashes(columns: Sequence[Sequence[Any]], rows: int) -> list[str]:
    """``[input_hash(row) for row in zip(*columns)]`` for ``rows`` rows, a column at a time."""
    sha = hashlib.sha256
    if not columns:
        return [sha(b"[]").hexdigest()] * rows
    if len(columns) == 1:
        texts = ["[" + p + "]" for p in _hash_pieces(columns[0])]
    else:
        pieces = [_hash_pieces(c) for c in columns]
        texts = ["[" + ",".join(row) + "]" for row in zip(*pieces, strict=True)]
    return [sha(t.encode("utf-8", "surrogatepass")).hexdigest() for t in texts]


def _float_batch(raw: Any, n: int) -> Any:
    """``raw`` (a model's ``n`` outputs) as one C-contiguous 2-D float32/float64 numpy array
    when it is one or a list of 1-D ones of one length and dtype; else None."""
    import numpy as np

    floats = (np.dtype(np.float32), np.dtype(np.float64))
    if isinstance(raw, np.ndarray):
        if raw.ndim == 2 and raw.dtype in floats and len(raw) == n and raw.shape[1]:
            return np.ascontiguousarray(raw)
        return None
    if not isinstance(raw, list) or len(raw) != n or not n:
        return None
    if set(map(type, raw)) != {np.ndarray}:
        return None
    shapes = {(y.dtype, y.shape) for y in raw}
    if len(shapes) != 1:
        return None
    ((dtype, shape),) = shapes
    if dtype not in floats or len(shape) != 1 or not shape[0]:
        return None
    return np.stack(raw)


def _and(*filters: Filter | None) -> Filter | None:
    parts = [f for f in filters if f]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _chunks(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------- results
@frozen(kw_only=True)
class ListenerFailure:
    """Listener work that failed during a write (the write itself was kept).

    Attributes:
        listener: The listener identifier.
        job_id: The FAILED job recording it (``db.metadata.get_job``).
        error: The (redacted) error.
        source_ids: Source ids whose outputs were not computed (``db.catch_up`` retries them).
    """

    listener: str
    job_id: str
    error: str
    source_ids: tuple[Any, ...]


class InsertResult(int):
    """What ``db.insert`` inserted: an ``int`` (the row count, as before) with details.

    Attributes:
        ids: Ids of the inserted rows, in order: their ``id`` column, or the native ``_id``
            where the backend assigns ids; empty when neither is known.
        jobs: Ids of the job records the listener work of this insert created: the
            ``listener.trigger`` jobs run on an out-of-process compute backend (inserts of at
            least ``db.trigger_job_rows`` rows), and the FAILED job of any failure. Successful
            in-process trigger runs write no job record (their outputs carry the run id in
            ``job_id``).
        failures: Listener work that failed (empty when all went well).
    """

    jobs: tuple[str, ...]
    failures: tuple[ListenerFailure, ...]
    _ids: tuple[Any, ...] | Callable[[], Sequence[Any]]

    def __new__(
        cls,
        count: int,
        *,
        ids: Sequence[Any] | Callable[[], Sequence[Any]] = (),
        failures: Sequence[ListenerFailure] = (),
        jobs: Sequence[str] = (),
    ) -> InsertResult:
        """The count plus details; ``ids`` may be a callable, called on first access;
        ``jobs``: trigger jobs run on the compute backend (failures' jobs are added)."""
        obj = super().__new__(cls, count)
        obj._ids = ids if callable(ids) else tuple(ids)
        obj.failures = tuple(failures)
        obj.jobs = tuple(dict.fromkeys([*jobs, *(f.job_id for f in obj.failures)]))
        return obj

    @property
    def ids(self) -> tuple[Any, ...]:
        """Ids of the inserted rows (made into Python values on first access)."""
        if callable(self._ids):
            self._ids = tuple(self._ids())
        return self._ids

    @property
    def ok(self) -> bool:
        """Whether every listener's work succeeded."""
        return not self.failures


@frozen(kw_only=True)
class CatchUpReport:
    """What ``db.catch_up`` did, per listener identifier.

    Attributes:
        computed: Outputs written for rows that had none (missing or failed before).
        recomputed: Outputs rewritten because their input hash was stale or duplicated.
        removed: Source ids whose outputs were removed (row gone or no longer matching).
        failed: Source ids the model still fails on.
        jobs: The ``listener.catch_up`` job id per listener.
        indexes: What was done to each vector index of those listeners (``"rebuilt"``,
            ``"folded"``: a two-tier engine's pending segment moved into its graph, ``"current"``,
            ``"listener removed"``).
    """

    computed: Mapping[str, int]
    recomputed: Mapping[str, int]
    removed: Mapping[str, int]
    failed: Mapping[str, int]
    jobs: Mapping[str, str]
    indexes: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def changed(self) -> int:
        """Total outputs written or removed."""
        return sum(sum(m.values()) for m in (self.computed, self.recomputed, self.removed))


# ---------------------------------------------------------------------- active listeners
@attrs.define(kw_only=True, eq=False)
class Active:
    """One applied listener (latest version) as the trigger path needs it."""

    identifier: str
    key: ComponentKey
    table: str
    columns: list[str]
    single: bool
    where: Filter | None
    output_table: str
    id_column: str
    model_identifier: str
    model_version: int
    output_type: str | None
    outputs_seen: bool = False
    _copies: tuple[str, ...] | None = None
    _component: Listener | None = None
    _id_type: DType | None = None

    def component(self, db: JobHost) -> Listener:
        """The loaded listener (model included), loaded on first use."""
        if self._component is None:
            loaded = db.load(self.key.type_id, self.key.identifier, self.key.version)
            if not isinstance(loaded, Listener):
                raise InvalidRecord(f"listener {self.identifier!r} is not a Listener")
            self._component = loaded
        return self._component

    def id_type(self, db: JobHost) -> DType:
        """The portable type of the ``source_id`` column (the source id's, else str)."""
        if self._id_type is None:
            from pinnacledb.predict import _id_dtype

            self._id_type = _id_dtype(db, self.table, self.id_column)
        return self._id_type

    def copies(self, db: JobHost) -> tuple[str, ...]:
        """The outputs table's copies of the input values (``input_0``...), one per input
        column, or none (an outputs table written before copies existed, or input types not
        copied); known once the outputs table exists."""
        if self._copies is not None:
            return self._copies
        names = tuple(f"input_{i}" for i in range(len(self.columns)))
        try:
            have = db.databackend.table_schema(self.output_table)
            source = db.databackend.table_schema(self.table)
        except (TableNotFound, NotImplementedError):
            return ()  # not created yet (or no portable schemas): look again next time
        same = all(
            n in have and c in source and have[n].dtype is source[c].dtype
            for n, c in zip(names, self.columns, strict=True)
        )
        self._copies = names if same else ()
        return self._copies

    def sid(self, db: JobHost, value: Any) -> Any:
        """A source id as stored in the outputs table."""
        if self.id_type(db) is DType.INT and isinstance(value, int) and not isinstance(value, bool):
            return value
        return value if isinstance(value, str) else str(value)


def active_from_record(record: Any) -> Active:
    """An :class:`Active` from a stored listener record (no artifact is read)."""
    from pinnacledb.base._components import REF_KEY
    from pinnacledb.predict import output_table_name

    fields = record.data.get("fields") or {}
    ref = (fields.get("model") or {}).get(REF_KEY) or {}
    inputs: Any = fields.get("inputs")
    id_column = fields.get("id_column")
    if not isinstance(id_column, str) or not ref:
        raise InvalidRecord(
            f"listener {record.identifier!r} v{record.version}: the record has no id_column or "
            "model reference (it was not stored by db.apply)"
        )
    return Active(
        identifier=record.identifier,
        key=record.key,
        table=str(fields["table"]),
        columns=[inputs] if isinstance(inputs, str) else list(inputs),
        single=isinstance(inputs, str),
        where=fields.get("where") or None,
        output_table=fields.get("output") or output_table_name(record.identifier),
        id_column=id_column,
        model_identifier=str(ref["identifier"]),
        model_version=int(ref["version"]),
        output_type=fields.get("output_type"),
    )


@frozen(kw_only=True)
class Snapshot:
    """The listener set as of one epoch value."""

    epoch: JSONValue
    by_table: Mapping[str, tuple[Active, ...]]
    by_id: Mapping[str, Active]
    #: Vector indexes by the identifier of the listener they index.
    indexes: Mapping[str, tuple[IndexInfo, ...]] = attrs.field(factory=dict)
    #: Vector indexes by their own identifier.
    index_by_id: Mapping[str, IndexInfo] = attrs.field(factory=dict)


_EMPTY = Snapshot(epoch=None, by_table={}, by_id={})


@frozen(kw_only=True)
class _Item:
    sid: Any  # as stored in source_id
    raw: Any  # as stored in the source table (for lookups)
    hash: str
    x: Any  # model input
    values: tuple[Any, ...] = ()  # stored input values (hashed, and copied to the outputs)


# ---------------------------------------------------------------------- the engine
class ListenerEngine:
    """Trigger, backfill and catch-up work of one Datalayer (see the module docstring)."""

    def __init__(self, db: EngineHost, vectors: Callable[[], VectorIndexEngine]) -> None:
        """Work for ``db``, keeping the vector indexes ``vectors()`` current."""
        self._db = db
        self._vectors = vectors
        self._snap: Snapshot | None = None

    # ------------------------------------------------------------------ the listener set
    def snapshot(self) -> Snapshot:
        """The current listener set: one metadata key read, a reload only when it changed."""
        epoch = self._db.metadata.get_metadata(EPOCH_KEY)
        snap = self._snap
        if snap is not None and snap.epoch == epoch:
            return snap
        if epoch is None:
            snap = _EMPTY
        else:
            snap = self._load(epoch)
        self._snap = snap
        return snap

    def _load(self, epoch: JSONValue) -> Snapshot:
        md = self._db.metadata
        by_id: dict[str, Active] = {}
        for key in md.show_components(Listener.type_id):
            with contextlib.suppress(ComponentNotFound):  # removed meanwhile
                by_id[key.identifier] = active_from_record(
                    md.get_component(key.type_id, key.identifier)
                )
        by_table: dict[str, list[Active]] = {}
        for active in by_id.values():
            by_table.setdefault(active.table, []).append(active)
        index_by_id: dict[str, IndexInfo] = {}
        indexes: dict[str, list[IndexInfo]] = {}
        for key in md.show_components("vector_index"):
            from pinnacledb.vector_search import index_from_record

            with contextlib.suppress(ComponentNotFound):  # removed meanwhile
                info = index_from_record(md.get_component(key.type_id, key.identifier))
                index_by_id[info.identifier] = info
                indexes.setdefault(info.listener, []).append(info)
        return Snapshot(
            epoch=epoch,
            by_table={t: tuple(a) for t, a in by_table.items()},
            by_id=by_id,
            indexes={k: tuple(v) for k, v in indexes.items()},
            index_by_id=index_by_id,
        )

    def bump(self) -> None:
        """Tell every process the listener set changed."""
        bump_epoch(self._db.metadata)

    # ------------------------------------------------------------------ cycles
    def check_cycle(self, listener: Listener, id_column: str) -> None:
        """Refuse a listener whose outputs would (transitively) feed its own source table."""
        del id_column
        out = listener.output_table
        if out == listener.table:
            raise InvalidRecord(
                f"listener {listener.identifier!r} writes its outputs to its own source table "
                f"{listener.table!r} (a cycle); choose another output="
            )
        edges: dict[str, set[str]] = {}
        for active in self.snapshot().by_id.values():
            if active.identifier != listener.identifier:
                edges.setdefault(active.table, set()).add(active.output_table)
        edges.setdefault(listener.table, set()).add(out)
        path = self._path(edges, out, listener.table)
        if path is not None:
            shown = " -> ".join([listener.table, *path])
            raise InvalidRecord(
                f"listener {listener.identifier!r} would create a cycle of tables: {shown}; "
                "a listener's outputs must not feed back into its own source"
            )

    @staticmethod
    def _path(edges: Mapping[str, set[str]], start: str, goal: str) -> list[str] | None:
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            if node == goal:
                return path
            if node in seen:
                continue
            seen.add(node)
            for nxt in sorted(edges.get(node, ())):
                stack.append((nxt, [*path, nxt]))
        return None

    # ------------------------------------------------------------------ triggers
    def after_insert(
        self,
        snap: Snapshot,
        table: str,
        stored: Sequence[Mapping[str, Any]],
        given: Sequence[Mapping[str, Any]],
        native_ids: Sequence[Any] | None,
        *,
        actives: Sequence[Active] | None = None,
        jobs: list[str] | None = None,
    ) -> list[ListenerFailure]:
        """Compute outputs for freshly inserted rows (``stored``: as written, ``given``: as
        passed, used as model inputs) for the listeners of ``table`` (or ``actives``).

        At least ``db.trigger_job_rows`` rows on an out-of-process runner: a job per
        listener (its id appended to ``jobs``), see the module docstring."""
        failures: list[ListenerFailure] = []
        run = f"listener.trigger-{uuid.uuid4().hex}"
        distribute = self.distributes(len(stored))
        for active in snap.by_table.get(table, ()) if actives is None else actives:
            if distribute:
                raws = self._inserted_ids(active, table, stored, native_ids)
                if raws is not None:
                    failures += self._trigger_job(active, "backfill", raws, jobs)
                    continue
            try:
                items = []
                match = matcher(active.where)
                for i, (row, orig) in enumerate(zip(stored, given, strict=True)):
                    raw = row.get(active.id_column)
                    if raw is None and native_ids is not None and active.id_column == "_id":
                        raw = native_ids[i]
                    if raw is None:
                        raise SchemaError(
                            f"listener {active.identifier!r}: an inserted row of {table!r} has "
                            f"no id column {active.id_column!r}; give every row an id"
                        )
                    if not match(row):
                        continue
                    items.append(self._item(active, raw, row, orig))
                failures += self._compute_and_write(
                    snap, active, items, run, "listener.trigger", fresh=True
                )
            except Exception as exc:
                sids = [r.get(active.id_column) for r in stored]
                failures.append(self._fail(active, "listener.trigger", exc, sids))
        return failures

    def insert_with_outputs(
        self, table: str, rows: Sequence[Mapping[str, Any]] | pa.Table
    ) -> tuple[int, list[ListenerFailure]] | None:
        """Insert ``rows`` (dicts or a ``pyarrow.Table``) and their listeners' outputs in one
        transaction (one commit), or do nothing and return None: then the caller writes the
        rows and calls :meth:`after_insert` (two commits).

        The hot path of a small insert into a table with listeners. Done where the backend
        has :class:`~pinnacle_protocols.protocols.SupportsInsertMany`, the cached listener set
        has listeners on ``table`` whose outputs tables exist and feed no other listener, every
        row has its id and the models succeed on every row (a failing row goes the usual way,
        which isolates and records it). The outputs are computed from the *cached* set before
        the write; the epoch is read after the commit, as :meth:`after_insert`'s callers do.
        If it changed meanwhile, outputs written for listeners no longer applied (or applied
        at another version) are deleted again and listeners new to the set get theirs the
        usual way, so the rows end up exactly as after the two-commit path.

        Column by column: an Arrow insert's inputs are read as columns (no dict per row where
        the listener has no ``where``), and each listener's outputs go to the backend as one
        Arrow table (:func:`~pinnacle_protocols.arrow.canonical_columns`; a model returning
        its vectors as one 2-D float array: a single ``FixedSizeList`` column, no Python float).
        """
        backend = self._db.databackend
        cached = self._snap
        if (
            cached is None
            or not 0 < len(rows) <= BATCH
            or self.distributes(len(rows))  # a job on the runner: two commits, as usual
            or not isinstance(backend, SupportsInsertMany)
            or isinstance(backend, InsertReturningIds)
        ):
            return None
        actives = cached.by_table.get(table)
        if not actives or any(
            not a.outputs_seen or cached.by_table.get(a.output_table) for a in actives
        ):
            return None
        arrow = not isinstance(rows, Sequence)
        dicts: list[Sequence[Mapping[str, Any]]] = (
            [] if arrow else [cast(Sequence[Mapping[str, Any]], rows)]
        )

        def as_dicts() -> Sequence[Mapping[str, Any]]:
            if not dicts:
                dicts.append(cast("pa.Table", rows).to_pylist())
            return dicts[0]

        run = f"listener.trigger-{uuid.uuid4().hex}"
        writes: list[tuple[str, Any]] = [(table, rows)]
        done: list[tuple[Active, list[tuple[_Item, Any]], list[str]]] = []
        try:
            for active in actives:
                found = (
                    self._column_items(active, rows)
                    if arrow and active.where is None
                    else self._row_items(active, as_dicts())
                )
                if found is None:
                    return None  # a row without its id: the usual path says which
                items = found
                if not items:
                    done.append((active, [], []))
                    continue
                ys, vectors = self._predict_batch(active, [i.x for i in items])
                data, out_ids = self._output_table(active, items, ys, vectors, run)
                writes.append((active.output_table, data))
                done.append((active, list(zip(items, ys, strict=True)), out_ids))
        except Exception:  # the usual path isolates and records the failure
            return None
        try:
            count = backend.insert_many(writes)[0]
        except Exception:  # nothing was written; the usual path reports it
            return None
        # read the listener set AFTER the write (see the module docstring)
        after = self.snapshot()
        handled: set[str] = set()
        failures: list[ListenerFailure] = []
        for active, pairs, out_ids in done:
            now = after.by_id.get(active.identifier)
            try:
                if now is not None and now.key == active.key:
                    handled.add(active.identifier)
                    if pairs and after.indexes.get(now.identifier):
                        # numpy rows as they are: the index stacks them into one matrix
                        self._vectors().written(after, now, [(i.sid, y) for i, y in pairs])
                elif out_ids:  # removed or replaced meanwhile: take these outputs back
                    self._delete_outputs(after, active, {"id": {"$in": out_ids}})
            except TableNotFound:
                pass  # removed with its outputs table meanwhile
            except Exception as exc:  # as after_insert: recorded, the data write stands
                failures.append(
                    self._fail(active, "listener.trigger", exc, [i.sid for i, _ in pairs])
                )
        rest = [a for a in after.by_table.get(table, ()) if a.identifier not in handled]
        if rest:
            given = as_dicts()
            failures += self.after_insert(after, table, given, given, None, actives=rest)
        return count, failures

    def _row_items(self, active: Active, rows: Sequence[Mapping[str, Any]]) -> list[_Item] | None:
        """The items of the rows matching ``active.where`` (None: a row has no id)."""
        match = matcher(active.where)
        items = []
        for row in rows:
            raw = row.get(active.id_column)
            if raw is None:
                return None
            if match(row):
                items.append(self._item(active, raw, row, None))
        return items

    def _column_items(self, active: Active, rows: pa.Table) -> list[_Item] | None:
        """:meth:`_row_items` of an Arrow table for a listener without ``where``, read column
        by column (None: the id column is missing or has a null)."""
        names = rows.column_names
        idc = active.id_column
        if idc not in names or rows.column(idc).null_count:
            return None
        n = rows.num_rows
        raws = rows.column(idc).to_pylist()
        columns = [rows.column(c).to_pylist() if c in names else [None] * n for c in active.columns]
        hashes = input_hashes(columns, n)
        plain_ids = active.id_type(self._db) is DType.INT
        sid = active.sid
        db = self._db
        sids = [r if plain_ids and type(r) is int else sid(db, r) for r in raws]
        values = list(zip(*columns, strict=True))
        xs: list[Any] = columns[0] if active.single else [list(v) for v in values]
        return [
            _Item(sid=s, raw=r, hash=h, x=x, values=v)
            for s, r, h, x, v in zip(sids, raws, hashes, xs, values, strict=True)
        ]

    def _predict_batch(self, active: Active, xs: list[Any]) -> tuple[list[Any], Any]:
        """The model's outputs of ``xs``, and -- for a vector listener whose model returned
        them as float32/float64 numpy arrays (one 2-D array, or a list of 1-D arrays of one
        length and dtype) -- the batch as one Arrow ``FixedSizeList`` (else None). The outputs
        are then numpy rows (:func:`python_value` makes them lists where lists are needed)."""
        model = active.component(self._db).model
        raw = model.predict(xs)
        if active.output_type == DType.VECTOR.value:
            batch = _float_batch(raw, len(xs))
            if batch is not None:
                import pyarrow as pa

                flat = pa.array(batch.reshape(-1))
                return list(batch), pa.FixedSizeListArray.from_arrays(flat, batch.shape[1])
        ys = [python_value(y) for y in raw]
        if len(ys) != len(xs):
            raise PinnacleError(
                f"model {model.identifier!r} returned {len(ys)} outputs for {len(xs)} inputs"
            )
        return ys, None

    def _output_table(
        self, active: Active, items: Sequence[_Item], ys: Sequence[Any], vectors: Any, run: str
    ) -> tuple[pa.Table | list[dict[str, Any]], list[str]]:
        """The outputs-table rows of ``items`` and their outputs ``ys`` (``vectors``: the same
        as one Arrow array, or None), with the input copies, as one canonical Arrow table
        built column by column (dict rows where the table has a JSON column); and their
        output ids."""
        from pinnacle_protocols.arrow import canonical_columns

        n = len(items)
        version = active.model_version
        sids = [i.sid for i in items]
        ids = [f"{version}:{s}" for s in sids]
        columns: dict[str, Any] = {
            "id": ids,
            "source_id": sids,
            "model": [active.model_identifier] * n,
            "model_version": [version] * n,
            "job_id": [run] * n,
            "input_hash": [i.hash for i in items],
            "output": ys if vectors is None else vectors,
        }
        for k, name in enumerate(active.copies(self._db)):
            columns[name] = [i.values[k] for i in items]
        schema = self._db.databackend.table_schema(active.output_table)
        if any(f.dtype is DType.JSON for f in schema.fields):
            # a canonical table holds JSON as its text, which an insert would read as a JSON
            # string: outputs stored as JSON go as dict rows
            columns["output"] = [python_value(y) for y in ys]
            names = list(columns)
            rows = [dict(zip(names, r, strict=True)) for r in zip(*columns.values(), strict=True)]
            return rows, ids
        return canonical_columns(schema, columns, active.output_table), ids

    def changed_ids(self, snap: Snapshot, table: str, where: Filter | None) -> list[Any] | None:
        """Before an update/delete: the source ids the write will touch (None: no listeners)."""
        actives = snap.by_table.get(table)
        if not actives:
            return None
        columns = sorted({a.id_column for a in actives})
        rows = self._db.databackend.select(table, where, columns=columns)
        return [r[c] for r in rows for c in columns if r.get(c) is not None]

    def after_update(
        self,
        snap: Snapshot,
        table: str,
        ids: Sequence[Any] | None,
        values: Mapping[str, Any],
        *,
        jobs: list[str] | None = None,
    ) -> list[ListenerFailure]:
        """Recompute outputs of updated rows whose inputs or ``where`` membership changed
        (at least ``db.trigger_job_rows`` rows on an out-of-process runner: as a job)."""
        failures: list[ListenerFailure] = []
        run = f"listener.trigger-{uuid.uuid4().hex}"
        for active in snap.by_table.get(table, ()):
            try:
                if ids is None or active.id_column in values:
                    # a listener appeared meanwhile, or ids changed: reconcile the whole table
                    self.catch_up_one(snap, active)
                    continue
                unique = list(dict.fromkeys(ids))
                if self.distributes(len(unique)) and self._sendable(active, unique):
                    present = self._remove_gone(snap, active, unique)
                    failures += self._trigger_job(active, "reconcile", present, jobs)
                    continue
                for chunk in _chunks(unique):
                    failures += self._reconcile_ids(snap, active, chunk, run, "listener.trigger")
            except Exception as exc:
                failures.append(self._fail(active, "listener.trigger", exc, list(ids or ())))
        return failures

    # ------------------------------------------------------------------ triggers as jobs
    def distributes(self, rows: int) -> bool:
        """Whether a write of ``rows`` rows runs its listener work as a job on the runner: at
        least ``db.trigger_job_rows`` rows and a compute backend that is not in-process."""
        db = self._db
        if rows < db.trigger_job_rows:
            return False
        return not type(db.compute).runs_in_process

    def _sendable(self, active: Active, raws: Sequence[Any]) -> bool:
        """Whether workers can be told these ids, ``where`` and the store URIs (else the
        trigger stays in this process)."""
        from pinnacledb.predict import _is_json, _store_uris

        if not _is_json(list(raws)) or (active.where is not None and not _is_json(active.where)):
            return False
        try:
            _store_uris(self._db)
        except ConfigError:
            return False
        return True

    def _inserted_ids(
        self,
        active: Active,
        table: str,
        stored: Sequence[Mapping[str, Any]],
        native_ids: Sequence[Any] | None,
    ) -> list[Any] | None:
        """The ids of the inserted rows matching ``active.where`` (None: they cannot be
        sent to workers, or a row has no id -- the in-process path says which)."""
        match = matcher(active.where)
        raws: list[Any] = []
        for i, row in enumerate(stored):
            raw = row.get(active.id_column)
            if raw is None and native_ids is not None and active.id_column == "_id":
                raw = native_ids[i]
            if raw is None:
                return None
            if match(row):
                raws.append(raw)
        return raws if self._sendable(active, raws) else None

    def _remove_gone(self, snap: Snapshot, active: Active, raws: Sequence[Any]) -> list[Any]:
        """Delete the outputs of these source ids whose row is gone or no longer matches
        ``where``; return the ids of those that still match (one id query per chunk)."""
        idc = active.id_column
        present: list[Any] = []
        for chunk in _chunks(raws):
            rows = self._db.databackend.select(
                active.table, _and(active.where, {idc: {"$in": list(chunk)}}), columns=[idc]
            )
            present += [r[idc] for r in rows]
        have = {active.sid(self._db, r) for r in present}
        gone = [s for s in dict.fromkeys(active.sid(self._db, r) for r in raws) if s not in have]
        if gone and self._outputs_exist(active):
            for chunk in _chunks(gone):
                self._delete_outputs(snap, active, {"source_id": {"$in": list(chunk)}})
            self._indexed_removed(snap, active, gone)
        return present

    def _trigger_job(
        self, active: Active, mode: str, raws: list[Any], jobs: list[str] | None
    ) -> list[ListenerFailure]:
        """Run one listener's trigger work for the source ids ``raws`` as a partitioned
        ``listener.trigger`` job on the compute backend and wait for it; return its failure
        (model failures, a failed task, an unreachable runner), never raise."""
        if not raws:
            return []
        record = _partitioned_job("listener.trigger", active, len(raws), mode=mode)
        if jobs is not None:
            jobs.append(record.job_id)
        md = self._db.metadata
        try:
            job, counts, failed = self._run_job(
                record, active, mode, ids=raws, batch_size=BATCH, partition_size=None
            )
        except Exception as exc:
            # the rows are committed: the job record says what happened, catch_up repairs
            try:
                error = md.get_job(record.job_id).error or ""
            except Exception:
                error = ""
            text = error or redact(f"{type(exc).__name__}: {exc}")
            sids = [active.sid(self._db, r) for r in raws]
            with contextlib.suppress(Exception):  # bookkeeping must not hide the user's write
                job = md.get_job(record.job_id)
                md.update_job(
                    attrs.evolve(
                        job,
                        status=JobStatus.FAILED,
                        error=text,
                        finished_at=job.finished_at or utcnow(),
                        updated_at=utcnow(),
                        args={**job.args, **_failed_args(sids)},
                    )
                )
            logger.warning(
                "listener %r: the trigger job %s for %d rows of %r failed: %s; the data write "
                "was kept and db.catch_up() computes the outputs",
                active.identifier,
                record.job_id,
                len(raws),
                active.table,
                text,
            )
            return [
                ListenerFailure(
                    listener=active.identifier,
                    job_id=record.job_id,
                    error=text,
                    source_ids=tuple(sids),
                )
            ]
        md.update_job(attrs.evolve(job, args={**job.args, **counts}))
        if not failed:
            return []
        logger.warning(
            "listener %r failed on %d rows of %r (job %s): %s; the data write was kept and "
            "db.catch_up() retries them",
            active.identifier,
            len(failed),
            active.table,
            job.job_id,
            job.error,
        )
        return [
            ListenerFailure(
                listener=active.identifier,
                job_id=job.job_id,
                error=job.error or "",
                source_ids=tuple(failed),
            )
        ]

    def after_delete(
        self, snap: Snapshot, table: str, ids: Sequence[Any] | None
    ) -> list[ListenerFailure]:
        """Remove the outputs (every model version) of deleted rows."""
        failures: list[ListenerFailure] = []
        for active in snap.by_table.get(table, ()):
            try:
                if ids is None:
                    self.remove_orphans(snap, active)
                    continue
                sids = list(dict.fromkeys(active.sid(self._db, i) for i in ids))
                for chunk in _chunks(sids):
                    self._delete_outputs(snap, active, {"source_id": {"$in": list(chunk)}})
                self._indexed_removed(snap, active, sids)
            except Exception as exc:
                failures.append(self._fail(active, "listener.trigger", exc, list(ids or ())))
        return failures

    def attach_outputs(
        self, snap: Snapshot, rows: list[dict[str, Any]], versions: Mapping[str, int | None]
    ) -> None:
        """Add each listener's output (of the model version given, None: the current one) to
        ``rows`` as a column named after the listener."""
        for name, version in versions.items():
            active = snap.by_id[name]
            model_version = active.model_version if version is None else version
            idc = active.id_column
            values: dict[Any, Any] = {}
            if self._outputs_exist(active):
                sids = list(
                    dict.fromkeys(
                        active.sid(self._db, r[idc]) for r in rows if r.get(idc) is not None
                    )
                )
                for chunk in _chunks(sids):
                    for out in self._db.databackend.select(
                        active.output_table,
                        {"model_version": model_version, "source_id": {"$in": list(chunk)}},
                        columns=["source_id", "output"],
                    ):
                        values[out["source_id"]] = out["output"]
            for row in rows:
                raw = row.get(idc)
                row[name] = None if raw is None else values.get(active.sid(self._db, raw))

    # ------------------------------------------------------------------ backfill
    def backfill(
        self, active: Active, *, batch_size: int = BATCH, partition_size: int | None = None
    ) -> JobRecord:
        """Compute the outputs of every existing row matching ``where``, as a partitioned job
        on the Datalayer's compute backend (like ``db.predict``).

        Model failures are isolated per row and recorded (status FAILED, ``failed_ids``, a
        warning; ``db.catch_up()`` retries them); an error of the job itself on an in-process
        runner is recorded the same way. Submitting to an unreachable runner raises.
        """
        total = self._db.databackend.count(active.table, active.where)
        record = _partitioned_job("listener.backfill", active, total)
        try:
            job, _counts, _failed = self._run_job(
                record,
                active,
                "backfill",
                ids=None,
                batch_size=batch_size,
                partition_size=partition_size,
            )
        except JobFailed as exc:
            job = self._db.metadata.get_job(record.job_id)
            logger.warning("listener %r backfill failed: %s", active.identifier, exc)
            return job
        if job.status is JobStatus.FAILED:
            logger.warning(
                "listener %r: the model failed on %s rows (job %s); db.catch_up() retries them",
                active.identifier,
                job.args.get("failed_count"),
                job.job_id,
            )
        return job

    def _run_job(
        self,
        record: JobRecord,
        active: Active,
        mode: str,
        *,
        ids: list[Any] | None,
        batch_size: int,
        partition_size: int | None,
    ) -> tuple[JobRecord, dict[str, int], list[Any]]:
        """Run ``mode`` over the partitions of ``ids`` (default: every matching source id) on
        the compute backend; return the finished record, the counts and the failing ids.

        Raises:
            JobFailed: a task failed (the record holds the error and the failing partitions).
        """
        from pinnacledb.jobs._worker import (
            EXCLUSIVE_FILE_SCHEMES,
            InProcessJob,
            register_in_process,
            unregister_in_process,
        )
        from pinnacledb.predict import _first_exception, _tasks

        db = self._db
        md = db.metadata
        backend = db.compute
        local = type(backend).runs_in_process
        idc = active.id_column
        try:
            if ids is None:
                ids = [
                    r[idc] for r in db.databackend.select(active.table, active.where, columns=[idc])
                ]
            tasks = _tasks(
                db,
                ids=ids,
                in_process=local,
                where=active.where,
                payload={
                    "job_id": record.job_id,
                    "listener": active.identifier,
                    "version": active.key.version,
                    "mode": mode,
                    "table": active.table,
                    "id_column": idc,
                    "batch_size": batch_size,
                    "trust_serializers": list[JSONValue](sorted(db.trusted_serializers)),
                },
                partition_size=partition_size,
                batch_size=batch_size,
                kind="listener",
            )
        except Exception as exc:
            now = utcnow()
            md.create_job(
                attrs.evolve(
                    record,
                    status=JobStatus.FAILED,
                    runner=str(backend.uri),
                    started_at=now,
                    finished_at=now,
                    error=redact(f"{type(exc).__name__}: {exc}"),
                )
            )
            raise
        job_id = record.job_id
        if local:
            register_in_process(job_id, InProcessJob(db, None, None))
        try:
            if not local and db.slots["databackend"].uri.scheme in EXCLUSIVE_FILE_SCHEMES:
                db.slots["databackend"].close()  # workers take turns on a single-writer file
            record = attrs.evolve(record, rows_total=len(ids))
            db.job_driver.submit(md, backend, record, tasks)
            job = db.job_driver.wait(md, job_id)
            progress = backend.status(job_id)
            if local and job.status is JobStatus.FAILED:
                raised = _first_exception(db, backend, job_id)
                if raised is not None:
                    raise JobFailed(f"{record.kind} job {job_id} failed: {job.error}") from raised
        finally:
            if local:
                unregister_in_process(job_id)
        if job.status is JobStatus.FAILED:
            raise JobFailed(f"{record.kind} job {job_id} failed: {job.error}")
        counts = {"computed": 0, "recomputed": 0}
        failed: list[Any] = []
        errors: list[str] = []
        for t in progress.tasks:
            value = t.value if isinstance(t.value, dict) else {}
            for name in counts:
                n = value.get(name)
                counts[name] += n if isinstance(n, int) else 0
            more = value.get("failed")
            failed += more if isinstance(more, list) else []
            if isinstance(value.get("error"), str):
                errors.append(str(value["error"]))
        job = md.update_job(
            attrs.evolve(
                job,
                status=JobStatus.FAILED if failed else job.status,
                error=errors[0] if errors else job.error,
                updated_at=utcnow(),
                args={**job.args, "done": job.rows_done, **_failed_args(failed)},
            )
        )
        return job, counts, failed

    def run_partition(
        self,
        identifier: str,
        version: int,
        extra: Filter | None,
        *,
        mode: str,
        batch_size: int,
        run: str,
    ) -> dict[str, JSONValue]:
        """One task of a listener job (on a worker): the source rows matching the listener's
        ``where`` and ``extra`` (a partition), ``batch_size`` at a time.

        ``mode``: ``backfill`` (compute; insert only where no output exists), ``reconcile``
        (compute missing, stale and duplicated outputs) or ``missing`` (only missing ones).
        """
        snap = self.snapshot()
        active = snap.by_id.get(identifier)
        if active is None or active.key.version != version:
            raise VersionConflict(
                f"listener {identifier!r} v{version} is no longer the applied version "
                f"(now {'removed' if active is None else f'v{active.key.version}'}); its job "
                "stops here and db.catch_up() brings the outputs up to date"
            )
        if mode not in ("backfill", "reconcile", "missing"):
            raise ConfigError(f"unknown listener task mode {mode!r}")
        rows_done = 0
        failed: list[Any] = []
        errors: list[str] = []
        counts = {"computed": 0, "recomputed": 0, "removed": 0}
        # the table's DataType columns, read once per task rather than once per batch
        codec = self._db.table_codec(active.table) if mode == "backfill" else None
        with self._vectors().batch():
            for rows in self._scan(active, batch_size, extra):
                if mode == "backfill":
                    items = self._items(active, rows)
                    self._decode_inputs(active, items, rows, codec)
                    # a batch with no output yet (the usual case) is inserted without the
                    # delete-by-id a rewrite needs
                    fresh = self._none_written(active, [i.sid for i in items])
                    fails = self._compute_and_write(
                        snap, active, items, run, "listener.backfill", record=False, fresh=fresh
                    )
                    counts["computed"] += len(items) - sum(len(f.source_ids) for f in fails)
                else:
                    fails = self._reconcile_rows(
                        snap, active, rows, run, counts, only_missing=mode == "missing"
                    )
                for f in fails:
                    failed += f.source_ids
                    errors.append(f.error)
                rows_done += len(rows)
        return {
            "rows": rows_done,
            "computed": counts["computed"],
            "recomputed": counts["recomputed"],
            "failed": [
                s if isinstance(s, (int, str)) and not isinstance(s, bool) else str(s)
                for s in failed[:MAX_FAILED_IDS]
            ],
            "error": errors[0] if errors else None,
        }

    def _scan(
        self, active: Active, batch_size: int, extra: Filter | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Source rows matching ``where`` (and ``extra``) in id order, ``batch_size`` at a
        time (keyset)."""
        idc = active.id_column
        columns = list(dict.fromkeys([idc, *active.columns]))
        last: Any = None
        while True:
            cond = _and(active.where, extra, None if last is None else {idc: {"$gt": last}})
            rows = self._db.databackend.select(
                active.table, cond, columns=columns, order_by=[idc], limit=batch_size
            )
            if not rows:
                return
            yield rows
            if len(rows) < batch_size:
                return
            last = rows[-1][idc]

    # ------------------------------------------------------------------ catch up
    def catch_up(self, listener: str | None = None, *, stale: bool = True) -> CatchUpReport:
        """Repair every listener's outputs (or one's); see ``Datalayer.catch_up``."""
        snap = self.snapshot()
        if listener is not None:
            if listener not in snap.by_id:
                raise ComponentNotFound(
                    f"no listener {listener!r} in {self._db.metadata.uri}; db.show('listener') "
                    "lists them"
                )
            actives = [snap.by_id[listener]]
        else:
            actives = self._ordered(snap)
        computed: dict[str, int] = {}
        recomputed: dict[str, int] = {}
        removed: dict[str, int] = {}
        failed: dict[str, int] = {}
        jobs: dict[str, str] = {}
        for active in actives:
            c, r, d, f, job = self.catch_up_one(snap, active, stale=stale)
            computed[active.identifier] = c
            recomputed[active.identifier] = r
            removed[active.identifier] = d
            failed[active.identifier] = f
            jobs[active.identifier] = job
        return CatchUpReport(
            computed=computed, recomputed=recomputed, removed=removed, failed=failed, jobs=jobs
        )

    @staticmethod
    def _ordered(snap: Snapshot) -> list[Active]:
        """Listeners upstream first (a listener reading another's outputs comes after it)."""
        by_output = {a.output_table: a for a in snap.by_id.values()}
        order: list[Active] = []
        seen: set[str] = set()

        def visit(active: Active, depth: int) -> None:
            if active.identifier in seen or depth > len(by_output):
                return
            upstream = by_output.get(active.table)
            if upstream is not None:
                visit(upstream, depth + 1)
            seen.add(active.identifier)
            order.append(active)

        for active in sorted(snap.by_id.values(), key=lambda a: a.identifier):
            visit(active, 0)
        return order

    def catch_up_one(
        self, snap: Snapshot, active: Active, *, stale: bool = True
    ) -> tuple[int, int, int, int, str]:
        """Catch one listener up; return (computed, recomputed, removed, failed, job id)."""
        md = self._db.metadata
        if self.up_to_date(active):
            now = utcnow()
            job = md.create_job(
                JobRecord(
                    job_id=f"listener.catch_up-{uuid.uuid4().hex}",
                    kind="listener.catch_up",
                    status=JobStatus.SUCCESS,
                    component=active.key,
                    args={
                        "listener": active.identifier,
                        "stale": stale,
                        "computed": 0,
                        "recomputed": 0,
                        "removed": 0,
                        "checked_in": "database",
                    },
                    started_at=now,
                    finished_at=now,
                )
            )
            return 0, 0, 0, 0, job.job_id
        record = JobRecord(
            job_id=f"listener.catch_up-{uuid.uuid4().hex}",
            kind="listener.catch_up",
            status=JobStatus.PENDING,
            component=active.key,
            args={"listener": active.identifier, "stale": stale},
        )
        try:
            removed = self.remove_orphans(snap, active)
            ids = None if stale else [k for keys in self._missing(active) for k in keys]
        except Exception as exc:
            now = utcnow()
            md.create_job(
                attrs.evolve(
                    record,
                    status=JobStatus.FAILED,
                    started_at=now,
                    finished_at=now,
                    error=redact(f"{type(exc).__name__}: {exc}"),
                )
            )
            raise
        # the rows are reconciled as a partitioned job on the compute backend
        record = attrs.evolve(record, args={**record.args, "removed": removed})
        job, counts, failed = self._run_job(
            record,
            active,
            "reconcile" if stale else "missing",
            ids=ids,
            batch_size=BATCH,
            partition_size=None,
        )
        md.update_job(attrs.evolve(job, args={**job.args, **counts}))
        return counts["computed"], counts["recomputed"], removed, len(failed), job.job_id

    def up_to_date(self, active: Active) -> bool:
        """Whether the outputs are exactly current, decided by the databackend (False when it
        cannot tell: then catch_up checks row by row).

        True when (1) every source row matching ``where`` has an output of the current model
        version whose copied input values equal its own (exact, NULL-safe), (2) every output
        (any version) has a source row matching ``where``, and (3) there are as many outputs
        of the current version as source rows. (1) and (2) make each row have at least one
        current output and (3) then exactly one, which is what the row-by-row pass
        (:meth:`_reconcile_rows`) leaves alone: the copies are the values the output's
        ``input_hash`` was computed from, and equal stored values read back alike.
        """
        backend = self._db.databackend
        if not isinstance(backend, SupportsMatchCount) or not self._outputs_exist(active):
            return False
        copies = active.copies(self._db)
        if not copies:
            return False
        try:
            source = backend.table_schema(active.table)
        except (TableNotFound, NotImplementedError):
            return False
        if active.id_column not in source or source[active.id_column].dtype is not active.id_type(
            self._db
        ):
            return False  # ids stored as text in source_id: not comparable in the database
        current = {"model_version": active.model_version}
        pairs = ((active.id_column, "source_id"), *zip(active.columns, copies, strict=True))
        # one statement where the backend can (SupportsMatchCounts), else one call each
        missing, orphaned, outputs, rows = count_many(
            backend,
            [
                CountQuery(
                    table=active.table,
                    where=active.where,
                    other=active.output_table,
                    on=pairs,
                    other_where=current,
                ),
                CountQuery(
                    table=active.output_table,
                    other=active.table,
                    on=(("source_id", active.id_column),),
                    other_where=active.where,
                ),
                CountQuery(table=active.output_table, where=current),
                CountQuery(table=active.table, where=active.where),
            ],
        )
        return missing == 0 and orphaned == 0 and outputs == rows

    def _missing(self, active: Active) -> Iterator[list[Any]]:
        """Source ids matching ``where`` with no output of the current model version."""
        if not self._outputs_exist(active):
            for rows in self._scan(active, BATCH):
                yield [r[active.id_column] for r in rows]
            return
        last: Any = None
        while True:
            keys = anti_join_keys(
                self._db.databackend,
                active.table,
                active.id_column,
                active.output_table,
                "source_id",
                where=active.where,
                other_where={"model_version": active.model_version},
                after=last,
            )
            if not keys:
                return
            yield keys
            last = keys[-1]

    def remove_orphans(self, snap: Snapshot, active: Active) -> int:
        """Delete outputs (every version) whose source row is gone or no longer matches."""
        if not self._outputs_exist(active):
            return 0
        removed = 0
        last: Any = None
        while True:
            keys = anti_join_keys(
                self._db.databackend,
                active.output_table,
                "source_id",
                active.table,
                active.id_column,
                other_where=active.where,
                after=last,
            )
            if not keys:
                return removed
            self._delete_outputs(snap, active, {"source_id": {"$in": keys}})
            self._indexed_removed(snap, active, keys)
            removed += len(keys)
            last = keys[-1]

    # ------------------------------------------------------------------ reconcile
    def _reconcile_ids(
        self, snap: Snapshot, active: Active, raw_ids: Sequence[Any], run: str, kind: str
    ) -> list[ListenerFailure]:
        """Bring the outputs of these source ids in line with the rows now stored."""
        rows = self._db.databackend.select(
            active.table,
            _and(active.where, {active.id_column: {"$in": list(raw_ids)}}),
            columns=list(dict.fromkeys([active.id_column, *active.columns])),
        )
        present = {active.sid(self._db, r[active.id_column]) for r in rows}
        gone = [
            s for s in dict.fromkeys(active.sid(self._db, i) for i in raw_ids) if s not in present
        ]
        if gone and self._outputs_exist(active):
            self._delete_outputs(snap, active, {"source_id": {"$in": gone}})
            self._indexed_removed(snap, active, gone)
        counts = {"computed": 0, "recomputed": 0, "removed": 0}
        return self._reconcile_rows(snap, active, rows, run, counts, kind=kind, record=True)

    def _reconcile_rows(
        self,
        snap: Snapshot,
        active: Active,
        rows: Sequence[dict[str, Any]],
        run: str,
        counts: dict[str, int],
        *,
        kind: str = "listener.catch_up",
        record: bool = False,
        only_missing: bool = False,
    ) -> list[ListenerFailure]:
        """Compute missing, stale or duplicated outputs of ``rows`` (current source rows);
        with ``only_missing`` leave rows that have any output of the current version alone."""
        if not rows:
            return []
        items = self._items(active, rows)
        existing: dict[Any, list[str]] = {}
        if self._outputs_exist(active):
            for where in self._id_lookups(active, [i.sid for i in items]):
                for out in self._db.databackend.select(
                    active.output_table,
                    {"model_version": active.model_version, "source_id": where},
                    columns=["source_id", "input_hash"],
                ):
                    existing.setdefault(out["source_id"], []).append(out["input_hash"])
        todo: list[_Item] = []
        todo_rows: list[dict[str, Any]] = []
        for item, row in zip(items, rows, strict=True):
            have = existing.get(item.sid)
            if have == [item.hash] or (only_missing and have):
                continue
            counts["recomputed" if have else "computed"] += 1
            todo.append(item)
            todo_rows.append(row)
        self._decode_inputs(active, todo, todo_rows)
        return self._compute_and_write(snap, active, todo, run, kind, record=record)

    def _id_lookups(self, active: Active, sids: Sequence[Any]) -> Iterator[Filter]:
        """Filters on ``source_id`` covering ``sids`` (results may hold other ids too).

        Dense int ids (a keyset batch of the source) are one range, which every backend
        compiles and runs far faster than a ``$in`` of 1000 literals; anything else is ``$in``
        chunks. Only int ids: string order differs between Python and some collations.
        """
        if self._dense(active, sids):
            yield {"$gte": min(sids), "$lte": max(sids)}
            return
        for chunk in _chunks(sids):
            yield {"$in": list(chunk)}

    def _dense(self, active: Active, sids: Sequence[Any]) -> bool:
        return (
            bool(sids)
            and active.id_type(self._db) is DType.INT
            and all(isinstance(s, int) and not isinstance(s, bool) for s in sids)
            and max(sids) - min(sids) < 4 * len(sids)
        )

    def _none_written(self, active: Active, sids: Sequence[Any]) -> bool:
        """Whether no output of the current version exists for ``sids`` (checked by a range
        count when the ids are dense ints; False when unknown)."""
        if not self._outputs_exist(active):
            return True
        if not self._dense(active, sids):
            return False
        where = {
            "model_version": active.model_version,
            "source_id": {"$gte": min(sids), "$lte": max(sids)},
        }
        return self._db.databackend.count(active.output_table, where) == 0

    # ------------------------------------------------------------------ compute + write
    def _item(
        self, active: Active, raw: Any, row: Mapping[str, Any], given: Mapping[str, Any] | None
    ) -> _Item:
        values = [row.get(c) for c in active.columns]
        src = given if given is not None else row
        xs = [src.get(c) for c in active.columns]
        return _Item(
            sid=active.sid(self._db, raw),
            raw=raw,
            hash=input_hash(values),
            x=xs[0] if active.single else xs,
            values=tuple(values),
        )

    def _items(self, active: Active, rows: Sequence[Mapping[str, Any]]) -> list[_Item]:
        """``_item`` of each stored row (no given values), in one loop."""
        idc = active.id_column
        columns = active.columns
        plain_ids = active.id_type(self._db) is DType.INT
        sid = active.sid
        db = self._db
        items: list[_Item] = []
        for row in rows:
            raw = row[idc]
            values = tuple([row.get(c) for c in columns])
            items.append(
                _Item(
                    sid=raw if plain_ids and type(raw) is int else sid(db, raw),
                    raw=raw,
                    hash=input_hash(values),
                    x=values[0] if active.single else list(values),
                    values=values,
                )
            )
        return items

    def _decode_inputs(
        self,
        active: Active,
        items: list[_Item],
        rows: Sequence[Mapping[str, Any]],
        codec: Mapping[str, Any] | bool | None = True,
    ) -> None:
        """Replace stored values of DataType input columns by their decoded values.

        ``codec``: the table's DataType columns when the caller read them already (a backfill
        reads them once per task), else True: read them now (a metadata lookup).
        """
        if codec is True:
            codec = self._db.table_codec(active.table)
        if not isinstance(codec, Mapping) or not codec or not set(codec) & set(active.columns):
            return
        decoded = self._db.decode_rows(codec, [{c: r.get(c) for c in active.columns} for r in rows])
        for n, row in enumerate(decoded):
            xs = [row.get(c) for c in active.columns]
            items[n] = attrs.evolve(items[n], x=xs[0] if active.single else xs)

    def _predict(self, active: Active, xs: list[Any]) -> list[Any]:
        model = active.component(self._db).model
        ys = [python_value(y) for y in model.predict(xs)]
        if len(ys) != len(xs):
            raise PinnacleError(
                f"model {model.identifier!r} returned {len(ys)} outputs for {len(xs)} inputs"
            )
        return ys

    def _compute_and_write(
        self,
        snap: Snapshot,
        active: Active,
        items: Sequence[_Item],
        run: str,
        kind: str,
        *,
        record: bool = True,
        fresh: bool = False,
    ) -> list[ListenerFailure]:
        """Run the model on ``items`` and write their outputs (failing rows isolated).

        ``fresh``: the source rows were just inserted, so no outputs are deleted first.
        """
        if not items:
            return []
        done: list[tuple[_Item, Any]] = []
        bad: list[Any] = []
        error: BaseException | None = None
        try:
            ys = self._predict(active, [i.x for i in items])
            done = list(zip(items, ys, strict=True))
        except Exception as exc:
            error = exc
            if isinstance(exc, PinnacleError) and "serializer" in str(exc):
                bad = [i.sid for i in items]  # cannot load the model at all
            else:
                for item in items:  # isolate the failing rows
                    try:
                        done.append((item, self._predict(active, [item.x])[0]))
                    except Exception as row_exc:
                        error = row_exc
                        bad.append(item.sid)
        if done:
            self._write_outputs(snap, active, done, run, fresh=fresh)
        if not bad:
            return []
        assert error is not None
        if record:
            return [self._fail(active, kind, error, bad)]
        text = redact(f"{type(error).__name__}: {error}")
        return [
            ListenerFailure(
                listener=active.identifier, job_id=run, error=text, source_ids=tuple(bad)
            )
        ]

    def _write_outputs(
        self,
        snap: Snapshot,
        active: Active,
        done: Sequence[tuple[_Item, Any]],
        run: str,
        *,
        fresh: bool = False,
    ) -> None:
        """Write outputs: delete their ids, then insert (``fresh``: insert only).

        The insert trigger writes ``fresh`` outputs (the hot path: one outputs insert). A
        duplicate can then only come from a concurrent backfill/trigger of the same new row,
        or from a row deleted bypassing pinnacledb and re-inserted with the same id before
        ``catch_up`` removed its old outputs; ``catch_up`` rewrites any source id that has
        other than exactly one output of the current version.
        """
        out_rows = [
            {
                "id": f"{active.model_version}:{item.sid}",
                "source_id": item.sid,
                "model": active.model_identifier,
                "model_version": active.model_version,
                "job_id": run,
                "input_hash": item.hash,
                "output": y,
            }
            for item, y in done
        ]
        self._ensure_outputs(active, [y for _, y in done])
        copies = active.copies(self._db)
        if copies:
            for row, (item, _) in zip(out_rows, done, strict=True):
                row.update(zip(copies, item.values, strict=True))
        if not fresh:
            self._delete_outputs(snap, active, {"id": {"$in": [r["id"] for r in out_rows]}})
        if snap.by_table.get(active.output_table):
            self._db.insert_with_snapshot(snap, active.output_table, out_rows)
        else:
            self._db.databackend.insert(active.output_table, out_rows)
        if snap.indexes.get(active.identifier):
            self._vectors().written(snap, active, [(item.sid, y) for item, y in done])

    def _indexed_removed(self, snap: Snapshot, active: Active, sids: Sequence[Any]) -> None:
        """Tell the vector indexes of ``active`` these source ids have no output any more."""
        if snap.indexes.get(active.identifier):
            self._vectors().removed(snap, active, sids)

    def _delete_outputs(self, snap: Snapshot, active: Active, where: Filter) -> None:
        if snap.by_table.get(active.output_table):
            self._db.delete_with_snapshot(snap, active.output_table, where)
        elif self._outputs_exist(active):
            self._db.databackend.delete(active.output_table, where)

    def _outputs_exist(self, active: Active) -> bool:
        # Once seen, assumed to stay (it is dropped only by remove(force=True), which changes
        # the epoch and so replaces this Active): saves a catalog query per write.
        if not active.outputs_seen:
            active.outputs_seen = active.output_table in self._db.databackend.list_tables()
        return active.outputs_seen

    def _ensure_outputs(self, active: Active, ys: Sequence[Any]) -> None:
        if self._outputs_exist(active):
            return
        active.outputs_seen = create_outputs_table(self._db, active, ys)

    def _fail(
        self, active: Active, kind: str, exc: BaseException, sids: Sequence[Any]
    ) -> ListenerFailure:
        text = redact(f"{type(exc).__name__}: {exc}")
        job_id = f"{kind}-{uuid.uuid4().hex}"
        with contextlib.suppress(Exception):  # bookkeeping must not hide the user's write
            self._db.metadata.create_job(
                JobRecord(
                    job_id=job_id,
                    kind=kind,
                    status=JobStatus.FAILED,
                    component=active.key,
                    args={
                        "listener": active.identifier,
                        "table": active.table,
                        **_failed_args(list(sids)),
                    },
                    started_at=utcnow(),
                    finished_at=utcnow(),
                    error=text,
                )
            )
        logger.warning(
            "listener %r failed on %d rows of %r (job %s): %s; the data write was kept and "
            "db.catch_up() retries them",
            active.identifier,
            len(sids),
            active.table,
            job_id,
            text,
        )
        return ListenerFailure(
            listener=active.identifier, job_id=job_id, error=text, source_ids=tuple(sids)
        )


def _partitioned_job(kind: str, active: Active, total: int, **extra: JSONValue) -> JobRecord:
    """The PENDING record of a partitioned listener job (``kind``) over ``total`` rows; its
    tasks count progress in ``done``."""
    return JobRecord(
        job_id=f"{kind}-{uuid.uuid4().hex}",
        kind=kind,
        status=JobStatus.PENDING,
        component=active.key,
        args={
            "listener": active.identifier,
            "table": active.table,
            "output": active.output_table,
            "model_version": active.model_version,
            **extra,
            "total": total,
            "done": 0,
        },
    )


def _failed_args(sids: Sequence[Any]) -> dict[str, JSONValue]:
    if not sids:
        return {}
    shown: list[JSONValue] = [
        s if isinstance(s, (int, str)) and not isinstance(s, bool) else str(s)
        for s in sids[:MAX_FAILED_IDS]
    ]
    return {"failed_ids": shown, "failed_count": len(sids)}


def create_outputs_table(db: JobHost, active: Active, ys: Sequence[Any] = ()) -> bool:
    """Create ``active``'s outputs table if missing; False when the output type is unknown."""
    from pinnacledb.jobs._predict import _dtype_of

    if active.output_type is not None:
        out_type = DType(active.output_type)
    elif ys:
        first = next((y for y in ys if y is not None), None)
        out_type = DType.FLOAT if first is None else _dtype_of(first)
        if out_type is DType.INT and any(isinstance(y, float) for y in ys):
            out_type = DType.FLOAT
    else:
        return False
    fields = [
        Field(name="id", dtype=DType.STR),
        Field(name="source_id", dtype=active.id_type(db)),
        Field(name="model", dtype=DType.STR),
        Field(name="model_version", dtype=DType.INT),
        Field(name="job_id", dtype=DType.STR),
        Field(name="input_hash", dtype=DType.STR),
        Field(name="output", dtype=out_type),
    ]
    backend = db.databackend
    if isinstance(backend, SupportsMatchCount):
        # copies of the input values let catch_up compare them in the database
        with contextlib.suppress(TableNotFound, NotImplementedError):
            source = backend.table_schema(active.table)
            dtypes = [source[c].dtype for c in active.columns if c in source]
            if len(dtypes) == len(active.columns) and set(dtypes) <= COPIED_DTYPES:
                fields += [Field(name=f"input_{i}", dtype=d) for i, d in enumerate(dtypes)]
    with contextlib.suppress(TableExists):  # another process created it meanwhile
        backend.create_table(active.output_table, Schema(fields=tuple(fields)))
    index_outputs(db, active)
    return True


def index_outputs(db: JobHost, active: Active) -> None:
    """Create the :data:`OUTPUT_INDEXES` of ``active``'s outputs table (where the backend
    has indexes; idempotent, so an outputs table made before indexes existed gets them)."""
    backend = db.databackend
    if isinstance(backend, SupportsIndexes):
        for columns in OUTPUT_INDEXES:
            backend.create_index(active.output_table, list(columns))


def anti_join_keys(
    backend: Any,
    table: str,
    column: str,
    other: str,
    other_column: str,
    *,
    where: Filter | None = None,
    other_where: Filter | None = None,
    after: Any = None,
    limit: int = BATCH,
) -> list[Any]:
    """:class:`~pinnacle_protocols.protocols.SupportsAntiJoin` through the backend when it has
    it, else a portable fallback: keyset pages of ``table`` and one ``$in`` lookup each."""
    kw: dict[str, Any] = {
        "where": where,
        "other_where": other_where,
        "after": after,
        "limit": limit,
    }
    if isinstance(backend, SupportsAntiJoin):
        return backend.anti_join_keys(table, column, other, other_column, **kw)
    return anti_join_fallback(backend, table, column, other, other_column, **kw)


def anti_join_fallback(
    backend: Any,
    table: str,
    column: str,
    other: str,
    other_column: str,
    *,
    where: Filter | None = None,
    other_where: Filter | None = None,
    after: Any = None,
    limit: int = BATCH,
) -> list[Any]:
    """The portable anti join: keyset pages of ``table`` in ``column`` order, each checked
    with one ``$in`` lookup in ``other`` (memory bounded by ``limit``)."""
    out: list[Any] = []
    while len(out) < limit:
        cond = _and(
            where, {column: {"$ne": None}}, None if after is None else {column: {"$gt": after}}
        )
        rows = backend.select(table, cond, columns=[column], order_by=[column], limit=limit)
        keys = list(dict.fromkeys(r[column] for r in rows))
        if not keys:
            break
        found = {
            r[other_column]
            for r in backend.select(
                other, _and(other_where, {other_column: {"$in": keys}}), columns=[other_column]
            )
        }
        out += [k for k in keys if k not in found]
        after = keys[-1]
        if len(rows) < limit:
            break
    return out[:limit]
