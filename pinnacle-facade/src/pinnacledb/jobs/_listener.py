"""The ``listener`` task: one partition of a listener's source rows, backfilled or reconciled.

Runs on a worker. It opens the Datalayer from the store URIs in the task (or, on an in-process
runner, uses the caller's), finds the listener version the task names in the listener set
(hash-verified model load, the caller's trust list), and hands the partition to
:meth:`pinnacledb.listeners.ListenerEngine.run_partition`, which writes outputs by
deterministic id (delete-by-id then insert, or insert only where a range count shows none
exist), so a task run twice never duplicates an output.
"""

from __future__ import annotations

from pinnacle_protocols.compute import Task
from pinnacle_protocols.records import JSONValue
from pinnacledb.jobs._predict import partition_filter
from pinnacledb.jobs._worker import (
    exclusive_databackend,
    in_process,
    retry_locked,
    worker_datalayer,
)

__all__ = ["run_listener_task"]


def run_listener_task(task: Task) -> JSONValue:
    """Run one partition; return ``{"rows", "computed", "recomputed", "failed", "error"}``."""
    p = task.payload
    job_id = str(p["job_id"])
    local = in_process(job_id)
    exclusive = bool(p.get("exclusive")) and local is None
    if local is not None:
        db = local.db
    else:
        db = worker_datalayer(p)
    extra = partition_filter(str(p["id_column"]), p["partition"])

    def run() -> JSONValue:
        with exclusive_databackend(db, exclusive):
            return db._listeners.run_partition(
                str(p["listener"]),
                int(str(p["version"])),
                extra,
                mode=str(p["mode"]),
                batch_size=int(str(p["batch_size"])),
                run=job_id,
            )

    return retry_locked(run, exclusive)
