"""Engine construction per dialect: drivers, timeouts, SQLite pragmas and transaction modes."""

from __future__ import annotations

import importlib.util
import os
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from attrs import field, frozen
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import NoSuchModuleError
from sqlalchemy.pool import StaticPool

from pinnacle_protocols import BackendUnavailable, ConfigError, RedactedURI, translate_uri

__all__ = [
    "DRIVERS",
    "EngineOptions",
    "build_engine",
    "check_driver",
    "is_memory_db",
    "is_memory_sqlite",
    "sqlalchemy_url",
]

#: The DB-API driver pinnacle-sql uses per SQLAlchemy dialect (``postgres://`` ->
#: ``postgresql+psycopg://``); an explicit ``dialect+driver://`` URI overrides it.
DRIVERS: Final[Mapping[str, str]] = MappingProxyType(
    {"postgresql": "psycopg", "mysql": "pymysql", "mssql": "pyodbc", "oracle": "oracledb"}
)

SQLiteSync = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

_EXTRAS: Final = {
    "postgresql": ("psycopg", "pinnacle-sql[postgres]"),
    "mysql": ("pymysql", "pinnacle-sql[mysql]"),
    "mariadb": ("pymysql", "pinnacle-sql[mysql]"),
    "mssql": ("pyodbc", "pyodbc"),
    "oracle": ("oracledb", "oracledb"),
    "duckdb": ("duckdb-engine", "pinnacle-sql[duckdb]"),
}
# Dialects whose SQLAlchemy dialect itself lives in a separate package (an entry point).
_DIALECT_MODULES: Final = {"duckdb": "duckdb_engine"}
_BEGIN_MODES: Final = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


def _positive(_inst: object, attr: Any, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"option {attr.name}={value!r} must be a positive number of seconds")


def _sync(_inst: object, _attr: object, value: str) -> None:
    if value not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ConfigError(f"option sqlite_synchronous={value!r}: use OFF, NORMAL, FULL or EXTRA")


@frozen(kw_only=True)
class EngineOptions:
    """Options of :meth:`SQLAlchemyMetadataStore.from_uri`.

    Attributes:
        connect_timeout: Seconds to wait for a server connection before BackendUnavailable
            (PostgreSQL rounds up to whole seconds, minimum 2).
        busy_timeout: SQLite: seconds a writer waits for another writer's lock.
        lock_timeout: Seconds ``migrate()`` waits for another process's migration.
        sqlite_synchronous: SQLite ``PRAGMA synchronous`` for file databases; ``FULL`` (the
            default) makes every committed version durable against power loss.
        pool_size: Connection pool size (server dialects); SQLAlchemy's default if None.
        echo: Log every SQL statement (SQLAlchemy ``echo``).
        engine_options: Extra keyword arguments for ``sqlalchemy.create_engine``.
    """

    connect_timeout: float = field(default=10.0, validator=_positive)
    busy_timeout: float = field(default=30.0, validator=_positive)
    lock_timeout: float = field(default=300.0, validator=_positive)
    sqlite_synchronous: str = field(default="FULL", validator=_sync)
    pool_size: int | None = None
    echo: bool = False
    engine_options: Mapping[str, Any] = field(factory=dict)

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any]) -> EngineOptions:
        """Build from ``from_uri`` keyword options; unknown names raise ConfigError."""
        known = {a.name for a in cls.__attrs_attrs__}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"unknown option(s) {unknown} for SQLAlchemyMetadataStore; "
                f"known options: {sorted(known)}"
            )
        return cls(**options)


def sqlalchemy_url(uri: RedactedURI) -> URL:
    """The SQLAlchemy URL of a pinnacledb URI (the shared ``translate_uri`` with
    :data:`DRIVERS`)."""
    return make_url(translate_uri(uri, "sqlalchemy", drivers=DRIVERS))


def is_memory_sqlite(url: URL) -> bool:
    """Whether ``url`` is an in-memory SQLite database."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def is_memory_db(url: URL) -> bool:
    """Whether ``url`` is an in-memory SQLite or DuckDB database (one shared connection)."""
    if url.get_backend_name() == "duckdb":
        return url.database in (None, "", ":memory:")
    return is_memory_sqlite(url)


def _missing_driver_error(uri: RedactedURI, backend: str) -> ConfigError:
    driver, extra = _EXTRAS.get(backend, (backend, backend))
    return ConfigError(f"metadata store {uri} needs the {driver} driver: pip install '{extra}'")


def check_driver(uri: RedactedURI, url: URL) -> None:
    """Raise ConfigError now if the SQLAlchemy dialect of ``url`` is a missing package.

    Only for dialects that are not part of SQLAlchemy (DuckDB's is ``duckdb-engine``); the
    module is looked up, not imported.
    """
    backend = url.get_backend_name()
    module = _DIALECT_MODULES.get(backend)
    if module is None:
        return
    try:
        missing = importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # ValueError: sys.modules[module] is None (blocked)
        missing = True
    if missing:
        raise _missing_driver_error(uri, backend)


def build_engine(uri: RedactedURI, options: EngineOptions) -> Engine:
    """Create the engine for ``uri``; no connection is opened yet.

    Raises:
        ConfigError: the driver for the dialect is not installed.
    """
    url = sqlalchemy_url(uri)
    backend = url.get_backend_name()
    kwargs: dict[str, Any] = {"hide_parameters": True, "echo": options.echo}
    connect_args: dict[str, Any] = {}
    read_only = False
    if backend == "sqlite":
        connect_args["check_same_thread"] = False
        connect_args["timeout"] = options.busy_timeout
        if is_memory_sqlite(url):
            # One connection shared by every session, or each would see its own empty DB.
            kwargs["poolclass"] = StaticPool
        else:
            url, read_only = _sqlite_file_url(uri, url)
    elif backend == "postgresql":
        connect_args["connect_timeout"] = max(2, int(-(-options.connect_timeout // 1)))
        connect_args["application_name"] = "pinnacledb"
    elif backend in ("mysql", "mariadb"):
        timeout = max(1, int(-(-options.connect_timeout // 1)))
        connect_args["connect_timeout"] = timeout
        # PyMySQL's connect_timeout covers only the TCP connect: bound the handshake with the
        # read timeout too, then lift it in the connect event (queries may wait on locks).
        connect_args["read_timeout"] = timeout
        connect_args["charset"] = "utf8mb4"
        # Reads run as single autocommit statements (no ROLLBACK round trip when a connection
        # goes back to the pool, no metadata locks held by idle connections); writers open
        # their transaction explicitly (see _mysql_events). No transaction is ever left open,
        # so the pool's reset-on-return ROLLBACK is not needed.
        kwargs["isolation_level"] = "AUTOCOMMIT"
        kwargs["pool_reset_on_return"] = None
        if uri.host in _LOOPBACK and not any(k.lower().startswith("ssl") for k, _ in uri.query):
            # PyMySQL >= 1.1 tries TLS on every connection unless told not to, building an SSL
            # context each time (~25-100 ms, the system CA bundle is loaded): pointless on the
            # loopback interface. Any ssl* URI parameter keeps PyMySQL's own behaviour.
            connect_args["ssl_disabled"] = True
    elif backend == "duckdb":
        if is_memory_db(url):
            # duckdb-engine's default pool gives each thread its own (empty) database.
            kwargs["poolclass"] = StaticPool
        elif url.database:
            _make_parent(uri, Path(url.database), "DuckDB")
    elif backend == "mssql":
        connect_args["timeout"] = max(1, int(-(-options.connect_timeout // 1)))
    if options.pool_size is not None and backend != "sqlite" and not is_memory_db(url):
        kwargs["pool_size"] = options.pool_size
    kwargs.update(options.engine_options)
    user_connect_args = kwargs.pop("connect_args", {})
    kwargs["connect_args"] = {**connect_args, **user_connect_args}
    try:
        engine = create_engine(url, **kwargs)
    except (ImportError, NoSuchModuleError) as exc:
        raise _missing_driver_error(uri, backend) from exc
    if backend == "sqlite":
        _sqlite_events(engine, memory=is_memory_sqlite(url), options=options, read_only=read_only)
    elif backend in ("mysql", "mariadb"):
        _mysql_events(engine)
    return engine


def _sqlite_file_url(uri: RedactedURI, url: URL) -> tuple[URL, bool]:
    """The URL to open a SQLite file with, and whether it is opened read-only."""
    if not url.database or url.database.startswith("file:"):
        return url, False
    read_only_uri = sqlite_read_only_uri(Path(url.database))
    if read_only_uri is None:
        _make_parent(uri, Path(url.database), "SQLite")
        return url, False
    filename, _, option = read_only_uri.partition("?")
    key, _, value = option.partition("=")
    # SQLAlchemy passes a "file:" name with uri=true to sqlite3 as a URI filename.
    return url.set(database=filename).update_query_dict({"uri": "true", key: value}), True


def sqlite_read_only_uri(path: Path) -> str | None:
    """A read-only SQLite URI filename for an existing ``path`` this process cannot write.

    Writing needs the file and its directory (for the WAL and shared-memory files) to be
    writable. On read-only media nobody can change the file, so it is opened ``immutable``
    (SQLite then needs no lock and no WAL index); with mere permissions it is opened
    ``mode=ro``. ``None`` when the file is missing or writable.
    """
    try:
        if not path.is_file():
            return None
        if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
            return None
        media_read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return None
    mode = "immutable=1" if media_read_only else "mode=ro"
    return f"file:{urllib.parse.quote(str(path.resolve()))}?{mode}"


def _make_parent(uri: RedactedURI, path: Path, kind: str) -> None:
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackendUnavailable(
            f"{uri}: cannot create the directory {str(directory)!r} for the {kind} file "
            f"({exc.strerror or exc}); choose a path in a directory you can write to, or "
            "create the directory first"
        ) from exc


def _sqlite_events(
    engine: Engine, *, memory: bool, options: EngineOptions, read_only: bool = False
) -> None:
    busy_ms = int(options.busy_timeout * 1000)
    sync = options.sqlite_synchronous

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event (below) issue BEGIN itself, so writers can use
        # BEGIN IMMEDIATE: a deferred transaction that later writes can fail with SQLITE_BUSY
        # without waiting for the busy timeout.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if not memory and not read_only:  # a read-only file keeps its journal mode
                _ensure_wal(cur, options.busy_timeout)
                cur.execute(f"PRAGMA synchronous = {sync}")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers ask for IMMEDIATE (migrations: EXCLUSIVE). Readers run one statement each,
        # which SQLite makes atomic by itself: no BEGIN, no transaction to end.
        mode = conn.get_execution_options().get("pinnacle_begin")
        if mode is None:
            return
        if mode not in _BEGIN_MODES:  # pragma: no cover - internal option
            raise ValueError(f"bad pinnacle_begin mode {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text


def _ensure_wal(cur: Any, timeout: float) -> None:
    """Put a SQLite file database in WAL mode, waiting out other connections' locks.

    SQLite does not call the busy handler everywhere on this path: while another connection
    checkpoints and removes the WAL (the last one closing does), both the first read of a new
    connection and ``PRAGMA journal_mode = WAL`` can fail at once with "database is locked".
    So: read the mode first (WAL is persistent: once set, later connections find it and never
    ask for the lock that changing it needs) and retry lock errors with backoff for up to
    ``timeout`` seconds, like the busy timeout would.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            cur.execute("SELECT count(*) FROM sqlite_master").fetchall()
            row = cur.execute("PRAGMA journal_mode").fetchone()
            if row is not None and str(row[0]).lower() == "wal":
                return
            cur.execute("PRAGMA journal_mode = WAL").fetchall()
            return
        except Exception as exc:  # the DB-API module's OperationalError, driver-specific
            if not _is_locked(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _mysql_events(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # The connection is in autocommit mode: a writer's transaction must start explicitly.
        if conn.get_execution_options().get("pinnacle_begin"):
            conn.exec_driver_sql("START TRANSACTION")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        if hasattr(dbapi_conn, "_read_timeout"):
            dbapi_conn._read_timeout = None
        # Strict for every table: an over-long value is an error, never silently truncated.
        cur = dbapi_conn.cursor()
        try:
            cur.execute(
                "SET SESSION sql_mode = IF(@@SESSION.sql_mode = '', 'STRICT_ALL_TABLES', "
                "CONCAT(@@SESSION.sql_mode, ',STRICT_ALL_TABLES'))"
            )
        finally:
            cur.close()
