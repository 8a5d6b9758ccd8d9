"""pinnacle_mongo.testing: starting, checking and stopping MongoDB wire servers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pinnacle_mongo.testing import (
    FreshDatabases,
    MongoServer,
    MongoServerError,
    external_mongodb,
    fresh_database_name,
    mongoeco_python,
    start_nx27017,
)


def _script(path: Path, body: str) -> str:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers signal 0; the launcher reaps its children, so look at /proc.
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()


def test_module_imports_no_driver() -> None:
    """Importing pinnacle_mongo.testing loads no driver (pymongo only when pinging)."""
    code = (
        "import sys, pinnacle_mongo.testing\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pymongo', 'bson', 'pytest')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_server_that_exits_reports_its_log(tmp_path: Path) -> None:
    """A server process that dies at once: MongoServerError with the tail of its log."""
    fake = _script(tmp_path / "fake-nx", "print('boom: cannot start'); raise SystemExit(3)\n")
    with pytest.raises(MongoServerError, match="boom: cannot start"):
        start_nx27017(executable=fake, log_dir=tmp_path, startup_timeout=10)


def test_server_that_never_answers_times_out(tmp_path: Path) -> None:
    """A process that accepts connections but never speaks MongoDB: a bounded wait, the log
    tail in the error, and the process stopped."""
    body = (
        "import socket, sys, time\n"
        "port = int(sys.argv[sys.argv.index('-p') + 1])\n"
        "s = socket.socket(); s.bind(('127.0.0.1', port)); s.listen()\n"
        "print('listening but mute', flush=True)\n"
        "time.sleep(120)\n"
    )
    fake = _script(tmp_path / "mute-nx", body)
    with pytest.raises(MongoServerError, match="listening but mute") as info:
        start_nx27017(executable=fake, log_dir=tmp_path, startup_timeout=2)
    assert "did not answer a ping within 2" in str(info.value)


@pytest.mark.nx27017
def test_start_and_stop_by_pid(tmp_path: Path) -> None:
    """A started server answers pings on its loopback port and is gone after stop()."""
    from pinnacle_mongo.testing import ping

    server = start_nx27017(log_dir=tmp_path)
    try:
        assert server.host == "127.0.0.1"
        assert server.pid is not None
        assert server.alive()
        ping(server.uri("admin"))
        assert server.uri("db1") == f"mongodb://127.0.0.1:{server.port}/db1"
    finally:
        server.stop()
    assert not server.alive()
    assert server.pid is not None
    assert _gone(server.pid)
    server.stop()  # idempotent


def test_mongoeco_python_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """PINNACLE_MONGOECO_PYTHON must name an interpreter that has mongoeco and pymongo."""
    monkeypatch.setenv("PINNACLE_MONGOECO_PYTHON", sys.executable)
    with pytest.raises(MongoServerError, match="has no mongoeco"):
        mongoeco_python()
    monkeypatch.delenv("PINNACLE_MONGOECO_PYTHON")
    with pytest.raises(MongoServerError, match="no mongoeco environment"):
        mongoeco_python(venv_dir=tmp_path / "missing", create=False)


def test_external_server_keeps_credentials_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """PINNACLE_TEST_MONGODB_URI: each test database replaces the path, the rest stays."""
    monkeypatch.delenv("PINNACLE_TEST_MONGODB_URI", raising=False)
    assert external_mongodb() is None
    monkeypatch.setenv(
        "PINNACLE_TEST_MONGODB_URI",
        "mongodb://root:s%40cret@db.example:27017/test?authSource=admin",
    )
    server = external_mongodb()
    assert isinstance(server, MongoServer)
    assert (server.kind, server.host, server.port, server.pid) == (
        "mongodb",
        "db.example",
        27017,
        None,
    )
    assert server.uri("t_1") == "mongodb://root:s%40cret@db.example:27017/t_1?authSource=admin"
    server.stop()  # nothing to stop


def test_fresh_database_names() -> None:
    """Unique, short enough for MongoDB (63 bytes), valid characters."""
    names = {fresh_database_name() for _ in range(100)}
    assert len(names) == 100
    assert all(len(n) <= 63 and n.replace("_", "").isalnum() for n in names)
    databases = FreshDatabases(MongoServer(kind="x", host="127.0.0.1", port=1))
    uri = databases.uri("abc")
    assert uri.startswith("mongodb://127.0.0.1:1/abc_")
    assert databases.names == [uri.rsplit("/", 1)[1]]
