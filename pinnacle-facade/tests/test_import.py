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
