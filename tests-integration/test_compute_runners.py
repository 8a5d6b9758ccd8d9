"""``db.predict`` on every runner — ``local://``, ``processes://``, ``dask+local://`` and
``ray+local://`` — gives identical outputs tables, on DuckDB (file), SQLite, PostgreSQL and a
MongoDB wire server (mongoeco); and no password reaches a Dask task key, the scheduler's logs,
our logs or a job record. A listener's
backfill, its partitioned re-run and ``db.catch_up`` give identical outputs on ``local://``,
``processes://`` and ``dask+local://``, on the same four engines.

The pools are started once for the module (a LocalCluster takes seconds) and handed to each
Datalayer as an object, as ``pinnacle(compute=...)`` allows.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pinnacle_it.services import Services

from pinnacle_dask import DaskComputeBackend
from pinnacle_protocols.compute import ComputeBackend
from pinnacle_protocols.records import JobStatus
from pinnacle_protocols.uri import RedactedURI
from pinnacle_ray import RayComputeBackend
from pinnacledb import LinearModel, Model, pinnacle
from pinnacledb.base.datalayer import Datalayer
from pinnacledb.compute import processes_backend

#: PostgreSQL here uses trust authentication, so any password is accepted: a real password
#: travels through the whole path without being needed.
PASSWORD = "pw-must-not-leak-7f3a"

RUNNERS = (
    "local://",
    "processes://?workers=2",
    "dask+local://?workers=2",
    "ray+local://?workers=2",
)


@pytest.fixture(scope="module")
def runners() -> Iterator[dict[str, ComputeBackend | str]]:
    pool = processes_backend("processes://?workers=2")
    dask = DaskComputeBackend.from_uri("dask+local://?workers=2")
    ray = RayComputeBackend.from_uri("ray+local://?workers=2")
    yield {"local://": "local://", RUNNERS[1]: pool, RUNNERS[2]: dask, RUNNERS[3]: ray}
    pool.close()
    dask.close()
    ray.close()


def _stores(kind: str, base: Path, services: Services) -> dict[str, Any]:
    if kind == "duckdb":
        return {
            "databackend": f"duckdb://{base}/data.duckdb",
            "metadata_store": f"sqlite://{base}/metadata.db",
            "artifact_store": f"filesystem://{base}/artifacts/",
        }
    if kind == "sqlite":
        return {
            "databackend": "sqlite://rel/data.db",
            "metadata_store": "sqlite://rel/metadata.db",
            "artifact_store": "filesystem://rel/artifacts/",
        }
    if kind == "mongoeco":
        mongo = services.require("mongoeco")
        name = f"pinnacle_it_runners_{uuid.uuid4().hex[:16]}"
        return {"databackend": mongo.uri(name), "artifact_store": f"filesystem://{base}/art/"}
    server = services.sql("postgres")
    u = RedactedURI.parse(server.uri_of(server.create_database()))
    import attrs

    with_password = attrs.evolve(u, username=u.username or "postgres", password=PASSWORD)
    return {"databackend": with_password.reveal(), "artifact_store": f"filesystem://{base}/art/"}


def _fill(db: Datalayer, n: int) -> None:
    db.create_table("pts", {"id": "int", "x": "float", "label": "str"})
    db.insert(
        "pts", [{"id": i, "x": float(i), "label": "odd" if i % 2 else "even"} for i in range(n)]
    )
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(20, 1))
    db.apply(LinearModel.fit("line", xs, 3 * xs[:, 0] - 1))
    # a pickled model of a builtin: workers unpickle it by name
    db.apply(
        Model(
            identifier="double",
            object={float(i): 2.0 * i for i in range(1000)},
            predict_method="get",
            batched=False,
            serializer="pickle",
        )
    )


def _outputs(db: Datalayer, table: str) -> list[tuple[Any, ...]]:
    return sorted(
        (r["source_id"], r["model"], r["model_version"], round(r["output"], 9))
        for r in db.select(table)
    )


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("duckdb", marks=pytest.mark.duckdb),
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mongoeco", marks=pytest.mark.mongoeco),
    ],
)
def test_predict_gives_identical_outputs_on_every_runner(
    kind: str,
    tmp_path: Path,
    services: Services,
    runners: dict[str, ComputeBackend | str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    stores = _stores(kind, tmp_path, services)
    results: dict[str, Any] = {}
    seen_text: list[str] = []
    for name in RUNNERS:
        db = pinnacle(**stores, compute=runners[name], trust_serializers={"pickle"})
        try:
            if name == RUNNERS[0]:
                _fill(db, 300)
            for table in db.list_tables():
                if table.startswith("outputs__"):
                    db.drop_table(table)
            line = db.predict("line", "pts", inputs="x", batch_size=32, partition_size=64)
            db.predict("line", "pts", inputs="x", batch_size=32, partition_size=64)  # rerun
            odd = db.predict("double", "pts", inputs="x", where={"label": "odd"}, retries=1)
            assert (line.rows, odd.rows) == (300, 150)
            job = db.job(line.job.job_id)
            assert job.status is JobStatus.SUCCESS
            assert (job.tasks_total, job.tasks_done, job.rows_done) == (5, 5, 300)
            assert job.runner == name
            results[name] = (_outputs(db, "outputs__line"), _outputs(db, "outputs__double"))
            seen_text += [repr(j) for j in db.jobs(limit=None)]
            seen_text.append(repr(db))
        finally:
            db.close()
    assert len(results["local://"][0]) == 300
    for name in RUNNERS[1:]:
        assert results[name] == results["local://"], name

    dask = runners[RUNNERS[2]]
    assert isinstance(dask, DaskComputeBackend)

    def scheduler_view(dask_scheduler: Any) -> list[str]:
        out = [str(k) for k in dask_scheduler.tasks]
        out += [repr(t) for t in getattr(dask_scheduler, "transition_log", [])]
        out += [repr(e) for e in dask_scheduler.get_events()]
        return out

    scheduler = dask.run_on_scheduler(scheduler_view)
    assert any("pinnacle-predict-" in s for s in scheduler)
    out, err = capfd.readouterr()
    for text in [*scheduler, *seen_text, out, err, caplog.text]:
        assert PASSWORD not in text


@pytest.mark.sqlite
def test_default_partitions_follow_the_runner(
    tmp_path: Path, services: Services, runners: dict[str, ComputeBackend | str]
) -> None:
    """Without ``partition_size`` a job is cut per worker slot: 300 rows in batches of 10 are
    15 tasks (16 of whole batches) on ``local://`` and on 2 ``processes://`` workers, and 4 on
    2 ``dask+local://`` workers, where each task costs more (Dask's hand-off between tasks, its
    scheduler and client in the caller's process); the same outputs everywhere."""
    stores = _stores("sqlite", tmp_path, services)
    outputs: dict[str, Any] = {}
    for name, tasks in zip(RUNNERS[:3], (15, 15, 4), strict=True):
        db = pinnacle(**stores, compute=runners[name], trust_serializers={"pickle"})
        try:
            if name == RUNNERS[0]:
                _fill(db, 300)
            out = f"out_{len(outputs)}"
            done = db.predict("double", "pts", inputs="x", batch_size=10, output=out)
            assert (done.rows, done.job.tasks_total, done.job.tasks_done) == (300, tasks, tasks)
            outputs[name] = sorted((r["source_id"], r["output"]) for r in db.select(out))
        finally:
            db.close()
    assert outputs[RUNNERS[1]] == outputs[RUNNERS[2]] == outputs[RUNNERS[0]]


def _listener_outputs(db: Datalayer, table: str) -> list[tuple[Any, ...]]:
    return sorted(
        (r["id"], r["source_id"], r["model_version"], r["input_hash"], round(r["output"], 9))
        for r in db.select(table)
    )


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("duckdb", marks=pytest.mark.duckdb),
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mongoeco", marks=pytest.mark.mongoeco),
    ],
)
def test_listener_backfill_gives_identical_outputs_on_every_runner(
    kind: str, tmp_path: Path, services: Services, runners: dict[str, ComputeBackend | str]
) -> None:
    """The backfill at apply, a partitioned re-run of it and a catch_up run on the runner."""
    from pinnacledb import Listener

    stores = _stores(kind, tmp_path, services)
    results: dict[str, Any] = {}
    for n, name in enumerate(RUNNERS[:3]):
        db = pinnacle(**stores, compute=runners[name], trust_serializers={"pickle"})
        try:
            if n == 0:
                _fill(db, 300)
            ident = f"lx{n}"
            line = db.load("model", "line")
            assert isinstance(line, Model)
            db.apply(Listener(identifier=ident, model=line, table="pts", inputs="x"))
            (job,) = [j for j in db.show_jobs("listener.backfill") if j.args["listener"] == ident]
            assert job.status is JobStatus.SUCCESS, job.error
            assert (job.runner, job.rows_done, job.tasks_done) == (name, 300, job.tasks_total)
            engine = db._listeners
            active = engine.snapshot().by_id[ident]
            again = engine.backfill(active, batch_size=32, partition_size=64)
            assert (again.status, again.tasks_total, again.rows_done) == (JobStatus.SUCCESS, 5, 300)
            # writes that bypass pinnacledb: outputs lost, a stale input; catch_up on the runner
            db.databackend.delete(active.output_table, {"source_id": {"$lt": 40}})
            db.databackend.update("pts", {"id": 299}, {"x": -1.0})
            report = db.catch_up(ident)
            assert (report.computed[ident], report.recomputed[ident]) == (40, 1)
            assert db.job(report.jobs[ident]).runner == name
            results[name] = _listener_outputs(db, active.output_table)
            db.databackend.update("pts", {"id": 299}, {"x": 299.0})
            db.remove("listener", ident, force=True)
        finally:
            db.close()
    assert len(results["local://"]) == 300
    for name in RUNNERS[1:3]:
        assert results[name] == results["local://"], name


#: Trigger jobs start at this many written rows in the trigger tests (default 10,000).
TRIGGER_ROWS = 50


def _trigger_outputs(db: Datalayer, table: str) -> list[tuple[Any, ...]]:
    return sorted(
        (r["id"], r["source_id"], r["model_version"], r["input_hash"], r["output"])
        for r in db.select(table)
    )


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("duckdb", marks=pytest.mark.duckdb),
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ],
)
def test_listener_trigger_of_a_large_write_runs_as_a_job_on_the_runner(
    kind: str, tmp_path: Path, services: Services, runners: dict[str, ComputeBackend | str]
) -> None:
    """An insert (and an update) of >= ``trigger_job_rows`` rows runs its listeners' work as a
    ``listener.trigger`` job on ``processes://`` / ``dask+local://``: outputs identical to the
    in-process run of ``local://``, the job records name the runner, a model failing on some
    rows gives the same failure report; a smaller insert submits no job."""
    from pinnacledb import Listener

    stores = _stores(kind, tmp_path, services)
    fails = [i for i in range(120) if i % 7 == 3]
    results: dict[str, Any] = {}
    for n, name in enumerate(RUNNERS[:3]):
        db = pinnacle(
            **stores,
            compute=runners[name],
            trust_serializers={"pickle"},
            trigger_job_rows=TRIGGER_ROWS,
        )
        try:
            if n == 0:
                rng = np.random.default_rng(0)
                xs = rng.normal(size=(20, 1))
                db.apply(LinearModel.fit("line", xs, 3 * xs[:, 0] - 1))
                # list.index raises ValueError for the values it does not hold: i % 7 == 3
                db.apply(
                    Model(
                        identifier="picky",
                        object=[float(i) for i in range(1000) if i % 7 != 3],
                        predict_method="index",
                        batched=False,
                        serializer="pickle",
                    )
                )
            table = f"trig{n}"
            db.create_table(table, {"id": "int", "x": "float"})
            line, picky = db.load("model", "line"), db.load("model", "picky")
            assert isinstance(line, Model)
            assert isinstance(picky, Model)
            db.apply(Listener(identifier=f"tl{n}", model=line, table=table, inputs="x"))
            db.apply(Listener(identifier=f"tp{n}", model=picky, table=table, inputs="x"))
            before = {j.job_id for j in db.jobs(limit=None)}

            big = db.insert(table, [{"id": i, "x": float(i)} for i in range(120)])
            assert big == 120
            (failure,) = big.failures
            assert failure.listener == f"tp{n}"
            report = (sorted(failure.source_ids), failure.error)
            jobs = [db.job(j) for j in big.jobs]
            if name == "local://":
                assert [j.kind for j in jobs] == ["listener.trigger"]  # the failure's record
            else:
                assert [(j.kind, j.runner, j.args["listener"]) for j in jobs] == [
                    ("listener.trigger", name, f"tl{n}"),
                    ("listener.trigger", name, f"tp{n}"),
                ]
                assert [j.status for j in jobs] == [JobStatus.SUCCESS, JobStatus.FAILED]
                assert jobs[0].rows_done == 120
                assert jobs[0].tasks_done == jobs[0].tasks_total
                assert failure.job_id == jobs[1].job_id
                failed_ids = jobs[1].args["failed_ids"]
                assert isinstance(failed_ids, list)
                assert sorted(int(str(i)) for i in failed_ids) == fails
            assert report[0] == fails

            # below the threshold: computed in this process, no job submitted
            small = db.insert(table, [{"id": i, "x": float(i)} for i in range(200, 206)])
            assert (small.jobs, small.failures) == ((), ())
            # an update of >= the threshold rows: recomputed as a job on the runner
            assert db.update(table, {"id": {"$lt": 60}}, {"x": 5.0}) == 60
            new = [j for j in db.jobs(limit=None) if j.job_id not in before]
            on_runner = sorted(
                (j.args["listener"], j.args["mode"], j.status)
                for j in new
                if j.kind == "listener.trigger" and j.runner == name
            )
            if name == "local://":
                assert on_runner == []
            else:
                assert on_runner == [
                    (f"tl{n}", "backfill", JobStatus.SUCCESS),
                    (f"tl{n}", "reconcile", JobStatus.SUCCESS),
                    (f"tp{n}", "backfill", JobStatus.FAILED),
                    (f"tp{n}", "reconcile", JobStatus.SUCCESS),
                ]
            snap = db._listeners.snapshot()
            results[name] = (
                report,
                _trigger_outputs(db, snap.by_id[f"tl{n}"].output_table),
                _trigger_outputs(db, snap.by_id[f"tp{n}"].output_table),
            )
        finally:
            db.close()
    report, line_out, picky_out = results["local://"]
    assert len(line_out) == 126
    # rows that failed and were not updated have no output
    assert len(picky_out) == 126 - len([i for i in fails if i >= 60])
    for name in RUNNERS[1:3]:
        assert results[name] == results["local://"], name
