"""``db.predict`` on ``dask://HOST:PORT`` whose scheduler is killed mid-job: the call raises
JobFailed naming the scheduler (no password) within seconds, the job record says FAILED with the
same reason, and once the scheduler and a worker are back the same Datalayer re-runs the job.
A listener whose backfill lost the scheduler the same way: the backfill job ends FAILED with the
reason, and ``db.catch_up`` completes the outputs once the scheduler is back.

The scheduler and the worker are separate processes (``dask scheduler``, ``dask worker``), as
a user runs them; the worker imports the blocking model from ``pinnacle_it.gated``.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pinnacle_it.gated import Gate

from pinnacle_dask.testing import ProcessCluster
from pinnacle_protocols.errors import JobFailed
from pinnacle_protocols.records import JobStatus
from pinnacledb import Listener, Model, pinnacle
from pinnacledb.base.datalayer import Datalayer

PASSWORD = "pw-not-in-any-record-90d"


def _kill_scheduler_once_started(cluster: ProcessCluster, started: Path) -> float:
    """In a thread: wait for the model to start on the worker, SIGKILL the scheduler."""
    deadline = time.monotonic() + 60
    while not started.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{started} never appeared")
        time.sleep(0.05)
    killed = time.monotonic()
    cluster.kill_scheduler()
    return killed


@pytest.mark.sqlite
def _open(tmp_path: Path, compute: str) -> Datalayer:
    """SQLite data and metadata, files for artifacts, jobs on ``compute``."""
    return pinnacle(
        f"sqlite://{tmp_path}/data.db",
        metadata_store=f"sqlite://{tmp_path}/metadata.db",
        artifact_store=f"filesystem://{tmp_path}/artifacts/",
        compute=compute,
        trust_serializers={"pickle"},
    )


def test_predict_on_a_dask_cluster_whose_scheduler_dies(tmp_path: Path) -> None:
    here = str(Path(__file__).parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    gate = tmp_path / "gate"
    gate.mkdir()
    with ProcessCluster(workers=1, threads=1, env={"PYTHONPATH": path}) as cluster:
        compute = f"dask://user:{PASSWORD}@{cluster.address}?timeout=2"
        db = _open(tmp_path, compute)
        try:
            db.create_table("pts", {"id": "int", "x": "float"})
            db.insert("pts", [{"id": i, "x": float(i)} for i in range(40)])
            db.apply(Model(identifier="gated", object=Gate(str(gate)), batched=False))
            # the Datalayer stays in this thread (SQLite connections are per thread)
            with ThreadPoolExecutor(1) as pool:
                killer = pool.submit(_kill_scheduler_once_started, cluster, gate / "started")
                with pytest.raises(JobFailed) as caught:
                    db.predict("gated", "pts", inputs="x", partition_size=10)
                noticed = time.monotonic() - killer.result(timeout=30)
                assert noticed < 10, f"the lost scheduler was noticed after {noticed:.1f} s"
            message = str(caught.value)
            assert f"lost the Dask scheduler tcp://{cluster.address}" in message
            assert PASSWORD not in message
            (job,) = db.jobs(kind="predict")
            assert job.status is JobStatus.FAILED
            assert job.finished_at is not None
            assert (job.tasks_total, job.tasks_done, job.tasks_failed) == (4, 0, 4)
            assert job.error is not None
            assert f"lost the Dask scheduler tcp://{cluster.address}" in job.error
            assert PASSWORD not in repr(job) + str(job.runner)

            # the scheduler and a worker come back at the same address: the same Datalayer
            # re-runs the job (the dead worker's task never wrote an output)
            (gate / "open").touch()
            cluster.kill_workers()
            cluster.start_scheduler()
            cluster.start_workers()
            cluster.wait_ready()
            again = db.predict("gated", "pts", inputs="x", partition_size=10)
            assert again.job.status is JobStatus.SUCCESS
            outputs = sorted((r["source_id"], r["output"]) for r in db.select("outputs__gated"))
            assert outputs == [(i, 2.0 * i) for i in range(40)]
        finally:
            db.close()


def _listener_outputs(db: Datalayer, table: str) -> list[tuple[Any, ...]]:
    return sorted(
        (r["source_id"], r["model_version"], r["input_hash"], r["output"]) for r in db.select(table)
    )


@pytest.mark.sqlite
def test_listener_backfill_whose_scheduler_dies_is_caught_up(tmp_path: Path) -> None:
    """A listener applied with compute on ``dask://``, the scheduler killed mid-backfill: the
    backfill job ends FAILED naming the lost scheduler; once the scheduler (same address) and a
    worker are back, ``db.catch_up`` on the same Datalayer completes the outputs, exactly as a
    ``local://`` backfill of the same rows writes them."""
    here = str(Path(__file__).parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    gate = tmp_path / "gate"
    gate.mkdir()
    rows = [{"id": i, "x": float(i)} for i in range(40)]
    with ProcessCluster(workers=1, threads=1, env={"PYTHONPATH": path}) as cluster:
        compute = f"dask://user:{PASSWORD}@{cluster.address}?timeout=2"
        db = _open(tmp_path, compute)
        try:
            db.create_table("pts", {"id": "int", "x": "float"})
            db.insert("pts", rows)
            model = Model(identifier="gated", object=Gate(str(gate)), batched=False)
            db.apply(model)
            with ThreadPoolExecutor(1) as pool:
                killer = pool.submit(_kill_scheduler_once_started, cluster, gate / "started")
                db.apply(Listener(identifier="lg", model=model, table="pts", inputs="x"))
                noticed = time.monotonic() - killer.result(timeout=30)
                assert noticed < 10, f"the lost scheduler was noticed after {noticed:.1f} s"
            (job,) = db.show_jobs("listener.backfill")
            assert job.status is JobStatus.FAILED
            assert job.finished_at is not None
            assert job.error is not None
            assert f"lost the Dask scheduler tcp://{cluster.address}" in job.error
            assert PASSWORD not in repr(job) + str(job.runner)
            assert job.tasks_done == 0

            (gate / "open").touch()
            cluster.kill_workers()
            cluster.start_scheduler()
            cluster.start_workers()
            cluster.wait_ready()
            report = db.catch_up("lg")
            caught = db.job(report.jobs["lg"])
            assert caught.status is JobStatus.SUCCESS, caught.error
            assert report.failed["lg"] == 0
            assert caught.runner == job.runner  # on the Dask cluster again
            output_table = db._listeners.snapshot().by_id["lg"].output_table
            outputs = _listener_outputs(db, output_table)
        finally:
            db.close()

    # the reference: the same listener backfilled on local:// (the gate is open)
    ref = pinnacle(
        f"sqlite://{tmp_path}/ref.db",
        metadata_store=f"sqlite://{tmp_path}/ref-metadata.db",
        artifact_store=f"filesystem://{tmp_path}/ref-artifacts/",
        trust_serializers={"pickle"},
    )
    try:
        ref.create_table("pts", {"id": "int", "x": "float"})
        ref.insert("pts", rows)
        model = Model(identifier="gated", object=Gate(str(gate)), batched=False)
        ref.apply(model)
        ref.apply(Listener(identifier="lg", model=model, table="pts", inputs="x"))
        expected = _listener_outputs(ref, ref._listeners.snapshot().by_id["lg"].output_table)
    finally:
        ref.close()
    assert [o[0] for o in outputs] == list(range(40))  # exactly one output per row
    assert outputs == expected
    assert [o[3] for o in outputs] == [2.0 * i for i in range(40)]
