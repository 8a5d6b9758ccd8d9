"""DaskComputeBackend: tasks of a job become Dask futures named ``pinnacle-<job_id>-<n>``."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pinnacle_protocols.compute import (
    FutureLike,
    PooledComputeBackend,
    Task,
    TaskFunction,
    execute_task,
    positive_float_option,
    positive_int_option,
)
from pinnacle_protocols.errors import BackendUnavailable, ConfigError
from pinnacle_protocols.uri import RedactedURI

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["DEFAULT_PORT", "LOCAL_CLUSTER_CONFIG", "DaskComputeBackend", "local_cluster_config"]

logger = logging.getLogger("pinnacle_dask")

#: Port of a Dask scheduler when the URI names none.
DEFAULT_PORT = 8786
#: Seconds to wait for a scheduler at connect.
DEFAULT_TIMEOUT = 10.0
#: How long a worker-slot count is reused before asking the scheduler again (seconds).
_CAPACITY_TTL = 2.0
#: Dask settings for the LocalCluster that ``dask+local://`` starts (its scheduler, nannies and
#: worker processes; a restarted worker gets them too). Each one is applied only while the key
#: still has distributed's default, so another value the user set (config file, environment,
#: ``dask.config.set``) wins. They cut Dask's background work, which on a small machine takes
#: CPU from the tasks: the statistical profiler samples the task thread's stack every 10 ms on
#: the worker's event loop (only the dashboard shows it, and ``dask+local://`` starts none),
#: the event-loop health check runs every 20 ms and the system monitor every 500 ms in every
#: scheduler, nanny and worker. On a 2-core machine under a CPU-bound ``db.predict`` they took
#: about a fifth of a worker process's CPU time (see benchmarks/RESULTS_compute.md).
LOCAL_CLUSTER_CONFIG: dict[str, object] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


def local_cluster_config() -> dict[str, object]:
    """The keys of :data:`LOCAL_CLUSTER_CONFIG` whose value is still distributed's default."""
    import dask
    import distributed  # noqa: F401  (loads distributed's defaults into dask.config)

    defaults = dask.config.merge(*dask.config.defaults)
    missing = object()
    return {
        key: value
        for key, value in LOCAL_CLUSTER_CONFIG.items()
        if dask.config.get(key, missing) == dask.config.get(key, missing, config=defaults)
    }


class DaskComputeBackend(PooledComputeBackend):
    """Hands tasks to a Dask cluster, at most one per worker thread at a time.

    The task's payload (store URIs with credentials) travels inside the pickled call, never in
    the key: keys are ``pinnacle-<job_id>-<n>`` (what the dashboard and scheduler logs show).
    Tasks report failures as results, so Dask never logs a task's arguments.
    """

    #: Two tasks per worker thread for a job whose caller gives no partition size (more for
    #: large jobs, each task at most ``pinnacledb.predict.MAX_TASK_ROWS`` rows). Between two
    #: tasks a worker idles for a round trip worker -> scheduler -> client (result gathered,
    #: next task submitted) -> scheduler -> worker, and each task costs CPU in the scheduler
    #: and client (in the caller's process on ``dask+local://``) and on the worker's event
    #: loop, besides the task's own set-up. Measured on 2 cores under load (issue #13): about
    #: 10 ms more CPU a task than on ``processes://`` (which keeps 8 per slot), and a worker
    #: idles 20-30 ms between two tasks against 2-4 ms; a ``db.predict`` of 200,000 rows on
    #: two workers used 2.13-2.17 s of CPU in 4 tasks against 2.37-2.44 s in 16 (load 6-7).
    tasks_per_slot: ClassVar[int] = 2

    def __init__(
        self,
        uri: str,
        *,
        address: str | None,
        workers: int = 2,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """``address`` of a scheduler, or None to start a LocalCluster of ``workers``."""
        super().__init__(uri)
        self.address = address
        self.workers = workers
        self.timeout = timeout
        self._client: Client | None = None
        self._cluster: Any = None
        self._connect_lock = threading.Lock()
        self._capacity = (0, 0.0)

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> DaskComputeBackend:
        """Entry point factory: ``dask://HOST[:PORT]?timeout=S`` or ``dask+local://?workers=N``."""
        parsed = RedactedURI.parse(uri)
        merged: Mapping[str, object] = {**parsed.query_dict, **options}
        if parsed.scheme == "dask+local":
            unknown = sorted(set(merged) - {"workers"})
            if unknown or parsed.host or parsed.path.strip("/"):
                raise ConfigError(
                    f"{parsed}: dask+local:// starts a cluster on this machine and takes only "
                    f"?workers=N (got host={parsed.host!r}, options {unknown})"
                )
            workers = positive_int_option(
                parsed, "workers", merged.get("workers", os.cpu_count() or 1)
            )
            return cls(uri, address=None, workers=workers)
        if parsed.scheme != "dask":
            raise ConfigError(f"{parsed}: not a dask:// or dask+local:// URI")
        unknown = sorted(set(merged) - {"timeout"})
        if unknown:
            raise ConfigError(f"{parsed}: unknown option(s) {unknown}; dask:// accepts timeout")
        if not parsed.host:
            raise ConfigError(
                f"{parsed}: dask:// needs the scheduler's host, e.g. dask://scheduler:8786 "
                "(or use dask+local://?workers=N for a cluster on this machine)"
            )
        address = f"tcp://{parsed.host}:{parsed.port or DEFAULT_PORT}"
        timeout = positive_float_option(parsed, "timeout", merged.get("timeout", DEFAULT_TIMEOUT))
        return cls(uri, address=address, timeout=timeout)

    # ------------------------------------------------------------------ engine
    @property
    def client(self) -> Client:
        """The Dask client (connects, or starts the LocalCluster, on first use).

        Raises:
            BackendUnavailable: the scheduler cannot be reached.
        """
        with self._connect_lock:
            stale = self._client
            if stale is not None and self.address is not None and stale.status == "closed":
                # the scheduler was lost and Dask gave up reconnecting: connect again (a
                # scheduler restarted at the same address serves the next job)
                self._client = None
                self._capacity = (0, 0.0)
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Client:
        from distributed import Client, LocalCluster

        if self.address is None:
            import dask

            started = time.perf_counter()
            # set while the scheduler and nannies start, and given to the nannies in the worker
            # spec, so that a worker started later (replacing one that died) has them too; a
            # nanny's config= replaces whole top-level sections, so it gets the whole config
            with dask.config.set(local_cluster_config()):
                self._cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    config=dask.config.merge(dask.config.config),
                )
            client = Client(self._cluster)
            logger.info(
                "compute: %s started %d workers in %.1f s",
                self.uri,
                self.workers,
                time.perf_counter() - started,
            )
            return client
        try:
            return Client(self.address, timeout=self.timeout)
        except (OSError, TimeoutError) as exc:
            raise BackendUnavailable(
                f"cannot reach the Dask scheduler of {self.uri} within {self.timeout:g} s "
                f"({type(exc).__name__}); is it running, and is the address right?"
            ) from exc

    def capacity(self) -> int:
        """Worker threads of the cluster (asked again every few seconds)."""
        client = self.client  # BackendUnavailable if the scheduler cannot be reached
        if client.status != "running":
            # reconnecting after the scheduler was lost (checked before the cached count, so
            # no task is handed to a client without a scheduler); asking the scheduler now
            # would block until Dask gives up (the client's timeout), with the lock held
            raise BackendUnavailable(
                f"Dask scheduler of {self.uri} is unreachable (client {client.status})"
            )
        count, at = self._capacity
        now = time.monotonic()
        if count and now - at < _CAPACITY_TTL:
            return count
        try:
            count = sum(client.nthreads().values())
        except (OSError, TimeoutError) as exc:
            raise BackendUnavailable(f"Dask scheduler of {self.uri} is unreachable") from exc
        self._capacity = (max(count, 1), now)
        return max(count, 1)

    def start(self, key: str, function: TaskFunction, task: Task, retries: int) -> FutureLike:
        """``client.submit`` under the payload-free ``key``."""
        future: FutureLike = self.client.submit(
            execute_task, function, task, retries, key=key, pure=False
        )
        return future

    def worker_lost(self, exc: BaseException) -> bool:
        """A worker died: the scheduler gave up on the task (``KilledWorker``)."""
        return type(exc).__name__ == "KilledWorker"

    def engine_lost(self, exc: BaseException) -> str | None:
        """The client lost its scheduler: Dask cancels every future of the client.

        The scheduler's state (which tasks ran, on which worker) is gone with it, so the task
        fails with the reason; its outputs are idempotent, so re-running the job (or
        ``db.catch_up`` for a listener) completes them once the scheduler is back.
        """
        reason = getattr(exc, "reason", None)
        name = type(exc).__name__
        if reason != "scheduler-connection-lost" and name != "CommClosedError":
            return None
        where = self.address or "the LocalCluster"
        return (
            f"lost the Dask scheduler {where} of {self.uri} mid-job ({name}: {reason or exc}); "
            "the task's outputs may be partly written: re-run the job once the scheduler is back"
        )

    def run_on_scheduler(self, function: Any) -> Any:
        """``client.run_on_scheduler(function)``: inspect the scheduler (tests, debugging)."""
        return self.client.run_on_scheduler(function)

    def shutdown(self) -> None:
        """Close the client, and the LocalCluster if this backend started it."""
        with self._connect_lock:
            client, self._client = self._client, None
            cluster, self._cluster = self._cluster, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
