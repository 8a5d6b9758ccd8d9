"""Packaging metadata of the workspace members: one version source, bounded internal
dependencies, and a tested ibis range that keeps the pins ibis 12 needs."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
MEMBERS = {
    "pinnacle-protocols": ("packages/pinnacle-protocols", "pinnacle_protocols"),
    "pinnacle-fs": ("packages/pinnacle-fs", "pinnacle_fs"),
    "pinnacle-sql": ("packages/pinnacle-sql", "pinnacle_sql"),
    "pinnacle-ibis": ("packages/pinnacle-ibis", "pinnacle_ibis"),
    "pinnacle-mongo": ("packages/pinnacle-mongo", "pinnacle_mongo"),
    "pinnacle-dask": ("packages/pinnacle-dask", "pinnacle_dask"),
    "pinnacle-ray": ("packages/pinnacle-ray", "pinnacle_ray"),
    "pinnacle-vectors": ("packages/pinnacle-vectors", "pinnacle_vectors"),
    "pinnacledb": ("pinnacle-facade", "pinnacledb"),
}
_VERSION = re.compile(r"^__version__ = \"([^\"]+)\"$", re.M)


def _pyproject(dist: str) -> dict[str, Any]:
    return tomllib.loads((REPO / MEMBERS[dist][0] / "pyproject.toml").read_text())


def _module_version(dist: str) -> str:
    path, module = MEMBERS[dist]
    found = _VERSION.findall((REPO / path / "src" / module / "__init__.py").read_text())
    assert len(found) == 1, f"{dist}: expected one __version__ literal, found {found}"
    return str(found[0])


def _requirements(project: dict[str, Any]) -> list[Requirement]:
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def test_members_are_the_workspace() -> None:
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert set(root["tool"]["uv"]["sources"]) == set(MEMBERS)


@pytest.mark.parametrize("dist", sorted(MEMBERS))
def test_version_is_written_once(dist: str) -> None:
    """pyproject.toml has no version of its own: hatch reads the module's ``__version__``."""
    cfg = _pyproject(dist)
    assert "version" not in cfg["project"], f"{dist}: the version is written twice"
    assert "version" in cfg["project"]["dynamic"]
    module = MEMBERS[dist][1]
    assert cfg["tool"]["hatch"]["version"]["path"] == f"src/{module}/__init__.py"
    assert metadata.version(dist) == _module_version(dist), f"{dist}: reinstall (uv sync)"


@pytest.mark.parametrize("dist", sorted(MEMBERS))
def test_internal_dependencies_are_bounded_to_the_minor_series(dist: str) -> None:
    """Every requirement on a member, in dependencies and extras: ``>=X.Y,<X.(Y+1)`` of the
    member's own version, the same everywhere."""
    checked = 0
    for req in _requirements(_pyproject(dist)["project"]):
        if req.name not in MEMBERS:
            continue
        current = Version(_module_version(req.name))
        low = f"{current.major}.{current.minor}"
        high = f"{current.major}.{current.minor + 1}"
        assert str(req.specifier) == f"<{high},>={low}", f"{dist}: {req} is not bounded"
        assert req.specifier.contains(current)
        checked += 1
    if dist != "pinnacle-protocols":
        assert checked, f"{dist} does not depend on pinnacle-protocols"


def test_ibis_is_a_tested_range_with_its_pins() -> None:
    """A range (not ``==``) that holds the locked, tested ibis; the known-breakage pins stay."""
    reqs = _requirements(_pyproject("pinnacle-ibis")["project"])
    ibis = [r for r in reqs if r.name == "ibis-framework"]
    assert ibis
    assert {str(r.specifier) for r in ibis} == {"<12.1,>=12.0.0"}
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    locked = {p["name"]: p.get("version") for p in lock["package"]}
    assert ibis[0].specifier.contains(locked["ibis-framework"])
    pins = {r.name: r.specifier for r in reqs if r.name in ("sqlglot", "duckdb", "datafusion")}
    assert "<30.18" in str(pins["sqlglot"])
    assert "<2" in str(pins["duckdb"]).split(",")
    assert "<52" in str(pins["datafusion"])
    assert Version(locked["sqlglot"]) < Version("30.18")
    assert Version(locked["duckdb"]) < Version("2")
    assert Version(locked["datafusion"]) < Version("52")
