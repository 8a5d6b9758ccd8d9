"""The ``pinnacle`` command line."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pinnacledb import LinearModel, pinnacle
from pinnacledb.cli import main

LOCAL = [
    "--databackend",
    "memory://",
    "--metadata",
    "sqlite://.pinnacledb/metadata.db",
    "--artifact-store",
    "filesystem://.pinnacledb/artifacts/",
]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _apply_two_versions() -> None:
    db = pinnacle(
        "memory://",
        metadata_store="sqlite://.pinnacledb/metadata.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))
    db.apply(LinearModel.fit("m", [[1.0], [2.0]], [3.0, 2.0]))
    db.close()


def test_info_shows_stores_sources_and_versions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "info", *LOCAL)
    assert code == 0
    assert "sqlite://.pinnacledb/metadata.db" in out
    assert "pinnacle_sql.SQLAlchemyMetadataStore (pinnacle-sql" in out
    assert "from argument" in out
    assert "pinnacledb 0.1.0" in out
    assert "installed schemes" in out


def test_info_uses_the_configuration(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINNACLEDB_DATABACKEND", "memory://from-env")
    code, out, _ = _run(capsys, "info")
    assert code == 0
    assert "memory://from-env" in out
    assert "environment PINNACLEDB_DATABACKEND" in out


def test_options_work_before_and_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--databackend", "memory://before", "info")
    assert code == 0
    assert "memory://before" in out


def test_doctor_passes_on_working_stores(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "doctor", *LOCAL)
    assert code == 0, out
    assert out.count("ok ") == 5
    assert "schema at head" in out
    assert "all checks passed" in out


@pytest.mark.duckdb
@pytest.mark.sqlite
def test_doctor_passes_on_the_embedded_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "doctor")
    assert code == 0, out


@pytest.mark.postgres
def test_doctor_fails_clearly_on_an_unreachable_store(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "doctor", *LOCAL[:2], "--metadata", "postgresql://u@127.0.0.1:1/x")
    assert code == 1
    assert "FAIL  metadata" in out
    assert "BackendUnavailable" in out
    assert "1 check(s) failed" in out
    assert "skip  metadata" in out


def test_show(capsys: pytest.CaptureFixture[str]) -> None:
    _apply_two_versions()
    code, out, _ = _run(capsys, "show", *LOCAL)
    assert code == 0
    assert "model" in out
    assert "versions [0, 1]" in out
    assert _run(capsys, "show", "model", *LOCAL)[1].split() == ["m"]
    code, out, _ = _run(capsys, "show", "model", "m", *LOCAL)
    assert out.startswith("v0")
    assert "weights=" in out


def test_show_empty(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "show", *LOCAL)
    assert code == 0
    assert "no components" in out


def test_migrate(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "migrate", *LOCAL)
    assert code == 0
    assert "sqlite://.pinnacledb/metadata.db: schema" in out
    code, _, _ = _run(capsys, "migrate", *LOCAL)
    assert code == 0


def test_gc_dry_run_then_gc_with_progress(capsys: pytest.CaptureFixture[str]) -> None:
    _apply_two_versions()
    db = pinnacle(
        "memory://",
        metadata_store="sqlite://.pinnacledb/metadata.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    db.remove("model", "m", 0)
    db.close()
    code, out, err = _run(capsys, "gc", "--dry-run", "--grace", "0", *LOCAL)
    assert code == 0
    assert "would delete" in out
    assert "scanning" in err
    assert "[" in err
    code, out, err = _run(capsys, "gc", "--grace", "3600", *LOCAL)
    assert "1 unreferenced but within the grace period" in out
    assert "deleted 0" in out
    code, out, err = _run(capsys, "gc", "--grace", "0", *LOCAL)
    assert code == 0
    assert "deleted 1" in out
    assert "deleting" in err


def test_configuration_errors_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINNACLEDB_BOGUS", "1")
    code, _, err = _run(capsys, "info")
    assert code == 2
    assert "PINNACLEDB_BOGUS" in err
    monkeypatch.delenv("PINNACLEDB_BOGUS")
    code, _, err = _run(capsys, "info", "--databackend", "nosuch://x")
    assert code == 2
    assert "UnknownSchemeError" in err


def test_console_script_is_installed(tmp_path: Path) -> None:
    exe = shutil.which("pinnacle", path=str(Path(sys.executable).parent))
    assert exe is not None
    out = subprocess.run(
        [exe, "--version"], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "pinnacledb 0.1.0"


@pytest.mark.slow
@pytest.mark.duckdb
@pytest.mark.sqlite
def test_demo_on_the_embedded_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINNACLEDB_")}
    exe = str(Path(sys.executable).parent / "pinnacle")
    first = subprocess.run(
        [exe, "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        check=False,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "inserted 150 rows of Fisher's Iris" in out
    assert "new version v0" in out
    assert "applying it again unchanged returns v0" in out
    assert "a fresh process (pid" in out
    assert "predicted 150 rows into 'outputs__iris_petal_width'" in out
    assert ": success," in out
    assert "applied as v1" in out
    assert "duckdb://.pinnacledb/data.duckdb" in out
    assert "table outputs__iris_petal_width    150 rows" in out
    assert (tmp_path / ".pinnacledb" / "data.duckdb").is_file()
    # what the demo reports is really there, seen from this process
    db = pinnacle()
    assert db.show("model", "iris-petal-width") == [0, 1]
    assert db.count("iris") == 150
    (job,) = db.show_jobs("predict")
    assert job.status.value == "success"
    db.close()
    again = subprocess.run(
        [exe, "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already holds 150 rows" in again.stdout


def test_demo_on_memory_stores_runs_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "demo", "--databackend", "memory://")
    assert code == 0, out
    assert "this process (memory:// stores cannot be shared" in out
    assert "versions of 'iris-petal-width': [0, 1]" in out


def _without_ibis(monkeypatch: pytest.MonkeyPatch, *, also: tuple[str, ...] = ()) -> None:
    """The installed entry points minus pinnacle-ibis's and the databackend schemes ``also``
    (the real test of an environment without ibis is tests-integration/test_install_alone.py,
    in a fresh venv)."""
    from pinnacledb._registry import GROUPS, StoreRegistry

    real = StoreRegistry.from_entry_points()
    kept = {
        role: {
            s: [
                e
                for e in real._entries[role][s]
                if e.distribution != "pinnacle-ibis" and not (role == "databackend" and s in also)
            ]
            for s in real.schemes(role)
        }
        for role in GROUPS
    }
    only = StoreRegistry({role: {s: es for s, es in m.items() if es} for role, m in kept.items()})
    monkeypatch.setattr(StoreRegistry, "from_entry_points", classmethod(lambda cls: only))


@pytest.mark.sqlite
@pytest.mark.file
def test_demo_without_the_embedded_databackend_runs_on_sqlite(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only pinnacle-sql + pinnacle-fs: data and metadata on SQLite, file artifacts."""
    _without_ibis(monkeypatch)
    code, out, err = _run(capsys, "demo")
    assert code == 0, err
    assert "the embedded default's (duckdb://.pinnacledb/data.duckdb) is not installed" in out
    data_uri = "sqlalchemy+sqlite://.pinnacledb/data.db"
    assert f"keeps its table data on SQLite at {data_uri}" in out
    assert f"databackend={data_uri}  (pinnacle_sql.SQLAlchemyDataBackend)" in out
    assert "metadata=sqlite://.pinnacledb/metadata.db  (pinnacle_sql." in out
    assert "artifact_store=filesystem://.pinnacledb/artifacts/  (pinnacle_fs." in out
    assert "a fresh process (pid" in out
    assert "predicted 150 rows into 'outputs__iris_petal_width'" in out
    assert f"databackend     {data_uri}" in out
    assert "table outputs__iris_petal_width    150 rows" in out
    assert (tmp_path / ".pinnacledb" / "data.db").is_file()
    assert (tmp_path / ".pinnacledb" / "metadata.db").is_file()
    # the rows really are in the SQLite file, seen by another connection
    con = sqlite3.connect(tmp_path / ".pinnacledb" / "data.db")
    try:
        assert con.execute("SELECT COUNT(*) FROM iris").fetchone() == (150,)
        assert con.execute('SELECT COUNT(*) FROM "outputs__iris_petal_width"').fetchone() == (150,)
    finally:
        con.close()
    db = pinnacle(
        data_uri,
        metadata_store="sqlite://.pinnacledb/metadata.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    assert db.count("iris") == 150
    assert db.show("model", "iris-petal-width") == [0, 1]
    assert isinstance(db.load("model", "iris-petal-width"), LinearModel)
    db.close()
    # a second run finds its data again
    code, out, err = _run(capsys, "demo")
    assert code == 0, err
    assert "already holds 150 rows" in out


@pytest.mark.sqlite
@pytest.mark.file
def test_demo_without_any_persistent_databackend_keeps_data_in_memory(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Neither DuckDB nor pinnacle-sql's SQLite databackend: data in memory://, SQLite
    metadata, file artifacts."""
    _without_ibis(monkeypatch, also=("sqlalchemy+sqlite",))
    code, out, err = _run(capsys, "demo")
    assert code == 0, err
    assert "the embedded default's (duckdb://.pinnacledb/data.duckdb) is not installed" in out
    assert "table data in memory:// for this run only" in out
    assert "databackend=memory://  (pinnacle_protocols.memory.MemoryDataBackend)" in out
    assert "metadata=sqlite://.pinnacledb/metadata.db  (pinnacle_sql." in out
    assert "artifact_store=filesystem://.pinnacledb/artifacts/  (pinnacle_fs." in out
    assert "predicted 150 rows into 'outputs__iris_petal_width'" in out
    assert (tmp_path / ".pinnacledb" / "metadata.db").is_file()
    assert not (tmp_path / ".pinnacledb" / "data.db").exists()
    db = pinnacle(
        "memory://",
        metadata_store="sqlite://.pinnacledb/metadata.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    assert db.show("model", "iris-petal-width") == [0, 1]
    assert isinstance(db.load("model", "iris-petal-width"), LinearModel)
    db.close()


def test_demo_with_a_configured_but_missing_databackend_fails_clearly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No silent fallback when the user named the databackend."""
    _without_ibis(monkeypatch)
    monkeypatch.setenv("PINNACLEDB_DATABACKEND", "postgresql://u:s3cret@127.0.0.1:5432/test")
    code, out, err = _run(capsys, "demo")
    assert code == 2
    assert "UnknownSchemeError" in err
    assert "pinnacle-ibis[postgres]" in err
    assert "s3cret" not in out + err
    assert not (tmp_path / ".pinnacledb").exists()
