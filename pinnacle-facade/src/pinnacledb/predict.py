"""``db.predict``: run a stored model over table rows into an outputs table, as a job.

The source ids are read once and cut into partitions (id ranges for integer ids, id lists
otherwise); each partition is a :class:`~pinnacle_protocols.compute.Task` handed to the
Datalayer's compute backend (``local://``, ``processes://``, ``dask://`` ...), which runs
:func:`pinnacledb.jobs._predict.run_predict_task` on it.
"""

from __future__ import annotations

import math
import os
import re
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from attrs import frozen

from pinnacle_protocols.compute import Task
from pinnacle_protocols.errors import (
    ConfigError,
    InvalidRecord,
    JobFailed,
    PinnacleError,
    SchemaError,
    TableNotFound,
)
from pinnacle_protocols.records import (
    ComponentKey,
    DType,
    JobRecord,
    JobStatus,
    JSONValue,
    check_json,
)
from pinnacle_protocols.uri import RedactedURI
from pinnacledb.components.model import Model
from pinnacledb.jobs._worker import (
    EXCLUSIVE_FILE_SCHEMES,
    InProcessJob,
    register_in_process,
    unregister_in_process,
)

if TYPE_CHECKING:
    from pinnacle_protocols.filters import Filter
    from pinnacledb.base._host import JobHost

__all__ = [
    "OUTPUT_COLUMNS",
    "PredictResult",
    "default_partition_size",
    "output_table_name",
    "plan_partitions",
    "predict",
]

#: Columns of an outputs table besides ``output``.
OUTPUT_COLUMNS = ("source_id", "model", "model_version", "job_id", "output")
#: Default number of partitions a job is cut into on a runner without worker slots
#: (``local://``; fewer when rows are few, more when a task would get over MAX_TASK_ROWS).
DEFAULT_PARTITIONS = 16
#: Most source rows a task gets when the caller gives no ``partition_size`` (larger jobs are
#: cut into more tasks): a task holds its partition's rows in memory, and progress, cancel (a
#: running task finishes) and a retry move a whole task at a time.
MAX_TASK_ROWS = 50_000


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


def _id_dtype(db: JobHost, table: str, id_column: str) -> DType:
    try:
        schema = db.databackend.table_schema(table)
    except (TableNotFound, NotImplementedError, PinnacleError):
        return DType.STR
    if id_column in schema and schema[id_column].dtype in (DType.INT, DType.STR):
        return schema[id_column].dtype
    return DType.STR


def _default_id_column(db: JobHost, table: str) -> str:
    """``id`` if the table has it, else the backend's native ``_id``, else ``id`` (an error)."""
    try:
        if "id" in db.databackend.table_schema(table):
            return "id"
    except (TableNotFound, NotImplementedError, PinnacleError):
        pass
    return "_id" if type(db.databackend).has_native_ids else "id"


def _is_json(value: Any) -> bool:
    if isinstance(value, list) and all(type(v) is int for v in value):
        # the usual source ids: JSON when every one fits in 64 bits
        return not value or (min(value) >= -(2**63) and max(value) < 2**63)
    try:
        check_json(value)
    except InvalidRecord:
        return False
    return True


def default_partition_size(backend: object, rows: int, batch_size: int) -> int:
    """Source rows per task of a job of ``rows`` rows when the caller gives no partition size.

    A runner with worker slots (``capacity()``) and a ``tasks_per_slot`` (every
    :class:`~pinnacle_protocols.compute.PooledComputeBackend`) gets that many tasks per slot:
    16 on two ``processes://`` workers, 4 on two ``dask+local://`` workers (Dask's hand-off
    between tasks costs more); other runners (``local://``) get :data:`DEFAULT_PARTITIONS`.
    A job whose tasks would get over :data:`MAX_TASK_ROWS` rows gets more tasks, a whole
    number per slot. Tasks are whole batches (at least one), so small jobs get fewer. The
    runner is asked for its slots only when the job has more than one batch.
    """
    if rows <= batch_size:
        return batch_size
    slots, per_slot = 1, DEFAULT_PARTITIONS
    hint = getattr(backend, "tasks_per_slot", None)
    capacity = getattr(backend, "capacity", None)
    if isinstance(hint, int) and not isinstance(hint, bool) and hint >= 1 and callable(capacity):
        slots, per_slot = max(1, int(capacity())), hint
    per_slot = max(per_slot, math.ceil(rows / (slots * MAX_TASK_ROWS)))
    per_task = math.ceil(rows / (slots * per_slot))
    return max(batch_size, math.ceil(per_task / batch_size) * batch_size)


def plan_partitions(ids: Sequence[Any], size: int) -> list[tuple[dict[str, JSONValue], str, int]]:
    """Cut source ids into partitions of about ``size``: ``(partition, description, rows)``.

    Integer ids become inclusive ranges (one cheap range scan each; equal ids never straddle two
    partitions); other JSON ids become explicit lists.
    """
    if not ids:
        return []
    ints = all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    ordered = sorted(ids) if ints else list(ids)
    out: list[tuple[dict[str, JSONValue], str, int]] = []
    start = 0
    while start < len(ordered):
        end = min(start + size, len(ordered))
        if ints:
            while end < len(ordered) and ordered[end] == ordered[end - 1]:
                end += 1
            lo, hi = ordered[start], ordered[end - 1]
            out.append(({"range": [lo, hi]}, f"{lo}..{hi}", end - start))
        else:
            chunk = ordered[start:end]
            desc = f"in [{chunk[0]!r} .. {chunk[-1]!r}] ({len(chunk)} ids)"
            out.append(({"ids": list(chunk)}, desc, len(chunk)))
        start = end
    return out


def _store_uris(db: JobHost) -> dict[str, JSONValue]:
    """The three store URIs a worker opens (file paths made absolute)."""
    out: dict[str, JSONValue] = {}
    for role in ("databackend", "metadata", "artifact_store"):
        slot = db.slots[role]
        raw = slot.reveal_uri()
        if raw is None or slot.uri.scheme == "memory":
            raise ConfigError(
                f"the compute backend {db.compute.uri} runs tasks in other processes, which "
                f"open the stores by URI, but this Datalayer's {role} is "
                f"{'an object' if raw is None else slot.uri} that lives in this process only. "
                "Configure every store by URI (not memory://), or use compute='local://'."
            )
        out[role] = _absolute(raw)
    return out


def _absolute(raw: str) -> str:
    import attrs

    uri = RedactedURI.parse(raw)
    if not uri.is_path_scheme or not uri.path or uri.path == ":memory:":
        return raw
    if os.path.isabs(uri.path):
        return raw
    path = os.path.abspath(uri.path) + ("/" if uri.path.endswith("/") else "")
    return attrs.evolve(uri, path=path).reveal()


def predict(
    db: JobHost,
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
        partition_size: Source rows per task (default: :func:`default_partition_size`, e.g.
            16 tasks on ``local://`` and on two ``processes://`` workers, 4 on two
            ``dask+local://`` workers, at most 50,000 rows and at least ``batch_size`` each).
        retries: How many times the runner re-runs a failed task (outputs are idempotent).

    Previous outputs of the same model version for the same source rows are replaced. A job
    record (kind ``predict``) tracks status, progress, timings and the error on failure.

    Raises:
        JobFailed: a task failed on an out-of-process runner (the message names the failing
            source ids); an in-process runner re-raises the task's own error.
        ConfigError: an out-of-process runner, but a store is not reachable by URI.
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
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
    key = ComponentKey(type_id=model.type_id, identifier=model.identifier, version=model.version)
    columns = [inputs] if isinstance(inputs, str) else list(inputs)
    if id_column is None:
        id_column = _default_id_column(db, table)
    out_table = output or output_table_name(model.identifier)
    backend = db.compute
    in_process = type(backend).runs_in_process
    job_id = f"predict-{uuid.uuid4().hex}"
    record = JobRecord(
        job_id=job_id,
        kind="predict",
        status=JobStatus.PENDING,
        component=key,
        args={
            "table": table,
            "inputs": list[JSONValue](columns),
            "output": out_table,
            "id_column": id_column,
            "where": repr(where) if where else None,
        },
    )
    md = db.metadata
    tasks, rows_total = _plan(
        db,
        record,
        table=table,
        where=where,
        in_process=in_process,
        partition_size=partition_size,
        payload={
            "job_id": job_id,
            "component": {
                "type_id": key.type_id,
                "identifier": key.identifier,
                "version": key.version,
            },
            "model_version": key.version,
            "table": table,
            "inputs": list[JSONValue](columns),
            "single_input": isinstance(inputs, str),
            "output": out_table,
            "id_column": id_column,
            "batch_size": batch_size,
            "trust_serializers": list[JSONValue](sorted(db.trusted_serializers)),
        },
    )
    if in_process:
        register_in_process(job_id, InProcessJob(db, model, where))
    exclusive = not in_process and db.slots["databackend"].uri.scheme in EXCLUSIVE_FILE_SCHEMES
    try:
        if exclusive:
            db.slots["databackend"].close()  # workers take turns on a single-writer file
        record = _evolve(record, rows_total=rows_total)
        db.job_driver.submit(md, backend, record, tasks, retries=retries)
        job = db.job_driver.wait(md, job_id)
        if in_process:
            progress_error = _first_exception(db, backend, job_id)
            if progress_error is not None and job.status is JobStatus.FAILED:
                raise progress_error
    finally:
        if in_process:
            unregister_in_process(job_id)
    if job.status is JobStatus.FAILED:
        raise JobFailed(f"predict job {job_id} failed: {job.error}")
    return PredictResult(
        job=job,
        output_table=out_table,
        rows=job.rows_done,
        seconds=time.perf_counter() - started,
    )


def _plan(
    db: JobHost,
    record: JobRecord,
    *,
    table: str,
    where: Any,
    in_process: bool,
    partition_size: int | None,
    payload: dict[str, JSONValue],
) -> tuple[list[Task], int]:
    """Read the source ids and cut them into tasks; a failure is recorded as a failed job."""
    id_column = str(payload["id_column"])
    try:
        source = db.select(table, where, columns=[id_column], decode=False)
        if source and id_column not in source[0]:
            raise SchemaError(
                f"table {table!r} has no id column {id_column!r}; pass id_column= naming a "
                "unique column of the source table"
            )
        ids = [r[id_column] for r in source]
        payload = {**payload, "id_type": _id_dtype(db, table, id_column).value}
        tasks = _tasks(
            db,
            ids=ids,
            in_process=in_process,
            where=where,
            payload=payload,
            partition_size=partition_size,
            batch_size=int(str(payload["batch_size"])),
        )
    except Exception as exc:
        from pinnacle_protocols.serialization import utcnow
        from pinnacle_protocols.uri import redact

        now = utcnow()
        db.metadata.create_job(
            _evolve(
                record,
                status=JobStatus.FAILED,
                runner=str(db.compute.uri),
                started_at=now,
                finished_at=now,
                error=redact(f"{type(exc).__name__}: {exc}"),
            )
        )
        raise
    return tasks, len(ids)


def _evolve(record: JobRecord, **changes: Any) -> JobRecord:
    import attrs

    return attrs.evolve(record, **changes)


def _first_exception(db: JobHost, backend: Any, job_id: str) -> BaseException | None:
    try:
        progress = backend.status(job_id)
    except PinnacleError:
        return None
    for t in progress.tasks:
        if t.exception is not None:
            return t.exception  # type: ignore[no-any-return]
    return None


def _tasks(
    db: JobHost,
    *,
    ids: list[Any],
    in_process: bool,
    where: Any,
    payload: dict[str, JSONValue],
    partition_size: int | None,
    batch_size: int,
    kind: str = "predict",
) -> list[Task]:
    """The tasks of a job of ``kind`` (a :data:`~pinnacledb.jobs.TASK_KINDS` key): one per
    partition of the source ids (``db.predict`` and listener backfills share this)."""
    if partition_size is None:
        partition_size = default_partition_size(db.compute, len(ids), batch_size)
    if (
        isinstance(partition_size, bool)
        or not isinstance(partition_size, int)
        or partition_size < 1
    ):
        raise ConfigError(f"partition_size must be an int >= 1, got {partition_size!r}")
    if in_process:
        payload = {**payload, "where": None}
        if not _is_json(ids):
            # ids such as MongoDB ObjectIds: one partition over the caller's own filter
            whole: dict[str, JSONValue] = {"all": True}
            return [Task(task_id="0", kind=kind, payload={**payload, "partition": whole})]
    else:
        if not _is_json(ids):
            raise ConfigError(
                f"the source ids of {payload['table']!r} are not JSON values (e.g. ObjectId), so "
                f"they cannot be sent to the workers of {db.compute.uri}; use compute='local://' "
                "or an id_column= of ints or strings"
            )
        if where is not None and not _is_json(where):
            raise ConfigError(
                f"where= {where!r} is not JSON data and cannot be sent to the workers of "
                f"{db.compute.uri}; use plain values, or compute='local://'"
            )
        payload = {
            **payload,
            "where": where,
            "stores": _store_uris(db),
            "exclusive": db.slots["databackend"].uri.scheme in EXCLUSIVE_FILE_SCHEMES,
        }
    return [
        Task(
            task_id=str(n),
            kind=kind,
            payload={**payload, "partition": part},
            source=f"{payload['id_column']} {desc}",
        )
        for n, (part, desc, _rows) in enumerate(plan_partitions(ids, partition_size))
    ]
