"""The ``predict`` task: one partition of source rows through a model into the outputs table.

Runs on a worker. It opens the Datalayer from the store URIs in the task (or, on an in-process
runner, uses the caller's), loads the model version (hash-verified; code-executing serializers
only if the task's trusted list names them, which is the caller's own list), selects its
partition, predicts in batches and writes them :data:`WRITE_ROWS` rows at a time, deleting the
outputs of those source ids for this model version before inserting, so running a partition
twice never duplicates a row. The delete is skipped when the task knows no such output exists
(see :class:`_Outputs`): the common first run is then one insert per write, with no per-row
filter to build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pinnacle_protocols.compute import Task
from pinnacle_protocols.errors import PinnacleError, TableExists
from pinnacle_protocols.protocols import SupportsIndexes
from pinnacle_protocols.records import DType, Field, JSONValue, Schema
from pinnacledb.jobs._worker import (
    exclusive_databackend,
    in_process,
    retry_locked,
    worker_component,
    worker_datalayer,
)

if TYPE_CHECKING:
    from pinnacledb.base.datalayer import Datalayer
    from pinnacledb.components.model import Model

__all__ = ["OUTPUT_INDEX", "partition_filter", "run_predict_task"]

#: Index of an outputs table (where the backend has them): deletes by source id and model version.
OUTPUT_INDEX = ("source_id", "model_version")


def partition_filter(id_column: str, partition: Any) -> dict[str, Any] | None:
    """The filter that selects one partition: an id range, an id list, or everything."""
    if "range" in partition:
        lo, hi = partition["range"]
        return {id_column: {"$gte": lo, "$lte": hi}}
    if "ids" in partition:
        return {id_column: {"$in": list(partition["ids"])}}
    return None


def _and(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return {"$and": [a, b]}


def run_predict_task(task: Task) -> JSONValue:
    """Predict one partition; return ``{"rows": n}`` (outputs written)."""
    p = task.payload
    job_id = str(p["job_id"])
    db, model, where, exclusive = _task_model(p, job_id)
    id_column = str(p["id_column"])
    columns = [str(c) for c in p["inputs"]]  # type: ignore[union-attr]
    single = bool(p["single_input"])
    table = str(p["table"])
    out_table = str(p["output"])
    id_type = DType(str(p["id_type"]))
    batch_size = int(str(p["batch_size"]))
    version = int(str(p["model_version"]))
    query = _and(where, partition_filter(id_column, p["partition"]))

    def read() -> list[dict[str, Any]]:
        with exclusive_databackend(db, exclusive):
            return db.select(table, query, columns=[id_column, *columns])

    rows = retry_locked(read, exclusive)
    outputs = _Outputs(
        db,
        table=out_table,
        id_type=id_type,
        model=model.identifier,
        version=version,
        job_id=job_id,
        partition=p["partition"],
        exclusive=exclusive,
    )
    write_rows = max(batch_size, WRITE_ROWS)
    written = 0
    try:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            xs = [r[columns[0]] if single else [r[c] for c in columns] for r in batch]
            ys = [python_value(y) for y in model.predict(xs)]
            if len(ys) != len(batch):
                raise PinnacleError(
                    f"model {model.identifier!r} returned {len(ys)} outputs for {len(batch)} inputs"
                )
            if id_type is DType.STR:
                outputs.add([str(r[id_column]) for r in batch], ys)
            else:
                outputs.add([r[id_column] for r in batch], ys)
            if outputs.pending >= write_rows:
                written += outputs.flush()
    except Exception:
        outputs.flush()  # the batches before the failing one are written, as one by one
        raise
    written += outputs.flush()
    return {"rows": written}


def _task_model(p: Mapping[str, Any], job_id: str) -> tuple[Datalayer, Model, Any, bool]:
    """The task's Datalayer, model, source filter and whether the databackend is exclusive."""
    from pinnacledb.components.model import Model

    local = in_process(job_id)
    exclusive = bool(p.get("exclusive")) and local is None
    if local is not None:
        db, where = local.db, local.where
        assert local.model is not None
        model = local.model
    else:
        db = worker_datalayer(p)
        comp = p["component"]
        assert isinstance(comp, dict)
        model = worker_component(
            db, str(comp["type_id"]), str(comp["identifier"]), int(str(comp["version"]))
        )
        where = p.get("where")
    if not isinstance(model, Model):
        raise PinnacleError(f"component {model.identifier!r} is not a Model")
    return db, model, where, exclusive


#: Output rows a predict task gathers (whole batches) before one delete + insert: fewer, larger
#: write transactions (a commit is a file sync on SQLite, a lock turn on a shared DuckDB file).
WRITE_ROWS = 20_000


class _Outputs:
    """One task's writes to the outputs table: whole batches gathered and written together,
    the table created (and indexed) once, and previous outputs of the written source ids
    deleted only where some may exist.

    The result is that of a delete-then-insert per batch: a batch's previous outputs (same
    model and version, same source ids) are deleted before it is inserted, unless the task
    knows none exist: the outputs table did not exist when the task created it, or one count
    at the task's first write found no output of this model version in the task's partition,
    and no earlier batch of this task wrote one of the ids. A retried task finds its first
    attempt's outputs by that count, so it deletes. An id (in a source table where it is not
    unique) in two gathered batches keeps the later batch's outputs.
    """

    def __init__(
        self,
        db: Datalayer,
        *,
        table: str,
        id_type: DType,
        model: str,
        version: int,
        job_id: str,
        partition: Any,
        exclusive: bool,
    ) -> None:
        self.db = db
        self.table = table
        self.id_type = id_type
        self.model = model
        self.version = version
        self.job_id = job_id
        self.partition = partition
        self.exclusive = exclusive
        self.ready = False
        #: None: previous outputs may exist (delete before every insert)
        self.written: set[Any] | None = None
        self._clear()

    def _clear(self) -> None:
        self.ids: list[Any] = []
        self.out: list[dict[str, Any]] = []
        self.first_ys: list[Any] = []  # the task's first batch types a new outputs table
        self.seen: set[Any] = set()
        self.pending = 0  # rows predicted, not written (a later batch may replace some)

    def add(self, ids: list[Any], ys: list[Any]) -> None:
        """Gather one batch's outputs."""
        if not self.pending:
            self.first_ys = ys
        new = set(ids)
        if not new.isdisjoint(self.seen):
            # an id of an earlier gathered batch: its outputs there are replaced, as that
            # batch's own delete-then-insert would have been
            keep = [n for n, i in enumerate(self.ids) if i not in new]
            self.ids = [self.ids[n] for n in keep]
            self.out = [self.out[n] for n in keep]
        self.seen |= new
        self.ids += ids
        self.out += [
            {
                "source_id": i,
                "model": self.model,
                "model_version": self.version,
                "job_id": self.job_id,
                "output": y,
            }
            for i, y in zip(ids, ys, strict=True)
        ]
        self.pending += len(ids)

    def flush(self) -> int:
        """Write the gathered outputs (one delete where needed, one insert); return the rows
        predicted. Failed or not, they are dropped: this task never writes them twice."""
        if not self.pending:
            return 0

        def write() -> int:
            with exclusive_databackend(self.db, self.exclusive):
                self._ensure(self.first_ys)
                self._delete_previous(self.ids)
                self.db.insert(self.table, self.out)
                if self.written is not None:
                    self.written.update(self.ids)
                return self.pending

        try:
            return retry_locked(write, self.exclusive)
        finally:
            self._clear()

    def _ensure(self, ys: Sequence[Any]) -> None:
        """Create the outputs table (first write of the task only)."""
        if self.ready:
            return
        created = ensure_output_table(self.db, self.table, self.id_type, ys)
        if created or not self._any_in_partition():
            self.written = set()
        self.ready = True

    def _delete_previous(self, ids: list[Any]) -> None:
        """Delete the outputs this model version has for ``ids`` (none when none can exist)."""
        if not self.db.databackend.supports_delete:
            return
        if self.written is not None and self.written.isdisjoint(ids):
            return
        where = {"model": self.model, "model_version": self.version, "source_id": _match(ids)}
        self.db.delete(self.table, where)

    def _any_in_partition(self) -> bool:
        """Whether an output of this model version exists for the partition (True: unknown)."""
        if not self.db.databackend.supports_delete:
            return True  # never deletes anyway
        base: dict[str, Any] = {"model": self.model, "model_version": self.version}
        part = self.partition
        backend = self.db.databackend
        if "range" in part:
            if self.id_type is not DType.INT:
                return True  # int ranges, stored as text: not comparable as a range
            lo, hi = part["range"]
            return backend.count(self.table, {**base, "source_id": {"$gte": lo, "$lte": hi}}) > 0
        if "ids" in part:
            ids = list(part["ids"])
            if self.id_type is DType.STR:
                ids = [str(i) for i in ids]
            return any(
                backend.count(self.table, {**base, "source_id": {"$in": ids[n : n + _CHUNK]}})
                for n in range(0, len(ids), _CHUNK)
            )
        return backend.count(self.table, base) > 0


#: Ids per ``$in`` of a partition's count.
_CHUNK = 1000


def _match(ids: list[Any]) -> Any:
    """The ``source_id`` condition matching exactly ``ids``: a range when they are every int
    from their min to their max (one cheap range, not a ``$in`` of each), else ``$in``."""
    if ids and all(type(i) is int for i in ids):
        lo, hi = min(ids), max(ids)
        if hi - lo + 1 == len(ids) and len(set(ids)) == len(ids):
            return {"$gte": lo, "$lte": hi}
    return {"$in": ids}


def python_value(value: Any) -> Any:
    """numpy scalars/arrays to plain Python values."""
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def _dtype_of(value: Any) -> DType:
    if isinstance(value, bool):
        return DType.BOOL
    if isinstance(value, int):
        return DType.INT
    if isinstance(value, float):
        return DType.FLOAT
    if isinstance(value, str):
        return DType.STR
    if isinstance(value, bytes):
        return DType.BYTES
    return DType.JSON


def ensure_output_table(db: Datalayer, name: str, id_type: DType, ys: Sequence[Any]) -> bool:
    """Create the outputs table from the first outputs seen (another worker may race us), with
    an index on ``source_id, model_version`` where the backend has indexes; True if this call
    created it."""
    first = next((y for y in ys if y is not None), None)
    out_type = DType.FLOAT if first is None else _dtype_of(first)
    if out_type is DType.INT and any(isinstance(y, float) for y in ys):
        out_type = DType.FLOAT
    backend = db.databackend
    if name in backend.list_tables():
        return False
    schema = Schema(
        fields=(
            Field(name="source_id", dtype=id_type),
            Field(name="model", dtype=DType.STR),
            Field(name="model_version", dtype=DType.INT),
            Field(name="job_id", dtype=DType.STR),
            Field(name="output", dtype=out_type),
        )
    )
    try:
        backend.create_table(name, schema)
    except TableExists:
        return False  # created by another task meanwhile
    except PinnacleError:
        if name not in backend.list_tables():
            raise
        return False
    if isinstance(backend, SupportsIndexes):
        backend.create_index(name, list(OUTPUT_INDEX))
    return True
