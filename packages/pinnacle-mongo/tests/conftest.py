"""Fixtures: MongoDB wire-protocol servers started for this session, and fresh databases.

No real mongod can run on the CI machine, so the suite starts two MongoDB wire-protocol servers
from PyPI and talks to them with an unmodified pymongo client over TCP:

* ``nx27017`` marker: ``nx-27017 --db memory`` (workspace dev dependency);
* ``mongoeco`` marker: mongoeco's wire proxy, run by Python >= 3.13 from its own venv
  (built on first use under ``~/.cache/pinnacledb/mongoeco-venv``; see
  :mod:`pinnacle_mongo.testing`).

With ``PINNACLE_TEST_MONGODB_URI`` set (e.g. ``mongodb://127.0.0.1:27017/test`` after
``docker compose -f docker/compose.yaml up -d mongo``) every test also runs against that server
(marker ``mongodb``). A server that cannot start is a test error, never a skip.

A test that takes a ``kind`` argument (directly or through the ``dbs`` fixture) runs once per
server. Known wrong answers of a server are strict xfails, declared next to the test as a
module-level ``KNOWN_GAPS = {"test_name[nx27017]": pytest.mark.notyet(reason=..., raises=...)}``
(or a contract class's ``known_gaps``). Every store gets a fresh database; the databases a test
made are dropped when it ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from pinnacle_mongo.testing import (
    FreshDatabases,
    MongoServer,
    external_mongodb,
    start_mongoeco,
    start_nx27017,
)

SERVER_MARKS = {
    "nx27017": pytest.mark.nx27017,
    "mongoeco": pytest.mark.mongoeco,
    "mongodb": pytest.mark.mongodb,
}


@pytest.fixture(scope="session")
def nx27017_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """nx-27017 on a free loopback port for the whole session."""
    server = start_nx27017(log_dir=tmp_path_factory.mktemp("nx27017"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongoeco_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """mongoeco's wire server on a free loopback port for the whole session."""
    server = start_mongoeco(log_dir=tmp_path_factory.mktemp("mongoeco"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mongodb_server() -> MongoServer:
    """The real MongoDB of ``PINNACLE_TEST_MONGODB_URI`` (only used when it is set)."""
    server = external_mongodb()
    if server is None:  # pragma: no cover - "mongodb" is only a param when the env is set
        raise pytest.UsageError("PINNACLE_TEST_MONGODB_URI is not set")
    return server


def server_ids() -> list[str]:
    """The servers this session tests: both wire servers, plus a real mongod if configured."""
    ids = ["mongoeco", "nx27017"]
    if external_mongodb() is not None:
        ids.append("mongodb")
    return ids


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses ``kind`` once per server, with that server's marker."""
    if "kind" in metafunc.fixturenames:
        metafunc.parametrize(
            "kind", [pytest.param(k, marks=SERVER_MARKS[k], id=k) for k in server_ids()]
        )


@pytest.fixture
def server(request: pytest.FixtureRequest, kind: str) -> MongoServer:
    """The session server of the test's ``kind``."""
    found: MongoServer = request.getfixturevalue(f"{kind}_server")
    return found


@pytest.fixture
def dbs(server: MongoServer) -> Iterator[FreshDatabases]:
    """Fresh databases on the test's server, dropped at teardown."""
    databases = FreshDatabases(server)
    yield databases
    databases.drop_all()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Apply ``known_gaps`` of contract classes and ``KNOWN_GAPS`` of test modules.

    Keys are test names, with or without the parameter part (``test_x`` or
    ``test_x[nx27017]``). Runs before the pinnacle_protocols plugin turns the ``notyet`` /
    ``notimpl`` marks into strict xfails.
    """
    for item in items:
        cls = getattr(item, "cls", None)
        module = getattr(item, "module", None)
        gaps: Mapping[str, Any] = (
            getattr(cls, "known_gaps", None) or getattr(module, "KNOWN_GAPS", None) or {}
        )
        if not gaps:
            continue
        mark = gaps.get(item.name) or gaps.get(item.name.split("[", 1)[0])
        if mark is not None:
            item.add_marker(mark)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which MongoDB servers the session uses."""
    return [f"pinnacle-mongo servers: {', '.join(server_ids())}"]
