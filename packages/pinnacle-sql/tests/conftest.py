"""Shared fixtures: fresh databases on the real PostgreSQL and MariaDB servers, and SQLite.

Servers are found through ``PINNACLE_TEST_POSTGRES_URI`` (default
``postgres://postgres@127.0.0.1:5432/test``) and ``PINNACLE_TEST_MARIADB_URI`` (default
``mysql://root@127.0.0.1:3306/test``); those URIs are only used to create and drop databases.
Each test session works in its own ``pinnacle_t_<random>`` databases (on PostgreSQL: one
database, one fresh schema per need), dropped at the end, so runs never see each other. A
server that is down makes the tests that need it fail (no skip).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pinnacle_sql import SQLAlchemyMetadataStore
from pinnacle_sql.testing import DatabaseServer, StoreMaker, backend_params


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[DatabaseServer]:
    """The PostgreSQL server (databases made through it are dropped at session end)."""
    server = DatabaseServer.postgres()
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[DatabaseServer]:
    """The MariaDB server (databases made through it are dropped at session end)."""
    server = DatabaseServer.mariadb()
    yield server
    server.drop_all()


def _server(request: pytest.FixtureRequest, backend: str) -> DatabaseServer:
    server: DatabaseServer = request.getfixturevalue(f"{backend}_server")
    return server


@pytest.fixture(scope="session")
def session_makers() -> Iterator[dict[str, StoreMaker]]:
    """One StoreMaker (a pool of reusable databases) per backend, for the whole session."""
    makers: dict[str, StoreMaker] = {}
    yield makers
    for maker in makers.values():
        maker.close()


@pytest.fixture(params=backend_params())
def backend(request: pytest.FixtureRequest) -> str:
    """Every backend: sqlite_file, sqlite_memory, postgres, mariadb, duckdb_file, duckdb_memory."""
    name: str = request.param
    return name


@pytest.fixture
def maker(
    request: pytest.FixtureRequest,
    backend: str,
    session_makers: dict[str, StoreMaker],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StoreMaker]:
    """Factory of fresh, empty stores of ``backend``; their stores are closed after the test."""
    if backend not in session_makers:
        if backend in ("sqlite_memory", "duckdb_memory"):
            scheme = backend.split("_", maxsplit=1)[0]
            session_makers[backend] = StoreMaker(new_database=lambda: f"{scheme}://")
        elif backend in ("sqlite_file", "duckdb_file"):
            scheme = backend.split("_", maxsplit=1)[0]
            root = tmp_path_factory.mktemp(f"{scheme}_pool")
            session_makers[backend] = StoreMaker(
                new_database=lambda: f"{scheme}:///{root / f'{secrets.token_hex(4)}.db'}"
            )
        else:
            server = _server(request, backend)
            session_makers[backend] = StoreMaker(new_database=server.create_schema)
    maker = session_makers[backend]
    yield maker
    maker.close_stores()


@pytest.fixture
def store(maker: StoreMaker) -> SQLAlchemyMetadataStore:
    """One fresh, empty store of ``backend``."""
    return maker()


@pytest.fixture
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """``new_database(backend)``: the URI of a brand-new, empty database of that backend."""

    def make(backend: str) -> str:
        if backend in ("sqlite_memory", "duckdb_memory"):
            return f"{backend.split('_', maxsplit=1)[0]}://"
        if backend in ("sqlite_file", "duckdb_file"):
            name = f"fresh_{secrets.token_hex(4)}.db"
            return f"{backend.split('_', maxsplit=1)[0]}:///{tmp_path / name}"
        return _server(request, backend).create_schema()

    return make
