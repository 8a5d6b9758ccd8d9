"""The ``predict`` task: one partition of source rows through a model into the outputs table.

Runs on a worker. It opens the Datalayer from the store URIs in the task (or, on an in-process
runner, uses the caller's), loads the model version (hash-verified; code-executing serializers
only if the task's trusted list names them, which is the caller's own list), selects its
partition, predicts in batches and, per batch, deletes the outputs of those source ids for this
model version before inserting, so running a partition twice never duplicates a row. The delete
is skipped when the task knows no such output exists (see :class:`_Outputs`): the common first
run is then one insert per batch, with no per-row filter to build.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    from pinnacledb.components.model import Model

    p = task.payload
    job_id = str(p["job_id"])
    local = in_process(job_id)
    exclusive = bool(p.get("exclusive")) and local is None
    if local is not None:
        db, where = local.db, local.where
        assert local.model is not None
        model = local.model
    else:
        stores = p["stores"]
        trust = p.get("trust_serializers") or []
        assert isinstance(stores, dict)
        assert isinstance(trust, list)
        db = worker_datalayer(stores, [str(t) for t in trust])
        comp = p["component"]
        assert isinstance(comp, dict)
        model = worker_component(
            db, str(comp["type_id"]), str(comp["identifier"]), int(str(comp["version"]))
        )
        where = p.get("where")
    if not isinstance(model, Model):
        raise PinnacleError(f"component {model.identifier!r} is not a Model")
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
    outputs = _Outputs(db, out_table, id_type, model.identifier, version, p["partition"])
    pending = _Pending()
    written = 0

    def flush() -> int:
        if not pending.rows:
            return 0

        def write() -> int:
            with exclusive_databackend(db, exclusive):
                outputs.ensure(pending.first_ys)
                outputs.delete_previous(pending.ids)
                count = db.insert(out_table, pending.out)
                outputs.wrote(pending.ids)
                return count

        try:
            return retry_locked(write, exclusive)
        finally:
            pending.clear()  # written, or failed: never written twice by this task

    write_rows = max(batch_size, WRITE_ROWS)
    try:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            xs = [r[columns[0]] if single else [r[c] for c in columns] for r in batch]
            ys = [_python(y) for y in model.predict(xs)]
            if len(ys) != len(batch):
                raise PinnacleError(
                    f"model {model.identifier!r} returned {len(ys)} outputs for "
                    f"{len(batch)} inputs"
                )
            if id_type is DType.STR:
                ids = [str(r[id_column]) for r in batch]
            else:
                ids = [r[id_column] for r in batch]
            pending.add(
                ids,
                ys,
                [
                    {
                        "source_id": i,
                        "model": model.identifier,
                        "model_version": version,
                        "job_id": job_id,
                        "output": y,
                    }
                    for i, y in zip(ids, ys, strict=True)
                ],
            )
            if pending.rows >= write_rows:
                written += flush()
    except Exception:
        flush()  # the batches before the failing one are written, as if written one by one
        raise
    written += flush()
    return {"rows": written}


#: Output rows a predict task gathers (whole batches) before one delete + insert: fewer, larger
#: write transactions (a commit is a file sync on SQLite, a lock turn on a shared DuckDB file).
WRITE_ROWS = 10_000


class _Pending:
    """Outputs of whole batches not written yet."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.ids: list[Any] = []
        self.out: list[dict[str, Any]] = []
        self.first_ys: list[Any] = []  # the first batch's outputs type a new outputs table
        self.rows = 0

    def add(self, ids: list[Any], ys: list[Any], out: list[dict[str, Any]]) -> None:
        if not self.rows:
            self.first_ys = ys
        self.ids += ids
        self.out += out
        self.rows += len(out)


class _Outputs:
    """One task's writes to the outputs table: created (and indexed) once, and previous outputs
    of the batch's source ids deleted only where some may exist.

    Idempotence: a batch's previous outputs (same model and version, same source ids) are
    deleted before it is inserted, unless the task knows none exist: the outputs table did not
    exist when the task created it, or one count at the task's first write found no output of
    this model version in the task's partition, and no earlier batch of this task wrote one of
    the ids. A retried task finds its first attempt's outputs by that count, so it deletes.
    """

    def __init__(
        self,
        db: Datalayer,
        table: str,
        id_type: DType,
        model: str,
        version: int,
        partition: Any,
    ) -> None:
        self.db = db
        self.table = table
        self.id_type = id_type
        self.model = model
        self.version = version
        self.partition = partition
        self.ready = False
        #: None: previous outputs may exist (delete before every insert)
        self.written: set[Any] | None = None

    def ensure(self, ys: Sequence[Any]) -> None:
        """Create the outputs table (first write of the task only)."""
        if self.ready:
            return
        created = ensure_output_table(self.db, self.table, self.id_type, ys)
        if created or not self._any_in_partition():
            self.written = set()
        self.ready = True

    def delete_previous(self, ids: list[Any]) -> None:
        """Delete the outputs this model version has for ``ids`` (none when none can exist)."""
        if not self.db.databackend.supports_delete:
            return
        if self.written is not None and self.written.isdisjoint(ids):
            return
        where = {"model": self.model, "model_version": self.version, "source_id": _match(ids)}
        self.db.delete(self.table, where)

    def wrote(self, ids: list[Any]) -> None:
        """Record the source ids this task has written."""
        if self.written is not None:
            self.written.update(ids)

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


def _python(value: Any) -> Any:
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
