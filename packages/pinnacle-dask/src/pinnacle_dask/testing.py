"""A Dask cluster of separate processes for tests: what a user runs, not a LocalCluster.

:class:`ProcessCluster` starts ``dask scheduler`` and ``dask worker`` as child processes on
127.0.0.1 (each in its own process group, no dashboard), so a test can kill the scheduler or a
worker the way a crash or an operator would::

    with ProcessCluster(workers=1) as cluster:
        backend = DaskComputeBackend.from_uri(f"dask://{cluster.address}")
        ...
        cluster.kill_scheduler()
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from types import TracebackType

__all__ = ["ProcessCluster"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ProcessCluster:
    """A ``dask scheduler`` and ``dask worker`` processes on this machine, started at enter."""

    def __init__(
        self,
        *,
        workers: int = 1,
        threads: int = 1,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        """``workers`` processes of ``threads`` threads; ``env`` is added to their environment."""
        self.port = _free_port()
        self.workers = workers
        self.threads = threads
        self.env = {**os.environ, **(env or {})}
        self.ready_timeout = ready_timeout
        self._scheduler: subprocess.Popen[bytes] | None = None
        self._workers: list[subprocess.Popen[bytes]] = []

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` of the scheduler."""
        return f"127.0.0.1:{self.port}"

    def _spawn(self, module: str, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - this interpreter and fixed arguments
            [sys.executable, "-m", f"distributed.cli.{module}", *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a kill takes its children too
        )

    def start_scheduler(self) -> None:
        """Start the scheduler (at the same port as before, after :meth:`kill_scheduler`)."""
        self._scheduler = self._spawn(
            "dask_scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"
        )

    def start_workers(self) -> None:
        """Start the worker processes (each with its nanny)."""
        self._workers = [
            self._spawn(
                "dask_worker",
                f"tcp://{self.address}",
                "--nthreads",
                str(self.threads),
                "--no-dashboard",
                "--death-timeout",
                "30",
            )
            for _ in range(self.workers)
        ]

    def wait_ready(self) -> None:
        """Block until the scheduler answers and every worker has joined it."""
        from distributed import Client

        deadline = time.monotonic() + self.ready_timeout
        while True:
            try:
                client = Client(f"tcp://{self.address}", timeout=2)
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            client.wait_for_workers(self.workers, timeout=max(1.0, deadline - time.monotonic()))
        finally:
            client.close()

    def kill_scheduler(self) -> None:
        """SIGKILL the scheduler and wait for it to be gone."""
        if self._scheduler is not None:
            _kill(self._scheduler)
            self._scheduler = None

    def kill_workers(self) -> None:
        """SIGKILL every worker (nanny and worker process) and wait for them."""
        for proc in self._workers:
            _kill(proc)
        self._workers = []

    def __enter__(self) -> ProcessCluster:
        self.start_scheduler()
        self.start_workers()
        try:
            self.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Kill every process this cluster started."""
        self.kill_workers()
        self.kill_scheduler()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
