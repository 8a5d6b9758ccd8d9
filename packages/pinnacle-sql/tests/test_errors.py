"""Connection failures, bounded timeouts, redaction, options and driver loading."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pinnacle_protocols import (
    BackendUnavailable,
    ComponentRecord,
    ConfigError,
    InvalidRecord,
    InvalidURIError,
    JobRecord,
    PinnacleError,
    ReadOnlyStore,
    StoreFileGone,
)
from pinnacle_sql import SQLAlchemyMetadataStore
from pinnacle_sql.testing import DatabaseServer, StoreMaker, backend_params

PASSWORD = "s3cr3t-P@ss:w/rd"
QUOTED = "s3cr3t-P%40ss%3Aw%2Frd"


def all_text(exc: BaseException) -> str:
    """Every message, repr and traceback line of an exception and its causes."""
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    parts += traceback.format_exception(exc)
    return "\n".join(parts)


def assert_no_password(exc: BaseException) -> None:
    text = all_text(exc)
    assert PASSWORD not in text
    assert QUOTED not in text
    assert "s3cr3t" not in text


def fail_fast(uri: str, **options: object) -> tuple[BackendUnavailable, float]:
    store = SQLAlchemyMetadataStore.from_uri(uri, **options)
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable) as info:
        store.show_components()
    elapsed = time.monotonic() - t0
    store.close()
    return info.value, elapsed


DRIVER_SCHEMES = [
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
    pytest.param("mysql", marks=pytest.mark.mariadb, id="mariadb"),
]


@pytest.mark.parametrize("scheme", DRIVER_SCHEMES)
def test_closed_port(scheme: str) -> None:
    uri = f"{scheme}://user:{QUOTED}@127.0.0.1:1/db"
    exc, elapsed = fail_fast(uri, connect_timeout=3)
    assert elapsed < 5
    assert f"{scheme}://user:***@127.0.0.1:1/db" in str(exc)
    assert_no_password(exc)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections (kernel backlog) and never says a word."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.mark.parametrize("scheme", DRIVER_SCHEMES)
def test_silent_server_times_out(scheme: str, silent_server: int) -> None:
    """A server that never answers: BackendUnavailable after about connect_timeout."""
    uri = f"{scheme}://user:{QUOTED}@127.0.0.1:{silent_server}/db"
    exc, elapsed = fail_fast(uri, connect_timeout=2)
    assert 1.5 < elapsed < 8
    assert "***" in str(exc)
    assert_no_password(exc)


@pytest.mark.postgres
def test_postgres_missing_database() -> None:
    """PostgreSQL here trusts every local user: a missing database is the clear failure."""
    uri = f"postgres://postgres:{QUOTED}@127.0.0.1:5432/pinnacle_no_such_db"
    exc, elapsed = fail_fast(uri)
    assert elapsed < 5
    assert "pinnacle_no_such_db" in str(exc)
    assert "does not exist" in str(exc)
    assert_no_password(exc)


@pytest.mark.mariadb
def test_mariadb_wrong_user() -> None:
    uri = f"mysql://pinnacle_nobody:{QUOTED}@127.0.0.1:3306/test"
    exc, elapsed = fail_fast(uri)
    assert elapsed < 5
    assert "Access denied" in str(exc)
    assert "mysql://pinnacle_nobody:***@127.0.0.1:3306/test" in str(exc)
    assert_no_password(exc)


@pytest.mark.mariadb
def test_mariadb_missing_database() -> None:
    exc, _ = fail_fast(f"mysql://root:{QUOTED}@127.0.0.1:3306/pinnacle_no_such_db")
    assert "pinnacle_no_such_db" in str(exc)
    assert_no_password(exc)


@pytest.mark.parametrize("scheme", ["postgres", "mysql", "mariadb", "postgresql"])
def test_repr_and_uri_redacted(scheme: str) -> None:
    store = SQLAlchemyMetadataStore.from_uri(f"{scheme}://u:{QUOTED}@127.0.0.1:1/db?x=1")
    assert PASSWORD not in repr(store)
    assert QUOTED not in repr(store)
    assert str(store.uri) == f"{scheme}://u:***@127.0.0.1:1/db?x=1"
    assert store.uri.password == PASSWORD


@pytest.mark.sqlite
def test_sqlite_path_that_cannot_exist(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    exc, _ = fail_fast(f"sqlite:///{blocker}/sub/x.db")
    assert str(blocker) in str(exc)


@pytest.mark.sqlite
def test_sqlite_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "meta.db"
    store = SQLAlchemyMetadataStore.from_uri(f"sqlite:///{path}")
    store.create_component(ComponentRecord(type_id="t", identifier="i"))
    store.close()
    assert path.exists()


@pytest.mark.sqlite
def test_sqlite_relative_uri_is_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sqlite://meta.db`` (the spec's form) is relative to the working directory."""
    monkeypatch.chdir(tmp_path)
    store = SQLAlchemyMetadataStore.from_uri("sqlite://sub/meta.db")
    store.create_component(ComponentRecord(type_id="t", identifier="i"))
    store.close()
    assert (tmp_path / "sub" / "meta.db").exists()


@pytest.mark.sqlite
def test_sqlite_file_uses_wal(tmp_path: Path) -> None:
    store = SQLAlchemyMetadataStore.from_uri(f"sqlite:///{tmp_path / 'w.db'}", busy_timeout=7)
    store.show_components()
    with store._get_engine().connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    store.close()


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        SQLAlchemyMetadataStore.from_uri("sqlite://", conect_timeout=3)
    with pytest.raises(ConfigError):
        SQLAlchemyMetadataStore.from_uri("sqlite://", connect_timeout=-1)
    with pytest.raises(ConfigError):
        SQLAlchemyMetadataStore.from_uri("sqlite://", sqlite_synchronous="SOMETIMES")
    with pytest.raises(InvalidURIError):
        SQLAlchemyMetadataStore.from_uri("mongodb://127.0.0.1/x")
    with pytest.raises(InvalidURIError):
        SQLAlchemyMetadataStore.from_uri("nonsense")


def test_duckdb_without_duckdb_engine_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``duckdb://`` needs the optional duckdb-engine: from_uri says which extra to install."""
    monkeypatch.setitem(sys.modules, "duckdb_engine", None)  # as if not installed
    with pytest.raises(ConfigError, match=re.escape("pip install 'pinnacle-sql[duckdb]'")):
        SQLAlchemyMetadataStore.from_uri("duckdb://data.duckdb")


@pytest.mark.parametrize(
    ("uri", "driver"),
    [("mssql://u:p@127.0.0.1:1/db", "pyodbc"), ("oracle://u:p@127.0.0.1:1/db", "oracledb")],
)
def test_missing_driver_says_what_to_install(uri: str, driver: str) -> None:
    """SQL Server and Oracle are untested here: without their driver the error says so."""
    store = SQLAlchemyMetadataStore.from_uri(uri)
    with pytest.raises(ConfigError, match=driver):
        store.show_components()


def test_import_is_lazy() -> None:
    code = (
        "import sys\n"
        "import pinnacle_sql\n"
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'\n"
        "store = pinnacle_sql.SQLAlchemyMetadataStore.from_uri('sqlite://')\n"
        "store.show_components()\n"
        "drivers = ('psycopg', 'pymysql', 'duckdb', 'pandas', 'ibis')\n"
        "bad = [m for m in drivers if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.mariadb
def test_mariadb_record_above_max_allowed_packet(
    mariadb_server: DatabaseServer, request: pytest.FixtureRequest
) -> None:
    """A record larger than the server takes fails clearly; nothing is stored, store still works."""
    maker = StoreMaker(new_database=mariadb_server.create_database)
    request.addfinalizer(maker.close)
    store = maker()
    huge = ComponentRecord(type_id="t", identifier="huge", data={"x": "y" * (17 << 20)})
    with pytest.raises(InvalidRecord, match="max_allowed_packet"):
        store.create_component(huge)
    with pytest.raises(InvalidRecord, match="max_allowed_packet"):
        store.create_job(JobRecord(job_id="j", kind="k", args={"x": "y" * (17 << 20)}))
    with pytest.raises(InvalidRecord, match="max_allowed_packet"):
        store.set_metadata("k", "y" * (17 << 20))
    assert store.show_versions("t", "huge") == []
    big = ComponentRecord(type_id="t", identifier="huge", data={"x": "y" * (12 << 20)})
    assert store.get_component("t", "huge", store.create_component(big).version) == (
        store.get_component("t", "huge")
    )


@pytest.mark.parametrize("backend", backend_params())
def test_unexpected_driver_errors_are_pinnacle_errors(
    backend: str, new_database: Callable[[str], str]
) -> None:
    """A table dropped behind the store's back gives a PinnacleError naming the store."""
    uri = new_database(backend)
    store = SQLAlchemyMetadataStore.from_uri(uri)
    try:
        store.show_components()
        with store._get_engine().begin() as conn:
            conn.exec_driver_sql("DROP TABLE _pinnacle_meta")
        with pytest.raises(PinnacleError) as info:
            store.get_metadata("k")
        assert str(store.uri) in str(info.value)
        assert "_pinnacle_meta" in str(info.value)
        # a schema problem is not "the server is down"
        assert not isinstance(info.value, BackendUnavailable)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("uri", "disabled"),
    [
        ("mysql://u@127.0.0.1:3306/db", True),
        ("mysql://u@localhost/db", True),
        ("mysql://u@db.example.invalid/db", False),
        ("mysql://u@127.0.0.1/db?ssl_ca=/etc/ssl/certs/ca-certificates.crt", False),
    ],
)
def test_pymysql_tls_negotiation_skipped_on_loopback(uri: str, disabled: bool) -> None:
    """PyMySQL builds an SSL context per connection (~0.1 s here) unless TLS is disabled."""
    from sqlalchemy import event

    from pinnacle_protocols import RedactedURI
    from pinnacle_sql._engine import EngineOptions, build_engine

    engine = build_engine(RedactedURI.parse(uri), EngineOptions(connect_timeout=1))
    seen: dict[str, object] = {}

    @event.listens_for(engine, "do_connect")
    def capture(_dialect: object, _rec: object, _args: object, params: dict[str, object]) -> None:
        seen.update(params)
        raise ConnectionAbortedError("captured")

    with pytest.raises(ConnectionAbortedError):
        engine.connect()
    assert seen.get("ssl_disabled", False) is disabled
    engine.dispose()


# ------------------------------------------------------------------ SQLite file problems
def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@pytest.mark.sqlite
@pytest.mark.file
@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_sqlite_file_gone_while_open_refuses_writes(tmp_path: Path, how: str) -> None:
    """A write after the file was deleted (or replaced) would be lost: StoreFileGone."""
    path = tmp_path / "meta.db"
    store = SQLAlchemyMetadataStore.from_uri(f"sqlite:///{path}")
    store.create_component(ComponentRecord(type_id="model", identifier="m"))
    _remove_db(path)
    if how == "replaced":
        other = SQLAlchemyMetadataStore.from_uri(f"sqlite:///{path}")
        other.set_metadata("k", 1)
        other.close()
    with pytest.raises(StoreFileGone, match="open it again") as info:
        store.create_component(ComponentRecord(type_id="model", identifier="m"))
    assert isinstance(info.value, BackendUnavailable)
    assert "server" not in str(info.value)
    with pytest.raises(StoreFileGone):
        store.set_metadata("k", 2)
    with pytest.raises(StoreFileGone):
        store.create_job(JobRecord(job_id="j", kind="apply"))
    store.close()
    again = SQLAlchemyMetadataStore.from_uri(f"sqlite:///{path}")
    assert again.show_components() == []
    assert again.create_component(ComponentRecord(type_id="model", identifier="m")).version == 0
    again.close()


@contextlib.contextmanager
def _read_only(directory: Path) -> Iterator[Path]:
    """``directory`` seen read-only: a read-only bind mount as root, permissions otherwise."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        for f in directory.iterdir():
            f.chmod(0o444)
        try:
            yield directory
        finally:
            directory.chmod(0o755)
        return
    view = directory.parent / f"{directory.name}-ro"
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(directory), str(view)], check=False)
    if mounted.returncode != 0:
        pytest.skip("running as root without the right to mount: cannot make media read-only")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=False)


@pytest.mark.sqlite
@pytest.mark.file
def test_sqlite_on_read_only_media_reads_and_refuses_writes_clearly(tmp_path: Path) -> None:
    """Reads work; a write raises ReadOnlyStore, which does not mention a server."""
    data = tmp_path / "data"
    data.mkdir()
    store = SQLAlchemyMetadataStore.from_uri(f"sqlite:///{data}/meta.db")
    store.create_component(ComponentRecord(type_id="model", identifier="m", data={"a": 1}))
    store.set_metadata("k", "v")
    store.close()  # the last connection checkpoints and removes the WAL files
    with _read_only(data) as view:
        ro = SQLAlchemyMetadataStore.from_uri(f"sqlite:///{view}/meta.db")
        try:
            assert ro.get_component("model", "m").data == {"a": 1}
            assert ro.show_components()[0].identifier == "m"
            assert ro.get_metadata("k") == "v"
            for write in (
                lambda: ro.create_component(ComponentRecord(type_id="model", identifier="m")),
                lambda: ro.set_metadata("k", "w"),
            ):
                with pytest.raises(ReadOnlyStore, match="read-only") as info:
                    write()
                text = all_text(info.value)
                assert "server" not in str(info.value)
                assert "writable" in str(info.value)
                assert PASSWORD not in text
        finally:
            ro.close()
