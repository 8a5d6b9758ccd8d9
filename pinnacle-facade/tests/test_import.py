"""Importing pinnacledb (and calling pinnacle()) imports no driver and no store package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DRIVERS = (
    "sqlalchemy",
    "ibis",
    "pymongo",
    "fsspec",
    "duckdb",
    "numpy",
    "pyarrow",
    "pandas",
    "pinnacle_sql",
    "pinnacle_ibis",
    "pinnacle_fs",
    "pinnacle_mongo",
    # compute engines: a process pool or a Dask client is built on first submit only
    "pinnacle_dask",
    "dask",
    "distributed",
    "pinnacle_ray",
    "ray",
    "multiprocessing",
    "concurrent.futures.process",
    # pinnacle ui's web stack: imported by that command only
    "pinnacledb.ui",
    "starlette",
    "uvicorn",
    "jinja2",
    "anyio",
    "httpx",
)


def _modules_after(code: str, cwd: Path) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=cwd
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _loaded(mods: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in mods or any(m.startswith(n + ".") for m in mods))


def test_import_pinnacledb_imports_no_driver(tmp_path: Path) -> None:
    mods = _modules_after("import pinnacledb", tmp_path)
    assert _loaded(mods, (*DRIVERS, "pinnacle_protocols", "importlib.metadata")) == []


def test_the_cli_parser_imports_no_web_library(tmp_path: Path) -> None:
    """``pinnacle --help`` and every other command stay free of the ``[ui]`` extra."""
    mods = _modules_after("from pinnacledb.cli import build_parser\nbuild_parser()", tmp_path)
    assert _loaded(mods, ("pinnacledb.ui", "starlette", "uvicorn", "jinja2", "anyio")) == []


def test_from_pinnacledb_import_pinnacle_cfg_imports_no_driver(tmp_path: Path) -> None:
    mods = _modules_after("from pinnacledb import pinnacle, CFG", tmp_path)
    assert _loaded(mods, DRIVERS) == []


def test_pinnacle_embedded_default_imports_no_driver_and_touches_nothing(tmp_path: Path) -> None:
    code = "from pinnacledb import pinnacle\ndb = pinnacle()\nrepr(db)"
    mods = _modules_after(code, tmp_path)
    assert _loaded(mods, DRIVERS) == []
    assert not (tmp_path / ".pinnacledb").exists()


def test_pinnacle_memory_imports_only_protocols(tmp_path: Path) -> None:
    code = "from pinnacledb import pinnacle\ndb = pinnacle('memory://')\ndb.list_tables()"
    mods = _modules_after(code, tmp_path)
    assert _loaded(mods, DRIVERS) == []
    assert "pinnacle_protocols.memory" in mods


@pytest.mark.sqlite
def test_first_use_imports_only_the_owning_packages(tmp_path: Path) -> None:
    code = (
        "from pinnacledb import pinnacle\n"
        "db = pinnacle('memory://', metadata_store='sqlite://m.db')\n"
        "db.show()"
    )
    mods = _modules_after(code, tmp_path)
    assert "pinnacle_sql" in mods
    assert _loaded(mods, ("ibis", "pymongo", "pinnacle_ibis", "pinnacle_mongo", "duckdb")) == []


#: Imported only to migrate: opening an up-to-date store reads one revision row without them.
MIGRATION_ONLY = ("alembic", "mako", "sqlalchemy.dialects.postgresql")
#: Not on ``pinnacle show``'s path: cattrs (the record converter, built when a record is read or
#: written; show lists keys) and SQLAlchemy's MySQL dialect (only a MySQL engine renders it).
NOT_FOR_SHOW = ("cattrs", "sqlalchemy.dialects.mysql")


@pytest.mark.sqlite
def test_pinnacle_show_on_the_embedded_default_imports_no_migration_tool(tmp_path: Path) -> None:
    """``pinnacle show`` in a fresh process: SQLite metadata, no Alembic, no data backend.

    Run twice: the first run creates the metadata database (that run migrates, so Alembic is
    imported) and applies a component, the second opens an up-to-date one and lists it.
    """
    code = "import sys\nfrom pinnacledb.cli import main\nassert main(['show']) == 0"
    first = _modules_after(
        "from pinnacledb import pinnacle\nfrom pinnacledb.components import Schema\n"
        "pinnacle().apply(Schema(identifier='s', fields={'x': 'int'}))",
        tmp_path,
    )
    assert "alembic" in first  # the empty database was created by the migrations
    mods = _modules_after(code, tmp_path)
    assert "pinnacle_sql.store" in mods
    assert _loaded(mods, MIGRATION_ONLY) == []
    assert _loaded(mods, NOT_FOR_SHOW) == []
    drivers = tuple(d for d in DRIVERS if d not in ("sqlalchemy", "pinnacle_sql"))
    assert _loaded(mods, drivers) == []


_DEMO_SETUP = """
import numpy as np
from pinnacledb import pinnacle
from pinnacledb._demo import DEMO_MODEL, DEMO_TABLE, FEATURES, TARGET
from pinnacledb._iris import iris_rows
from pinnacledb.components import LinearModel, Table

db = pinnacle()
db.apply(Table.of(DEMO_TABLE, id="int", sepal_length="float", sepal_width="float",
                  petal_length="float", petal_width="float", species="str"))
rows = iris_rows()
db.insert(DEMO_TABLE, rows)
xs = np.array([[r[f] for f in FEATURES] for r in rows], dtype=float)
ys = np.array([r[TARGET] for r in rows], dtype=float)
db.apply(LinearModel.fit(DEMO_MODEL, xs, ys, features=list(FEATURES)))
db.close()
"""


@pytest.mark.duckdb
@pytest.mark.sqlite
def test_the_demo_child_predicts_on_duckdb_without_ibis(tmp_path: Path) -> None:
    """The demo's fresh process (load a model, predict over a DuckDB table into an outputs
    table) runs on DuckDB's own connection: ibis, whose DuckDB backend imports every dialect's
    compiler (~0.2 s of CPU per process), is not imported (benchmarks/RESULTS.md, "Fixed
    costs per command")."""
    _modules_after(_DEMO_SETUP, tmp_path)
    code = (
        "import sys\nfrom pinnacledb._demo import _child_main\n"
        "assert _child_main(['0']) == 0\nsys.stdout.flush()"
    )
    mods = _modules_after(code, tmp_path)
    assert "duckdb" in mods
    assert "pinnacle_ibis.engines" in mods
    assert _loaded(mods, ("ibis",)) == []
    db_code = (
        "from pinnacledb import pinnacle\ndb = pinnacle()\n"
        "assert db.count('outputs__iris_petal_width') == 150\n"
        "assert [j.status.value for j in db.show_jobs('predict')] == ['success']"
    )
    _modules_after(db_code, tmp_path)


def test_building_a_datalayer_with_a_pool_runner_starts_no_pool(tmp_path: Path) -> None:
    """Building runners imports no pool; the Dask runner is checked where pinnacle-dask is
    installed (the workspace; the facade's install-alone venv has only the facade's extras)."""
    import importlib.util

    with_dask = importlib.util.find_spec("pinnacle_dask") is not None
    code = (
        "from pinnacledb import pinnacle\n"
        "db = pinnacle('memory://', compute='processes://?workers=2')\n"
        "db.compute\n"
        "repr(db)\n"
    )
    if with_dask:
        code += (
            "db2 = pinnacle('memory://', compute='dask+local://?workers=2')\n"
            "db2.compute\n"
            "repr(db2)\n"
        )
    mods = _modules_after(code, tmp_path)
    assert (
        _loaded(mods, ("dask", "distributed", "multiprocessing", "concurrent.futures.process"))
        == []
    )
    assert ("pinnacle_dask" in mods) is with_dask
