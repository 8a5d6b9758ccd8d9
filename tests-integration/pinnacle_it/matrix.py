"""Fresh, empty stores of every target, built through the installed entry points.

:class:`Matrix` is session wide (it keeps the pooled SQL databases); :meth:`Matrix.maker` gives
a :class:`TargetMaker` per test whose :meth:`~TargetMaker.make` returns a new, empty store of
the target, always built by the entry point of the target's scheme (``factory(uri, **options)``)
except PostgreSQL/MariaDB metadata stores, which come from pinnacle-sql's pooled
``StoreMaker`` (creating a database costs ~0.4 s and dropping it ~1 s on PostgreSQL, wiping a
pooled one a millisecond); the matrix checks their class is the entry point's.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pinnacle_it.services import Services
from pinnacle_it.targets import Role, Target, entry_point, entry_point_class

__all__ = ["Matrix", "TargetMaker", "flip_byte"]


def flip_byte(data: bytes, position: int = 0) -> bytes:
    """``data`` with the byte at ``position`` inverted (``b"x"`` for empty data)."""
    if not data:
        return b"x"
    i = position % len(data)
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


class Matrix:
    """Session-wide state of the store matrix: services, a work directory, SQL pools."""

    def __init__(self, services: Services, workdir: Path) -> None:
        """Stores of the session live under ``workdir`` or on ``services``."""
        self.services = services
        self.workdir = workdir
        self._pools: dict[str, Any] = {}
        self._postgres_db: str | None = None

    def maker(self, target: Target) -> TargetMaker:
        """A maker of fresh stores of ``target`` (close it after the test)."""
        return TargetMaker(self, target)

    def sql_pool(self, kind: str) -> Any:
        """pinnacle-sql's pooled StoreMaker on the PostgreSQL or MariaDB server."""
        if kind not in self._pools:
            from pinnacle_sql.testing import StoreMaker

            server = self.services.require(kind)
            scheme = "postgres" if kind == "postgres" else "mysql"
            self._pools[kind] = StoreMaker(
                new_database=lambda: server.uri_of(server.create_database(), scheme=scheme)
            )
        return self._pools[kind]

    def postgres_database(self) -> str:
        """One database of the session; each PostgreSQL databackend gets a schema in it."""
        if self._postgres_db is None:
            self._postgres_db = self.services.require("postgres").create_database()
        return self._postgres_db

    def close(self) -> None:
        """Release the pools' connections."""
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


class TargetMaker:
    """Fresh, empty stores of one target for one test; :meth:`close` removes what it made."""

    def __init__(self, matrix: Matrix, target: Target) -> None:
        """Check the target's service now (a missing one fails or skips the test here)."""
        self.matrix = matrix
        self.target = target
        self.role: Role = target.role
        self._counter = itertools.count()
        self._tmp = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=matrix.workdir))
        self._made: list[Any] = []
        self._cleanups: list[Callable[[], None]] = []
        self._mongo_dbs: list[str] = []
        self.service: Any = matrix.services.require(target.service) if target.service else None
        self.store_class = entry_point_class(target.role, target.scheme)
        self.factory = entry_point(target.role, target.scheme).load()

    # ------------------------------------------------------------------ URIs
    def uri(self) -> tuple[str, dict[str, Any]]:
        """URI (and factory options) of a new, empty store of the target."""
        n = next(self._counter)
        t, tmp = self.target, self._tmp
        name = t.name
        if name == "memory":
            return "memory://", {}
        if t.role == "databackend":
            if name == "duckdb":
                return f"duckdb://{tmp}/d{n}.duckdb", {}
            if name == "sqlite":
                return f"sqlite://{tmp}/d{n}.sqlite", {}
            if name == "sqlalchemy-sqlite":
                return f"sqlalchemy+sqlite://{tmp}/d{n}.sqlite", {}
            if name in ("polars", "datafusion"):
                return f"{name}://", {}
            if name == "pandas":
                return f"pandas://{tmp}/p{n}", {}
            if name == "pyspark":
                return f"pyspark://?database=pinnacle_it_{secrets.token_hex(4)}_{n}", {}
            if name == "postgres":
                server = self.service
                db = self.matrix.postgres_database()
                schema = f"s{n}_{secrets.token_hex(4)}"
                server.execute(f'CREATE SCHEMA "{schema}"', database=db)
                return server.uri_of(f"{db}/{schema}", scheme="postgres"), {}
            if name == "mariadb":
                return self.service.uri_of(self.service.create_database(), scheme="mysql"), {}
        if t.role == "metadata" and name == "sqlite":
            return f"sqlite://{tmp}/m{n}.db", {}
        if t.role == "metadata" and name == "duckdb":
            return f"duckdb://{tmp}/m{n}.duckdb", {}
        if t.role == "artifact_store":
            if name == "file":
                return f"file://{tmp}/a{n}", {}
            if name == "s3":
                return self.service.fresh_uri("m"), {}
        if t.scheme == "mongodb":
            from pinnacle_mongo.testing import fresh_database_name

            db_name = fresh_database_name("it")
            self._mongo_dbs.append(db_name)
            return self.service.uri(db_name), {}
        raise AssertionError(f"no URI rule for target {t.id}")

    # ------------------------------------------------------------------ stores
    def make(self) -> Any:
        """A new, empty store of the target."""
        t = self.target
        if t.role == "metadata" and t.name in ("postgres", "mariadb"):
            store = self.matrix.sql_pool(t.name)()
        else:
            uri, options = self.uri()
            store = self.factory(uri, **options)
        assert isinstance(store, self.store_class), (
            f"{t.id}: made a {type(store).__name__}, but the {t.scheme} entry point builds "
            f"{self.store_class.__name__}"
        )
        self._made.append(store)
        return store

    def close(self) -> None:
        """Close every store made, drop MongoDB databases, remove temporary files."""
        for store in self._made:
            with contextlib.suppress(Exception):
                store.close()
        self._made.clear()
        if self.target.role == "metadata" and self.target.name in ("postgres", "mariadb"):
            self.matrix.sql_pool(self.target.name).close_stores()
        if self._mongo_dbs:
            self._drop_mongo_databases()
        for cleanup in self._cleanups:
            cleanup()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _drop_mongo_databases(self) -> None:
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(
            self.service.uri("admin"), serverSelectionTimeoutMS=5000
        )
        try:
            for name in self._mongo_dbs:
                with contextlib.suppress(Exception):
                    client.drop_database(name)
        finally:
            client.close()
            self._mongo_dbs.clear()

    # ------------------------------------------------------------------ tampering
    def corrupt(self, store: Any, sha256: str, position: int = 0) -> None:
        """Change the stored bytes of blob ``sha256`` behind the store's back."""
        name = self.target.name
        if name == "file":
            path = Path(store.root) / sha256[:2] / sha256
            path.write_bytes(flip_byte(path.read_bytes(), position))
        elif name == "s3":
            fs = self.service.s3fs()
            key = f"{store.root}/{sha256[:2]}/{sha256}"
            fs.pipe_file(key, flip_byte(fs.cat_file(key), position))
        elif name.startswith("gridfs-"):
            corrupt_gridfs(store, sha256, position)
        else:
            raise AssertionError(f"{self.target.id} cannot be corrupted by this suite")


def corrupt_gridfs(store: Any, sha256: str, position: int = 0) -> None:
    """Flip a byte of the first chunk of a GridFS blob (through pymongo)."""
    db = store._conn.database()
    files = db[f"{store.bucket}.files"].find_one({"filename": sha256})
    assert files is not None, f"no GridFS file {sha256}"
    chunks = db[f"{store.bucket}.chunks"]
    chunk = chunks.find_one({"files_id": files["_id"], "n": 0})
    assert chunk is not None, "no chunk 0 to corrupt"
    result = chunks.update_one(
        {"_id": chunk["_id"]}, {"$set": {"data": flip_byte(bytes(chunk["data"]), position)}}
    )
    assert result.modified_count == 1, "the chunk was not changed"
