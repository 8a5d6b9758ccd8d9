"""The client side of jobs: submit, follow progress into the job record, wait and cancel.

The Datalayer that submitted a job drives it: while someone waits, it reads the runner's task
states every half second and writes the job record (status, rows and tasks done, failures), so
another process watching the metadata store (``pinnacle jobs --watch``) sees progress. A job
cancelled from another process (``db.cancel`` there writes status ``cancelled``) is cancelled on
the runner at the driver's next update.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from pinnacle_protocols.compute import ComputeBackend, JobProgress, Task, TaskStatus
from pinnacle_protocols.errors import JobTimeout
from pinnacle_protocols.records import JobRecord, JobStatus
from pinnacle_protocols.serialization import utcnow
from pinnacle_protocols.uri import redact
from pinnacledb.jobs import run_task

if TYPE_CHECKING:
    from pinnacle_protocols.protocols import MetadataStore

__all__ = ["JobDriver"]

#: How often a waiting driver writes progress to the job record (seconds).
UPDATE_SECONDS = 0.5
#: Longest error text kept in a job record.
MAX_ERROR_CHARS = 4000


@attrs.define
class _Live:
    backend: ComputeBackend
    sources: list[str]
    record: JobRecord


class JobDriver:
    """The jobs one Datalayer submitted and is responsible for updating."""

    def __init__(self) -> None:
        """No jobs yet."""
        self._lock = threading.Lock()
        self._live: dict[str, _Live] = {}

    def submit(
        self,
        md: MetadataStore,
        backend: ComputeBackend,
        record: JobRecord,
        tasks: Sequence[Task],
        *,
        retries: int = 0,
    ) -> JobRecord:
        """Create the job record (queued) and hand the tasks to ``backend``."""
        now = utcnow()
        record = md.create_job(
            attrs.evolve(
                record,
                status=JobStatus.QUEUED,
                runner=str(backend.uri),
                tasks_total=len(tasks),
                started_at=now,
                updated_at=now,
            )
        )
        try:
            backend.submit(record.job_id, tasks, run_task, retries=retries)
        except Exception as exc:
            md.update_job(
                attrs.evolve(
                    record,
                    status=JobStatus.FAILED,
                    finished_at=utcnow(),
                    error=redact(f"submit to {backend.uri} failed: {type(exc).__name__}: {exc}"),
                )
            )
            raise
        with self._lock:
            self._live[record.job_id] = _Live(
                backend=backend, sources=[t.source for t in tasks], record=record
            )
        return record

    def progress(self, job_id: str) -> JobProgress | None:
        """The runner's task states of a job this driver follows."""
        with self._lock:
            live = self._live.get(job_id)
        return None if live is None else live.backend.status(job_id)

    def wait(self, md: MetadataStore, job_id: str, timeout: float | None = None) -> JobRecord:
        """Follow the job until it ends (or ``timeout``), updating its record.

        Raises:
            JobTimeout: still running after ``timeout`` seconds.
            JobNotFound: no such job.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            live = self._live.get(job_id)
        if live is None:
            return _poll(md, job_id, deadline, timeout)
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            step = UPDATE_SECONDS if left is None else min(UPDATE_SECONDS, left)
            progress = live.backend.status(job_id)
            # cancelled from another process (the record says so): honoured before anything runs
            if (
                not progress.cancelled
                and not progress.finished
                and md.get_job(job_id).status is JobStatus.CANCELLED
            ):
                live.backend.cancel(job_id)
            try:
                progress = live.backend.wait(job_id, timeout=step)
            except JobTimeout:
                progress = live.backend.status(job_id)
            live.record = self._update(md, live, progress)
            if progress.finished:
                with self._lock:
                    self._live.pop(job_id, None)
                return live.record
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(f"job {job_id!r} is still {live.record.status} after {timeout} s")

    def cancel(self, md: MetadataStore, job_id: str) -> JobRecord:
        """Cancel on the runner (if followed here) and mark the record cancelled."""
        with self._lock:
            live = self._live.get(job_id)
        if live is not None:
            progress = live.backend.cancel(job_id)
            live.record = self._update(md, live, progress)
            if progress.finished:
                with self._lock:
                    self._live.pop(job_id, None)
            return live.record
        record = md.get_job(job_id)
        if record.status.finished:
            return record
        return md.update_job(attrs.evolve(record, status=JobStatus.CANCELLED, updated_at=utcnow()))

    def _update(self, md: MetadataStore, live: _Live, progress: JobProgress) -> JobRecord:
        old = live.record
        tasks = progress.tasks
        done = [t for t in tasks if t.status is TaskStatus.SUCCESS]
        failed = [(i, t) for i, t in enumerate(tasks) if t.status is TaskStatus.FAILED]
        rows_done = sum(_rows_of(t.value) for t in done)
        status = JobStatus(progress.status.value)
        if progress.cancelled and not progress.finished:
            status = JobStatus.CANCELLED if status is not JobStatus.RUNNING else status
        new = attrs.evolve(
            old,
            status=status,
            tasks_done=len(done),
            tasks_failed=len(failed),
            rows_done=rows_done,
            failed_sources=tuple(live.sources[i] or f"task {i}" for i, _ in failed),
        )
        if failed:
            text = "; ".join(
                f"task {i} ({live.sources[i] or 'all rows'}): {t.error}" for i, t in failed
            )
            new = attrs.evolve(new, error=redact(text)[:MAX_ERROR_CHARS])
        if progress.finished:
            new = attrs.evolve(new, finished_at=utcnow())
        if new == old:
            return old
        return md.update_job(attrs.evolve(new, updated_at=utcnow()))


def _rows_of(value: object) -> int:
    """The ``rows`` a task reported (``{"rows": n}``), 0 if it reported none."""
    rows = value.get("rows") if isinstance(value, dict) else None
    return rows if isinstance(rows, int) and not isinstance(rows, bool) else 0


def _poll(
    md: MetadataStore, job_id: str, deadline: float | None, timeout: float | None
) -> JobRecord:
    """Wait for a job another process drives, by reading its record."""
    while True:
        record = md.get_job(job_id)
        if record.status.finished:
            return record
        if deadline is not None and time.monotonic() >= deadline:
            raise JobTimeout(f"job {job_id!r} is still {record.status} after {timeout} s")
        time.sleep(UPDATE_SECONDS)
