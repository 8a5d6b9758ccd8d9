"""Fixtures: the real PostgreSQL and MariaDB servers, a local Spark session, engine makers.

Each test session works in its own ``pinnacle_ibis_<random>`` databases (dropped at the end) and
temporary directories, so runs never see each other. A server that is down makes the tests
that need it fail (no skip).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pinnacle_ibis import IbisDataBackend
from pinnacle_ibis.testing import EngineMaker, MariaDBServer, PostgresServer, spark_session


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server; databases made through it are dropped at session end."""
    server = PostgresServer()
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def postgres_db(postgres_server: PostgresServer) -> str:
    """One database for the session (each store gets its own schema in it)."""
    return postgres_server.create_database()


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    """The MariaDB server; databases made through it are dropped at session end."""
    server = MariaDBServer()
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local[2] SparkSession for the whole test session (start-up takes ~10-20 s)."""
    warehouse = Path(tempfile.mkdtemp(prefix="pinnacle-ibis-spark-"))
    session = spark_session(warehouse)
    yield session
    session.stop()
    import shutil

    shutil.rmtree(warehouse, ignore_errors=True)


def engine_maker(request: pytest.FixtureRequest, engine: str) -> EngineMaker:
    """An EngineMaker for ``engine``, wired to the session's servers."""
    if engine == "postgres":
        return EngineMaker(engine=engine, base_uri=request.getfixturevalue("postgres_db"))
    if engine == "mariadb":
        server: MariaDBServer = request.getfixturevalue("mariadb_server")
        return EngineMaker(engine=engine, make_database=server.create_database)
    if engine == "pyspark":
        return EngineMaker(engine=engine, spark=request.getfixturevalue("spark"))
    return EngineMaker(engine=engine)


@pytest.fixture
def maker_for(request: pytest.FixtureRequest) -> Iterator[Callable[[str], EngineMaker]]:
    """``maker_for(engine)``: an EngineMaker closed after the test."""
    made: list[EngineMaker] = []

    def make(engine: str) -> EngineMaker:
        m = engine_maker(request, engine)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


@pytest.fixture
def fresh(maker_for: Callable[[str], EngineMaker]) -> Callable[[str], IbisDataBackend]:
    """``fresh(engine)``: a fresh, empty backend of ``engine`` (closed after the test)."""
    return lambda engine: maker_for(engine).make()
