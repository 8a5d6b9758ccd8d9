"""``db.predict``: run a stored model over table rows into an outputs table, as a job."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
from attrs import frozen

from pinnacle_protocols.errors import PinnacleError, SchemaError, TableNotFound
from pinnacle_protocols.records import (
    ComponentKey,
    DType,
    Field,
    JobRecord,
    JobStatus,
    JSONValue,
    Schema,
)
from pinnacle_protocols.serialization import utcnow
from pinnacle_protocols.uri import redact
from pinnacledb.components.model import Model

if TYPE_CHECKING:
    from pinnacle_protocols.filters import Filter
    from pinnacledb.base.datalayer import Datalayer

__all__ = ["OUTPUT_COLUMNS", "PredictResult", "output_table_name", "predict"]

#: Columns of an outputs table besides ``output``.
OUTPUT_COLUMNS = ("source_id", "model", "model_version", "job_id", "output")


@frozen(kw_only=True)
class PredictResult:
    """What a prediction run did.

    Attributes:
        job: The finished job record (status, timings, error).
        output_table: Table the outputs were written to.
        rows: How many outputs were written.
        seconds: Wall time of the run.
    """

    job: JobRecord
    output_table: str
    rows: int
    seconds: float


def output_table_name(identifier: str) -> str:
    """Default outputs table of a model: ``outputs__<identifier>`` made a safe table name."""
    return "outputs__" + re.sub(r"[^0-9A-Za-z_]", "_", identifier)


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


def _id_dtype(db: Datalayer, table: str, id_column: str) -> DType:
    try:
        schema = db.databackend.table_schema(table)
    except (TableNotFound, NotImplementedError, PinnacleError):
        return DType.STR
    if id_column in schema and schema[id_column].dtype in (DType.INT, DType.STR):
        return schema[id_column].dtype
    return DType.STR


def _default_id_column(db: Datalayer, table: str) -> str:
    """``id`` if the table has it, else the backend's native ``_id``, else ``id`` (an error)."""
    try:
        if "id" in db.databackend.table_schema(table):
            return "id"
    except (TableNotFound, NotImplementedError, PinnacleError):
        pass
    return "_id" if getattr(type(db.databackend), "has_native_ids", False) else "id"


def predict(
    db: Datalayer,
    model: str | Model,
    table: str,
    *,
    inputs: str | Sequence[str],
    output: str | None = None,
    where: Filter | None = None,
    version: int | None = None,
    id_column: str | None = None,
    batch_size: int = 1000,
) -> PredictResult:
    """Run a model over rows of ``table`` and write one output row per input row.

    Args:
        db: The Datalayer.
        model: A model identifier (loaded from the metadata store), or a Model (applied
            first if it has no version yet).
        table: Source table.
        inputs: One column (each input is its value) or several (each input is the list).
        output: Outputs table (default ``outputs__<model identifier>``); created if needed with
            columns ``source_id, model, model_version, job_id, output``.
        where: Filter on the source rows.
        version: Model version when ``model`` is an identifier (default latest).
        id_column: Source row id column (default ``id`` when the table has one, else ``_id`` on
            backends with native ids).
        batch_size: Rows per model call.

    Previous outputs of the same model version for the same source rows are replaced. A job
    record (kind ``predict``) tracks status, timings and the error on failure.
    """
    started = time.perf_counter()
    if isinstance(model, str):
        loaded = db.load("model", model, version)
        if not isinstance(loaded, Model):
            raise PinnacleError(f"component model {model!r} is not a Model")
        model = loaded
    elif model.version is None:
        db.apply(model)
    assert model.version is not None
    key = ComponentKey(type_id=model.type_id, identifier=model.identifier, version=model.version)
    columns = [inputs] if isinstance(inputs, str) else list(inputs)
    if id_column is None:
        id_column = _default_id_column(db, table)
    out_table = output or output_table_name(model.identifier)
    md = db.metadata
    job = md.create_job(
        JobRecord(
            job_id=f"predict-{uuid.uuid4().hex}",
            kind="predict",
            status=JobStatus.RUNNING,
            component=key,
            args={
                "table": table,
                "inputs": list[JSONValue](columns),
                "output": out_table,
                "id_column": id_column,
                "where": repr(where) if where else None,
            },
            started_at=utcnow(),
        )
    )
    written = 0
    try:
        rows = db.select(table, where, columns=[id_column, *columns])
        if rows and id_column not in rows[0]:
            raise SchemaError(
                f"table {table!r} has no id column {id_column!r}; pass id_column= naming a "
                "unique column of the source table"
            )
        id_type = _id_dtype(db, table, id_column)
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            xs = [
                r[columns[0]] if isinstance(inputs, str) else [r[c] for c in columns] for r in batch
            ]
            ys = [_python(y) for y in model.predict(xs)]
            if len(ys) != len(batch):
                raise PinnacleError(
                    f"model {model.identifier!r} returned {len(ys)} outputs for {len(batch)} inputs"
                )
            ids = [r[id_column] if id_type is not DType.STR else str(r[id_column]) for r in batch]
            _ensure_output_table(db, out_table, id_type, ys)
            if db.databackend.supports_delete:
                db.delete(
                    out_table,
                    {
                        "model": model.identifier,
                        "model_version": key.version,
                        "source_id": {"$in": ids},
                    },
                )
            written += db.insert(
                out_table,
                [
                    {
                        "source_id": i,
                        "model": model.identifier,
                        "model_version": key.version,
                        "job_id": job.job_id,
                        "output": y,
                    }
                    for i, y in zip(ids, ys, strict=True)
                ],
            )
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
    job = md.update_job(attrs.evolve(job, status=JobStatus.SUCCESS, finished_at=utcnow()))
    return PredictResult(
        job=job, output_table=out_table, rows=written, seconds=time.perf_counter() - started
    )


def _ensure_output_table(db: Datalayer, name: str, id_type: DType, ys: Sequence[Any]) -> None:
    first = next((y for y in ys if y is not None), None)
    out_type = DType.FLOAT if first is None else _dtype_of(first)
    if out_type is DType.INT and any(isinstance(y, float) for y in ys):
        out_type = DType.FLOAT
    backend = db.databackend
    if name in backend.list_tables():
        return
    backend.create_table(
        name,
        Schema(
            fields=(
                Field(name="source_id", dtype=id_type),
                Field(name="model", dtype=DType.STR),
                Field(name="model_version", dtype=DType.INT),
                Field(name="job_id", dtype=DType.STR),
                Field(name="output", dtype=out_type),
            )
        ),
    )
