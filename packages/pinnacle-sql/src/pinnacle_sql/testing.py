"""Test helpers: throw-away databases on real servers and cheap fresh stores.

Used by this package's tests and by ``tests-integration``; imports no test framework::

    from pinnacle_sql.testing import DatabaseServer, StoreMaker

    server = DatabaseServer.postgres()           # PINNACLE_TEST_POSTGRES_URI or the default
    make = StoreMaker(new_database=server.create_database)
    store = make()          # on a pooled pinnacle_t_<random> database, rows deleted first
    ...
    make.close()
    server.drop_all()
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import Any, Literal

from attrs import define, evolve, field
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from pinnacle_protocols import RedactedURI, translate_uri
from pinnacle_protocols.uri import redacted_repr
from pinnacle_sql._engine import DRIVERS
from pinnacle_sql._tables import tables_in_drop_order
from pinnacle_sql.store import SQLAlchemyMetadataStore

__all__ = [
    "BACKENDS",
    "DEFAULT_MARIADB_URI",
    "DEFAULT_POSTGRES_URI",
    "DatabaseServer",
    "StoreMaker",
    "backend_params",
    "run_sql",
]

#: PostgreSQL admin URI used when ``PINNACLE_TEST_POSTGRES_URI`` is not set.
DEFAULT_POSTGRES_URI = "postgres://postgres@127.0.0.1:5432/test"
#: MariaDB/MySQL admin URI used when ``PINNACLE_TEST_MARIADB_URI`` is not set.
DEFAULT_MARIADB_URI = "mysql://root@127.0.0.1:3306/test"


#: The backends this package is tested on.
BACKENDS = (
    "sqlite_file",
    "sqlite_memory",
    "postgres",
    "mariadb",
    "duckdb_file",
    "duckdb_memory",
)
_MARKERS = {
    "sqlite_file": "sqlite",
    "sqlite_memory": "sqlite",
    "duckdb_file": "duckdb",
    "duckdb_memory": "duckdb",
    "postgres": "postgres",
    "mariadb": "mariadb",
}


def backend_params(names: tuple[str, ...] = BACKENDS) -> list[Any]:
    """``pytest.param`` per backend name with its marker (``-m postgres`` selects one)."""
    import pytest

    return [
        pytest.param(name, marks=getattr(pytest.mark, _MARKERS[name]), id=name) for name in names
    ]


@define(kw_only=True)
class DatabaseServer:
    """A PostgreSQL or MariaDB server on which tests create (and later drop) databases.

    The admin URI's user must be allowed to create databases.
    """

    admin_uri: str = field(repr=redacted_repr)
    kind: Literal["postgres", "mariadb"]
    created: list[str] = field(factory=list)
    _admin: Engine | None = field(default=None, alias="_admin")
    # PostgreSQL: the database holding the schemas of create_schema(), and an engine on it.
    _home: str | None = field(default=None, alias="_home")
    _home_admin: Engine | None = field(default=None, alias="_home_admin")

    @classmethod
    def postgres(cls) -> DatabaseServer:
        """The server of ``PINNACLE_TEST_POSTGRES_URI`` (default :data:`DEFAULT_POSTGRES_URI`)."""
        uri = os.environ.get("PINNACLE_TEST_POSTGRES_URI", DEFAULT_POSTGRES_URI)
        return cls(admin_uri=uri, kind="postgres")

    @classmethod
    def mariadb(cls) -> DatabaseServer:
        """The server of ``PINNACLE_TEST_MARIADB_URI`` (default :data:`DEFAULT_MARIADB_URI`)."""
        uri = os.environ.get("PINNACLE_TEST_MARIADB_URI", DEFAULT_MARIADB_URI)
        return cls(admin_uri=uri, kind="mariadb")

    def admin(self) -> Engine:
        """An AUTOCOMMIT engine on the admin database (connects on first use)."""
        if self._admin is None:
            self._admin = create_engine(
                translate_uri(self.admin_uri, "sqlalchemy", drivers=DRIVERS),
                isolation_level="AUTOCOMMIT",
                connect_args={"connect_timeout": 5},
            )
        return self._admin

    def create_database(self, *, prefix: str = "pinnacle_t_", durable: bool = False) -> str:
        """Create an empty ``<prefix><random>`` database; return its pinnacledb URI.

        Unless ``durable``, a PostgreSQL database runs with ``synchronous_commit = off``
        (faster commits; same semantics except durability across a server crash).
        """
        name = f"{prefix}{secrets.token_hex(6)}"
        with self.admin().connect() as conn:
            if self.kind == "postgres":
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
                if not durable:
                    # Test data need not survive a crash: skip the WAL flush at each commit.
                    conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
            else:
                conn.exec_driver_sql(
                    f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                )
        self.created.append(name)
        return evolve(RedactedURI.parse(self.admin_uri), path=f"/{name}").reveal()

    def create_schema(self) -> str:
        """The URI of a new, empty place for a store, as cheaply as the server allows.

        On PostgreSQL a schema ``s_<random>`` in one ``pinnacle_t_<random>`` database per
        object, selected with ``?options=-csearch_path=<schema>`` (``DROP DATABASE`` forces a
        checkpoint, so one database with many schemas is much cheaper to clean up); on MariaDB,
        where a schema is a database, :meth:`create_database`.
        """
        if self.kind != "postgres":
            return self.create_database()
        if self._home is None:
            home_uri = self.create_database()
            self._home = RedactedURI.parse(home_uri).database
            self._home_admin = create_engine(
                translate_uri(home_uri, "sqlalchemy", drivers=DRIVERS), isolation_level="AUTOCOMMIT"
            )
        assert self._home_admin is not None
        schema = f"s_{secrets.token_hex(6)}"
        with self._home_admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        parsed = RedactedURI.parse(self.admin_uri)
        query = (*parsed.query, ("options", f"-csearch_path={schema}"))
        return evolve(parsed, path=f"/{self._home}", query=query).reveal()

    def drop_all(self) -> None:
        """Drop every database this object created (with the schemas in them)."""
        if self._home_admin is not None:
            self._home_admin.dispose()
            self._home_admin = None
        self._home = None
        if self._admin is None:
            return
        with self._admin.connect() as conn:
            for name in self.created:
                if self.kind == "postgres":
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                else:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        self.created.clear()
        self._admin.dispose()
        self._admin = None


@define(kw_only=True)
class _Pooled:
    uri: str = field(repr=redacted_repr)
    wiper: Engine
    store: SQLAlchemyMetadataStore | None = None

    def free(self) -> bool:
        return self.store is None or self.store._closed


@define(kw_only=True)
class StoreMaker:
    """Makes fresh, empty stores cheaply, from a pool of databases that are reused.

    A call hands out a store on a database that no open store uses, after deleting every row
    of its ``_pinnacle_*`` tables (the tables and the schema revision stay), and creates a new
    database with ``new_database`` only when every pooled one is in use. Creating the tables
    costs ~0.15 s on PostgreSQL and ~0.5 s on MariaDB; deleting a few rows about a millisecond.
    Stores open at the same time never share a database. ``sqlite://`` and ``duckdb://`` are
    never pooled: every store is its own in-memory database.
    """

    new_database: Callable[[], str]
    options: dict[str, Any] = field(factory=dict)
    _pool: list[_Pooled] = field(factory=list, alias="_pool")
    _handed_out: list[SQLAlchemyMetadataStore] = field(factory=list, alias="_handed_out")

    def __call__(self, **options: Any) -> SQLAlchemyMetadataStore:
        """A fresh, empty store (``options`` override :attr:`options`)."""
        merged = {**self.options, **options}
        entry = next((e for e in self._pool if e.free()), None)
        if entry is None:
            uri = self.new_database()
            if translate_uri(uri, "sqlalchemy", drivers=DRIVERS) in (
                "sqlite://",
                "duckdb:///:memory:",
            ):
                store = SQLAlchemyMetadataStore.from_uri(uri, **merged)
                self._handed_out.append(store)
                return store
            entry = _Pooled(
                uri=uri, wiper=create_engine(translate_uri(uri, "sqlalchemy", drivers=DRIVERS))
            )
            self._pool.append(entry)
        else:
            _wipe(entry.wiper)
        entry.store = SQLAlchemyMetadataStore.from_uri(entry.uri, **merged)
        self._handed_out.append(entry.store)
        return entry.store

    def close_stores(self) -> None:
        """Close every store handed out so far (their databases become free again)."""
        for store in self._handed_out:
            store.close()
        self._handed_out.clear()

    def close(self) -> None:
        """Close every store and release the pool's connections (databases are kept)."""
        self.close_stores()
        for entry in self._pool:
            entry.wiper.dispose()
        self._pool.clear()


def _wipe(engine: Engine) -> None:
    try:
        with engine.begin() as conn:
            for table in tables_in_drop_order():
                conn.execute(table.delete())
    except DBAPIError:  # some tables are missing (a test dropped them): delete what is there
        with engine.begin() as conn:
            present = set(inspect(conn).get_table_names())
            for table in tables_in_drop_order():
                if table.name in present:
                    conn.execute(table.delete())


def run_sql(uri: str, sql: str, **params: Any) -> list[Any]:
    """Run one SQL statement on ``uri`` in its own transaction; return its rows (if any)."""
    engine = create_engine(translate_uri(uri, "sqlalchemy", drivers=DRIVERS))
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        engine.dispose()
