"""Listener triggers of large writes as jobs on the compute backend: the ``trigger_job_rows``
setting, and what a write does when the runner cannot be reached (the rows stay committed,
the failure is reported, ``catch_up`` repairs). Outputs on real runners are compared with
``local://`` in tests-integration/test_compute_runners.py."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pinnacle_protocols.errors import ConfigError
from pinnacle_protocols.records import JobStatus
from pinnacledb import CFG, LinearModel, Listener, Model, pinnacle
from pinnacledb._config import DEFAULT_TRIGGER_JOB_ROWS
from pinnacledb.base.datalayer import Datalayer


def _stores(base: Path) -> dict[str, Any]:
    return {
        "databackend": f"sqlite://{base}/data.db",
        "metadata_store": f"sqlite://{base}/metadata.db",
        "artifact_store": f"filesystem://{base}/artifacts/",
    }


def test_trigger_job_rows_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert pinnacle("memory://").trigger_job_rows == DEFAULT_TRIGGER_JOB_ROWS == 10_000
    (tmp_path / "pinnacledb.toml").write_text("trigger_job_rows = 500\n")
    assert pinnacle("memory://").trigger_job_rows == 500
    monkeypatch.setenv("PINNACLEDB_TRIGGER_JOB_ROWS", "400")
    assert pinnacle("memory://").trigger_job_rows == 400
    CFG.trigger_job_rows = 300
    try:
        db = pinnacle("memory://")
        assert db.trigger_job_rows == 300
        assert db.config is not None
        assert db.config.trigger_job_rows.source.startswith("CFG")
        assert pinnacle("memory://", trigger_job_rows=200).trigger_job_rows == 200
    finally:
        CFG.trigger_job_rows = None
    for bad in (0, -1, 1.5, True, "many"):
        with pytest.raises(ConfigError, match="trigger_job_rows must be an int >= 1"):
            pinnacle("memory://", trigger_job_rows=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"CFG\.trigger_job_rows"):
            CFG.trigger_job_rows = bad  # type: ignore[assignment]
    monkeypatch.setenv("PINNACLEDB_TRIGGER_JOB_ROWS", "lots")
    with pytest.raises(ConfigError, match="PINNACLEDB_TRIGGER_JOB_ROWS"):
        pinnacle("memory://")


def _line(db: Datalayer) -> Model:
    model = db.load("model", "line")
    assert isinstance(model, Model)
    return model


def test_local_runner_never_submits_a_trigger_job(tmp_path: Path) -> None:
    db = pinnacle(**_stores(tmp_path), trigger_job_rows=1)
    db.create_table("pts", {"id": "int", "x": "float"})
    xs = np.arange(10.0).reshape(-1, 1)
    db.apply(LinearModel.fit("line", xs, 2 * xs[:, 0]))
    db.apply(Listener(identifier="lx", model=_line(db), table="pts", inputs="x"))
    result = db.insert("pts", [{"id": i, "x": float(i)} for i in range(20)])
    assert (result.jobs, result.failures) == ((), ())
    assert db.jobs(kind="listener.trigger") == []
    assert db.count("outputs__lx") == 20


def test_unreachable_runner_keeps_the_write_and_reports_the_trigger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A Dask scheduler nobody listens on: the insert of >= trigger_job_rows rows returns
    (the rows are committed), its failure names the FAILED ``listener.trigger`` job that says
    the submit failed, and ``catch_up`` computes the outputs. A smaller insert never touches
    the runner."""
    pytest.importorskip("pinnacle_dask")
    stores = _stores(tmp_path)
    setup = pinnacle(**stores)
    setup.create_table("pts", {"id": "int", "x": "float"})
    xs = np.arange(10.0).reshape(-1, 1)
    setup.apply(LinearModel.fit("line", xs, 2 * xs[:, 0]))
    setup.apply(Listener(identifier="lx", model=_line(setup), table="pts", inputs="x"))
    db = pinnacle(**stores, compute="dask://127.0.0.1:1?timeout=1", trigger_job_rows=10)
    small = db.insert("pts", [{"id": i, "x": float(i)} for i in range(100, 105)])
    assert (small.jobs, small.failures) == ((), ())
    caplog.set_level(logging.WARNING)
    big = db.insert("pts", [{"id": i, "x": float(i)} for i in range(30)])
    assert big == 30
    assert db.count("pts") == 35
    (failure,) = big.failures
    assert failure.listener == "lx"
    assert sorted(failure.source_ids) == list(range(30))
    assert big.jobs == (failure.job_id,)
    job = db.job(failure.job_id)
    assert (job.kind, job.status) == ("listener.trigger", JobStatus.FAILED)
    assert job.runner is not None
    assert job.runner.startswith("dask://")
    assert "submit to dask://" in (job.error or "")
    assert job.args["failed_count"] == 30
    assert "catch_up" in caplog.text
    assert setup.count("outputs__lx") == 5
    report = setup.catch_up("lx")
    assert report.computed["lx"] == 30
    assert setup.count("outputs__lx") == 35
    db.close()
    setup.close()
