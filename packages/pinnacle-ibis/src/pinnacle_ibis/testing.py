"""Test helpers: fresh, empty backends of every engine this package tests.

Used by this package's tests and by ``tests-integration``. Nothing here imports pytest; the
database drivers load lazily. Servers are found through ``PINNACLE_TEST_POSTGRES_URI`` (default
``postgres://postgres@127.0.0.1:5432/test``) and ``PINNACLE_TEST_MARIADB_URI`` (default
``mysql://root@127.0.0.1:3306/test``); those URIs are only used to create and drop the
``pinnacle_ibis_<random>`` databases a test session works in.

Every :class:`EngineMaker` hands out fresh, empty backends cheaply: a new in-memory database
(DuckDB, SQLite, Polars, DataFusion), a new file, a new PostgreSQL schema, a new MariaDB
database, a new Spark database or a new directory, and removes them all in :meth:`close`.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from pinnacle_ibis.backend import IbisDataBackend
from pinnacle_protocols.uri import RedactedURI, redacted_repr

__all__ = [
    "ENGINES",
    "EngineMaker",
    "MariaDBServer",
    "PostgresServer",
    "spark_session",
]

#: Engine ids, in the order tests are parametrized.
ENGINES = (
    "duckdb",
    "duckdb_file",
    "sqlite",
    "sqlite_file",
    "postgres",
    "mariadb",
    "polars",
    "datafusion",
    "pyspark",
    "pandas",
    "generic_duckdb",
)

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_MARIADB = "mysql://root@127.0.0.1:3306/test"


def _random_name(prefix: str = "pinnacle_ibis") -> str:
    return f"{prefix}_{secrets.token_hex(5)}"


@attrs.define(kw_only=True, eq=False)
class PostgresServer:
    """Creates and drops databases on a PostgreSQL server (trust or password auth)."""

    admin_uri: str = attrs.field(
        factory=lambda: os.environ.get("PINNACLE_TEST_POSTGRES_URI", DEFAULT_POSTGRES),
        repr=redacted_repr,
    )
    created: list[str] = attrs.field(factory=list)

    def _admin(self) -> Any:
        import psycopg

        u = RedactedURI.parse(self.admin_uri)
        return psycopg.connect(
            host=u.host or "127.0.0.1",
            port=u.port or 5432,
            user=u.username or "postgres",
            password=u.password,
            dbname=u.database or "postgres",
            autocommit=True,
        )

    def create_database(self) -> str:
        """A new empty database with a linguistic default collation (ICU ``en-US``).

        With it, ``"a" < "B"`` unless a column says ``COLLATE "C"``, so tests of code-point
        order can fail. Falls back to the server's default where ICU is missing.
        """
        import psycopg

        name = _random_name()
        with self._admin() as con:
            try:
                con.execute(
                    f'CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu '
                    "ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
                )
            except psycopg.Error:
                con.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        u = RedactedURI.parse(self.admin_uri)
        return attrs.evolve(u, path=f"/{name}").reveal()

    def drop_all(self) -> None:
        """Drop every database this object created."""
        with self._admin() as con:
            while self.created:
                con.execute(f'DROP DATABASE IF EXISTS "{self.created.pop()}" WITH (FORCE)')


@attrs.define(kw_only=True, eq=False)
class MariaDBServer:
    """Creates and drops databases on a MariaDB/MySQL server."""

    admin_uri: str = attrs.field(
        factory=lambda: os.environ.get("PINNACLE_TEST_MARIADB_URI", DEFAULT_MARIADB),
        repr=redacted_repr,
    )
    created: list[str] = attrs.field(factory=list)
    _con: Any = None

    def _admin(self) -> Any:
        if self._con is None:
            import MySQLdb  # type: ignore[import-untyped]

            u = RedactedURI.parse(self.admin_uri)
            self._con = MySQLdb.connect(
                host=u.host or "127.0.0.1",
                port=u.port or 3306,
                user=u.username or "root",
                password=u.password or "",
                autocommit=True,
            )
        return self._con

    def create_database(self) -> str:
        """A new empty database; returns its URI."""
        name = _random_name()
        cur = self._admin().cursor()
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        cur.close()
        self.created.append(name)
        u = RedactedURI.parse(self.admin_uri)
        return attrs.evolve(u, path=f"/{name}").reveal()

    def drop_all(self) -> None:
        """Drop every database this object created."""
        cur = self._admin().cursor()
        while self.created:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.created.pop()}`")
        cur.close()
        self._con.close()
        self._con = None


def spark_session(warehouse: str | Path) -> Any:
    """A ``local[2]`` SparkSession for tests (UI off, bound to 127.0.0.1, UTC)."""
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[2]")
        .appName("pinnacle-ibis-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.catalogImplementation", "in-memory")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={warehouse}")
        .getOrCreate()
    )


@attrs.define(kw_only=True, eq=False)
class EngineMaker:
    """Fresh, empty backends of one engine; :meth:`close` removes everything it made.

    Args:
        engine: One of :data:`ENGINES`.
        base_uri: The session database (postgres, mariadb) when the engine needs a server.
        spark: The SparkSession (pyspark).
    """

    engine: str
    base_uri: str | None = attrs.field(default=None, repr=redacted_repr)
    spark: Any = None
    make_database: Callable[[], str] | None = None
    _tmp: Path = attrs.field(factory=lambda: Path(tempfile.mkdtemp(prefix="pinnacle-ibis-")))
    _counter: Any = attrs.field(factory=itertools.count)
    _made: list[IbisDataBackend] = attrs.field(factory=list)
    _cleanups: list[Callable[[], None]] = attrs.field(factory=list)

    def uri(self) -> str:
        """A URI of a fresh, empty database of this engine."""
        n = next(self._counter)
        engine = self.engine
        if engine in ("duckdb", "generic_duckdb"):
            return "duckdb://"
        if engine == "duckdb_file":
            return f"duckdb://{self._tmp / f'db{n}.duckdb'}"
        if engine == "sqlite":
            return "sqlite://"
        if engine == "sqlite_file":
            return f"sqlite://{self._tmp / f'db{n}.sqlite'}"
        if engine == "polars":
            return "polars://"
        if engine == "datafusion":
            return "datafusion://"
        if engine == "pandas":
            return f"pandas://{self._tmp / f'dir{n}'}"
        if engine == "postgres":
            assert self.base_uri is not None
            schema = f"s{n}_{secrets.token_hex(3)}"
            self._run_postgres(f'CREATE SCHEMA "{schema}"')
            u = RedactedURI.parse(self.base_uri)
            return attrs.evolve(u, path=f"{u.path}/{schema}").reveal()
        if engine == "mariadb":
            assert self.make_database is not None
            return self.make_database()
        if engine == "pyspark":
            return f"pyspark://?database=pinnacle_{secrets.token_hex(4)}_{n}"
        raise ValueError(f"unknown engine {engine!r}")

    def _run_postgres(self, sql: str) -> None:
        import psycopg

        assert self.base_uri is not None
        u = RedactedURI.parse(self.base_uri)
        with psycopg.connect(
            host=u.host,
            port=u.port or 5432,
            user=u.username,
            password=u.password,
            dbname=u.database,
            autocommit=True,
        ) as con:
            con.execute(sql)

    def make(self) -> IbisDataBackend:
        """A fresh, empty backend."""
        uri = self.uri()
        if self.engine == "generic_duckdb":
            store: IbisDataBackend = IbisDataBackend(uri=RedactedURI.parse(uri), target=uri)
        elif self.engine == "pyspark":
            from pinnacle_ibis.spark import PySparkDataBackend

            store = PySparkDataBackend.from_session(self.spark, database=uri.split("=", 1)[1])
        else:
            store = IbisDataBackend.from_uri(uri)
        self._made.append(store)
        return store

    def close(self) -> None:
        """Close every backend made and remove temporary files."""
        for store in self._made:
            store.close()
        self._made.clear()
        for cleanup in self._cleanups:
            cleanup()
        shutil.rmtree(self._tmp, ignore_errors=True)
