"""The ``predict`` task: one partition of source rows through a model into the outputs table.

Runs on a worker. It opens the Datalayer from the store URIs in the task (or, on an in-process
runner, uses the caller's), loads the model version (hash-verified; code-executing serializers
only if the task's trusted list names them, which is the caller's own list), selects its
partition, predicts in batches and, per batch, deletes the outputs of those source ids for this
model version before inserting, so running a partition twice never duplicates a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pinnacle_protocols.compute import Task
from pinnacle_protocols.errors import PinnacleError, TableExists
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

__all__ = ["partition_filter", "run_predict_task"]


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
    written = 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        xs = [r[columns[0]] if single else [r[c] for c in columns] for r in batch]
        ys = [_python(y) for y in model.predict(xs)]
        if len(ys) != len(batch):
            raise PinnacleError(
                f"model {model.identifier!r} returned {len(ys)} outputs for {len(batch)} inputs"
            )
        ids = [r[id_column] if id_type is not DType.STR else str(r[id_column]) for r in batch]
        out = [
            {
                "source_id": i,
                "model": model.identifier,
                "model_version": version,
                "job_id": job_id,
                "output": y,
            }
            for i, y in zip(ids, ys, strict=True)
        ]

        def write(ids: list[Any] = ids, ys: list[Any] = ys, out: list[dict[str, Any]] = out) -> int:
            with exclusive_databackend(db, exclusive):
                ensure_output_table(db, out_table, id_type, ys)
                if db.databackend.supports_delete:
                    db.delete(
                        out_table,
                        {
                            "model": model.identifier,
                            "model_version": version,
                            "source_id": {"$in": ids},
                        },
                    )
                return db.insert(out_table, out)

        written += retry_locked(write, exclusive)
    return {"rows": written}


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


def ensure_output_table(db: Datalayer, name: str, id_type: DType, ys: Sequence[Any]) -> None:
    """Create the outputs table from the first outputs seen (another worker may race us)."""
    first = next((y for y in ys if y is not None), None)
    out_type = DType.FLOAT if first is None else _dtype_of(first)
    if out_type is DType.INT and any(isinstance(y, float) for y in ys):
        out_type = DType.FLOAT
    backend = db.databackend
    if name in backend.list_tables():
        return
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
        pass  # created by another task meanwhile
    except PinnacleError:
        if name not in backend.list_tables():
            raise
