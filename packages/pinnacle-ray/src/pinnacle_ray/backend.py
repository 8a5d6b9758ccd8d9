"""RayComputeBackend: tasks of a job become Ray tasks named ``pinnacle-<job_id>-<n>``."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pinnacle_protocols.compute import (
    PooledComputeBackend,
    Task,
    TaskFunction,
    positive_float_option,
    positive_int_option,
)
from pinnacle_protocols.errors import ConfigError
from pinnacle_protocols.uri import RedactedURI
from pinnacle_ray._connection import ClientTarget, LocalTarget, Target, acquire, release

__all__ = ["DEFAULT_PORT", "DEFAULT_TIMEOUT", "RayComputeBackend"]

#: Port of the Ray Client server when the URI names none (``ray start --head``'s default).
DEFAULT_PORT = 10001
#: Seconds to wait for the Ray Client server's port at connect.
DEFAULT_TIMEOUT = 10.0
#: How long a CPU count is reused before asking the cluster again (seconds).
_CAPACITY_TTL = 2.0
#: Ray's errors that mean the process running a task died, not that the task failed.
_LOST = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "OwnerDiedError")


class RayComputeBackend(PooledComputeBackend):
    """Hands tasks to Ray, at most one per CPU of the cluster at a time.

    Each task is ``execute_task(function, task, retries)`` run as a Ray task of one CPU, named
    ``pinnacle-<job_id>-<n>`` (what Ray's dashboard, state API and logs show); the task's
    payload (store URIs with credentials) travels only as a pickled argument. Tasks report
    failures as results, so Ray never logs a task's error or its arguments; Ray's own retries
    are off, and a task whose worker process died is queued again by this backend.

    Ray allows one connection per process: backends with the same target share it (see
    :mod:`pinnacle_ray._connection`), and ``ray+local://`` shuts its instance down when the
    last of them closes.
    """

    def __init__(self, uri: str, *, target: Target) -> None:
        """A backend named ``uri`` that runs on ``target`` (connected on first submit)."""
        super().__init__(uri)
        self.target = target
        self._remote: Any = None
        self._connect_lock = threading.Lock()
        self._capacity = (0, 0.0)
        # Ray is called from this one thread only (never from Ray's completion callbacks,
        # which run on Ray's own threads): a task is handed over here, off the caller's lock.
        self._launcher: ThreadPoolExecutor | None = None

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> RayComputeBackend:
        """Entry point factory: ``ray://HOST[:PORT]?timeout=S`` or ``ray+local://?workers=N``."""
        parsed = RedactedURI.parse(uri)
        merged: Mapping[str, object] = {**parsed.query_dict, **options}
        if parsed.scheme == "ray+local":
            unknown = sorted(set(merged) - {"workers"})
            if unknown or parsed.host or parsed.path.strip("/"):
                raise ConfigError(
                    f"{parsed}: ray+local:// starts Ray on this machine and takes only "
                    f"?workers=N (got host={parsed.host!r}, options {unknown})"
                )
            workers = positive_int_option(
                parsed, "workers", merged.get("workers", os.cpu_count() or 1)
            )
            return cls(uri, target=LocalTarget(workers=workers))
        if parsed.scheme != "ray":
            raise ConfigError(f"{parsed}: not a ray:// or ray+local:// URI")
        unknown = sorted(set(merged) - {"timeout"})
        if unknown:
            raise ConfigError(f"{parsed}: unknown option(s) {unknown}; ray:// accepts timeout")
        if not parsed.host:
            raise ConfigError(
                f"{parsed}: ray:// needs the host of the cluster's Ray Client server, e.g. "
                "ray://head:10001 (or use ray+local://?workers=N for Ray on this machine)"
            )
        if parsed.username or parsed.password:
            raise ConfigError(
                f"{parsed}: ray:// takes no user or password; Ray Client authenticates with "
                "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN in the environment"
            )
        timeout = positive_float_option(parsed, "timeout", merged.get("timeout", DEFAULT_TIMEOUT))
        target = ClientTarget(host=parsed.host, port=parsed.port or DEFAULT_PORT, timeout=timeout)
        return cls(uri, target=target)

    # ------------------------------------------------------------------ engine
    def _connected(self) -> Any:
        """The remote function (connects this process to Ray on first use).

        Raises:
            BackendUnavailable: Ray cannot be started or the cluster cannot be reached.
            ConfigError: this process is connected to another Ray already.
        """
        with self._connect_lock:
            if self._remote is None:
                self._remote = acquire(self.target, self.uri)
                self._launcher = ThreadPoolExecutor(1, thread_name_prefix="pinnacle-ray")
            return self._remote

    def _cpus(self) -> int:
        import ray

        return max(int(ray.cluster_resources().get("CPU", 0)), 1)

    def capacity(self) -> int:
        """CPUs of the cluster (asked again every few seconds, off Ray's threads)."""
        count, at = self._capacity
        if not count:
            self._connected()
            count = self._cpus()
            self._capacity = (count, time.monotonic())
        elif time.monotonic() - at >= _CAPACITY_TTL and self._launcher is not None:
            self._capacity = (count, time.monotonic())
            self._launcher.submit(self._refresh_capacity)
        return count

    def _refresh_capacity(self) -> None:
        self._capacity = (self._cpus(), time.monotonic())

    def start(self, key: str, function: TaskFunction, task: Task, retries: int) -> Future[Any]:
        """Queue the Ray task named ``key`` on the launcher thread; return its future."""
        remote = self._connected()
        launcher = self._launcher
        assert launcher is not None
        outer: Future[Any] = Future()
        launcher.submit(self._launch, remote, key, (function, task, retries), outer)
        return outer

    @staticmethod
    def _launch(
        remote: Any, key: str, args: tuple[TaskFunction, Task, int], outer: Future[Any]
    ) -> None:
        try:
            ref = remote.options(
                name=key, num_cpus=1, max_retries=0, retry_exceptions=False
            ).remote(*args)
            inner: Future[Any] = ref.future()
        except BaseException as exc:
            outer.set_exception(exc)
            return

        def copy(done: Future[Any]) -> None:
            if done.cancelled():
                outer.cancel()
                return
            exc = done.exception()
            if exc is not None:
                outer.set_exception(exc)
            else:
                outer.set_result(done.result())

        inner.add_done_callback(copy)

    def worker_lost(self, exc: BaseException) -> bool:
        """The worker process or its node died (Ray says so by the error's type)."""
        return any(cls.__name__ in _LOST for cls in type(exc).__mro__)

    def shutdown(self) -> None:
        """Stop handing tasks over and release this process's Ray connection."""
        with self._connect_lock:
            remote, self._remote = self._remote, None
            launcher, self._launcher = self._launcher, None
        if launcher is not None:
            launcher.shutdown(wait=True, cancel_futures=True)
        if remote is not None:
            release(self.target)
