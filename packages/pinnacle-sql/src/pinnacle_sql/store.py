"""SQLAlchemyMetadataStore: the MetadataStore on any SQLAlchemy dialect."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Self, TypeVar

import attrs
from attrs import define, evolve, field
from sqlalchemy import Column, MetaData, String, Table
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from pinnacle_protocols import (
    BackendUnavailable,
    ComponentInUse,
    ComponentKey,
    ComponentNotFound,
    ComponentRecord,
    DropRefused,
    InvalidRecord,
    JobNotFound,
    JobRecord,
    JobStatus,
    JSONValue,
    MigrationRequired,
    PinnacleError,
    ReadOnlyStore,
    RedactedURI,
    SchemaRevision,
    StoreFileGone,
    VersionConflict,
    redact,
    serialization,
    unstructure,
    utcnow,
)
from pinnacle_protocols.records import check_json, check_reuse_unchanged
from pinnacle_protocols.serialization import load_json, structure_json
from pinnacle_sql import _migrate
from pinnacle_sql._engine import (
    EngineOptions,
    build_engine,
    check_driver,
    is_memory_db,
    is_memory_sqlite,
    sqlalchemy_url,
)
from pinnacle_sql._sql import Statements, statements
from pinnacle_sql._sqlite_fast import SQLiteCreate, prepare_create
from pinnacle_sql._tables import tables_in_drop_order

__all__ = ["SQLAlchemyMetadataStore"]

T = TypeVar("T")

_MAX_INT64: Final = 2**63 - 1
_MAX_RETRIES: Final = 60
_MAX_MESSAGE: Final = 500
_STATEMENT_SLACK: Final = 64 * 1024
MiB: Final = 1 << 20
# PostgreSQL SQLSTATEs worth retrying: serialization failure, deadlock.
_PG_TRANSIENT: Final = frozenset({"40001", "40P01"})
# MySQL/MariaDB error numbers worth retrying: deadlock, lock wait timeout.
_MYSQL_TRANSIENT: Final = frozenset({1213, 1205})


#: Bumped in a child process right after a fork: SQLite connections opened before it belong to
#: the parent (see SQLAlchemyMetadataStore.change_token).
_FORK_GENERATION: list[int] = [0]
#: Watch connections inherited across a fork: kept referenced, never closed in the child
#: (closing would run SQLite's close-time work on the parent's file from the wrong process).
_INHERITED: list[object] = []


def _after_fork_in_child() -> None:
    _FORK_GENERATION[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@define(eq=False)
class _Watch:
    """A dedicated SQLite connection that never writes: its ``PRAGMA data_version`` changes
    whenever another connection (of any process, or of this store's pool) commits."""

    raw: Any  # the pool's connection proxy, detached from the pool
    cursor: Any  # a cursor of its sqlite3 connection
    generation: int
    lock: threading.Lock = field(factory=threading.Lock)

    def close(self) -> None:
        if self.generation != _FORK_GENERATION[0]:
            _INHERITED.append(self.raw)
            return
        with contextlib.suppress(Exception):  # releasing; the caller falls back to reads
            self.cursor.close()
        with contextlib.suppress(Exception):
            self.raw.close()


class _Retry(Exception):
    """Roll the transaction back and run it again (a lost race on a unique key)."""


class _Unchanged(Exception):
    """The latest stored version has the new record's content: roll back, return it."""

    def __init__(self, record_json: str) -> None:
        super().__init__("unchanged")
        self.record_json = record_json


class _CounterBehind(Exception):
    """An allocated version already exists: the counter is behind the stored versions."""


def _dumps(value: Any) -> str:
    # ASCII-only JSON: survives any connection charset; lone surrogates round-trip as escapes.
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def _valid_name(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 255 and "\x00" not in value


def _valid_version(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_INT64


def _record_tail(record: ComponentRecord) -> tuple[datetime, str]:
    """``created_at`` (now if unset) and the record's JSON without ``{`` and the version.

    Everything but the version is encoded outside the transaction; the version is spliced in
    once allocated (JSON objects are unordered).
    """
    created = record.created_at or utcnow()
    body = unstructure(record)
    del body["version"]
    body["created_at"] = serialization.converter.unstructure(created)
    return created, _dumps(body)[1:]


def _raise_if_unchanged(conn: Connection, sql: Statements, row: Mapping[str, Any]) -> None:
    """Raise _Unchanged if the latest stored version has ``row``'s content hash."""
    latest = conn.execute(
        sql.latest_hash_lock, {"t": row["type_id"], "i": row["identifier"]}
    ).first()
    if latest is not None and latest[0] == row["content_hash"]:
        raise _Unchanged(str(latest[1]))


_KEY_FIELDS: Final = tuple(f.name for f in attrs.fields(ComponentKey))


def _stored_key(type_id: str, identifier: str, version: int) -> ComponentKey:
    """A ComponentKey for a row read back from the database, without re-validating it.

    Every stored key was validated when it was written; validating 10,000 of them again costs
    more than the query behind ``show_components``. Falls back to the validating constructor
    if ComponentKey ever gets other fields.
    """
    if _KEY_FIELDS != ("type_id", "identifier", "version"):  # pragma: no cover
        return ComponentKey(type_id=type_id, identifier=identifier, version=version)
    key = object.__new__(ComponentKey)
    object.__setattr__(key, "type_id", type_id)
    object.__setattr__(key, "identifier", identifier)
    object.__setattr__(key, "version", version)
    return key


def _sorted_keys(rows: Sequence[Any]) -> list[ComponentKey]:
    # Sorting plain tuples is ~100x faster than sorting attrs instances, and gives the same
    # order (ComponentKey orders by (type_id, identifier, version)).
    ordered = sorted((t, i, int(v)) for t, i, v in rows)
    return [_stored_key(t, i, v) for t, i, v in ordered]


def _key_text(type_id: str, identifier: str, version: int | None = None) -> str:
    suffix = "" if version is None else f" version {version}"
    return f"{type_id!r}/{identifier!r}{suffix}"


@define(kw_only=True, eq=False, repr=False)
class SQLAlchemyMetadataStore:
    """Component records, lineage, jobs and key/value metadata in ``_pinnacle_*`` SQL tables.

    Build it with :meth:`from_uri`; it connects on first use. An empty database gets the tables
    at the newest schema revision automatically; an older one raises MigrationRequired until
    :meth:`migrate` runs.
    """

    _uri: RedactedURI = field(alias="uri")
    _options: EngineOptions = field(alias="options", factory=EngineOptions)
    _engine: Engine | None = field(init=False, default=None)
    # Reads run on this (autocommit on PostgreSQL, see _read), sharing the engine's pool.
    _reader: Engine | None = field(init=False, default=None)
    _dialect: str = field(init=False, default="")
    _ready: bool = field(init=False, default=False)
    _closed: bool = field(init=False, default=False)
    # MySQL/MariaDB reset the connection on a statement above max_allowed_packet: check first.
    _max_statement: int | None = field(init=False, default=None)
    # SQLite on the stdlib driver: create_component's statements, compiled for the cursor.
    _sqlite_create: SQLiteCreate | None = field(init=False, default=None)
    # SQLite file: (path, st_dev, st_ino) of the open database, checked before each write.
    _file_identity: tuple[str, int, int] | None = field(init=False, default=None)
    _init_lock: threading.RLock = field(init=False, factory=threading.RLock)
    # In-memory SQLite has one shared connection: sessions must take turns.
    _guard: contextlib.AbstractContextManager[Any] = field(
        init=False, factory=contextlib.nullcontext
    )
    # change_token: how this store can tell ("" undecided, "watch": SQLite file, "memory":
    # in-memory SQLite, "none": it cannot), the SQLite watch connection, and how many writes
    # this store object has run (bumped under _writes_lock after each write, even a failed one).
    _token_mode: str = field(init=False, default="")
    _watch: _Watch | None = field(init=False, default=None)
    _writes: int = field(init=False, default=0)
    _writes_lock: threading.Lock = field(init=False, factory=threading.Lock)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_uri(cls, uri: str | RedactedURI, **options: Any) -> Self:
        """Build a store for ``uri``; nothing is connected until first use.

        ``uri`` is a pinnacledb URI: ``sqlite://file.db`` (relative), ``sqlite:///abs/file.db``,
        ``sqlite://`` (in memory), ``postgres://user:pw@host:5432/db``,
        ``mysql://user:pw@host:3306/db`` (also ``mariadb://``), ``mssql://...`` and
        ``oracle://...`` (those two untested), ``duckdb://file.db``, ``duckdb:///abs/file.db``,
        ``duckdb://`` (in memory; needs ``pinnacle-sql[duckdb]``); query parameters go to the
        driver.

        Args:
            uri: The store URI.
            **options: See :class:`pinnacle_sql.EngineOptions` (``connect_timeout``,
                ``busy_timeout``, ``lock_timeout``, ``sqlite_synchronous``, ``pool_size``,
                ``echo``, ``engine_options``).

        Raises:
            InvalidURIError: the URI is malformed or has no SQLAlchemy dialect.
            ConfigError: an option is unknown or invalid, or the scheme is ``duckdb`` and
                ``duckdb-engine`` is not installed (``pip install 'pinnacle-sql[duckdb]'``).
        """
        parsed = RedactedURI.parse(uri)
        url = sqlalchemy_url(parsed)  # validates the scheme now, without connecting
        check_driver(parsed, url)
        opts = EngineOptions.from_kwargs(options)
        store = cls(uri=parsed, options=opts)
        store._dialect = url.get_backend_name()
        if is_memory_db(url):
            store._guard = threading.RLock()
        return store

    @property
    def uri(self) -> RedactedURI:
        """Where the store lives (password redacted when shown)."""
        return self._uri

    def __repr__(self) -> str:
        return f"SQLAlchemyMetadataStore({str(self._uri)!r})"

    # ------------------------------------------------------------------ plumbing
    def _get_engine(self) -> Engine:
        with self._init_lock:
            if self._closed:
                raise BackendUnavailable(
                    f"metadata store {self._uri} is closed; create a new store with "
                    "SQLAlchemyMetadataStore.from_uri()"
                )
            if self._engine is None:
                engine = build_engine(self._uri, self._options)
                self._dialect = engine.dialect.name
                # One statement per read: autocommit saves the BEGIN and ROLLBACK round trips
                # on PostgreSQL (psycopg switches autocommit client-side). Not on MySQL, where
                # switching costs a round trip each way.
                self._reader = (
                    engine.execution_options(isolation_level="AUTOCOMMIT")
                    if self._dialect == "postgresql"
                    else engine
                )
                self._engine = engine
            return self._engine

    def _driver_message(self, exc: BaseException) -> str:
        orig = getattr(exc, "orig", None) or exc
        text = " ".join(str(orig).split())
        if len(text) > _MAX_MESSAGE:
            text = text[:_MAX_MESSAGE] + "..."
        password = self._uri.password
        if password:
            text = text.replace(password, "***")
        return redact(text)

    def _unavailable(self, exc: DBAPIError) -> bool:
        if exc.connection_invalidated or isinstance(exc, InterfaceError):
            return True
        if not isinstance(exc, OperationalError):
            return False
        # sqlite3 raises OperationalError for schema problems too ("no such table").
        text = str(exc.orig).lower()
        return self._dialect != "sqlite" or not any(
            marker in text for marker in ("no such table", "no such column", "syntax error")
        )

    def _translate(self, exc: DBAPIError, action: str) -> PinnacleError:
        detail = self._driver_message(exc)
        if self._dialect == "duckdb" and "could not set lock on file" in detail.lower():
            return BackendUnavailable(
                f"metadata store {self._uri} is unavailable ({action}): {detail}. A DuckDB "
                "file can be opened by one process at a time: close the other process's store "
                "(or DuckDB connection), or keep metadata on SQLite or a server database."
            )
        if self._dialect == "sqlite":
            return self._translate_sqlite(exc, action, detail)
        if self._unavailable(exc):
            return BackendUnavailable(
                f"metadata store {self._uri} is unavailable ({action}): {detail}. Check that "
                "the database server is running and reachable, that the database exists and "
                "that the URI's user and password are right."
            )
        return PinnacleError(f"metadata store {self._uri}: {action} failed: {detail}")

    def _translate_sqlite(self, exc: DBAPIError, action: str, detail: str) -> PinnacleError:
        # A file, not a server: name what is wrong with the file instead.
        text = detail.lower()
        if "readonly" in text or "read-only" in text:
            return ReadOnlyStore(
                f"metadata store {self._uri} is read-only ({action}): {detail}. The SQLite "
                "file or its directory cannot be written (read-only media or permissions); "
                "reads work. To write, copy the database to writable storage or make the file "
                "and its directory writable."
            )
        if self._unavailable(exc):
            return BackendUnavailable(
                f"metadata store {self._uri} is unavailable ({action}): {detail}. Check that "
                "the SQLite file's directory exists and that this process may read and write "
                "the file and its directory."
            )
        return PinnacleError(f"metadata store {self._uri}: {action} failed: {detail}")

    def _remember_file(self, engine: Engine) -> None:
        """Note which file the SQLite database is (see :meth:`_check_file`)."""
        if self._dialect != "sqlite":
            return
        try:
            with engine.connect() as conn:
                rows = conn.exec_driver_sql("PRAGMA database_list").all()
        except DBAPIError as exc:
            raise self._translate(exc, "reading the database file name") from exc
        path = next((str(r[2]) for r in rows if r[1] == "main"), "")
        if path:  # "" for in-memory databases
            st = os.stat(path)
            self._file_identity = (path, st.st_dev, st.st_ino)

    def _check_file(self, action: str) -> None:
        """Refuse to write when the SQLite file was deleted or replaced since it was opened.

        The open connections keep writing to the old file, which nobody will ever read: the
        write would be acknowledged and lost. One ``stat`` per write.
        """
        identity = self._file_identity
        if identity is None:
            return
        path, dev, ino = identity
        try:
            st = os.stat(path)
        except FileNotFoundError:
            what = "was deleted"
        else:
            if (st.st_dev, st.st_ino) == (dev, ino):
                return
            what = "was replaced by another file"
        raise StoreFileGone(
            f"metadata store {self._uri}: the SQLite file {path!r} {what} while it was open "
            f"({action} refused: it would be lost). Close this store and open it again "
            "(pinnacle() or from_uri()) to use the file now at that path."
        )

    def _transient(self, exc: DBAPIError) -> bool:
        orig = exc.orig
        if self._dialect == "postgresql":
            return getattr(orig, "sqlstate", None) in _PG_TRANSIENT
        if self._dialect in ("mysql", "mariadb"):
            args: tuple[Any, ...] = getattr(orig, "args", ())
            return len(args) > 0 and args[0] in _MYSQL_TRANSIENT
        if self._dialect == "duckdb":
            # Optimistic concurrency: the later of two conflicting transactions fails, on
            # the statement ("Conflict on update") or at commit (a key both inserted).
            text = str(orig).lower()
            return type(orig).__name__ == "TransactionException" and (
                "conflict" in text or "constraint violation" in text
            )
        return False

    def _ensure_ready(self) -> Engine:
        engine = self._engine
        if self._ready and engine is not None:
            return engine
        # The guard too: on an in-memory database every thread shares one connection, and a
        # connection returned by this check rolls back, ending another thread's write
        # transaction ("cannot commit - no transaction is active", the identical-content race)
        with self._init_lock, self._guard:
            engine = self._engine
            if self._ready and engine is not None:  # another thread finished it meanwhile
                return engine
            revision = self._revision(create_if_empty=True)
            if not revision.up_to_date:
                raise self._migration_required(revision)
            engine = self._get_engine()
            if self._dialect in ("mysql", "mariadb"):
                try:
                    with engine.connect() as conn:
                        limit = conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar()
                except DBAPIError as exc:
                    raise self._translate(exc, "reading max_allowed_packet") from exc
                self._max_statement = int(limit or 0) or None
            if self._dialect == "sqlite" and engine.dialect.driver == "pysqlite":
                self._sqlite_create = prepare_create(self._sql, engine.dialect)
            self._remember_file(engine)
            self._ready = True
            return engine

    def _check_size(self, text: str, what: str) -> None:
        # The JSON is ASCII, so characters are bytes; leave room for the rest of the statement.
        limit = self._max_statement
        if limit is not None and len(text) + _STATEMENT_SLACK > limit:
            raise InvalidRecord(
                f"{what} is {len(text) / MiB:.1f} MiB as JSON, more than metadata store "
                f"{self._uri} accepts in one statement (max_allowed_packet = "
                f"{limit / MiB:.1f} MiB): raise max_allowed_packet in the server configuration, "
                "or keep large values in artifacts"
            )

    def _migration_required(self, revision: SchemaRevision) -> MigrationRequired:
        if revision.current in _migrate.known_revisions():
            return MigrationRequired(
                f"metadata store {self._uri} is at schema revision {revision.current!r}, older "
                f"than this pinnacle-sql's {revision.head!r}: run `pinnacle migrate` or call "
                "migrate() on the store (back the database up first)"
            )
        return MigrationRequired(
            f"metadata store {self._uri} is at schema revision {revision.current!r}, which this "
            f"pinnacle-sql (head {revision.head!r}) does not know: it was written by a newer "
            "pinnacle-sql; upgrade pinnacle-sql"
        )

    def _revision(self, *, create_if_empty: bool) -> SchemaRevision:
        engine = self._get_engine()
        head = _migrate.head_revision()
        try:
            with self._guard, engine.connect() as conn:
                current = _migrate.read_revision(conn)
        except DBAPIError as exc:
            raise self._translate(exc, "reading the schema revision") from exc
        if current is None and create_if_empty:
            _before, after = self._upgrade(engine)
            current = after
        elif current != head and self._dialect in ("mysql", "mariadb"):
            # Maybe another process is creating or upgrading the schema right now (MySQL
            # commits each DDL statement): wait for its migration lock and read again.
            try:
                with self._guard:
                    current = _migrate.settled_revision(
                        engine, lock_timeout=self._options.lock_timeout
                    )
            except _migrate.MigrationLockTimeout as exc:
                raise BackendUnavailable(
                    f"metadata store {self._uri}: another process has held the migration lock "
                    f"for more than {self._options.lock_timeout} s; wait for it to finish and "
                    "retry"
                ) from exc
            except DBAPIError as exc:
                raise self._translate(exc, "reading the schema revision") from exc
        return SchemaRevision(current=current, head=head)

    def _upgrade(self, engine: Engine) -> tuple[str | None, str]:
        try:
            with self._guard, self._writing():
                return _migrate.upgrade(engine, lock_timeout=self._options.lock_timeout)
        except _migrate.UnknownRevision as exc:
            raise self._migration_required(
                SchemaRevision(current=exc.revision, head=_migrate.head_revision())
            ) from exc
        except _migrate.MigrationLockTimeout as exc:
            raise BackendUnavailable(
                f"metadata store {self._uri}: another process has held the migration lock for "
                f"more than {self._options.lock_timeout} s; wait for it to finish and retry"
            ) from exc
        except DBAPIError as exc:
            raise self._translate(exc, "migrating the schema") from exc

    def _read(self, fn: Callable[[Connection], T], action: str) -> T:
        engine = self._ensure_ready()
        engine = self._reader or engine
        try:
            with self._guard, engine.connect() as conn:
                return fn(conn)
        except DBAPIError as exc:
            raise self._translate(exc, action) from exc

    def _write(self, fn: Callable[[Connection], T], action: str, *, single: bool = False) -> T:
        """Run ``fn`` in a transaction, retrying deadlocks and lost races.

        ``single``: ``fn`` runs one statement, which is its own transaction in autocommit mode
        (PostgreSQL): no BEGIN/COMMIT round trips.
        """
        engine = self._ensure_ready()
        self._check_file(action)
        if single:
            engine = self._reader or engine
        try:
            return self._write_attempts(engine, fn, action, single=single)
        finally:
            self._wrote()

    def _write_attempts(
        self, engine: Engine, fn: Callable[[Connection], T], action: str, *, single: bool
    ) -> T:
        attempt = 0
        while True:
            try:
                with self._guard, engine.connect() as conn:
                    if not single:
                        # SQLite: take the write lock up front; MySQL: START TRANSACTION
                        # (autocommit connections); see _engine.
                        conn.execution_options(pinnacle_begin="IMMEDIATE")
                    with conn.begin():
                        return fn(conn)
            except _CounterBehind:
                self._repair_counters()
            except _Retry:
                pass
            except DBAPIError as exc:
                if not self._transient(exc):
                    raise self._translate(exc, action) from exc
            attempt += 1
            self._check_attempts(attempt, action)
            time.sleep(min(0.2, 0.002 * 2 ** min(attempt, 7)) * random.random())  # noqa: S311

    def _check_attempts(self, attempt: int, action: str) -> None:
        if attempt > _MAX_RETRIES:  # pragma: no cover - pathological
            raise BackendUnavailable(
                f"metadata store {self._uri}: {action} kept conflicting with concurrent "
                f"writers ({attempt} attempts); retry later"
            )

    def _write_sqlite(self, fn: Callable[[Any], T], action: str) -> T:
        """:meth:`_write` for the pysqlite hot path: ``fn`` gets the DB-API cursor.

        ``BEGIN IMMEDIATE`` takes the write lock up front (waiting up to the busy timeout),
        so the transaction never fails half-way on another writer's lock; errors are wrapped
        as SQLAlchemy would wrap them, then translated like the Core path's.
        """
        engine = self._ensure_ready()
        self._check_file(action)
        try:
            return self._write_sqlite_attempts(engine, fn, action)
        finally:
            self._wrote()

    def _write_sqlite_attempts(self, engine: Engine, fn: Callable[[Any], T], action: str) -> T:
        dbapi = engine.dialect.loaded_dbapi
        attempt = 0
        while True:
            try:
                with self._guard:
                    raw = engine.raw_connection()
                    try:
                        driver = raw.driver_connection
                        cursor = driver.cursor()  # type: ignore[union-attr]
                        try:
                            cursor.execute("BEGIN IMMEDIATE")
                            try:
                                result = fn(cursor)
                                cursor.execute("COMMIT")
                            except BaseException:
                                if driver.in_transaction:  # type: ignore[union-attr]
                                    driver.rollback()  # type: ignore[union-attr]
                                raise
                            return result
                        finally:
                            cursor.close()
                    finally:
                        raw.close()
            except _CounterBehind:
                self._repair_counters()
            except dbapi.Error as exc:
                wrapped = DBAPIError.instance(None, None, exc, dbapi.Error)
                if not isinstance(wrapped, DBAPIError):  # pragma: no cover - always is
                    raise
                raise self._translate(wrapped, action) from exc
            attempt += 1
            self._check_attempts(attempt, action)

    @property
    def _sql(self) -> Statements:
        return statements(self._dialect)

    # ------------------------------------------------------------------ change detection
    def _wrote(self) -> None:
        """Count a write of this store object (after it committed, or failed)."""
        with self._writes_lock:
            self._writes += 1

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        finally:
            self._wrote()

    def change_token(self) -> Hashable | None:
        """A value that changes whenever any record may have changed, in any process (see
        :class:`~pinnacle_protocols.SupportsChangeToken`); ``None``: this store cannot tell.

        SQLite file: ``PRAGMA data_version`` of a dedicated connection that never writes,
        which SQLite changes whenever another connection commits to the file (this store's
        pool or any other process; WAL or rollback journal), plus this store object's write
        count; ``None`` once the file at the path was replaced or deleted. In-memory SQLite:
        the write count alone (nobody else reaches that database). PostgreSQL, MySQL/MariaDB,
        DuckDB and others: ``None`` (no exact change signal without a round trip; the caller
        reads).
        """
        mode = self._token_mode
        if mode == "watch":
            watch = self._watch
            if watch is None or watch.generation != _FORK_GENERATION[0]:
                watch = self._open_watch()
                if watch is None:
                    return None
            identity = self._file_identity
            if identity is not None:
                try:
                    st = os.stat(identity[0])
                except OSError:
                    return None
                if (st.st_dev, st.st_ino) != identity[1:]:
                    return None
            writes = self._writes
            with watch.lock:
                try:
                    version = watch.cursor.execute("PRAGMA data_version").fetchone()[0]
                except Exception:  # the driver's errors: drop it, let the caller read
                    self._drop_watch(watch)
                    return None
            return (version, writes)
        if mode == "memory":
            self._ensure_ready()  # raises once closed
            return self._writes
        if mode == "none":
            return None
        self._decide_token_mode()
        return self.change_token()

    def _decide_token_mode(self) -> None:
        engine = self._ensure_ready()
        with self._init_lock:
            if self._token_mode:
                return
            if self._dialect != "sqlite" or engine.dialect.driver != "pysqlite":
                mode = "none"
            elif is_memory_sqlite(engine.url):
                mode = "memory"
            elif self._file_identity is not None and "cache" not in engine.url.query:
                # A shared-cache connection shares its pager: data_version is not documented
                # to see its peers' commits.
                mode = "watch"
            else:
                mode = "none"
            self._token_mode = mode

    def _open_watch(self) -> _Watch | None:
        engine = self._ensure_ready()
        with self._init_lock:
            old = self._watch
            if old is not None and old.generation == _FORK_GENERATION[0]:
                return old
            if old is not None:
                old.close()  # inherited across a fork: only forgotten
                self._watch = None
            try:
                raw = engine.raw_connection()
            except Exception:  # the driver's or SQLAlchemy's: the caller's read reports it
                return None
            try:
                cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
                raw.detach()  # its own connection for good, not one of the pool's
            except BaseException:
                with contextlib.suppress(Exception):
                    raw.close()
                raise
            self._watch = _Watch(raw=raw, cursor=cursor, generation=_FORK_GENERATION[0])
            return self._watch

    def _drop_watch(self, watch: _Watch) -> None:
        with self._init_lock:
            if self._watch is watch:
                self._watch = None
        watch.close()

    # ------------------------------------------------------------------ version counters
    def _bump_counter(self, conn: Connection, type_id: str, identifier: str, floor: int) -> int:
        """Raise the counter of a component to at least ``floor``; return the version allocated.

        With ``floor == 0`` allocate: the counter's value is the version, and it moves up by 1.
        With ``floor > 0`` (an explicit version ``floor - 1``) only raise it to ``floor``.
        Every path takes the counter row's lock for the rest of the transaction.
        """
        sql = self._sql
        params = {"t": type_id, "i": identifier, "floor": floor}
        if sql.alloc_kind == "returning":
            stmt = sql.alloc if floor == 0 else sql.raise_floor
            try:
                return int(conn.execute(stmt, params).scalar_one()) - 1
            except IntegrityError as exc:
                if self._dialect != "duckdb":
                    raise
                # DuckDB: a concurrent transaction inserted the same counter row (its
                # ON CONFLICT only sees committed rows of its snapshot). Run again.
                raise _Retry from exc
        if sql.alloc_kind == "lastrowid":
            stmt = sql.alloc if floor == 0 else sql.raise_floor
            return int(conn.execute(stmt, params).lastrowid) - 1
        # Portable: UPDATE takes the row lock; a lost race to create the row is retried.
        if conn.execute(sql.counter_update, {**params, "floor": floor or -1}).rowcount:
            return int(conn.execute(sql.counter_select, params).scalar_one()) - 1
        try:
            conn.execute(sql.counter_insert, {**params, "init": floor or 1})
        except IntegrityError as exc:
            raise _Retry from exc
        return (floor or 1) - 1

    def _repair_counters(self) -> None:
        """Raise every counter to 1 + the highest stored version (after manual edits)."""

        def txn(conn: Connection) -> None:
            rows = conn.execute(self._sql.highest_versions).all()
            for type_id, identifier, highest in rows:
                self._bump_counter(conn, type_id, identifier, int(highest) + 1)

        self._write(txn, "repairing version counters")

    # ------------------------------------------------------------------ components
    def create_component(
        self, record: ComponentRecord, *, reuse_unchanged: bool = False
    ) -> ComponentRecord:
        """Store a new version of ``(record.type_id, record.identifier)`` and return it.

        With ``record.version is None`` the next version (1 + the highest ever allocated,
        starting at 0) is allocated atomically, even under concurrent writers and processes.
        With an explicit version that exact version is stored (and later allocations continue
        above it). ``created_at`` is set by the store if missing.

        With ``reuse_unchanged`` the latest stored version is returned instead when its
        content hash equals the record's: the transaction takes the version counter's row lock
        first (SQLite: the database write lock), then compares, and rolls back if unchanged,
        so racing writers of identical content create one version.

        Raises:
            VersionConflict: the explicit version already exists.
            InvalidRecord: the version does not fit in 64 bits, or ``reuse_unchanged`` with an
                explicit version.
        """
        if not isinstance(record, ComponentRecord):
            raise InvalidRecord(f"expected a ComponentRecord, got {type(record).__name__}")
        check_reuse_unchanged(record, reuse_unchanged)
        if record.version is not None and not _valid_version(record.version):
            raise InvalidRecord(f"version {record.version} does not fit in 64 bits")
        created, tail = _record_tail(record)
        self._ensure_ready()
        self._check_size(tail, f"component {_key_text(record.type_id, record.identifier)}")
        row = {
            "type_id": record.type_id,
            "identifier": record.identifier,
            "created_at": created,
            "content_hash": record.content_hash,
        }
        shas = sorted({ref.sha256 for ref in record.artifacts.values()})
        type_id, identifier, explicit = record.type_id, record.identifier, record.version
        sql = self._sql
        action = f"creating {_key_text(type_id, identifier)}"

        def conflict(exc: BaseException, version: int | None) -> Exception:
            if explicit is None:
                return _CounterBehind()
            return VersionConflict(
                f"{_key_text(type_id, identifier, version)} already exists in metadata "
                f"store {self._uri}; omit the version to allocate the next one"
            )

        fast = self._sqlite_create
        if fast is not None:
            integrity = self._ensure_ready().dialect.loaded_dbapi.IntegrityError

            def sqlite_txn(cur: Any) -> int:
                return fast.run(
                    cur,
                    row,
                    tail=tail,
                    explicit=explicit,
                    shas=shas,
                    on_conflict=conflict,
                    integrity_error=integrity,
                    on_unchanged=_Unchanged if reuse_unchanged else None,
                )

            return self._created(record, created, lambda: self._write_sqlite(sqlite_txn, action))

        if sql.create_auto is not None and sql.create_explicit is not None and not reuse_unchanged:
            # PostgreSQL: counter, record and artifact refs in one statement, one round trip.
            stmt = sql.create_auto if explicit is None else sql.create_explicit
            params = {**row, "t": type_id, "i": identifier, "tail": tail, "shas": shas}
            params["hash"] = params.pop("content_hash")
            if explicit is not None:
                params["v"] = explicit

            def single(conn: Connection) -> int:
                try:
                    return int(conn.execute(stmt, params).scalar_one())
                except IntegrityError as exc:
                    raise conflict(exc, explicit) from exc

            version = self._write(single, action, single=True)
            return evolve(record, version=version, created_at=created)

        def txn(conn: Connection) -> int:
            if explicit is None:
                # The counter row's lock serializes the writers of this component from here
                # to COMMIT, so the latest read next is not overtaken before we insert.
                version = self._bump_counter(conn, type_id, identifier, 0)
                if reuse_unchanged:
                    _raise_if_unchanged(conn, sql, row)
            else:
                version = explicit
                self._bump_counter(conn, type_id, identifier, explicit + 1)
            values = {**row, "version": version, "record": f'{{"version":{version},{tail}'}
            try:
                result = conn.execute(sql.insert_component, values)
            except IntegrityError as exc:
                raise conflict(exc, version) from exc
            if shas:
                (component_id,) = result.inserted_primary_key or (None,)
                conn.execute(
                    sql.insert_artifacts,
                    [{"component_id": component_id, "sha256": sha} for sha in shas],
                )
            return version

        return self._created(record, created, lambda: self._write(txn, action))

    @staticmethod
    def _created(
        record: ComponentRecord, created: datetime, write: Callable[[], int]
    ) -> ComponentRecord:
        """Run ``write``; the record as stored, or the latest one if it was unchanged."""
        try:
            version = write()
        except _Unchanged as same:
            where = f"the latest stored record of {_key_text(record.type_id, record.identifier)}"
            return structure_json(same.record_json, ComponentRecord, where)
        return evolve(record, version=version, created_at=created)

    def get_component(
        self, type_id: str, identifier: str, version: int | None = None
    ) -> ComponentRecord:
        """One version (``None`` = the latest).

        Raises:
            ComponentNotFound: no such component or version.
        """
        if (
            _valid_name(type_id)
            and _valid_name(identifier)
            and (version is None or _valid_version(version))
        ):
            params: dict[str, Any] = {"t": type_id, "i": identifier}
            if version is None:
                stmt = self._sql.get_latest
            else:
                stmt = self._sql.get_version
                params["v"] = version
            text = self._read(
                lambda conn: conn.execute(stmt, params).scalar_one_or_none(), "reading"
            )
            if text is not None:
                where = f"metadata store {self._uri}: the record of component "
                where += _key_text(type_id, identifier, version)
                return structure_json(text, ComponentRecord, where)
        raise ComponentNotFound(
            f"no component {_key_text(type_id, identifier, version)} in metadata store {self._uri}"
        )

    def show_components(self, type_id: str | None = None) -> list[ComponentKey]:
        """The latest version of every component (of ``type_id``), sorted by type and id."""
        if type_id is None:
            stmt, params = self._sql.show_all, {}
        elif _valid_name(type_id):
            stmt, params = self._sql.show_type, {"t": type_id}
        else:
            return []
        rows = self._read(lambda conn: conn.execute(stmt, params).all(), "listing components")
        return _sorted_keys(rows)

    def show_versions(self, type_id: str, identifier: str) -> list[int]:
        """Every stored version of a component, ascending (empty if none)."""
        if not (_valid_name(type_id) and _valid_name(identifier)):
            return []
        params = {"t": type_id, "i": identifier}
        rows = self._read(
            lambda conn: conn.execute(self._sql.versions, params).scalars().all(),
            "listing versions",
        )
        return sorted(int(v) for v in rows)

    def _component_id(
        self, conn: Connection, key: ComponentKey, *, lock: bool = False, share: bool = False
    ) -> int | None:
        if not (
            _valid_name(key.type_id) and _valid_name(key.identifier) and _valid_version(key.version)
        ):
            return None
        sql = self._sql
        stmt = (
            sql.component_id_lock if lock else sql.component_id_share if share else sql.component_id
        )
        found = conn.execute(
            stmt, {"t": key.type_id, "i": key.identifier, "v": key.version}
        ).scalar_one_or_none()
        return None if found is None else int(found)

    def delete_component_version(
        self, type_id: str, identifier: str, version: int, *, force: bool = False
    ) -> None:
        """Delete one version, its artifact references and its lineage edges.

        The version number is never allocated again.

        Raises:
            ComponentNotFound: no such version.
            ComponentInUse: another component depends on it (``get_parents`` is not empty) and
                ``force`` is False.
        """
        what = _key_text(type_id, identifier, version)
        if not (_valid_name(type_id) and _valid_name(identifier) and _valid_version(version)):
            raise ComponentNotFound(f"no component {what} in metadata store {self._uri}")
        key = ComponentKey(type_id=type_id, identifier=identifier, version=version)
        sql = self._sql

        def txn(conn: Connection) -> None:
            cid = self._component_id(conn, key, lock=True)
            if cid is None:
                raise ComponentNotFound(f"no component {what} in metadata store {self._uri}")
            if not force:
                parents = _sorted_keys(conn.execute(sql.parents_of_id, {"cid": cid}).all())
                if parents:
                    shown = ", ".join(
                        _key_text(p.type_id, p.identifier, p.version) for p in parents
                    )
                    raise ComponentInUse(
                        f"cannot delete {what} from metadata store {self._uri}: {shown} "
                        "depend(s) on it; delete those first or pass force=True"
                    )
            conn.execute(sql.delete_edges, {"cid": cid})
            conn.execute(sql.delete_artifacts, {"cid": cid})
            try:
                conn.execute(sql.delete_component, {"cid": cid})
            except IntegrityError as exc:  # an edge was added concurrently: look again
                raise _Retry from exc

        self._write(txn, f"deleting {what}")

    def referenced_artifacts(self) -> set[str]:
        """sha256 of every artifact referenced by any stored record (for garbage collection)."""
        rows = self._read(
            lambda conn: conn.execute(self._sql.all_shas).scalars().all(), "listing artifacts"
        )
        return set(rows)

    # ------------------------------------------------------------------ lineage
    def create_parent_child(self, parent: ComponentKey, child: ComponentKey) -> None:
        """Record that ``parent`` depends on ``child`` (idempotent).

        Raises:
            ComponentNotFound: either version does not exist.
        """
        for key in (parent, child):
            if not isinstance(key, ComponentKey):
                raise InvalidRecord(f"expected a ComponentKey, got {type(key).__name__}")
        sql = self._sql

        def txn(conn: Connection) -> None:
            ids = []
            for role, key in (("parent", parent), ("child", child)):
                cid = self._component_id(conn, key, share=True)
                if cid is None:
                    raise ComponentNotFound(
                        f"cannot link: {role} "
                        f"{_key_text(key.type_id, key.identifier, key.version)} is not in "
                        f"metadata store {self._uri}"
                    )
                ids.append(cid)
            edge = {"p": ids[0], "c": ids[1]}
            if conn.execute(sql.edge_exists, edge).first() is None:
                try:
                    conn.execute(sql.insert_edge, edge)
                except IntegrityError as exc:  # a concurrent insert of the same edge
                    raise _Retry from exc

        self._write(txn, "linking components")

    def _neighbours(self, key: ComponentKey, *, parents: bool) -> list[ComponentKey]:
        if not (
            isinstance(key, ComponentKey)
            and _valid_name(key.type_id)
            and _valid_name(key.identifier)
            and _valid_version(key.version)
        ):
            return []
        stmt = self._sql.parents if parents else self._sql.children
        params = {"t": key.type_id, "i": key.identifier, "v": key.version}
        rows = self._read(lambda conn: conn.execute(stmt, params).all(), "reading lineage")
        return _sorted_keys(rows)

    def get_parents(self, child: ComponentKey) -> list[ComponentKey]:
        """Components that depend on ``child``, sorted."""
        return self._neighbours(child, parents=True)

    def get_children(self, parent: ComponentKey) -> list[ComponentKey]:
        """Components that ``parent`` depends on, sorted."""
        return self._neighbours(parent, parents=False)

    # ------------------------------------------------------------------ jobs
    def _job_row(self, job: JobRecord) -> dict[str, Any]:
        comp = job.component
        if comp is not None and not _valid_version(comp.version):
            raise InvalidRecord(f"job component version {comp.version} does not fit in 64 bits")
        text = _dumps(unstructure(job))
        self._ensure_ready()
        self._check_size(text, f"job {job.job_id!r}")
        return {
            "kind": job.kind,
            "status": JobStatus(job.status).value,
            "component_type_id": None if comp is None else comp.type_id,
            "component_identifier": None if comp is None else comp.identifier,
            "component_version": None if comp is None else comp.version,
            "created_at": job.created_at,
            "record": text,
        }

    def create_job(self, job: JobRecord) -> JobRecord:
        """Store a new job (``created_at`` set if missing).

        Raises:
            VersionConflict: a job with this id exists.
        """
        if not isinstance(job, JobRecord):
            raise InvalidRecord(f"expected a JobRecord, got {type(job).__name__}")
        stored = job if job.created_at is not None else evolve(job, created_at=utcnow())
        row = {"job_id": stored.job_id, **self._job_row(stored)}

        def txn(conn: Connection) -> JobRecord:
            try:
                conn.execute(self._sql.insert_job, row)
            except IntegrityError as exc:
                raise VersionConflict(
                    f"a job with id {stored.job_id!r} already exists in metadata store "
                    f"{self._uri}; use update_job() to change it"
                ) from exc
            return stored

        return self._write(txn, f"creating job {stored.job_id!r}")

    def get_job(self, job_id: str) -> JobRecord:
        """One job (JobNotFound if absent)."""
        if _valid_name(job_id):
            text = self._read(
                lambda conn: conn.execute(self._sql.get_job, {"j": job_id}).scalar_one_or_none(),
                "reading a job",
            )
            if text is not None:
                where = f"metadata store {self._uri}: the record of job {job_id!r}"
                return structure_json(text, JobRecord, where)
        raise JobNotFound(f"no job {job_id!r} in metadata store {self._uri}")

    def update_job(self, job: JobRecord) -> JobRecord:
        """Replace a stored job with ``job`` (same ``job_id``; JobNotFound if absent).

        A ``job`` without ``created_at`` keeps the stored creation time.
        """
        if not isinstance(job, JobRecord):
            raise InvalidRecord(f"expected a JobRecord, got {type(job).__name__}")
        sql = self._sql
        missing = JobNotFound(f"no job {job.job_id!r} in metadata store {self._uri}")

        def txn(conn: Connection) -> JobRecord:
            found = conn.execute(sql.get_job_lock, {"j": job.job_id}).first()
            if found is None:
                raise missing
            stored = job
            if job.created_at is None:
                where = f"metadata store {self._uri}: the record of job {job.job_id!r}"
                old = structure_json(found.record, JobRecord, where)
                stored = evolve(job, created_at=old.created_at)
            conn.execute(sql.update_job, {"j": job.job_id, **self._job_row(stored)})
            return stored

        if not _valid_name(job.job_id):
            raise missing
        return self._write(txn, f"updating job {job.job_id!r}")

    def delete_job(self, job_id: str) -> None:
        """Delete one job record (JobNotFound if absent)."""
        missing = JobNotFound(f"no job {job_id!r} in metadata store {self._uri}")
        if not _valid_name(job_id):
            raise missing

        def txn(conn: Connection) -> None:
            # checked by a read: DuckDB reports no rowcount for DELETE
            if conn.execute(self._sql.get_job_lock, {"j": job_id}).first() is None:
                raise missing
            conn.execute(self._sql.delete_job, {"j": job_id})

        self._write(txn, f"deleting job {job_id!r}")

    def show_jobs(
        self, *, component: ComponentKey | None = None, status: JobStatus | None = None
    ) -> list[JobRecord]:
        """Jobs, optionally of one component version and/or status, by creation time then id."""
        sql = self._sql
        params: dict[str, Any] = {}
        if component is not None:
            if not (
                _valid_name(component.type_id)
                and _valid_name(component.identifier)
                and _valid_version(component.version)
            ):
                return []
            params.update(ct=component.type_id, ci=component.identifier, cv=component.version)
        if status is not None:
            if status not in set(JobStatus):
                return []
            params["s"] = JobStatus(status).value
        if component is None:
            stmt = sql.jobs_all if status is None else sql.jobs_by_status
        else:
            stmt = sql.jobs_by_component if status is None else sql.jobs_by_both
        texts = self._read(lambda conn: conn.execute(stmt, params).scalars().all(), "listing jobs")
        where = f"metadata store {self._uri}: a job record"
        found = [structure_json(t, JobRecord, where) for t in texts]
        return sorted(found, key=lambda j: (j.created_at, j.job_id))

    # ------------------------------------------------------------------ key/value metadata
    @staticmethod
    def _key_hash(key: str) -> str:
        if not isinstance(key, str):
            raise InvalidRecord(f"metadata keys are strings, got {type(key).__name__}")
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def get_metadata(self, key: str, default: JSONValue = None) -> JSONValue:
        """A small JSON value stored under ``key``, or ``default``."""
        if not isinstance(key, str) or not key or "\x00" in key:
            self._ensure_ready()
            return default
        params = {"h": self._key_hash(key)}
        text = self._read(
            lambda conn: conn.execute(self._sql.get_meta, params).scalar_one_or_none(),
            "reading meta",
        )
        if text is None:
            return default
        value: JSONValue = load_json(text, f"metadata store {self._uri}: metadata {key!r}")
        return value

    def set_metadata(self, key: str, value: JSONValue) -> None:
        """Store a small JSON value under ``key`` (overwrites)."""
        if not isinstance(key, str) or not key or "\x00" in key:
            raise InvalidRecord(f"metadata keys are non-empty strings without NUL, got {key!r}")
        key_hash = self._key_hash(key)
        check_json(value, f"metadata {key!r}")
        text = _dumps(value)
        self._ensure_ready()
        self._check_size(text, f"metadata {key!r}")

        sql = self._sql

        upsert = sql.upsert_meta
        if upsert is not None:  # DuckDB
            row = {"key_hash": key_hash, "key": _dumps(key), "value": text}
            self._write(lambda conn: conn.execute(upsert, row), f"setting metadata {key!r}")
            return

        def txn(conn: Connection) -> None:
            if conn.execute(sql.update_meta, {"h": key_hash, "new_value": text}).rowcount:
                return
            try:
                conn.execute(
                    sql.insert_meta, {"key_hash": key_hash, "key": _dumps(key), "value": text}
                )
            except IntegrityError as exc:
                raise _Retry from exc

        self._write(txn, f"setting metadata {key!r}")

    def swap_metadata(self, key: str, expected: JSONValue, value: JSONValue) -> bool:
        """Store ``value`` under ``key`` only if it holds ``expected`` (``SupportsMetadataSwap``).

        One transaction: the row is read under a write lock (``FOR UPDATE`` on PostgreSQL and
        MySQL/MariaDB, ``BEGIN IMMEDIATE`` on SQLite, DuckDB's conflict check), compared as
        JSON data, and written only when equal. Two processes inserting an absent key race on
        the primary key: the loser retries, reads the winner's value and returns False.
        """
        if not isinstance(key, str) or not key or "\x00" in key:
            raise InvalidRecord(f"metadata keys are non-empty strings without NUL, got {key!r}")
        key_hash = self._key_hash(key)
        check_json(value, f"metadata {key!r}")
        text = _dumps(value)
        self._ensure_ready()
        self._check_size(text, f"metadata {key!r}")
        sql = self._sql
        where = f"metadata store {self._uri}: metadata {key!r}"

        def txn(conn: Connection) -> bool:
            old = conn.execute(sql.get_meta_lock, {"h": key_hash}).scalar_one_or_none()
            current: JSONValue = None if old is None else load_json(old, where)
            if current != expected:
                return False
            row = {"key_hash": key_hash, "key": _dumps(key), "value": text}
            try:
                if old is None:
                    conn.execute(sql.insert_meta, row)
                elif sql.upsert_meta is not None:  # DuckDB: its UPDATE rowcount is -1
                    conn.execute(sql.upsert_meta, row)
                else:
                    conn.execute(sql.update_meta, {"h": key_hash, "new_value": text})
            except IntegrityError as exc:  # another writer inserted the key first
                raise _Retry from exc
            return True

        return self._write(txn, f"swapping metadata {key!r}")

    # ------------------------------------------------------------------ schema
    def schema_revision(self) -> SchemaRevision:
        """The store's schema revision against this package's head.

        An empty database is brought to head first (as on any first use); an older one is
        reported, not changed.
        """
        with self._init_lock:
            return self._revision(create_if_empty=True)

    def migrate(self) -> None:
        """Bring the store's schema to head; safe to run concurrently and repeatedly.

        Concurrent callers serialize on a lock: ``pg_advisory_xact_lock`` on PostgreSQL,
        ``GET_LOCK`` on MySQL/MariaDB and ``BEGIN EXCLUSIVE`` on SQLite.

        Raises:
            MigrationRequired: the database was written by a newer pinnacle-sql.
            BackendUnavailable: the database cannot be reached, or another process holds the
                migration lock for longer than ``lock_timeout``.
        """
        with self._init_lock:
            self._upgrade(self._get_engine())
            self._ready = True

    def drop(self, *, force: bool = False) -> None:
        """Delete every ``_pinnacle_*`` table of this store (never user data).

        The store stays usable: the next operation creates empty tables again.

        Raises:
            DropRefused: ``force`` is not True; nothing was deleted.
        """
        if force is not True:
            raise DropRefused(
                f"drop() would delete every pinnacledb table in metadata store {self._uri}; "
                "call drop(force=True) to do it"
            )
        engine = self._get_engine()
        with self._init_lock:
            self._ready = False
            try:
                with self._guard, self._writing(), engine.begin() as conn:
                    for table in [*tables_in_drop_order(), _version_table()]:
                        table.drop(conn, checkfirst=True)
            except DBAPIError as exc:
                raise self._translate(exc, "dropping tables") from exc

    def close(self) -> None:
        """Release connections; later calls raise BackendUnavailable (idempotent).

        An in-memory SQLite database is gone afterwards.
        """
        with self._init_lock:
            engine, self._engine, self._reader = self._engine, None, None
            watch, self._watch = self._watch, None
            self._ready = False
            self._closed = True
            if watch is not None:
                with watch.lock:
                    watch.close()
            if engine is not None:
                engine.dispose()


def _version_table() -> Table:
    return Table(
        _migrate.VERSION_TABLE, MetaData(), Column("version_num", String(32), primary_key=True)
    )
