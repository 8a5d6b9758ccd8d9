"""``processes://?workers=N``: tasks run in a pool of spawned worker processes on this machine."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pinnacle_protocols.compute import (
    PooledComputeBackend,
    Task,
    TaskFunction,
    execute_task,
)
from pinnacle_protocols.errors import ConfigError
from pinnacle_protocols.uri import RedactedURI
from pinnacledb.compute._options import workers_option

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

__all__ = ["ProcessesComputeBackend"]


class ProcessesComputeBackend(PooledComputeBackend):
    """A ``spawn`` process pool of ``workers`` processes, started on first submit.

    Workers import the task function by reference and open their own stores from the URIs in
    the task. A worker that dies mid-task (killed, out of memory) breaks the pool: the pool is
    rebuilt and the task queued again (tasks are idempotent). ``multiprocessing`` is imported
    on first submit, not when the backend is built.
    """

    def __init__(self, uri: str, *, workers: int) -> None:
        """A pool of ``workers`` processes named ``uri``."""
        super().__init__(uri)
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> ProcessesComputeBackend:
        """Entry point factory: ``processes://`` (one worker per core) or ``?workers=N``."""
        parsed = RedactedURI.parse(uri)
        if parsed.host or parsed.path.strip("/"):
            raise ConfigError(
                f"{parsed}: processes:// runs on this machine and takes no host or path; "
                "use processes://?workers=N"
            )
        workers = workers_option(parsed, options, default=os.cpu_count() or 1, allowed={"workers"})
        return cls(uri, workers=workers)

    def capacity(self) -> int:
        """One task per worker process."""
        return self.workers

    def _executor(self) -> ProcessPoolExecutor:
        pool = self._pool
        if pool is None or getattr(pool, "_broken", False):
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
            self._pool = pool
        return pool

    def start(self, key: str, function: TaskFunction, task: Task, retries: int) -> Future[Any]:
        """Submit ``execute_task`` to the pool (rebuilt if a worker died)."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self._executor().submit(execute_task, function, task, retries)
        except BrokenProcessPool:
            self._pool = None
            return self._executor().submit(execute_task, function, task, retries)

    def worker_lost(self, exc: BaseException) -> bool:
        """A broken pool means a worker process died."""
        from concurrent.futures.process import BrokenProcessPool

        return isinstance(exc, BrokenProcessPool)

    def shutdown(self) -> None:
        """Stop the worker processes."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
