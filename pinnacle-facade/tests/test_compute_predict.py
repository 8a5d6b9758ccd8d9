"""``db.predict`` through every runner: the same outputs on local://, processes:// (and the jobs
API: records updated with progress, wait, cancel, remove)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pinnacle_protocols.compute import (
    ComputeBackend,
    InlineComputeBackend,
    PooledComputeBackend,
)
from pinnacle_protocols.errors import ConfigError, JobFailed, JobNotFound
from pinnacle_protocols.records import JobRecord, JobStatus
from pinnacledb import CFG, LinearModel, Model, pinnacle
from pinnacledb.base.datalayer import Datalayer
from pinnacledb.predict import MAX_TASK_ROWS, default_partition_size, plan_partitions

RUNNERS = ["local://", "processes://?workers=2"]


@pytest.fixture(scope="module")
def pool() -> Iterator[ComputeBackend]:
    """One process pool for the module (spawned workers are slow to start on a busy machine);
    Datalayers get it as an object, as ``pinnacle(compute=...)`` allows."""
    from pinnacledb.compute import processes_backend

    backend = processes_backend("processes://?workers=2")
    yield backend
    backend.close()


def _runner(uri: str, pool: ComputeBackend) -> str | ComputeBackend:
    return pool if uri.startswith("processes://") else uri


# Pickled models are built from builtins (public methods of dicts and lists): worker processes
# import a pickled object's class by name, and pytest's importlib mode gives test modules names
# nothing else can import.


def doubler() -> Model:
    """``2.0 * x`` for x in 0..999 (a dict's ``get``), stored with pickle."""
    return Model(
        identifier="double",
        object={float(i): 2.0 * i for i in range(1000)},
        predict_method="get",
        batched=False,
        serializer="pickle",
    )


def fails_from_50() -> Model:
    """Identity below 50 (a list's ``index``), ``ValueError`` from 50 on."""
    return Model(
        identifier="picky",
        object=[float(i) for i in range(50)],
        predict_method="index",
        batched=False,
        serializer="pickle",
    )


def _stores(kind: str, base: Path, pg: str | None) -> dict[str, Any]:
    if kind == "duckdb":
        return {
            "databackend": f"duckdb://{base}/data.duckdb",
            "metadata_store": f"sqlite://{base}/metadata.db",
            "artifact_store": f"filesystem://{base}/artifacts/",
        }
    if kind == "sqlite":
        return {
            "databackend": "sqlite://rel/data.db",  # relative: workers get it absolute
            "metadata_store": "sqlite://rel/metadata.db",
            "artifact_store": "filesystem://rel/artifacts/",
        }
    assert pg is not None
    return {"databackend": pg, "artifact_store": f"filesystem://{base}/artifacts/"}


@pytest.fixture(params=["duckdb", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "postgres":
        yield _stores("postgres", tmp_path, request.getfixturevalue("pg_uri"))
    else:
        yield _stores(request.param, tmp_path, None)


def _fill(db: Datalayer, n: int) -> None:
    db.create_table("pts", {"id": "int", "x": "float", "label": "str"})
    db.insert(
        "pts", [{"id": i, "x": float(i), "label": "odd" if i % 2 else "even"} for i in range(n)]
    )
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(20, 1))
    db.apply(LinearModel.fit("line", xs, 3 * xs[:, 0] - 1))
    db.apply(doubler())


def _outputs(db: Datalayer, table: str) -> list[tuple[Any, ...]]:
    return sorted(
        (r["source_id"], r["model"], r["model_version"], round(r["output"], 9))
        for r in db.select(table)
    )


def test_same_outputs_on_every_runner(stores: dict[str, Any], pool: ComputeBackend) -> None:
    results: dict[str, Any] = {}
    for runner in RUNNERS:
        db = pinnacle(**stores, compute=_runner(runner, pool), trust_serializers={"pickle"})
        try:
            if runner == RUNNERS[0]:
                _fill(db, 230)
            for name in db.list_tables():
                if name.startswith("outputs__"):
                    db.drop_table(name)
            first = db.predict("line", "pts", inputs="x", batch_size=16, partition_size=40)
            again = db.predict("line", "pts", inputs="x", batch_size=16, partition_size=40)
            odd = db.predict("double", "pts", inputs="x", where={"label": "odd"}, batch_size=7)
            assert first.rows == again.rows == 230
            assert odd.rows == 115
            job = db.job(first.job.job_id)
            assert job.status is JobStatus.SUCCESS
            assert job.runner == runner
            assert (job.tasks_total, job.tasks_done, job.tasks_failed) == (6, 6, 0)
            assert (job.rows_total, job.rows_done) == (230, 230)
            assert job.finished_at is not None
            results[runner] = (_outputs(db, "outputs__line"), _outputs(db, "outputs__double"))
        finally:
            db.close()
    line, double = results[RUNNERS[0]]
    assert len(line) == 230  # rerun replaced, never duplicated
    assert [r[0] for r in double] == list(range(1, 230, 2))
    for runner in RUNNERS[1:]:
        assert results[runner] == results[RUNNERS[0]], runner


def test_failed_partition_names_its_source_ids(tmp_path: Path, pool: ComputeBackend) -> None:
    stores = _stores("sqlite", tmp_path, None)
    db = pinnacle(**stores, compute=pool, trust_serializers={"pickle"})
    try:
        _fill(db, 100)
        db.apply(fails_from_50())
        with pytest.raises(
            JobFailed, match=r"id 50\.\.74.*ValueError: 50\.0 is not in list"
        ) as caught:
            db.predict("picky", "pts", inputs="x", partition_size=25, batch_size=25)
        (job,) = db.jobs(component="picky", kind="predict")
        assert job.job_id in str(caught.value)
        assert job.status is JobStatus.FAILED
        assert (job.tasks_total, job.tasks_done, job.tasks_failed) == (4, 2, 2)
        assert job.failed_sources == ("id 50..74", "id 75..99")
        assert job.rows_done == 50
        # the partitions that succeeded are written once
        assert sorted(r["source_id"] for r in db.select("outputs__picky")) == list(range(50))
    finally:
        db.close()


def test_trust_rules_hold_on_the_workers(tmp_path: Path, pool: ComputeBackend) -> None:
    """By name, the caller refuses an untrusted pickle before any task; a Model object (which
    the caller does not load) is loaded by the workers, with the caller's trust list."""
    from pinnacle_protocols.errors import UntrustedSerializerError

    stores = _stores("sqlite", tmp_path, None)
    with pinnacle(**stores, trust_serializers={"pickle"}) as owner:
        _fill(owner, 10)
    db = pinnacle(**stores, compute=pool)
    try:
        with pytest.raises(UntrustedSerializerError):
            db.predict("double", "pts", inputs="x")
        assert db.jobs(kind="predict") == []
        with pytest.raises(JobFailed, match="UntrustedSerializerError"):
            db.predict(doubler(), "pts", inputs="x")
        (job,) = db.jobs(kind="predict")
        assert job.tasks_failed == job.tasks_total == 1
    finally:
        db.close()


def test_out_of_process_runner_needs_stores_by_uri() -> None:
    db = pinnacle("memory://", compute="processes://?workers=1")
    db.create_table("t", {"id": "int", "x": "float"})
    db.insert("t", [{"id": 1, "x": 1.0}])
    db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))
    with pytest.raises(ConfigError, match=r"memory://.*compute='local://'"):
        db.predict("m", "t", inputs="x")
    (job,) = db.jobs(kind="predict")
    assert job.status is JobStatus.FAILED
    assert job.runner == "processes://?workers=1"


def test_compute_is_configured_like_the_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pinnacle_protocols.errors import UnknownSchemeError

    assert pinnacle("memory://").compute_slot.uri.scheme == "local"
    monkeypatch.setenv("PINNACLEDB_COMPUTE", "processes://?workers=3")
    db = pinnacle("memory://")
    assert str(db.compute_slot.uri) == "processes://?workers=3"
    assert db.config is not None
    assert db.config.compute.source == "environment PINNACLEDB_COMPUTE"
    CFG.compute = "local://"
    assert pinnacle("memory://").config.compute.source == "CFG.compute"  # type: ignore[union-attr]
    CFG.compute = None
    monkeypatch.delenv("PINNACLEDB_COMPUTE")
    (tmp_path / "pinnacledb.toml").write_text('compute = "processes://?workers=2"\n')
    assert str(pinnacle("memory://").compute_slot.uri) == "processes://?workers=2"
    from pinnacledb._registry import StoreRegistry

    installed = StoreRegistry.from_entry_points()
    without_dask = StoreRegistry(
        {
            role: {
                s: installed._entries[role][s] for s in installed.schemes(role) if "dask" not in s
            }
            for role in ("databackend", "metadata", "artifact_store", "compute")
        }
    )
    with pytest.raises(UnknownSchemeError, match=r"`dask://` needs `pip install pinnacle-dask`"):
        pinnacle("memory://", compute="dask://u:pw@scheduler:8786", registry=without_dask)
    with pytest.raises(UnknownSchemeError) as caught:
        pinnacle("memory://", compute="nope://u:hunter2@h")
    assert "hunter2" not in str(caught.value)
    assert "compute backend" in str(caught.value)
    shown = repr(pinnacle("memory://", compute="processes://?workers=2"))
    assert "compute=processes://?workers=2" in shown


def test_jobs_api_lists_waits_cancels_and_removes(local_db: Datalayer) -> None:
    db = local_db
    db.create_table("t", {"id": "int", "x": "float"})
    db.insert("t", [{"id": i, "x": float(i)} for i in range(40)])
    db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))
    done = db.predict("m", "t", inputs="x", partition_size=10, batch_size=10)
    assert [j.job_id for j in db.jobs(status="success", component="m", kind="predict")] == [
        done.job.job_id
    ]
    assert db.jobs(status=JobStatus.FAILED) == []
    assert db.wait(done.job.job_id, timeout=1).status is JobStatus.SUCCESS

    # a job submitted but not yet run (local:// runs tasks while someone waits): cancel it
    from pinnacle_protocols.compute import Task
    from pinnacledb.jobs._worker import InProcessJob, register_in_process

    record = JobRecord(job_id="predict-manual", kind="predict", rows_total=40)
    tasks = [
        Task(task_id=str(i), kind="predict", payload={"job_id": "predict-manual"}) for i in range(3)
    ]
    register_in_process("predict-manual", InProcessJob(db, db.load("model", "m"), None))
    db.job_driver.submit(db.metadata, db.compute, record, tasks)
    assert db.job("predict-manual").status is JobStatus.QUEUED
    cancelled = db.cancel("predict-manual")
    assert cancelled.status is JobStatus.CANCELLED
    assert db.wait("predict-manual").status is JobStatus.CANCELLED
    assert db.job("predict-manual").tasks_done == 0

    assert db.jobs(limit=1)[0].job_id == "predict-manual"  # newest first
    removed = db.remove_jobs(status="cancelled")
    assert removed == ["predict-manual"]
    with pytest.raises(JobNotFound):
        db.job("predict-manual")
    assert db.remove_jobs(older_than=3600) == []
    db.remove("model", "m", force=True)
    assert db.jobs(component="m") == []


def test_cancel_from_another_datalayer_is_seen_by_the_driver(local_db: Datalayer) -> None:
    db = local_db
    other = pinnacle(
        "memory://",
        metadata_store="sqlite://.pinnacledb/metadata.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    try:
        from pinnacle_protocols.compute import Task

        record = JobRecord(job_id="j-remote-cancel", kind="predict")
        db.job_driver.submit(
            db.metadata,
            db.compute,
            record,
            [Task(task_id="0", kind="predict", payload={"job_id": "x"})],
        )
        assert other.cancel("j-remote-cancel").status is JobStatus.CANCELLED
        final = db.wait("j-remote-cancel")
        assert final.status is JobStatus.CANCELLED
        assert final.tasks_failed == 0
        assert other.wait("j-remote-cancel", timeout=1).status is JobStatus.CANCELLED
    finally:
        other.close()


class _Slots(PooledComputeBackend):
    """A pooled runner that only reports its worker slots (counts how often it is asked)."""

    def __init__(self, slots: int) -> None:
        super().__init__("slots://")
        self.slots = slots
        self.asked = 0

    def capacity(self) -> int:
        self.asked += 1
        return self.slots


class _TwoPerSlot(_Slots):
    tasks_per_slot = 2


def _task_count(backend: object, rows: int, batch: int) -> int:
    return len(plan_partitions(list(range(rows)), default_partition_size(backend, rows, batch)))


def test_default_partitions_follow_the_runners_worker_slots() -> None:
    """Without ``partition_size``: 16 tasks on ``local://``; ``tasks_per_slot`` per worker
    slot on a pooled runner (8 by default, fewer where the engine's hand-off costs more);
    whole batches, never more than MAX_TASK_ROWS rows a task (then a whole number of tasks
    per slot)."""
    inline = InlineComputeBackend()
    assert _task_count(inline, 200_000, 1000) == 16
    assert default_partition_size(inline, 200_000, 1000) == 13_000  # 12,500 in whole batches
    assert _task_count(_Slots(2), 200_000, 1000) == 16
    assert _task_count(_TwoPerSlot(2), 200_000, 1000) == 4
    assert _task_count(_TwoPerSlot(3), 300, 10) == 6
    # large jobs: at most MAX_TASK_ROWS a task, as a whole number of tasks per slot
    assert MAX_TASK_ROWS == 50_000
    assert default_partition_size(inline, 1_000_000, 1000) == 50_000
    assert _task_count(inline, 1_000_000, 1000) == 20
    assert _task_count(_TwoPerSlot(2), 1_000_000, 1000) == 20
    assert _task_count(_TwoPerSlot(3), 1_000_000, 1000) == 21
    assert default_partition_size(_TwoPerSlot(3), 1_000_000, 1000) <= MAX_TASK_ROWS
    # a job of one batch is one task: the runner is not asked (it may not be started yet)
    one = _TwoPerSlot(2)
    assert default_partition_size(one, 1000, 1000) == 1000
    assert default_partition_size(one, 0, 1000) == 1000
    assert one.asked == 0


def test_predict_cuts_the_job_by_the_runners_slots(
    tmp_path: Path, pool: ComputeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``db.predict`` and a listener backfill without ``partition_size`` on a pool of 2
    workers: 16 tasks (whole batches: 15 of 20 rows here), and 4 when the runner asks for 2
    per slot; the same outputs either way."""
    from pinnacledb import Listener

    stores = _stores("sqlite", tmp_path, None)
    db = pinnacle(**stores, compute=pool, trust_serializers={"pickle"})
    try:
        _fill(db, 300)
        wide = db.predict("double", "pts", inputs="x", batch_size=10, output="wide")
        assert (wide.rows, wide.job.tasks_total) == (300, 15)
        monkeypatch.setattr(pool, "tasks_per_slot", 2, raising=False)
        few = db.predict("double", "pts", inputs="x", batch_size=10, output="few")
        assert (few.rows, few.job.tasks_total, few.job.tasks_done) == (300, 4, 4)
        assert sorted(r["output"] for r in db.select("wide")) == sorted(
            r["output"] for r in db.select("few")
        )
        line = db.load("model", "line")
        assert isinstance(line, Model)
        db.apply(Listener(identifier="lx", model=line, table="pts", inputs="x"))
        active = db._listeners.snapshot().by_id["lx"]
        backfill = db._listeners.backfill(active, batch_size=10)
        assert (backfill.status, backfill.tasks_total, backfill.rows_done) == (
            JobStatus.SUCCESS,
            4,
            300,
        )
    finally:
        db.close()
