"""Start throw-away MongoDB wire-protocol servers for tests (standard library at import time).

Two servers from PyPI speak the real MongoDB wire protocol to an unmodified pymongo client:

* ``nx-27017`` (in the workspace's dev dependencies): fast, SQLite underneath, but it gives
  wrong answers in places (see the package README).
* ``mongoeco``: more faithful, slower, and it needs Python >= 3.13, so it runs from its own
  small virtual environment, created on first use with ``uv`` (or ``venv`` + ``pip``) under
  ``~/.cache/pinnacledb/mongoeco-venv`` (``PINNACLE_MONGOECO_PYTHON`` names an interpreter
  that has ``mongoeco[wire]`` installed instead; ``PINNACLE_PYTHON313`` an interpreter >= 3.13
  to build the environment from).

::

    from pinnacle_mongo.testing import run_nx27017, run_mongoeco

    with run_nx27017() as server:
        store = MongoMetadataStore.from_uri(server.uri("my_test_db"))

Servers listen on free 127.0.0.1 ports, are pinged (with a bounded timeout) before they are
handed out, and are stopped by PID. :func:`external_mongodb` wraps ``PINNACLE_TEST_MONGODB_URI``
(a real mongod, e.g. from ``docker compose -f docker/compose.yaml up -d mongo``) in the same
interface. This module imports only the standard library (its package adds attrs and
pinnacle-protocols, no driver); pymongo is imported when a server is pinged.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CONTRACT_GAPS",
    "MONGOECO_REQUIREMENT",
    "FreshDatabases",
    "KnownGap",
    "MongoServer",
    "MongoServerError",
    "contract_gap_marks",
    "external_mongodb",
    "find_nx27017",
    "fresh_database_name",
    "mongoeco_python",
    "run_mongoeco",
    "run_nx27017",
    "start_mongoeco",
    "start_nx27017",
]


@dataclass(frozen=True)
class KnownGap:
    """A contract test that a test server answers wrongly (a strict xfail wherever it runs).

    ``raises`` names what the failing test raises: ``"PinnacleError"`` (the server refused an
    operation MongoDB accepts) or ``"AssertionError"`` (it gave a wrong answer).
    """

    reason: str
    raises: tuple[str, ...]


_LT_NULL = "mongoeco: $lt/$lte match documents whose field is null (no type bracketing)"
_NX_NOT = "nx-27017: \"Operator '$not' is not currently implemented\""
_NX_CORRUPT = (
    "nx-27017: update_one on _pinnacle_artifacts.chunks modifies nothing (its GridFS keeps "
    "chunks outside the collection API), so the test cannot corrupt a blob"
)
_ERROR = ("PinnacleError",)
_WRONG = ("AssertionError",)

#: The contract tests each test server fails, by (contract role, server kind) and test name:
#: the one list that pinnacle-mongo's contract tests and tests-integration's store matrix both
#: turn into strict xfails (see :func:`contract_gap_marks`). A real MongoDB has none.
CONTRACT_GAPS: dict[tuple[str, str], dict[str, KnownGap]] = {
    ("databackend", "mongoeco"): {
        "test_filter[lte]": KnownGap(f"{_LT_NULL}: got k in {{0, 1, 2}}, want {{0, 1}}", _WRONG),
        "test_filter_order[str-lt-code-point]": KnownGap(
            f"{_LT_NULL}: got k in {{2, 3}}, want {{3}}", _WRONG
        ),
        "test_count_unmatched": KnownGap(
            f"{_LT_NULL}: where={{'f': {{'$lt': 3}}}} also selects the row whose f is NULL, so "
            "2 rows are unmatched, want 1",
            _WRONG,
        ),
        "test_filter_strings_with_nul": KnownGap(
            f"{_LT_NULL}: {{'s': {{'$lt': 'a\\x00b'}}}} (asked as $lte 'a') also returns the "
            "row whose s is NULL",
            _WRONG,
        ),
    },
    ("databackend", "nx27017"): {
        "test_create_list_drop_tables": KnownGap(
            "nx-27017: collection names are spliced into SQL: create_collection('select') fails "
            "with 'near \"select\": syntax error'",
            _ERROR,
        ),
        "test_control_characters_in_names": KnownGap(
            "nx-27017: create_collection('a\\x07b') fails with 'Invalid identifier: must "
            "contain only alphanumeric characters and underscores'",
            _ERROR,
        ),
        "test_filter[not-matches-null]": KnownGap(_NX_NOT, _ERROR),
        "test_filter[json-null]": KnownGap(
            f"{_NX_NOT} (a NULL test on a JSON column is {{$eq: null, $not: {{$type: 'array'}}}})",
            _ERROR,
        ),
        "test_filter[bytes-eq-empty]": KnownGap(
            "nx-27017: {$eq: b''} matches no document (binary equality is broken)", _WRONG
        ),
        "test_filter[bytes-eq-nul]": KnownGap(
            "nx-27017: {$eq: b'\\x00a'} matches no document (binary equality is broken)", _WRONG
        ),
        "test_update": KnownGap(
            "nx-27017: update_many with {$ne: 1} skips documents whose field is null (matched "
            "2, MongoDB matches 3)",
            _WRONG,
        ),
        "test_delete": KnownGap(
            "nx-27017: delete_many with {$ne: 2} skips documents whose field is null (deleted "
            "2, MongoDB deletes 3)",
            _WRONG,
        ),
        "test_count_unmatched": KnownGap(
            "nx-27017: $lookup ignores its pipeline (let, $match, $limit, $project), so no match "
            "carries count_unmatched's marker and every row counts as unmatched (5, want 0): an "
            "overcount, never an undercount",
            _WRONG,
        ),
        "test_state_machine": KnownGap(
            "nx-27017: hostile table names are spliced into SQL, $not is not implemented, and "
            "0 / bools / bytes compare wrongly",
            (*_ERROR, *_WRONG),
        ),
    },
    ("artifact_store", "nx27017"): {
        "test_drop_force_deletes_everything": KnownGap(
            "nx-27017: drop_collection('_pinnacle_artifacts.files') fails with \"Invalid bucket "
            "name: '_pinnacle_artifacts'\"",
            _ERROR,
        ),
        "test_put_is_idempotent": KnownGap(
            "nx-27017: GridIn.abort() of an upload whose files document was never written fails "
            "with 'File with id ... not found' (MongoDB deletes nothing)",
            _ERROR,
        ),
        "test_get_detects_corruption": KnownGap(_NX_CORRUPT, _WRONG),
        "test_open_detects_corruption_at_eof": KnownGap(_NX_CORRUPT, _WRONG),
        "test_get_many_detects_corruption": KnownGap(_NX_CORRUPT, _WRONG),
        "test_state_machine": KnownGap(
            "nx-27017: dropping the bucket and re-putting streamed bytes fail (see above)", _ERROR
        ),
    },
}


def contract_gap_marks(role: str, kind: str) -> dict[str, Any]:
    """:data:`CONTRACT_GAPS` of one server as a contract class's ``known_gaps`` (pytest marks).

    ``role`` is ``"databackend"``, ``"metadata"`` or ``"artifact_store"``; ``kind`` the server
    (``"nx27017"``, ``"mongoeco"``, ``"mongodb"``). Imports pytest, so call it from tests only.
    """
    import pytest

    from pinnacle_protocols.errors import PinnacleError

    classes: dict[str, type[BaseException]] = {
        "PinnacleError": PinnacleError,
        "AssertionError": AssertionError,
    }
    marks: dict[str, Any] = {}
    for name, gap in CONTRACT_GAPS.get((role, kind), {}).items():
        raises = tuple(classes[c] for c in gap.raises)
        marks[name] = pytest.mark.notyet(
            reason=gap.reason, raises=raises[0] if len(raises) == 1 else raises
        )
    return marks


#: What is installed into the mongoeco environment.
MONGOECO_REQUIREMENT = "mongoeco[wire]>=4.11,<5"
_MONGOECO_MIN_PYTHON = (3, 13)
_LISTENING_RE = re.compile(r"^pinnacle-mongoeco listening (?P<host>\S+) (?P<port>\d+)$", re.M)

_MONGOECO_SCRIPT = r"""
import asyncio
import signal
import sys

from mongoeco.wire.proxy import AsyncMongoEcoProxyServer


async def main() -> None:
    server = AsyncMongoEcoProxyServer(host=sys.argv[1], port=int(sys.argv[2]))
    address = await server.start()
    print(f"pinnacle-mongoeco listening {address.host} {address.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


asyncio.run(main())
"""


class MongoServerError(RuntimeError):
    """A test server could not be found, set up or started (the message has the log tail)."""


@dataclass(kw_only=True, eq=False)
class MongoServer:
    """A running (or external) MongoDB wire-protocol server.

    Attributes:
        kind: ``"nx-27017"``, ``"mongoeco"`` or ``"mongodb"`` (external).
        host: Address it listens on.
        port: Its port.
        pid: Process id of a server this module started, else None.
        log_path: Its combined stdout/stderr, else None.
        base_uri: For an external server, the URI it was given (its database is replaced by
            :meth:`uri`).
    """

    kind: str
    host: str
    port: int | None
    pid: int | None = None
    log_path: Path | None = None
    base_uri: str | None = field(default=None, repr=False)  # may hold a password
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def uri(self, database: str) -> str:
        """A ``mongodb://`` URI for ``database`` on this server (keeps an external URI's
        credentials and options)."""
        if self.base_uri is None:
            return f"mongodb://{self.host}:{self.port}/{database}"
        from pinnacle_protocols.uri import RedactedURI

        parsed = RedactedURI.parse(self.base_uri)
        import attrs

        return attrs.evolve(parsed, path=f"/{database}").reveal()

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log ("" if there is none)."""
        return _tail(self.log_path, lines) if self.log_path is not None else ""

    def alive(self) -> bool:
        """Whether the server process still runs (True for an external server)."""
        return self.process is None or self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop a server this module started (SIGTERM, then SIGKILL after ``timeout``)."""
        if self.process is not None:
            _stop(self.process, timeout)


class FreshDatabases:
    """Hands out URIs of new, empty databases on one server and drops them afterwards."""

    def __init__(self, server: MongoServer) -> None:
        """Track databases created on ``server``."""
        self.server = server
        self.names: list[str] = []

    def uri(self, prefix: str = "t") -> str:
        """The URI of a new, empty database."""
        name = fresh_database_name(prefix)
        self.names.append(name)
        return self.server.uri(name)

    def client(self) -> Any:
        """A new pymongo ``MongoClient`` on the server (close it after use)."""
        from pymongo import MongoClient

        return MongoClient(self.server.uri("admin"), tz_aware=True, serverSelectionTimeoutMS=5000)

    def drop_all(self) -> None:
        """Drop every database handed out (best effort: a broken server must not hide a test's
        own result)."""
        if not self.names:
            return
        client = self.client()
        try:
            for name in self.names:
                with contextlib.suppress(Exception):
                    client.drop_database(name)
        finally:
            client.close()
            self.names.clear()


def fresh_database_name(prefix: str = "t") -> str:
    """A new, unique database name (MongoDB allows at most 63 bytes)."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout)


def ping(uri: str, *, timeout: float = 2.0) -> None:
    """One ``ping`` with a bounded server-selection timeout (raises pymongo's error)."""
    from pymongo import MongoClient

    ms = max(1, int(timeout * 1000))
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms * 5
    )
    try:
        client.admin.command("ping")
    finally:
        client.close()


def _wait_ready(server: MongoServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if not server.alive():
            raise MongoServerError(
                f"{server.kind} exited before it answered a ping; log tail:\n{server.log_tail()}"
            )
        try:
            # A plain TCP connect fails fast while the port is closed; pymongo would retry
            # until its server-selection timeout.
            with socket.create_connection((server.host, server.port or 0), timeout=0.5):
                pass
            ping(server.uri("admin"), timeout=min(5.0, max(0.2, deadline - time.monotonic())))
            return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.1)
    server.stop()
    raise MongoServerError(
        f"{server.kind} on {server.host}:{server.port} did not answer a ping within {timeout} s "
        f"(last error: {last!r}); log tail:\n{server.log_tail()}"
    )


def _log_file(log_dir: str | os.PathLike[str] | None, kind: str) -> Path:
    directory = (
        Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="pinnacle-mongo-"))
    )
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{kind}-{uuid.uuid4().hex[:8]}.log"


# ============================================================================ nx-27017
def find_nx27017() -> str:
    """Path of the ``nx-27017`` script: ``$PINNACLE_NX27017``, next to this Python, or on PATH.

    Raises:
        MongoServerError: not found (it is in the workspace's dev dependencies: ``uv sync``).
    """
    explicit = os.environ.get("PINNACLE_NX27017")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise MongoServerError(f"PINNACLE_NX27017={explicit!r} is not an executable file")
        return explicit
    beside = Path(sys.executable).with_name("nx-27017")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nx-27017")
    if found:
        return found
    raise MongoServerError(
        f"nx-27017 was not found next to {sys.executable} nor on PATH: install the workspace's "
        "dev dependencies (`uv sync`) or `pip install nx-27017`, or set PINNACLE_NX27017"
    )


def start_nx27017(
    *,
    executable: str | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    startup_timeout: float = 30.0,
) -> MongoServer:
    """Start ``nx-27017 --db memory`` on a free 127.0.0.1 port; stop it with ``server.stop()``.

    Raises:
        MongoServerError: not found, or not answering in time (with the log tail).
    """
    binary = executable or find_nx27017()
    errors: list[str] = []
    for _ in range(3):  # the free port can be taken between probing and binding
        port = _free_port()
        log_path = _log_file(log_dir, "nx-27017")
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - a fixed command line
                [
                    binary,
                    "--host",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "--db",
                    "memory",
                    # Its defaults (/tmp/nx_27017.pid, .log) allow one server per machine.
                    "--pid-file",
                    str(log_path.with_suffix(".pid")),
                    "--log-file",
                    str(log_path.with_suffix(".server.log")),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        server = MongoServer(
            kind="nx-27017",
            host="127.0.0.1",
            port=port,
            pid=process.pid,
            log_path=log_path,
            process=process,
        )
        try:
            _wait_ready(server, startup_timeout)
            return server
        except MongoServerError as exc:
            server.stop()
            errors.append(str(exc))
            if "address already in use" not in server.log_tail().lower():
                raise
    raise MongoServerError("nx-27017 did not start in 3 attempts:\n" + "\n".join(errors))


@contextlib.contextmanager
def run_nx27017(**kwargs: Any) -> Iterator[MongoServer]:
    """:func:`start_nx27017` as a context manager that stops the server at exit."""
    server = start_nx27017(**kwargs)
    try:
        yield server
    finally:
        server.stop()


# ============================================================================ mongoeco
def _version_of(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(  # noqa: S603 - runs the given interpreter
            [python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _has_mongoeco(python: str) -> bool:
    try:
        subprocess.run(  # noqa: S603 - runs the given interpreter
            [
                python,
                "-c",
                "import importlib.util as u, sys; "
                "sys.exit(0 if u.find_spec('mongoeco') and u.find_spec('pymongo') else 1)",
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def _find_python313() -> str:
    explicit = os.environ.get("PINNACLE_PYTHON313")
    candidates = [explicit] if explicit else []
    for name in ("python3.13", "python3.14", "python3.15"):
        found = shutil.which(name)
        if found:
            candidates.append(found)
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(str(p) for p in pyenv.glob("3.1[3-9]*/bin/python3"))
    for candidate in candidates:
        version = _version_of(candidate)
        if version is not None and version >= _MONGOECO_MIN_PYTHON:
            return candidate
    raise MongoServerError(
        "mongoeco needs Python >= 3.13 and none was found (looked at PINNACLE_PYTHON313, "
        f"python3.13 on PATH and {pyenv}/3.13*): install one, or set PINNACLE_MONGOECO_PYTHON "
        "to a Python that has `mongoeco[wire]` installed"
    )


def _default_venv() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "pinnacledb" / "mongoeco-venv"


def _run_setup(cmd: list[str], what: str) -> None:
    result = subprocess.run(  # noqa: S603 - fixed tool invocations
        cmd, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise MongoServerError(
            f"{what} failed ({' '.join(cmd)}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )


def mongoeco_python(*, venv_dir: str | os.PathLike[str] | None = None, create: bool = True) -> str:
    """An interpreter that can run the mongoeco server, building its venv on first use.

    ``PINNACLE_MONGOECO_PYTHON`` wins; otherwise the venv at ``venv_dir`` (default
    ``~/.cache/pinnacledb/mongoeco-venv``) is used, and created with ``uv`` (or ``venv`` and
    ``pip``) from a Python >= 3.13 if it is missing. Creation takes a file lock, so parallel
    test processes build it once.

    Raises:
        MongoServerError: no usable interpreter and it cannot be built.
    """
    explicit = os.environ.get("PINNACLE_MONGOECO_PYTHON")
    if explicit:
        if not _has_mongoeco(explicit):
            raise MongoServerError(
                f"PINNACLE_MONGOECO_PYTHON={explicit!r} has no mongoeco or pymongo"
                f": install {MONGOECO_REQUIREMENT!r} into it"
            )
        return explicit
    venv = Path(venv_dir) if venv_dir is not None else _default_venv()
    python = venv / "bin" / "python"
    if python.exists() and _has_mongoeco(str(python)):
        return str(python)
    if not create:
        raise MongoServerError(f"no mongoeco environment at {venv}")
    import fcntl

    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and _has_mongoeco(str(python)):
            return str(python)
        base = _find_python313()
        shutil.rmtree(venv, ignore_errors=True)
        uv = shutil.which("uv")
        if uv:
            _run_setup([uv, "venv", "-q", "-p", base, str(venv)], "creating the mongoeco venv")
            _run_setup(
                [uv, "pip", "install", "-q", "-p", str(python), MONGOECO_REQUIREMENT],
                "installing mongoeco",
            )
        else:
            _run_setup([base, "-m", "venv", str(venv)], "creating the mongoeco venv")
            _run_setup(
                [str(python), "-m", "pip", "install", "-q", MONGOECO_REQUIREMENT],
                "installing mongoeco",
            )
        if not _has_mongoeco(str(python)):
            raise MongoServerError(f"mongoeco was installed into {venv} but does not import")
    return str(python)


def start_mongoeco(
    *,
    python: str | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    startup_timeout: float = 60.0,
) -> MongoServer:
    """Start mongoeco's wire server (in-memory engine) on a free 127.0.0.1 port.

    The server binds port 0 itself and reports the port it got, so there is no port race.

    Raises:
        MongoServerError: no interpreter for it, or not answering in time (with the log tail).
    """
    interpreter = python or mongoeco_python()
    log_path = _log_file(log_dir, "mongoeco")
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - a fixed script
            [interpreter, "-u", "-c", _MONGOECO_SCRIPT, "127.0.0.1", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = MongoServer(
        kind="mongoeco",
        host="127.0.0.1",
        port=None,
        pid=process.pid,
        log_path=log_path,
        process=process,
    )
    deadline = time.monotonic() + startup_timeout
    while server.port is None:
        match = _LISTENING_RE.search(server.log_tail(200))
        if match:
            server.port = int(match.group("port"))
            break
        if not server.alive() or time.monotonic() > deadline:
            server.stop()
            raise MongoServerError(
                f"mongoeco did not start listening within {startup_timeout} s; log tail:\n"
                f"{server.log_tail()}"
            )
        time.sleep(0.05)
    _wait_ready(server, max(1.0, deadline - time.monotonic()))
    return server


@contextlib.contextmanager
def run_mongoeco(**kwargs: Any) -> Iterator[MongoServer]:
    """:func:`start_mongoeco` as a context manager that stops the server at exit."""
    server = start_mongoeco(**kwargs)
    try:
        yield server
    finally:
        server.stop()


# ============================================================================ external
def external_mongodb(env: str = "PINNACLE_TEST_MONGODB_URI") -> MongoServer | None:
    """The real MongoDB named by ``$PINNACLE_TEST_MONGODB_URI`` (None if the variable is unset).

    The URI's database is replaced by each test's fresh database; credentials and options stay.
    """
    uri = os.environ.get(env)
    if not uri:
        return None
    from pinnacle_protocols.uri import RedactedURI

    parsed = RedactedURI.parse(uri)
    return MongoServer(kind="mongodb", host=parsed.host or "", port=parsed.port, base_uri=uri)
