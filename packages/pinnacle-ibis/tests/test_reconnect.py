"""A server that goes away under a live IbisDataBackend: BackendUnavailable, then reconnect.

The shared PostgreSQL and MariaDB servers are never stopped (other tests use them). Instead:

* the backend's own server-side session is killed from a second connection
  (``pg_terminate_backend(pid)`` on PostgreSQL, ``KILL <connection id>`` on MariaDB), which is
  what the client sees when the server stops or restarts;
* "the server is down" is a server that refuses this backend's connections: on PostgreSQL the
  test's own database gets ``ALLOW_CONNECTIONS false``, on MariaDB the test's own user gets
  ``ACCOUNT LOCK`` (both undone before the test ends).

Every call made while the connection is broken or refused raises ``BackendUnavailable`` that
names the store (password redacted, never shown), and once the server takes connections again
the same backend object works, without being recreated. A private server really stopped and
started is in ``tests-integration/test_fault_restart.py``.
"""

from __future__ import annotations

import secrets
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pinnacle_ibis import IbisDataBackend
from pinnacle_ibis.backend import _is_connection_error
from pinnacle_ibis.testing import MariaDBServer, PostgresServer
from pinnacle_protocols.errors import BackendUnavailable, PinnacleError, TableNotFound
from pinnacle_protocols.records import Schema
from pinnacle_protocols.uri import RedactedURI

SECRET = "Sup3r-s3cret-pw"


def _calls(store: IbisDataBackend) -> dict[str, Callable[[], Any]]:
    """One call of every kind the protocol and native access offer."""
    counter = iter(range(10_000, 20_000))
    return {
        "list_tables": store.list_tables,
        "table_schema": lambda: store.table_schema("t"),
        "select": lambda: store.select("t", {"k": {"$lt": 3}}),
        "count": lambda: store.count("t"),
        "insert": lambda: store.insert("t", [{"k": next(counter), "v": "x"}]),
        "update": lambda: store.update("t", {"k": -1}, {"v": "y"}),
        "delete": lambda: store.delete("t", {"k": -1}),
        "create_table": lambda: store.create_table(f"n{next(counter)}", Schema.of(a="int")),
        "native": lambda: store.native("t"),
        "raw_sql": lambda: store.raw_sql("SELECT 1"),
    }


def _check_unavailable(store: IbisDataBackend, call: Callable[[], Any], name: str) -> None:
    with pytest.raises(BackendUnavailable) as info:
        call()
    message = str(info.value)
    assert "127.0.0.1" in message, f"{name}: the message names no store: {message}"
    assert "***" in message, f"{name}: the message shows no redacted URI: {message}"
    everything = "".join(traceback.format_exception(info.value))
    assert SECRET not in everything, f"{name}: the password leaked"


def _fill(store: IbisDataBackend) -> None:
    store.create_table("t", Schema.of(k="int", v="str"))
    store.insert("t", [{"k": i, "v": "x"} for i in range(5)])


def _works_again(store: IbisDataBackend) -> None:
    for call in _calls(store).values():
        call()  # the first try after the server is back works
    assert store.count("t", {"k": {"$lt": 5}}) == 5
    assert store.select("t", {"k": 2}) == [{"k": 2, "v": "x"}]


# ------------------------------------------------------------------------ PostgreSQL
class _Postgres:
    """A database of this test on the shared server, its backend, and admin powers over it."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.database = RedactedURI.parse(server.create_database()).database
        base = RedactedURI.parse(server.admin_uri)
        # trust authentication ignores the password, but it must never be shown
        uri = f"postgres://{base.username or 'postgres'}:{SECRET}@{base.host}:{base.port or 5432}"
        self.store = IbisDataBackend.from_uri(f"{uri}/{self.database}")

    def _admin(self, sql: str, params: list[Any] | None = None) -> list[Any]:
        with self.server._admin() as con:
            cur = con.execute(sql, params)
            return list(cur.fetchall()) if cur.description is not None else []

    def kill_session(self) -> None:
        (pid,) = self.store.raw_sql("SELECT pg_backend_pid()")[0]
        assert self._admin("SELECT pg_terminate_backend(%s)", [pid]) == [(True,)]

    def refuse(self, refuse: bool) -> None:
        """Refuse (or allow) new connections to the database and end the open ones."""
        allow = "false" if refuse else "true"
        self._admin(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS {allow}')
        if refuse:
            self._admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [self.database],
            )


@pytest.fixture
def pg(postgres_server: PostgresServer) -> Iterator[_Postgres]:
    env = _Postgres(postgres_server)
    yield env
    env.refuse(False)
    env.store.close()


@pytest.mark.postgres
def test_postgres_killed_session_reconnects(pg: _Postgres) -> None:
    """The call that finds the session gone raises BackendUnavailable; the next one works."""
    store = pg.store
    _fill(store)
    for name, call in _calls(store).items():
        pg.kill_session()
        _check_unavailable(store, call, name)
        assert store.count("t", {"k": {"$lt": 5}}) == 5  # reconnected, nothing lost
    _works_again(store)


@pytest.mark.postgres
def test_postgres_refusing_server_then_back(pg: _Postgres) -> None:
    """While connections are refused every call raises BackendUnavailable; then all work."""
    store = pg.store
    _fill(store)
    pg.refuse(True)
    for _ in range(2):  # the first call finds the session gone, later ones cannot connect
        for name, call in _calls(store).items():
            _check_unavailable(store, call, name)
    _check_unavailable(store, lambda: store.connection, "connection")
    pg.refuse(False)
    _works_again(store)


# ------------------------------------------------------------------------ MariaDB
class _MariaDB:
    """A database and a user of this test on the shared server, and the backend of that user."""

    def __init__(self, server: MariaDBServer) -> None:
        self.server = server
        self.database = RedactedURI.parse(server.create_database()).database
        self.user = f"pinnacle_ibis_{secrets.token_hex(4)}"
        self._admin(f"CREATE USER '{self.user}'@'%' IDENTIFIED BY '{SECRET}'")
        self._admin(f"GRANT ALL ON `{self.database}`.* TO '{self.user}'@'%'")
        base = RedactedURI.parse(server.admin_uri)
        self.store = IbisDataBackend.from_uri(
            f"mysql://{self.user}:{SECRET}@{base.host}:{base.port or 3306}/{self.database}"
        )

    def _admin(self, sql: str) -> list[Any]:
        cur = self.server._admin().cursor()
        try:
            cur.execute(sql)
            return list(cur.fetchall()) if cur.description is not None else []
        finally:
            cur.close()

    def _kill_user_sessions(self) -> None:
        rows = self._admin(
            "SELECT id FROM information_schema.processlist "
            f"WHERE user = '{self.user}'"  # a generated name, no quotes in it
        )
        for (cid,) in rows:
            self._admin(f"KILL {int(cid)}")

    def kill_session(self) -> None:
        (cid,) = self.store.raw_sql("SELECT CONNECTION_ID()")[0]
        self._admin(f"KILL {int(cid)}")

    def refuse(self, refuse: bool) -> None:
        """Lock (or unlock) the test's user and end its open sessions."""
        self._admin(f"ALTER USER '{self.user}'@'%' ACCOUNT {'LOCK' if refuse else 'UNLOCK'}")
        if refuse:
            self._kill_user_sessions()

    def cleanup(self) -> None:
        self.store.close()
        self._admin(f"DROP USER IF EXISTS '{self.user}'@'%'")


@pytest.fixture
def maria(mariadb_server: MariaDBServer) -> Iterator[_MariaDB]:
    env = _MariaDB(mariadb_server)
    yield env
    env.cleanup()


@pytest.mark.mariadb
def test_mariadb_killed_session_reconnects(maria: _MariaDB) -> None:
    """The call that finds the session gone raises BackendUnavailable; the next one works."""
    store = maria.store
    _fill(store)
    for name, call in _calls(store).items():
        maria.kill_session()
        _check_unavailable(store, call, name)
        assert store.count("t", {"k": {"$lt": 5}}) == 5  # reconnected, nothing lost
    _works_again(store)


@pytest.mark.mariadb
def test_mariadb_refusing_server_then_back(maria: _MariaDB) -> None:
    """While connections are refused every call raises BackendUnavailable; then all work."""
    store = maria.store
    _fill(store)
    maria.refuse(True)
    for _ in range(2):  # the first call finds the session gone, later ones cannot connect
        for name, call in _calls(store).items():
            _check_unavailable(store, call, name)
    _check_unavailable(store, lambda: store.connection, "connection")
    maria.refuse(False)
    _works_again(store)


# ------------------------------------------------------------------------ other errors
@pytest.mark.postgres
def test_postgres_statement_timeout_is_not_a_lost_connection(pg: _Postgres) -> None:
    """A cancelled statement is an engine error on a live connection: no reconnect."""
    store = pg.store
    _fill(store)
    (pid,) = store.raw_sql("SELECT pg_backend_pid()")[0]
    store.raw_sql("SELECT set_config('statement_timeout', '50', false)")
    with pytest.raises(PinnacleError) as info:
        store.raw_sql("SELECT pg_sleep(2)")
    assert not isinstance(info.value, BackendUnavailable)
    assert "QueryCanceled" in str(info.value)
    store.raw_sql("SELECT set_config('statement_timeout', '0', false)")
    assert store.raw_sql("SELECT pg_backend_pid()") == [(pid,)]  # the same session
    assert store.count("t") == 5
    with pytest.raises(TableNotFound):
        store.count("nope")


@pytest.mark.postgres
@pytest.mark.mariadb
def test_driver_errors_classified() -> None:
    """Which real driver exceptions mean "the connection is gone" (instances, not mocks).

    Marked postgres and mariadb: it needs both drivers (the ``[postgres]`` and ``[mysql]``
    extras), though no server.
    """
    import MySQLdb  # type: ignore[import-untyped]
    import psycopg
    import psycopg.errors

    lost = [
        psycopg.OperationalError("the connection is closed"),
        psycopg.InterfaceError("the connection is lost"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.CrashShutdown("crash"),
        psycopg.errors.CannotConnectNow("the database system is starting up"),
        psycopg.errors.ConnectionFailure("connection failure"),
        MySQLdb.OperationalError(2006, "Server has gone away"),
        MySQLdb.OperationalError(2013, "Lost connection to server during query"),
        MySQLdb.OperationalError(2002, "Can't connect to local server through socket"),
        MySQLdb.OperationalError(2003, "Can't connect to server on '127.0.0.1'"),
        MySQLdb.OperationalError(1927, "Connection was killed"),
        MySQLdb.InterfaceError(0, ""),
        ConnectionResetError("reset by peer"),
    ]
    alive = [
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        psycopg.errors.UndefinedTable('relation "x" does not exist'),
        psycopg.errors.LockNotAvailable("could not obtain lock"),
        MySQLdb.OperationalError(1205, "Lock wait timeout exceeded"),
        MySQLdb.OperationalError(1054, "Unknown column"),
        MySQLdb.ProgrammingError(1146, "Table doesn't exist"),
        ValueError("x"),
        BackendUnavailable("already translated"),
    ]
    for exc in lost:
        assert _is_connection_error(exc), repr(exc)
    for exc in alive:
        assert not _is_connection_error(exc), repr(exc)
    wrapped = RuntimeError("ibis failed")
    wrapped.__cause__ = lost[0]
    assert _is_connection_error(wrapped)
    # a client-side psycopg error on a connection known to be open is not a lost connection
    too_many = psycopg.OperationalError("number of parameters must be between 0 and 65535")
    assert _is_connection_error(too_many, closed=True)
    assert not _is_connection_error(too_many, closed=False)


@pytest.mark.postgres
def test_postgres_client_side_error_keeps_the_connection(pg: _Postgres) -> None:
    """psycopg's client-side OperationalError (too many parameters) is no lost connection."""
    store = pg.store
    _fill(store)
    (pid,) = store.raw_sql("SELECT pg_backend_pid()")[0]
    marks = ",".join(["%s"] * 70_000)
    with pytest.raises(PinnacleError) as info:
        store.raw_sql(f"SELECT 1 WHERE 1 IN ({marks})", list(range(70_000)))
    assert not isinstance(info.value, BackendUnavailable)
    assert store.raw_sql("SELECT pg_backend_pid()") == [(pid,)]  # the same session
