"""Programmatic Alembic: the revision check, and ``upgrade head`` under a cross-process lock.

Alembic (and the PostgreSQL dialect it pulls in) is imported only to migrate: opening an
up-to-date store reads the one revision row with a plain query and compares it with
:data:`HEAD_REVISION` (``test_migrations.py`` checks the constants against the scripts).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Iterator
from importlib import resources
from typing import TYPE_CHECKING, Final

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "HEAD_REVISION",
    "KNOWN_REVISIONS",
    "VERSION_TABLE",
    "MigrationLockTimeout",
    "UnknownRevision",
    "alembic_config",
    "current_revision",
    "head_revision",
    "known_revisions",
    "read_revision",
    "upgrade",
]

#: Alembic's version table, prefixed like every pinnacledb table.
VERSION_TABLE: Final = "_pinnacle_alembic_version"
_READ_VERSION: Final = "SELECT version_num FROM _pinnacle_alembic_version"

#: The newest revision in ``migrations/versions`` (kept equal to the scripts by a test).
HEAD_REVISION: Final = "0002_content_hash"
#: Every revision in ``migrations/versions`` (kept equal to the scripts by a test).
KNOWN_REVISIONS: Final = frozenset({"0001_initial", HEAD_REVISION})

# Any constant works: PostgreSQL advisory locks are per database.
_PG_LOCK_KEY: Final = (
    int.from_bytes(hashlib.sha256(b"pinnacle_sql.migrate").digest()[:8], "big") >> 1
)


@functools.cache
def _register_duckdb_impl() -> None:
    """Alembic's implementation for duckdb-engine (a PostgreSQL dialect underneath).

    Defining the class registers it with Alembic, once per process, before Alembic runs.
    """
    from alembic.ddl.postgresql import PostgresqlImpl

    class _DuckDBImpl(PostgresqlImpl):
        __dialect__ = "duckdb"


class MigrationLockTimeout(Exception):
    """Another process held the migration lock for longer than the timeout."""


class UnknownRevision(Exception):
    """The database is stamped with a revision this package does not ship (a newer one)."""

    def __init__(self, revision: str) -> None:
        super().__init__(revision)
        self.revision = revision


def _script_location() -> str:
    return str(resources.files("pinnacle_sql") / "migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` built in code (no ``alembic.ini``) for ``connection``."""
    from alembic.config import Config

    _register_duckdb_impl()
    cfg = Config()
    cfg.set_main_option("script_location", _script_location())
    cfg.set_main_option("version_table", VERSION_TABLE)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _script() -> ScriptDirectory:
    # The scripts are package data: they cannot change while the process runs.
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision shipped in this package."""
    return HEAD_REVISION


def known_revisions() -> frozenset[str]:
    """Every revision id shipped in this package."""
    return KNOWN_REVISIONS


def current_revision(connection: Connection) -> str | None:
    """The revision stamped in the database, or None if it has no version table."""
    from alembic.runtime.migration import MigrationContext

    _register_duckdb_impl()
    ctx = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return ctx.get_current_revision()


def read_revision(connection: Connection) -> str | None:
    """:func:`current_revision` without Alembic: the version table's one row, or None.

    Several rows (branched heads, which this package never writes) are left to Alembic, which
    raises its own error for them.
    """
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(text(_READ_VERSION)).all()
    if len(rows) > 1:
        return current_revision(connection)
    return str(rows[0][0]) if rows else None


def _lock_name(engine: Engine) -> str:
    # MySQL lock names are at most 64 characters and server-wide: include the database.
    digest = hashlib.sha256(str(engine.url.database or "").encode("utf-8")).hexdigest()[:40]
    return f"pinnacle_migrate_{digest}"


@contextlib.contextmanager
def _mysql_lock(conn: Connection, engine: Engine, lock_timeout: float) -> Iterator[None]:
    """Hold the MySQL/MariaDB migration lock (``GET_LOCK``, server-wide, per database)."""
    name = _lock_name(engine)
    got = conn.execute(
        text("SELECT GET_LOCK(:n, :t)"), {"n": name, "t": max(1, int(lock_timeout))}
    ).scalar()
    conn.commit()
    if got != 1:
        raise MigrationLockTimeout
    try:
        yield
    finally:
        conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": name})
        conn.commit()


def settled_revision(engine: Engine, *, lock_timeout: float) -> str | None:
    """The stamped revision, read while holding the migration lock on MySQL/MariaDB.

    MySQL commits every DDL statement by itself, so while another process creates or upgrades
    the schema, a plain read can see a revision half-way to head. Read under the lock, a
    running migration is seen finished. Other dialects migrate in one transaction: a plain
    read never sees a migration half-way.
    """
    with engine.connect() as conn:
        if engine.dialect.name not in ("mysql", "mariadb"):
            return current_revision(conn)
        with _mysql_lock(conn, engine, lock_timeout):
            return current_revision(conn)


def upgrade(engine: Engine, *, lock_timeout: float, target: str = "head") -> tuple[str | None, str]:
    """Upgrade to ``target`` while holding the dialect's migration lock.

    The current revision is read again after the lock is taken, so a process that waited for
    another one's migration finds nothing left to do.

    Returns:
        The revision before and after.
    """
    dialect = engine.dialect.name
    with engine.connect() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_timeout * 1000)}")
            try:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            except Exception as exc:
                if "lock timeout" in str(exc):
                    raise MigrationLockTimeout from exc
                raise
            conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
            return _run(conn, target, commit=True)
        if dialect in ("mysql", "mariadb"):
            with _mysql_lock(conn, engine, lock_timeout):
                return _run(conn, target, commit=True)
        if dialect == "sqlite":
            # The begin listener turns this into BEGIN EXCLUSIVE (see _engine.py).
            conn.execution_options(pinnacle_begin="EXCLUSIVE")
            conn.begin()
            return _run(conn, target, commit=True)
        if dialect == "duckdb":
            # A DuckDB file has one writing process: no cross-process lock is needed (the
            # store serializes its own threads). DuckDB cannot ALTER tables that have indexes
            # or constraints, so an empty database is created at head in one go and stamped.
            conn.begin()
            before = current_revision(conn)
            if before is None and target == "head":
                _create_duckdb_head(conn)
                from alembic import command

                command.stamp(alembic_config(conn), head_revision())
                conn.commit()
                return None, head_revision()
            return _run(conn, target, commit=True)
        # SQL Server, Oracle: one transaction, no cross-process lock (documented, untested).
        conn.begin()
        return _run(conn, target, commit=True)


def _create_duckdb_head(conn: Connection) -> None:
    """The head tables on DuckDB, without foreign keys.

    DuckDB checks a foreign key against the committed state: a transaction cannot delete a
    component row after deleting the lineage and artifact rows that referenced it, which
    ``delete_component_version`` does. The store deletes dependents in code first.
    """
    from sqlalchemy.schema import CreateIndex, CreateSequence, CreateTable, Sequence

    from pinnacle_sql._tables import COMPONENTS_ID_SEQUENCE, metadata

    conn.execute(CreateSequence(Sequence(COMPONENTS_ID_SEQUENCE), if_not_exists=True))
    for table in metadata.sorted_tables:
        conn.execute(CreateTable(table, include_foreign_key_constraints=[]))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            conn.execute(CreateIndex(index))


def _run(conn: Connection, target: str, *, commit: bool) -> tuple[str | None, str]:
    before = current_revision(conn)
    if before is not None and before not in known_revisions():
        raise UnknownRevision(before)
    goal = head_revision() if target == "head" else target
    if before != goal:
        from alembic import command

        command.upgrade(alembic_config(conn), goal)
    after = current_revision(conn)
    if commit:
        conn.commit()
    return before, after or ""
