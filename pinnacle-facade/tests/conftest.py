"""Shared fixtures: isolation from the caller's configuration, fake distributions, real stacks.

Every test runs in its own temporary working directory with no ``PINNACLEDB_*`` variables and
a pristine ``CFG``, so ``.pinnacledb/`` and config files never leak between tests.
"""

from __future__ import annotations

import contextlib
import os
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from pinnacle_protocols.errors import PinnacleError
from pinnacledb import CFG, pinnacle
from pinnacledb.base.datalayer import Datalayer

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB_HOST = "127.0.0.1"


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("PINNACLEDB_"):
            monkeypatch.delenv(name)
    saved = attrs.asdict(CFG)
    CFG.reset()
    yield tmp_path
    for key, value in saved.items():
        setattr(CFG, key, value)


# ---------------------------------------------------------------- fake distributions
FakeDist = Callable[..., Path]


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDist]:
    """Install a real (tiny) distribution on sys.path: METADATA + entry_points.txt + modules.

    importlib.metadata finds it exactly like an installed wheel; no mocking involved.
    """
    site = tmp_path / "fake-site"
    site.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(site))
    created: list[str] = []

    def make(
        name: str,
        entry_points: dict[str, dict[str, str]],
        modules: dict[str, str] | None = None,
        version: str = "0.1",
    ) -> Path:
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = []
        for group, eps in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{k} = {v}" for k, v in eps.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for mod, source in (modules or {}).items():
            (site / f"{mod}.py").write_text(textwrap.dedent(source))
            created.append(mod)
        import importlib

        importlib.invalidate_caches()
        return info

    yield make
    for mod in created:
        sys.modules.pop(mod, None)


# ---------------------------------------------------------------- real stacks
def _pg_database() -> Iterator[str]:
    import psycopg

    name = f"pf_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _mariadb_database() -> Iterator[str]:
    import pymysql  # type: ignore[import-untyped]

    name = f"pf_{uuid.uuid4().hex[:16]}"
    conn = pymysql.connect(host=MARIADB_HOST, user="root", password="", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
    finally:
        conn.close()
    try:
        yield f"mysql://root@127.0.0.1:3306/{name}"
    finally:
        conn = pymysql.connect(host=MARIADB_HOST, user="root", password="", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()


@pytest.fixture
def pg_uri() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (dropped afterwards)."""
    yield from _pg_database()


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[Any]:
    """One nx-27017 MongoDB wire server for the session (each test uses a fresh database)."""
    from pinnacle_mongo.testing import run_nx27017

    with run_nx27017() as server:
        yield server


@pytest.fixture(scope="session")
def mongoeco_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """mongoeco's wire server (more faithful than nx-27017) for the session."""
    from pinnacle_mongo.testing import start_mongoeco

    server = start_mongoeco(log_dir=tmp_path_factory.mktemp("mongoeco"))
    try:
        yield server
    finally:
        server.stop()


STACKS = [
    pytest.param("memory", marks=pytest.mark.memory, id="memory"),
    pytest.param("local", marks=[pytest.mark.sqlite, pytest.mark.file], id="memory+sqlite+fs"),
    pytest.param("embedded", marks=[pytest.mark.duckdb, pytest.mark.sqlite], id="embedded"),
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
    pytest.param("mariadb", marks=pytest.mark.mariadb, id="mariadb"),
    pytest.param("mongo", marks=pytest.mark.nx27017, id="mongo"),
]


@contextlib.contextmanager
def stack_uris(kind: str, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """pinnacle() keyword arguments for a fresh, empty stack of ``kind``."""
    if kind == "memory":
        yield {"databackend": "memory://"}
    elif kind == "local":
        from pinnacle_protocols.memory import MemoryDataBackend

        # one in-memory databackend object shared by every Datalayer of the stack
        yield {
            "databackend": MemoryDataBackend.from_uri("memory://"),
            "metadata_store": "sqlite://.pinnacledb/metadata.db",
            "artifact_store": "filesystem://.pinnacledb/artifacts/",
        }
    elif kind == "embedded":
        yield {}
    elif kind == "postgres":
        yield from _as_cm(_pg_database(), lambda uri: {"databackend": uri})
    elif kind == "mariadb":
        yield from _as_cm(_mariadb_database(), lambda uri: {"databackend": uri})
    elif kind == "mongo":
        from pinnacle_mongo.testing import fresh_database_name

        server = request.getfixturevalue("mongo_server")
        yield {"databackend": server.uri(fresh_database_name("pf"))}
    else:  # pragma: no cover
        raise AssertionError(kind)


def _as_cm(gen: Iterator[str], fn: Callable[[str], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    uri = next(gen)
    try:
        yield fn(uri)
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)


MakeDB = Callable[..., Datalayer]


@pytest.fixture(params=STACKS)
def make_db(request: pytest.FixtureRequest) -> Iterator[MakeDB]:
    """Factory of Datalayers on one fresh stack (memory, embedded, postgres, mariadb, mongo).

    Datalayers built from one factory share the stack (for persistent stores); memory stores
    are fresh per Datalayer, so the factory hands out one shared memory Datalayer.
    """
    made: list[Datalayer] = []
    with stack_uris(request.param, request) as uris:
        shared: list[Datalayer] = []

        def make(**overrides: Any) -> Datalayer:
            if request.param == "memory" and not overrides:
                if not shared:
                    shared.append(pinnacle(**uris))
                    made.append(shared[0])
                return shared[0]
            db = pinnacle(**{**uris, **overrides})
            made.append(db)
            return db

        yield make
        for db in made:
            with contextlib.suppress(Exception):
                db.close()


@pytest.fixture
def db(make_db: MakeDB) -> Datalayer:
    """A Datalayer on a fresh stack (parametrized over every stack)."""
    return make_db()


@pytest.fixture
def mem_db() -> Datalayer:
    """A Datalayer on in-memory stores (fast unit tests)."""
    return pinnacle("memory://")


@pytest.fixture
def local_db() -> Iterator[Datalayer]:
    """Memory data, SQLite metadata and filesystem artifacts in the test's directory."""
    db = pinnacle(
        "memory://",
        metadata_store="sqlite://.pinnacledb/metadata.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    yield db
    db.close()


# ---------------------------------------------------------------- known gaps of other packages
#: test node name -> (reason, error it fails with); strict xfails so a fix is noticed.
KNOWN_GAPS: dict[str, tuple[str, type[BaseException]]] = {
    "test_drop_refuses_without_force[mongo]": (
        "pinnacle-mongo: GridFSArtifactStore.drop(force=True) fails on nx-27017 "
        "(\"Invalid bucket name: '_pinnacle_artifacts'\")",
        PinnacleError,
    ),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the known gaps of other packages as strict ``notyet`` xfails."""
    for item in items:
        gap = KNOWN_GAPS.get(item.name)
        if gap is not None and "pinnacle-facade" in str(item.path):
            item.add_marker(pytest.mark.notyet(reason=gap[0], raises=gap[1]))
