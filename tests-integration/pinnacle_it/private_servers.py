"""Private PostgreSQL and MariaDB servers that a test may stop and start at will.

They run from the Debian packages' binaries on a free 127.0.0.1 port with their data in a
fresh temporary directory, so stopping them never disturbs the shared servers other tests use.
PostgreSQL refuses to run as root: when the suite runs as root, ``initdb``/``pg_ctl`` run as
the ``postgres`` user (``runuser``) on a directory owned by it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pinnacle_it.services import ServiceUnavailable, free_port

__all__ = ["PrivateMariaDB", "PrivatePostgres", "private_mariadb", "private_postgres"]


def _pg_bindir() -> Path:
    explicit = os.environ.get("PINNACLE_PG_BINDIR")
    if explicit:
        return Path(explicit)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if found:
        return Path(found[-1])
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).parent
    raise ServiceUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl): install postgresql or set "
        "PINNACLE_PG_BINDIR",
        startable=True,
    )


def _run(cmd: list[str], *, what: str, timeout: float = 120) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise ServiceUnavailable(
            f"{what} failed ({' '.join(cmd)}): {proc.stdout[-1500:]}{proc.stderr[-1500:]}",
            startable=True,
        )
    return proc.stdout


class PrivatePostgres:
    """A PostgreSQL server of its own (trust authentication, user ``postgres``)."""

    def __init__(self, root: Path, port: int, as_user: list[str]) -> None:
        """Use :func:`private_postgres`."""
        self.root = root
        self.port = port
        self.datadir = root / "data"
        self.log = root / "server.log"
        self._as = as_user
        self._bin = _pg_bindir()

    def uri(self, database: str = "postgres", scheme: str = "postgres") -> str:
        """The URI of ``database`` on this server."""
        return f"{scheme}://postgres@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str) -> str:
        return _run(
            [*self._as, str(self._bin / "pg_ctl"), "-D", str(self.datadir), *args],
            what=f"pg_ctl {args[0] if args else ''}",
        )

    def init(self) -> None:
        """``initdb`` the data directory."""
        _run(
            [
                *self._as,
                str(self._bin / "initdb"),
                "-D",
                str(self.datadir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            what="initdb",
        )

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        # fsync=off only risks data on an OS crash; commits still reach the kernel, so an
        # immediate stop (a crash of the server process) loses nothing committed.
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off"
        )
        self._pg_ctl("-o", opts, "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop (``fast``: disconnect clients and shut down; ``immediate``: like a crash)."""
        self._pg_ctl("-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        """Whether the server runs."""
        proc = subprocess.run(
            [*self._as, str(self._bin / "pg_ctl"), "-D", str(self.datadir), "status"],
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh PostgreSQL server on a free port, removed at exit."""
    root = Path(tempfile.mkdtemp(prefix="pinnacle-it-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceUnavailable(
                "running as root, and there is no 'postgres' user to run PostgreSQL as",
                startable=True,
            ) from None
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = PrivatePostgres(root, free_port(), as_user)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            if server.running():
                server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


class PrivateMariaDB:
    """A MariaDB server of its own (user ``root`` without password, TCP on 127.0.0.1)."""

    def __init__(self, root: Path, port: int) -> None:
        """Use :func:`private_mariadb`."""
        self.root = root
        self.port = port
        self.datadir = root / "data"
        self.socket = root / "mysqld.sock"
        self.log = root / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def uri(self, database: str = "test", scheme: str = "mysql") -> str:
        """The URI of ``database`` on this server."""
        return f"{scheme}://root@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        """``mariadb-install-db`` into the data directory, then create database ``test``."""
        binary = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if binary is None:
            raise ServiceUnavailable(
                "no mariadb-install-db: install mariadb-server", startable=True
            )
        _run(
            [
                binary,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            what="mariadb-install-db",
        )

    def start(self) -> None:
        """Start and wait until it accepts connections.

        ``innodb-flush-log-at-trx-commit=2`` writes the log to the kernel at each commit (a
        killed server loses nothing committed) and skips the fsync (only an OS crash could).
        """
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        try:
            self._proc = subprocess.Popen(
                [
                    mariadbd,
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    f"--port={self.port}",
                    "--bind-address=127.0.0.1",
                    f"--socket={self.socket}",
                    "--user=root",
                    "--skip-name-resolve",
                    "--innodb-flush-log-at-trx-commit=2",
                    f"--pid-file={self.root / 'mysqld.pid'}",
                    "--skip-log-bin",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceUnavailable(
                    f"mariadbd exited with {self._proc.returncode}: "
                    f"{self.log.read_text(errors='replace')[-2000:]}",
                    startable=True,
                )
            try:
                import pymysql  # type: ignore[import-untyped]

                pymysql.connect(
                    host="127.0.0.1", port=self.port, user="root", connect_timeout=1
                ).close()
                return
            except Exception:
                time.sleep(0.1)
        raise ServiceUnavailable("mariadbd did not accept connections in 60 s", startable=True)

    def stop(self, mode: str = "fast") -> None:
        """Stop it: ``fast`` is SIGTERM (clean shutdown), ``immediate`` SIGKILL (a crash)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if mode == "immediate" else signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        self._proc = None

    def running(self) -> bool:
        """Whether the server runs."""
        return self._proc is not None and self._proc.poll() is None


@contextlib.contextmanager
def private_mariadb() -> Iterator[PrivateMariaDB]:
    """A fresh MariaDB server on a free port (with database ``test``), removed at exit."""
    root = Path(tempfile.mkdtemp(prefix="pinnacle-it-maria-"))
    server = PrivateMariaDB(root, free_port())
    try:
        server.init()
        server.start()
        import pymysql

        con = pymysql.connect(host="127.0.0.1", port=server.port, user="root", autocommit=True)
        try:
            with con.cursor() as cur:
                cur.execute("CREATE DATABASE test CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        finally:
            con.close()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
