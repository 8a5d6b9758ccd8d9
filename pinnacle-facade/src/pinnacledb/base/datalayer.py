"""The Datalayer: one object wiring a databackend, a metadata store and an artifact store."""

from __future__ import annotations

import contextlib
import hashlib
import sys
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, TypedDict, TypeVar, overload

import attrs

from pinnacle_protocols.arrow import (
    DEFAULT_BATCH_ROWS,
    canonical_table,
    insert_chunks,
    is_insert_stream,
    require_pyarrow,
    rows_to_arrow,
)
from pinnacle_protocols.compute import ComputeBackend
from pinnacle_protocols.errors import (
    ArtifactCorrupted,
    ComponentInUse,
    ComponentNotFound,
    ConfigError,
    DropRefused,
    PinnacleError,
    SchemaError,
    TableNotFound,
)
from pinnacle_protocols.protocols import (
    ArtifactStore,
    DataBackend,
    InsertReturningIds,
    MetadataStore,
    OrderBy,
    SupportsArrowSelect,
    SupportsChangeToken,
    get_many,
)
from pinnacle_protocols.records import (
    ComponentKey,
    ComponentRecord,
    JobRecord,
    JobStatus,
    check_version,
)
from pinnacle_protocols.records import Schema as PortableSchema
from pinnacledb._config import (
    DEFAULT_GC_GRACE_SECONDS,
    DEFAULT_TRIGGER_JOB_ROWS,
    DEFAULT_VECTOR_COMPACT_FRACTION,
    DEFAULT_VECTOR_COMPACT_MIN_ROWS,
    DEFAULT_VECTOR_FOLD_MIN_ROWS,
    DEFAULT_VECTOR_MAX_DELTAS,
    check_fraction,
    check_grace_seconds,
    check_positive_int,
    check_trigger_job_rows,
)
from pinnacledb.base._artifact_home import describe_location
from pinnacledb.base._components import ComponentIO
from pinnacledb.base._lazy import LazyStore
from pinnacledb.components._base import Component, ComponentRegistry
from pinnacledb.components.model import Model
from pinnacledb.components.table import DataType, Table
from pinnacledb.jobs._driver import JobDriver
from pinnacledb.serializers import SerializerRegistry

if TYPE_CHECKING:
    from pinnacle_protocols.filters import Filter
    from pinnacledb._config import ResolvedConfig
    from pinnacledb._registry import Role
    from pinnacledb.base._artifact_home import ArtifactHome
    from pinnacledb.components.listener import Listener
    from pinnacledb.copy import CopyReport
    from pinnacledb.gc import GCReport, Progress
    from pinnacledb.listeners import (
        CatchUpReport,
        InsertResult,
        ListenerEngine,
        ListenerFailure,
        Snapshot,
    )
    from pinnacledb.predict import PredictResult
    from pinnacledb.vector_search import SearchHit, VectorIndexEngine

__all__ = ["Datalayer", "SelectFormat"]

#: What ``Datalayer.select(format=...)`` returns: dicts, a pyarrow Table, a pandas or polars
#: DataFrame.
SelectFormat: TypeAlias = Literal["dicts", "arrow", "pandas", "polars"]
_FORMATS: Final = ("dicts", "arrow", "pandas", "polars")
#: Rows whose by-reference cells are fetched with one artifact-store call (``get_many``).
_DECODE_BATCH: Final = 1024


_get_id = itemgetter("id")


def _join_ids(parts: list[Any]) -> list[Any]:
    out: list[Any] = []
    for part in parts:
        out += part if isinstance(part, (list, range)) else part.to_pylist()
    return out


def _keep_ids(parts: list[Any], part: Any) -> None:
    """Append the ids of one written chunk to ``parts`` in a form that costs little to keep.

    A streamed insert keeps the ids of every chunk until it returns, so they must not grow
    like Python objects: a run of consecutive ints becomes a ``range`` (merged with the run
    before it, so sequential ids cost nothing whatever the row count), other int or str ids
    an Arrow array (8 bytes an int; only when pyarrow is loaded already). Anything else (the
    native ids of a backend, mixed types) is kept as given.
    """
    compact = _compact_ids(part)
    last = parts[-1] if parts else None
    if (
        isinstance(compact, range)
        and isinstance(last, range)
        and last.step == compact.step == 1
        and last.stop == compact.start
    ):
        parts[-1] = range(last.start, compact.stop)
    else:
        parts.append(compact)


def _compact_ids(part: Any) -> Any:
    n = len(part)
    if n == 0 or isinstance(part, range):
        return part
    if not isinstance(part, list):  # an Arrow id column (ints of a table, or strings)
        import pyarrow as pa
        import pyarrow.compute as pc

        if not pa.types.is_integer(part.type) or part.null_count:
            return part
        first, last = part[0].as_py(), part[-1].as_py()
        if last - first == n - 1 and (
            n == 1 or pc.all(pc.equal(pc.pairwise_diff(part.combine_chunks()), 1)).as_py()
        ):
            return range(first, last + 1)
        return part
    first = part[0]
    if all(type(x) is int for x in part):  # bools and int subclasses stay as they are
        if part == list(range(first, first + n)):
            return range(first, first + n)
        kind = "int64"
    elif all(type(x) is str for x in part):
        kind = "string"
    else:
        return part
    pa = sys.modules.get("pyarrow")
    if pa is None:
        return part
    try:
        return pa.array(part, type=kind)
    except (pa.ArrowInvalid, OverflowError):  # ints past int64
        return part


def _convert_arrow(data: Any, format: SelectFormat) -> Any:
    """A canonical pyarrow Table in the asked format (``arrow``, ``pandas``, ``polars``)."""
    if format == "arrow":
        return data
    if format == "pandas":
        try:
            import pandas  # noqa: F401 - to_pandas needs it; say so clearly
        except ImportError as exc:
            raise ConfigError("select(format='pandas') needs pandas: pip install pandas") from exc
        return data.to_pandas()
    try:
        import polars as pl
    except ImportError as exc:
        raise ConfigError("select(format='polars') needs polars: pip install polars") from exc
    return pl.from_arrow(data)


def _frame_from_rows(rows: list[dict[str, Any]], format: SelectFormat) -> Any:
    """Rows holding Python values (decoded DataTypes, listener outputs) in the asked format."""
    if format == "pandas":
        try:
            import pandas as pd
        except ImportError as exc:
            raise ConfigError("select(format='pandas') needs pandas: pip install pandas") from exc
        return pd.DataFrame.from_records(rows)
    pa = require_pyarrow(f"select(format={format!r})")
    try:
        data = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(
            f"the selected rows hold Python values Arrow cannot type ({exc}); use "
            "format='dicts' or 'pandas', or decode=False"
        ) from exc
    return _convert_arrow(data, format)


_S = TypeVar("_S", DataBackend, MetadataStore, ArtifactStore, ComputeBackend)


class _Slots(TypedDict):
    """The Datalayer's store slots, each typed by the Protocol of its role."""

    databackend: LazyStore[DataBackend]
    metadata: LazyStore[MetadataStore]
    artifact_store: LazyStore[ArtifactStore]
    compute: LazyStore[ComputeBackend]


def _slot(role: Role, value: _S | LazyStore[_S]) -> LazyStore[_S]:
    return value if isinstance(value, LazyStore) else LazyStore(role, instance=value)


def _local() -> ComputeBackend:
    from pinnacle_protocols.compute import InlineComputeBackend

    return InlineComputeBackend("local://")


#: The metadata store and its ``change_token`` method (None: it has none).
_TokenSource: TypeAlias = tuple[MetadataStore, Callable[[], Hashable | None] | None]


class Datalayer:
    """Wires together the databackend, the metadata store and the artifact store.

    Build it with :func:`pinnacledb.pinnacle`. Stores are created (and their packages
    imported) on first use, so building a Datalayer is cheap and touches nothing.
    """

    def __init__(
        self,
        *,
        databackend: DataBackend | LazyStore[DataBackend],
        metadata: MetadataStore | LazyStore[MetadataStore],
        artifact_store: ArtifactStore | LazyStore[ArtifactStore],
        compute: ComputeBackend | LazyStore[ComputeBackend] | None = None,
        trust_serializers: Iterable[str] = (),
        gc_grace_seconds: float = DEFAULT_GC_GRACE_SECONDS,
        trigger_job_rows: int = DEFAULT_TRIGGER_JOB_ROWS,
        vector_max_deltas: int = DEFAULT_VECTOR_MAX_DELTAS,
        vector_compact_min_rows: int = DEFAULT_VECTOR_COMPACT_MIN_ROWS,
        vector_compact_fraction: float = DEFAULT_VECTOR_COMPACT_FRACTION,
        vector_fold_min_rows: int = DEFAULT_VECTOR_FOLD_MIN_ROWS,
        components: Iterable[type[Component]] = (),
        config: ResolvedConfig | None = None,
        artifact_home: ArtifactHome | None = None,
    ) -> None:
        """Use stores (or lazy store slots); see :func:`pinnacledb.pinnacle` for the usual way.

        Args:
            databackend: The user's data.
            metadata: Component records, lineage and jobs.
            artifact_store: Blobs (weights, large values).
            compute: Where jobs run (default ``local://``: in this process).
            trust_serializers: Code-executing serializers allowed on load (e.g. ``{"pickle"}``).
            gc_grace_seconds: Unreferenced artifacts younger than this survive ``gc()``.
            trigger_job_rows: On an out-of-process compute backend, a write changing at
                least this many rows runs its listener work there as a job (see
                :meth:`insert`); smaller writes compute in this process.
            vector_max_deltas: A vector index write that finds this many change files
                compacts the index into a new base build.
            vector_compact_min_rows: ...as does one whose change files touch more than
                ``max(vector_compact_min_rows, vector_compact_fraction * count)`` ids.
            vector_compact_fraction: That fraction, in (0, 1].
            vector_fold_min_rows: What ``vector_compact_min_rows`` is for an approximate
                (two-tier) engine, whose compaction folds its pending segment into the graph
                (see :mod:`pinnacledb.vector_search` and :func:`pinnacledb.pinnacle`).
            components: Extra component classes ``load`` may build.
            config: The resolved configuration (shown by ``pinnacle info``).
            artifact_home: Checks the artifact store against the location recorded in the
                metadata store on first use (see :mod:`pinnacledb.base._artifact_home`).
        """
        self._slots: _Slots = {
            "databackend": _slot("databackend", databackend),
            "metadata": _slot("metadata", metadata),
            "artifact_store": _slot("artifact_store", artifact_store),
            "compute": _slot("compute", compute if compute is not None else _local()),
        }
        #: Submits this Datalayer's jobs and drives them while someone waits (internal API of
        #: :class:`pinnacledb.base._host.JobHost`).
        self.job_driver = JobDriver()
        self.serializers = SerializerRegistry(trusted=frozenset(trust_serializers))
        self.components = ComponentRegistry()
        for cls in components:
            self.components.register(cls)
        self.gc_grace_seconds = check_grace_seconds(gc_grace_seconds)
        self.trigger_job_rows = check_trigger_job_rows(trigger_job_rows)
        self.vector_max_deltas = check_positive_int(
            vector_max_deltas, "vector_max_deltas", "change files"
        )
        self.vector_compact_min_rows = check_positive_int(
            vector_compact_min_rows, "vector_compact_min_rows", "ids"
        )
        self.vector_compact_fraction = check_fraction(vector_compact_fraction)
        self.vector_fold_min_rows = check_positive_int(
            vector_fold_min_rows, "vector_fold_min_rows", "ids"
        )
        self.config = config
        self._artifact_home = artifact_home
        self._home_lock = threading.Lock()
        self._io = ComponentIO(
            metadata=lambda: self.metadata,
            artifacts=lambda: self.artifact_store,
            serializers=self.serializers,
            registry=self.components,
            before_apply=self._before_apply,
        )
        self._engine: ListenerEngine | None = None
        self._vector_engine: VectorIndexEngine | None = None
        #: table -> (the metadata store's change token taken before the read, its latest Table
        #: record or None, the codec decoded from it); see table_codec
        self._codecs: dict[
            str, tuple[Hashable | None, ComponentRecord | None, dict[str, DataType] | None]
        ] = {}
        #: (the metadata store, its change_token method or None); see table_codec
        self._token_source: _TokenSource | None = None

    @property
    def _listeners(self) -> ListenerEngine:
        if self._engine is None:
            from pinnacledb.listeners import ListenerEngine

            self._engine = ListenerEngine(self, lambda: self._vectors)
        return self._engine

    @property
    def _vectors(self) -> VectorIndexEngine:
        if self._vector_engine is None:
            from pinnacledb.vector_search import VectorIndexEngine

            self._vector_engine = VectorIndexEngine(self)
        return self._vector_engine

    # ------------------------------------------------------------------ stores
    @property
    def databackend(self) -> DataBackend:
        """The databackend (built on first access)."""
        return self._slots["databackend"].get()

    @property
    def metadata(self) -> MetadataStore:
        """The metadata store (built on first access)."""
        return self._slots["metadata"].get()

    @property
    def artifact_store(self) -> ArtifactStore:
        """The artifact store (built on first access).

        On first access, a store left to the default is replaced by the location this
        deployment recorded in its metadata store, and a configured one that disagrees with
        that record raises :class:`~pinnacle_protocols.errors.ConfigError`.
        """
        home = self._artifact_home
        if home is not None and not home.checked:
            with self._home_lock:
                if not home.checked:
                    slots = self._slots
                    slot, settled = home.check(slots["metadata"], slots["artifact_store"])
                    if slot is not slots["artifact_store"]:
                        slots["artifact_store"].close()
                        slots["artifact_store"] = slot
                    home.checked = settled
        return self._slots["artifact_store"].get()

    @property
    def compute(self) -> ComputeBackend:
        """The compute backend jobs run on (built on first access)."""
        return self._slots["compute"].get()

    @property
    def compute_slot(self) -> LazyStore[ComputeBackend]:
        """The compute backend's slot (URI, class, built?) without building it."""
        return self._slots["compute"]

    @property
    def slots(self) -> Mapping[str, LazyStore[Any]]:
        """The three store slots (URI, class and whether connected) without building them."""
        s = self._slots
        return {
            "databackend": s["databackend"],
            "metadata": s["metadata"],
            "artifact_store": s["artifact_store"],
        }

    @property
    def trusted_serializers(self) -> frozenset[str]:
        """Code-executing serializers this Datalayer will load."""
        return self.serializers.trusted

    def __repr__(self) -> str:
        shown: list[tuple[str, LazyStore[Any]]] = [
            ("databackend", self._slots["databackend"]),
            ("metadata", self._slots["metadata"]),
            ("artifact_store", self._slots["artifact_store"]),
        ]
        if self._slots["compute"].uri.scheme != "local":  # the default runner is not shown
            shown.append(("compute", self._slots["compute"]))
        lines = [f"  {name}={slot.uri}  ({slot.class_path})," for name, slot in shown]
        return "Datalayer(\n" + "\n".join(lines) + "\n)"

    def close(self) -> None:
        """Close every store (and the compute backend) this Datalayer built."""
        s = self._slots
        s["compute"].close()
        s["artifact_store"].close()
        s["metadata"].close()
        s["databackend"].close()

    def __enter__(self) -> Datalayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ data
    def list_tables(self) -> list[str]:
        """User tables of the databackend."""
        return self.databackend.list_tables()

    def create_table(self, name: str, schema: PortableSchema | Mapping[str, str]) -> None:
        """Create a plain table; for encoded columns apply a :class:`Table` component."""
        if not isinstance(schema, PortableSchema):
            schema = PortableSchema.of(**schema)
        self.databackend.create_table(name, schema)

    def drop_table(self, name: str) -> None:
        """Drop a user table (its Table component, if any, stays until removed)."""
        self.databackend.drop_table(name)

    def __getitem__(self, table: str) -> Any:
        """The native handle of a table (an ibis Table, a pymongo Collection)."""
        return self.databackend.native(table)

    def execute(self, query: Any) -> Any:
        """Run a native query of the databackend (ibis expression, MongoDB spec)."""
        return self.databackend.execute(query)

    def insert(
        self, table: str, rows: Any, *, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> InsertResult:
        """Append rows; DataType columns of a Table component are encoded first.

        ``rows`` is a list of dicts, a ``pyarrow.Table`` or ``RecordBatch``, a pandas or
        polars DataFrame, or an iterator of dicts or of those. Each is converted once to Arrow
        with the table's schema and validated there (vectorised); a bad value raises
        SchemaError naming the first bad row and column. A list or a table is written
        all-or-nothing. An iterator streams in batches of at most ``batch_rows`` rows, so
        memory stays flat however long it is; each batch is all-or-nothing, and an error names
        the batch and how many rows were written before it.

        Listeners on ``table`` compute the outputs of the inserted rows before this returns:
        in this process, or -- when the compute backend runs elsewhere (``processes://``,
        ``dask://``...) and the written batch has at least ``trigger_job_rows`` rows (default
        10,000) -- as a partitioned ``listener.trigger`` job on that backend, which this call
        waits for (its id is in ``jobs``). A model failing on some rows does not undo or fail
        the insert: the failure is recorded as a FAILED job, logged, and listed in the
        result's ``failures``; ``db.catch_up()`` retries it. The same holds when the runner
        cannot be reached or the job fails as a whole: the rows are already committed, so
        the insert does not raise; the failure (its job says why) lists the rows without
        outputs and ``db.catch_up()`` computes them.

        Returns:
            The number of rows inserted: an ``int`` subclass with ``ids`` (the rows' ``id``
            column, or the native ``_id`` the backend assigned), ``jobs`` and ``failures``.
        """
        with self._vectors.batch():
            return self.insert_with_snapshot(None, table, rows, batch_rows=batch_rows)

    def insert_with_snapshot(
        self,
        snap: Snapshot | None,
        table: str,
        rows: Any,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> InsertResult:
        """:meth:`insert` under the listener set ``snap`` (None: the current one, read after the
        write). With ``snap`` given, rows are written as they are (no DataType encoding): the
        listener engine writes outputs this way, triggering the listeners of the write that
        caused them. Internal API of :class:`pinnacledb.base._host.EngineHost`.
        """
        from pinnacledb.listeners import InsertResult

        codec = self.table_codec(table) if snap is None else None
        count = 0
        ids: list[Any] = []  # a list per chunk: Python ids, or an Arrow id column
        failures: list[ListenerFailure] = []
        jobs: list[str] = []
        stream = is_insert_stream(rows)
        convert = self._stream_converter(table) if stream and snap is None and not codec else None
        chunks = insert_chunks(rows, batch_rows, convert=convert)
        while True:
            try:
                # a stream's chunk is made here: a bad row may only show now (``convert``)
                chunk = next(chunks, None)
                if chunk is None:
                    break
                n, chunk_ids, chunk_failures = self._insert_chunk(snap, table, chunk, codec, jobs)
            except PinnacleError as exc:
                if not count:  # nothing written: the error as the backend gave it
                    raise
                # a bad value or the engine's refusal (a constraint, the disk): the same type,
                # saying which batch failed and that the batches before it are committed
                where = (
                    f"in the batch of the insert stream starting at row {count}; the "
                    f"{count} rows before it were written"
                )
                try:
                    again = type(exc)(f"{exc} ({where})")
                except Exception:  # a third-party error type built another way: keep it as is
                    exc.add_note(where)
                    raise exc from None
                raise again from exc
            # a stream holds one batch at a time: this one goes before the next is made
            chunk = None
            count += n
            if stream:  # ids of every batch are kept until the end: compactly
                _keep_ids(ids, chunk_ids)
            else:
                ids.append(chunk_ids)
            chunk_ids = None
            failures += chunk_failures
        if len(ids) == 1 and isinstance(ids[0], list):
            return InsertResult(count, ids=ids[0], failures=failures, jobs=jobs)
        return InsertResult(count, ids=lambda: _join_ids(ids), failures=failures, jobs=jobs)

    def _stream_converter(self, table: str) -> Callable[[list[Any], int], Any] | None:
        """How a stream of dicts into ``table`` becomes Arrow part by part, or None.

        For a databackend that writes Arrow as is (DuckDB through pinnacle-ibis,
        ``writes_python_rows = False``) into a table without listeners, streamed dicts are
        validated into the canonical Arrow table :data:`~pinnacle_protocols.arrow.CONVERT_ROWS`
        at a time (:func:`~pinnacle_protocols.arrow.insert_chunks`), so a batch never holds
        all its dicts at once: a batch of 100,000 dicts is ~35 MB of Python objects, its Arrow
        form ~4 MB. Row numbers in errors stay those of the batch. Elsewhere (a driver that
        takes Python values, native ids, listeners that need the rows) the dicts are needed
        whole anyway: None.
        """
        backend = self.databackend
        if getattr(type(backend), "writes_python_rows", True) is not False or isinstance(
            backend, InsertReturningIds
        ):
            return None
        if self._listeners.snapshot().by_table.get(table):
            return None
        found: list[PortableSchema] = []  # read at the first row: an empty stream reads nothing

        def convert(rows: list[Any], first: int) -> Any:
            if not found:
                found.append(backend.table_schema(table))
            return canonical_table(found[0], rows, table, first)

        return convert

    def _insert_chunk(
        self,
        snap: Snapshot | None,
        table: str,
        chunk: Any,
        codec: Mapping[str, DataType] | None,
        jobs: list[str],
    ) -> tuple[int, Any, list[ListenerFailure]]:
        """Write one chunk (a list of dicts or an Arrow table); return count, ids, failures
        (trigger jobs run on the compute backend are appended to ``jobs``).

        The ids are a list, or the chunk's Arrow ``id`` column (made Python values only when
        ``InsertResult.ids`` is read).
        """
        backend = self.databackend
        if not isinstance(chunk, list) and (codec or isinstance(backend, InsertReturningIds)):
            chunk = chunk.to_pylist()  # Python values are needed: encoders, native ids
        if not isinstance(chunk, list):  # Arrow, straight to the backend (validated there)
            # with its listeners' outputs in one transaction where it can be done
            together = self._listeners.insert_with_outputs(table, chunk) if snap is None else None
            failures: list[ListenerFailure] = []
            if together is not None:
                count, failures = together
            else:
                count = backend.insert(table, chunk)
                snap = self._listeners.snapshot() if snap is None else snap
                if snap.by_table.get(table):
                    given = chunk.to_pylist()
                    failures = self._listeners.after_insert(
                        snap, table, given, given, None, jobs=jobs
                    )
            ids = chunk.column("id") if "id" in chunk.column_names else []
            return count, ids, failures
        given = chunk
        stored: Sequence[Mapping[str, Any]] = given
        native_ids: list[Any] | None = None
        # rows and their listeners' outputs in one transaction, where it can be done
        together = (
            self._listeners.insert_with_outputs(table, given)
            if codec is None and snap is None
            else None
        )
        if together is not None:
            count, failures = together
        else:
            if codec is None:
                native_ids, count = self._backend_insert(table, given)
            else:
                encoded, blobs = self._encode_rows(codec, given)
                stored = encoded
                with self._journaled_puts("insert", table, blobs):
                    native_ids, count = self._backend_insert(table, encoded)
            # read the listener set AFTER the data write (see pinnacledb.listeners)
            snap = self._listeners.snapshot() if snap is None else snap
            failures = (
                self._listeners.after_insert(snap, table, stored, given, native_ids, jobs=jobs)
                if snap.by_table.get(table)
                else []
            )
        if native_ids is not None:
            return count, list(native_ids), failures
        try:
            return count, list(map(_get_id, stored)), failures
        except KeyError:  # some rows have no id
            pass
        ids = [r.get("id") for r in stored] if any("id" in r for r in stored) else []
        return count, ids, failures

    def _backend_insert(
        self, table: str, rows: Sequence[Mapping[str, Any]]
    ) -> tuple[list[Any] | None, int]:
        backend = self.databackend
        if rows and isinstance(backend, InsertReturningIds):
            ids = backend.insert_returning_ids(table, rows)
            return ids, len(ids)
        return None, backend.insert(table, rows)

    @overload
    def select(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
        decode: bool = True,
        outputs: Sequence[str] | Mapping[str, int | None] = (),
        format: Literal["dicts"] = "dicts",
    ) -> list[dict[str, Any]]: ...
    @overload
    def select(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
        decode: bool = True,
        outputs: Sequence[str] | Mapping[str, int | None] = (),
        format: Literal["arrow", "pandas", "polars"],
    ) -> Any: ...
    def select(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
        decode: bool = True,
        outputs: Sequence[str] | Mapping[str, int | None] = (),
        format: SelectFormat = "dicts",
    ) -> Any:
        """Rows matching ``where``; DataType columns are decoded (and hash-verified).

        ``outputs`` names listeners of ``table``: each row gets the output of the listener's
        current model version as a column named after the listener (None when there is
        none), read with one batched lookup per listener and per 1000 rows. A mapping
        ``{listener: model_version}`` chooses the model version (None: the current one).

        ``format`` chooses the result: ``"dicts"`` (a list of dicts), ``"arrow"`` (a
        ``pyarrow.Table`` with the canonical column types of
        :func:`pinnacle_protocols.arrow.canonical_arrow_schema`: JSON columns hold their JSON
        text), ``"pandas"`` or ``"polars"`` (a DataFrame made from that table). Where the
        databackend hands Arrow (DuckDB) no Python object is made per row. Decoded DataType
        columns and ``outputs`` are Python values: those results go through the rows.

        Raises:
            ConfigError: an unknown ``format``, or pyarrow/pandas/polars is not installed.
        """
        if format not in _FORMATS:
            raise ConfigError(
                f"select format must be one of {', '.join(map(repr, _FORMATS))}, got {format!r}"
            )
        if format != "dicts":
            codec = self.table_codec(table) if decode else None
            python = bool(outputs) or bool(codec and (columns is None or set(codec) & set(columns)))
            if not python:
                return _convert_arrow(
                    self._select_arrow(table, where, columns, limit, order_by), format
                )
            rows = self.select(
                table,
                where,
                columns=columns,
                limit=limit,
                order_by=order_by,
                decode=decode,
                outputs=outputs,
            )
            return _frame_from_rows(rows, format)
        snap = None
        extra: list[str] = []
        versions: dict[str, int | None] = (
            dict(outputs) if isinstance(outputs, Mapping) else dict.fromkeys(outputs)
        )
        if versions:
            snap = self._listeners.snapshot()
            for name in versions:
                active = snap.by_id.get(name)
                if active is None or active.table != table:
                    raise ComponentNotFound(
                        f"no listener {name!r} on table {table!r} in {self.metadata.uri}; "
                        "db.show('listener') lists them"
                    )
                if columns is not None and active.id_column not in columns:
                    extra.append(active.id_column)
        query_columns = None if columns is None else [*columns, *dict.fromkeys(extra)]
        rows = self.databackend.select(
            table, where, columns=query_columns, limit=limit, order_by=order_by
        )
        codec = self.table_codec(table) if decode else None
        if codec:
            rows = self.decode_rows(codec, rows)
        if snap is not None:
            self._listeners.attach_outputs(snap, rows, versions)
            for row in rows:
                for col in extra:
                    row.pop(col, None)
        return rows

    def _select_arrow(
        self,
        table: str,
        where: Filter | None,
        columns: Sequence[str] | None,
        limit: int | None,
        order_by: OrderBy | None,
    ) -> Any:
        backend = self.databackend
        if isinstance(backend, SupportsArrowSelect):
            return backend.select_arrow(
                table, where, columns=columns, limit=limit, order_by=order_by
            )
        require_pyarrow("select(format=...)")
        rows = backend.select(table, where, columns=columns, limit=limit, order_by=order_by)
        schema = backend.table_schema(table)
        names = schema.names if columns is None else list(dict.fromkeys(columns))
        return rows_to_arrow([schema[n] for n in names], rows)

    def update(self, table: str, where: Filter | None, values: Mapping[str, Any]) -> int:
        """Set ``values`` on matching rows (DataType columns encoded); return the match count.

        Listeners on ``table`` recompute the outputs of the updated rows whose input values
        or ``where`` membership changed before this returns: in this process, or as a job on
        an out-of-process compute backend when at least ``trigger_job_rows`` rows matched
        (as for :meth:`insert`; failures are recorded and logged, not raised).
        """
        with self._vectors.batch():
            return self._update(table, where, values)

    def _update(self, table: str, where: Filter | None, values: Mapping[str, Any]) -> int:
        snap = self._listeners.snapshot()
        ids = self._listeners.changed_ids(snap, table, where)
        codec = self.table_codec(table)
        if codec is None or not set(values) & set(codec):
            count = self.databackend.update(table, where, values)
        else:
            encoded, blobs = self._encode_rows(codec, [values])
            with self._journaled_puts("update", table, blobs):
                count = self.databackend.update(table, where, encoded[0])
        after = self._listeners.snapshot()
        if after.by_table.get(table):
            self._listeners.after_update(after, table, ids, values)
        return count

    def delete(self, table: str, where: Filter | None) -> int:
        """Delete matching rows; return how many. Listeners drop the rows' outputs (and vector
        indexes the rows' vectors)."""
        with self._vectors.batch():
            return self.delete_with_snapshot(None, table, where)

    def delete_with_snapshot(self, snap: Snapshot | None, table: str, where: Filter | None) -> int:
        """:meth:`delete` under the listener set ``snap`` (None: the current one). Internal API
        of :class:`pinnacledb.base._host.EngineHost`."""
        before = self._listeners.snapshot() if snap is None else snap
        ids = self._listeners.changed_ids(before, table, where)
        count = self.databackend.delete(table, where)
        after = self._listeners.snapshot() if snap is None else snap
        if after.by_table.get(table):
            self._listeners.after_delete(after, table, ids)
        return count

    def count(self, table: str, where: Filter | None = None) -> int:
        """How many rows match."""
        return self.databackend.count(table, where)

    def table_codec(self, table: str) -> dict[str, DataType] | None:
        """The DataType columns of ``table``'s Table component (None: none, or no component).

        Internal API of :class:`pinnacledb.base._host.StoreHost` (gc, copy and the listener
        engine read it).

        Another process may apply a new version at any time. Where the metadata store has
        :class:`~pinnacle_protocols.SupportsChangeToken`, its token is taken first and the
        answer kept with it: while the token is unchanged (nothing was written to the store,
        by any process) the kept answer is returned without a metadata read. Otherwise (no
        token, or it changed) the latest Table record is read, and the codec is decoded from
        it again only when that record changed; the components it references are pinned
        versions, so the codec is a function of the record alone.
        """
        store = self.metadata
        source = self._token_source
        if source is None or source[0] is not store:
            method = store.change_token if isinstance(store, SupportsChangeToken) else None
            source = self._token_source = (store, method)
        token = None if source[1] is None else source[1]()
        cached = self._codecs.get(table)
        if token is not None and cached is not None and cached[0] == token:
            return None if cached[2] is None else dict(cached[2])
        try:
            record: ComponentRecord | None = store.get_component(Table.type_id, table)
        except ComponentNotFound:
            record = None
        if record is None:
            codec = None
        elif cached is not None and cached[1] == record:
            codec = cached[2]
        else:
            component = self._io.from_record(record, {})
            assert isinstance(component, Table)
            codec = component.schema.encoded() or None
        if len(self._codecs) >= 1024:
            self._codecs.clear()
        self._codecs[table] = (token, record, codec)
        return None if codec is None else dict(codec)

    def _encode_rows(
        self, codec: Mapping[str, DataType], rows: Iterable[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
        """Encode DataType columns; return the rows and the by-reference blobs (not put yet)."""
        out = [dict(r) for r in rows]
        blobs: dict[str, bytes] = {}
        for row in out:
            for col, dt in codec.items():
                value = row.get(col)
                if value is None:
                    continue
                blob = dt.encode(value, self.serializers)
                if dt.by_reference:
                    sha = hashlib.sha256(blob).hexdigest()
                    blobs[sha] = blob
                    row[col] = sha
                else:
                    row[col] = blob
        return out, blobs

    @contextlib.contextmanager
    def _journaled_puts(self, kind: str, table: str, blobs: Mapping[str, bytes]) -> Iterator[None]:
        """Journal and put ``blobs``, run the body (the row write), then finish the journal job.

        The job stays RUNNING until the rows that reference the blobs are written, so a ``gc``
        running meanwhile counts them as claimed (see :mod:`pinnacledb.gc`). If the put or the
        body raises, the job is marked FAILED with the error and the error propagates.
        """
        if not blobs:
            yield
            return
        store = self.artifact_store
        job = self._io.journal_start(kind, {"table": table}, sorted(blobs))
        try:
            for sha, blob in blobs.items():
                if store.put(blob).sha256 != sha:
                    raise ArtifactCorrupted(f"{store.uri} stored bytes under another sha256")
            yield
        except BaseException as exc:
            with contextlib.suppress(Exception):  # bookkeeping; the error is what matters
                self._io.journal_finish(job, error=exc)
            raise
        self._io.journal_finish(job)

    def decode_rows(
        self, codec: Mapping[str, DataType], rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Decode the DataType columns of ``rows`` in place (and return them).

        Internal API of :class:`pinnacledb.base._host.EngineHost`.

        By-reference cells are fetched per batch of ``_DECODE_BATCH`` rows with one
        :func:`~pinnacle_protocols.protocols.get_many` call for the batch's distinct sha256s
        (every blob verified as ``get`` verifies it); each cell is then decoded on its own, so
        rows never share a decoded object.
        """
        present = [c for c in codec if any(c in r for r in rows)]
        for col in present:
            self.serializers.check_trusted(codec[col].encoder, f"column {col!r}")
        by_ref = [c for c in present if codec[c].by_reference]
        inline = [c for c in present if not codec[c].by_reference]
        serializers = self.serializers
        for col in inline:
            decode = codec[col].decoder(serializers)
            for row in rows:
                value = row.get(col)
                if value is not None:
                    row[col] = decode(bytes(value))
        if not by_ref:
            return rows
        store = self.artifact_store
        for start in range(0, len(rows), _DECODE_BATCH):
            batch = rows[start : start + _DECODE_BATCH]
            wanted = list(
                dict.fromkeys(
                    value for row in batch for col in by_ref if (value := row.get(col)) is not None
                )
            )
            if not wanted:
                continue
            blobs = dict(zip(wanted, get_many(store, wanted), strict=True))
            for col in by_ref:
                decode = codec[col].decoder(serializers)
                for row in batch:
                    value = row.get(col)
                    if value is not None:
                        row[col] = decode(blobs[value])
        return rows

    # ------------------------------------------------------------------ components
    def register_component(self, cls: type[Component]) -> None:
        """Let ``load`` build ``cls`` (classes passed to ``apply`` are registered already)."""
        self.components.register(cls)

    def apply(self, component: Component) -> ComponentRecord:
        """Store a component: artifacts first, then its record; return the stored record.

        Re-applying an unchanged component returns the existing version; a changed one gets
        the next version. Components it references are applied first and recorded as its
        children (lineage). ``component.version`` is set. A :class:`Table` also creates its
        table in the databackend if it does not exist.

        A :class:`~pinnacledb.components.listener.Listener` is checked first (its table
        exists, ``where`` fits the table, no cycle of listeners), recorded with lineage to its
        model, its source :class:`Table` component and the listener whose outputs it reads (if
        any); then the listener epoch changes (every process sees it on its next write) and a
        ``listener.backfill`` job computes the outputs of the rows already there, partitioned
        on the Datalayer's compute backend (like :meth:`predict`), before this returns.
        Re-applying an unchanged listener runs no backfill (use :meth:`catch_up`).

        A :class:`~pinnacledb.components.vector_index.VectorIndex` applies its listener first,
        refuses a listener whose outputs are not vectors
        (:class:`~pinnacle_protocols.errors.NotVectorOutputs`), records the index with lineage
        to the listener, then builds the engine over the listener's current outputs and stores
        it in the artifact store with a pointer in the metadata store (see
        :mod:`pinnacledb.vector_search`). Re-applying an unchanged index whose stored build is
        current does nothing.
        """
        from pinnacledb.components.listener import Listener
        from pinnacledb.components.vector_index import VectorIndex

        if isinstance(component, Listener):
            with self._vectors.batch():
                record = self._apply_listener(component)
            self._vectors.refresh_listener(component.identifier)
            return record
        if isinstance(component, VectorIndex):
            return self._vectors.apply(component)
        return self._io.apply(component)

    def _apply_listener(self, listener: Listener) -> ComponentRecord:
        from pinnacle_protocols.filters import validate_filter
        from pinnacledb.listeners import LISTENER_OUTPUT_COLUMNS, create_outputs_table
        from pinnacledb.predict import _default_id_column

        backend = self.databackend
        if listener.table not in backend.list_tables():
            raise TableNotFound(
                f"listener {listener.identifier!r}: no table {listener.table!r} in "
                f"{backend.uri}; create it (or apply a Table) first"
            )
        with contextlib.suppress(NotImplementedError, TableNotFound):
            schema = backend.table_schema(listener.table)
            validate_filter(listener.where, schema)
            missing = [c for c in listener.columns if c not in schema]
            if missing:
                raise SchemaError(
                    f"listener {listener.identifier!r}: table {listener.table!r} has no "
                    f"column(s) {missing}; it has {list(schema.names)}"
                )
        if listener.id_column is None:
            listener.id_column = _default_id_column(self, listener.table)
        if listener.id_column == "_id":
            # Native ObjectIds are not portable filter values yet (keyset pages, $in lookups)
            raise ConfigError(
                f"listener {listener.identifier!r}: table {listener.table!r} has no 'id' "
                "column and listeners cannot key outputs by the native '_id' yet; give the "
                "table a unique id column and pass id_column='<that column>'"
            )
        engine = self._listeners
        engine.check_cycle(listener, listener.id_column)
        if listener.output_table in backend.list_tables():
            with contextlib.suppress(NotImplementedError, TableNotFound):
                have = backend.table_schema(listener.output_table).names
                lacking = [c for c in LISTENER_OUTPUT_COLUMNS if c not in have]
                if lacking:
                    raise SchemaError(
                        f"listener {listener.identifier!r}: outputs table "
                        f"{listener.output_table!r} exists but lacks the columns {lacking} of "
                        "a listener outputs table; choose another output= or drop it"
                    )
        md = self.metadata
        before = set(md.show_versions(listener.type_id, listener.identifier))
        record = self._io.apply(listener)
        with contextlib.suppress(ComponentNotFound):
            table_key = md.get_component(Table.type_id, listener.table).key
            md.create_parent_child(record.key, table_key)
        for other in engine.snapshot().by_id.values():
            if other.output_table == listener.table and other.identifier != listener.identifier:
                md.create_parent_child(record.key, other.key)
        if record.version in before:
            return record
        engine.bump()  # BEFORE the backfill selects rows (see pinnacledb.listeners)
        snap = engine.snapshot()
        active = snap.by_id[listener.identifier]
        # a new version may narrow ``where``: outputs of rows it no longer selects go
        engine.remove_orphans(snap, active)
        create_outputs_table(self, active)
        engine.backfill(active)
        return record

    def catch_up(self, listener: str | None = None, *, stale: bool = True) -> CatchUpReport:
        """Make listener outputs match the data after writes that bypassed pinnacledb.

        For each listener (or the one named), upstream listeners first: removes outputs whose
        source row is gone or no longer matches ``where`` (an anti-join the databackend runs
        when it can, batched), then computes missing outputs and recomputes those whose input
        hash is stale or that are duplicated, reading the source in id order one batch at a
        time. With ``stale=False`` only missing outputs are looked for (anti-join, no hashing).
        Where the databackend supports it, the outputs being exactly current is first checked
        in the database (counts over the copied input values), and then nothing else runs.
        Rows the model fails on are counted in the report and recorded in the job.

        Then the vector indexes of those listeners are repaired: with ``stale=True`` each is
        rebuilt from its listener's outputs; with ``stale=False`` only a missing, unreadable or
        outdated build, or one holding a different number of vectors than the outputs table,
        is rebuilt, and an approximate engine's pending segment (the vectors of writes since
        its last fold) is folded into its graph. ``report.indexes`` says what was done per
        index.
        """
        with self._vectors.batch():
            report = self._listeners.catch_up(listener, stale=stale)
        indexes = self._vectors.catch_up(listener, stale=stale)
        return attrs.evolve(report, indexes=indexes)

    def search(
        self,
        index: str,
        like: Any,
        n: int = 10,
        where: Filter | None = None,
    ) -> list[SearchHit]:
        """The ``n`` rows nearest to ``like`` in vector index ``index``, best first.

        Args:
            index: The vector index identifier.
            like: A query vector (a 1-d array or a sequence of the index's dimension), or a
                raw input the index's listener's model turns into one (``"reset my
                password"``; a dict of column values when the listener reads several
                columns).
            n: How many rows at most.
            where: A filter (the portable filter language) on the indexed table. Exact: every
                row returned matches it, and when at least ``n`` indexed rows match, ``n``
                come back.

        Returns:
            Rows of the listener's table, decoded like :meth:`select`, best first; each is a
            :class:`~pinnacledb.vector_search.SearchHit` (a dict) with ``.id`` and ``.score``
            (higher is better: cosine similarity, inner product, or minus the L2 distance).

        Raises:
            ComponentNotFound: No such index, or its listener was removed.
            IndexNotBuilt: The stored build is missing or outdated; ``db.catch_up()`` or
                ``pinnacle index rebuild ID`` repairs it.
        """
        return self._vectors.search(index, like, n, where)

    def rebuild_index(self, index: str) -> int:
        """Build vector index ``index`` again from its listener's outputs; return its size."""
        return self._vectors.rebuild(index).count

    def _before_apply(self, component: Component) -> None:
        if isinstance(component, Table):
            self._ensure_table(component)

    def _ensure_table(self, table: Table) -> None:
        schema = table.schema.portable()
        backend = self.databackend
        if table.identifier not in backend.list_tables():
            backend.create_table(table.identifier, schema)
            return
        try:
            existing = backend.table_schema(table.identifier)
        except (TableNotFound, NotImplementedError):
            return
        if tuple((f.name, f.dtype) for f in existing.fields) != tuple(
            (f.name, f.dtype) for f in schema.fields
        ):
            raise SchemaError(
                f"table {table.identifier!r} already exists in {backend.uri} with columns "
                f"{[(f.name, f.dtype.value) for f in existing.fields]}, which do not match "
                f"{[(f.name, f.dtype.value) for f in schema.fields]}; drop or rename it first"
            )

    def load(self, type_id: str, identifier: str, version: int | None = None) -> Component:
        """Rebuild a stored component (latest version unless ``version``).

        Artifacts are hash-verified by the artifact store before any deserialization, and
        code-executing serializers are refused unless trusted.

        Raises:
            InvalidRecord: ``version`` is neither None nor an int >= 0 (``"0"`` is refused,
                not looked up).
        """
        return self._io.load(type_id, identifier, check_version(version))

    @overload
    def show(self) -> list[ComponentKey]: ...
    @overload
    def show(self, type_id: str) -> list[str]: ...
    @overload
    def show(self, type_id: str, identifier: str) -> list[int]: ...
    def show(
        self, type_id: str | None = None, identifier: str | None = None
    ) -> list[ComponentKey] | list[str] | list[int]:
        """``show()``: latest key of every component; ``show(type_id)``: identifiers;
        ``show(type_id, identifier)``: versions."""
        if type_id is None:
            if identifier is not None:
                raise TypeError("show(identifier=...) needs type_id too")
            return self.metadata.show_components()
        if identifier is None:
            return [k.identifier for k in self.metadata.show_components(type_id)]
        return self.metadata.show_versions(type_id, identifier)

    def get_record(
        self, type_id: str, identifier: str, version: int | None = None
    ) -> ComponentRecord:
        """The stored record of a component version (no artifacts read)."""
        return self.metadata.get_component(type_id, identifier, check_version(version))

    def remove(
        self, type_id: str, identifier: str, version: int | None = None, *, force: bool = False
    ) -> list[ComponentKey]:
        """Delete one version (or all with ``version=None``); return the removed keys.

        Artifacts stay until ``gc()`` finds them unreferenced. Removing a listener stops its
        triggers in every process; with ``force=True`` (and no version left) its outputs table
        is dropped too.

        Raises:
            ComponentNotFound: nothing to remove.
            ComponentInUse: another component depends on a version and ``force`` is False;
                nothing was removed.
        """
        md = self.metadata
        version = check_version(version)
        versions = [version] if version is not None else md.show_versions(type_id, identifier)
        if not versions:
            raise ComponentNotFound(
                f"no component {type_id} {identifier!r} in {describe_location(md.uri)}"
            )
        keys = [ComponentKey(type_id=type_id, identifier=identifier, version=v) for v in versions]
        if version is not None:
            md.get_component(type_id, identifier, version)  # ComponentNotFound if absent
        if not force:
            removing = set(keys)
            for key in keys:
                users = [p for p in md.get_parents(key) if p not in removing]
                if users:
                    shown = ", ".join(f"{p.type_id} {p.identifier!r} v{p.version}" for p in users)
                    raise ComponentInUse(
                        f"{type_id} {identifier!r} v{key.version} is used by {shown}; remove "
                        "those first or pass force=True (nothing was removed)"
                    )
        from pinnacledb.components.listener import Listener
        from pinnacledb.components.vector_index import VectorIndex

        active = None
        if type_id == Listener.type_id:
            from pinnacledb.listeners import active_from_record

            with contextlib.suppress(ComponentNotFound, PinnacleError):
                active = active_from_record(md.get_component(type_id, identifier))
        for key in keys:
            md.delete_component_version(type_id, identifier, key.version, force=force)
        if type_id == VectorIndex.type_id:
            if not md.show_versions(type_id, identifier):
                self._vectors.forget(identifier)
            self._listeners.bump()  # every process stops keeping it current
        if type_id == Listener.type_id:
            self._listeners.bump()  # every process stops triggering it on its next write
            backend = self.databackend
            if (
                force
                and active is not None
                and not md.show_versions(type_id, identifier)
                and active.output_table in backend.list_tables()
            ):
                backend.drop_table(active.output_table)
        if force:
            for key in keys:
                for job in md.show_jobs(component=key):
                    md.delete_job(job.job_id)
        return keys

    def drop(self, *, force: bool = False) -> None:
        """Delete every user table, component record and artifact of the three stores.

        Raises:
            DropRefused: ``force`` is not True; nothing was deleted.
        """
        if force is not True:
            s = self._slots
            raise DropRefused(
                f"db.drop() deletes every table in {s['databackend'].uri}, every component, "
                f"job and lineage record in {s['metadata'].uri} and every artifact in "
                f"{s['artifact_store'].uri}; nothing was deleted. Call db.drop(force=True)."
            )
        self.databackend.drop(force=True)
        self.metadata.drop(force=True)
        self.artifact_store.drop(force=True)

    # ------------------------------------------------------------------ jobs, predict, gc
    def predict(
        self,
        model: str | Model,
        table: str,
        *,
        inputs: str | Sequence[str],
        output: str | None = None,
        where: Filter | None = None,
        version: int | None = None,
        id_column: str | None = None,
        batch_size: int = 1000,
        partition_size: int | None = None,
        retries: int = 0,
    ) -> PredictResult:
        """Run a model over selected rows and write its outputs to an outputs table.

        The work runs on :attr:`compute` (``local://`` unless configured). See
        :func:`pinnacledb.predict.predict`.
        """
        from pinnacledb.predict import predict

        return predict(
            self,
            model,
            table,
            inputs=inputs,
            output=output,
            where=where,
            version=check_version(version),
            id_column=id_column,
            batch_size=batch_size,
            partition_size=partition_size,
            retries=retries,
        )

    def show_jobs(self, kind: str | None = None) -> list[JobRecord]:
        """Jobs in the metadata store (optionally of one kind)."""
        jobs = self.metadata.show_jobs()
        return [j for j in jobs if kind is None or j.kind == kind]

    def jobs(
        self,
        status: JobStatus | str | None = None,
        component: str | ComponentKey | None = None,
        *,
        kind: str | None = None,
        limit: int | None = 100,
    ) -> list[JobRecord]:
        """Jobs, newest first: optionally of one status, one component and one kind.

        Args:
            status: ``queued``, ``running``, ``success``, ``failed`` or ``cancelled``.
            component: A component identifier (any type and version) or an exact key.
            kind: Only jobs of this kind (``predict``, ``apply``, ...).
            limit: At most this many (None: all).
        """
        wanted = None if status is None else JobStatus(status)
        if isinstance(component, ComponentKey):
            found = self.metadata.show_jobs(component=component, status=wanted)
        else:
            found = self.metadata.show_jobs(status=wanted)
            if component is not None:
                found = [
                    j
                    for j in found
                    if j.component is not None and j.component.identifier == component
                ]
        if kind is not None:
            found = [j for j in found if j.kind == kind]
        found.reverse()
        return found if limit is None else found[: max(0, limit)]

    def job(self, job_id: str) -> JobRecord:
        """One job record (``JobNotFound`` if absent)."""
        return self.metadata.get_job(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Wait until a job ends and return its record.

        A job this Datalayer submitted is driven from here (its record updated as tasks
        finish); any other job is followed through its record.

        Raises:
            JobTimeout: it is still running after ``timeout`` seconds (it keeps running).
        """
        return self.job_driver.wait(self.metadata, job_id, timeout)

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a job: no task starts afterwards; tasks already running finish.

        Outputs already written stay (each task writes its partition idempotently). A job
        another process runs is marked cancelled, and its driver cancels it on the runner.
        """
        return self.job_driver.cancel(self.metadata, job_id)

    def remove_jobs(
        self,
        *,
        older_than: timedelta | datetime | float | None = None,
        status: JobStatus | str | None = None,
    ) -> list[str]:
        """Delete finished job records; return their ids.

        Args:
            older_than: Only jobs created before this (a datetime, a timedelta before now, or
                seconds before now).
            status: Only jobs of this status (jobs still queued or running are never removed).
        """
        from pinnacle_protocols.serialization import utcnow

        cutoff: datetime | None
        if isinstance(older_than, bool):
            raise TypeError("older_than must be a datetime, a timedelta or seconds, not a bool")
        if isinstance(older_than, (int, float)):
            older_than = timedelta(seconds=float(older_than))
        if isinstance(older_than, timedelta):
            cutoff = utcnow() - older_than
        else:
            cutoff = older_than
        wanted = None if status is None else JobStatus(status)
        removed = []
        for job in self.metadata.show_jobs(status=wanted):
            if not job.status.finished and job.status is not JobStatus.PENDING:
                continue
            if cutoff is not None and (job.created_at is None or job.created_at >= cutoff):
                continue
            self.metadata.delete_job(job.job_id)
            removed.append(job.job_id)
        return removed

    def gc(
        self,
        *,
        dry_run: bool = False,
        grace_seconds: float | None = None,
        progress: Progress | None = None,
    ) -> GCReport:
        """Delete artifacts that nothing references and that are older than the grace period.

        See :mod:`pinnacledb.gc` for how age and in-flight writes are tracked.

        Raises:
            ConfigError: ``grace_seconds`` is not a finite number of seconds >= 0.
        """
        from pinnacledb.gc import collect_garbage

        if grace_seconds is not None:
            grace_seconds = check_grace_seconds(grace_seconds, "grace_seconds")
        return collect_garbage(
            self,
            dry_run=dry_run,
            grace_seconds=self.gc_grace_seconds if grace_seconds is None else grace_seconds,
            progress=progress,
        )

    def copy_to(
        self,
        other: Datalayer,
        *,
        tables: Sequence[str] | None = None,
        all_tables: bool = False,
        dry_run: bool = False,
        batch_size: int = 10_000,
        progress: Progress | None = None,
        workers: int = 4,
    ) -> CopyReport:
        """Copy every component version, artifact, lineage edge and job (and tables) to ``other``.

        Idempotent and resumable; conflicting versions raise ``CopyConflict`` and nothing is
        overwritten. See :func:`pinnacledb.copy.copy_deployment`.
        """
        from pinnacledb.copy import copy_deployment

        return copy_deployment(
            self,
            other,
            tables=tables,
            all_tables=all_tables,
            dry_run=dry_run,
            batch_size=batch_size,
            progress=progress,
            workers=workers,
        )
