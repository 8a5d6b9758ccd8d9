"""How ``pinnacle jobs`` shows jobs: a table, and ``--watch`` progress bars or plain lines."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from pinnacle_protocols.records import JobRecord, JobStatus

if TYPE_CHECKING:
    from pinnacledb.base.datalayer import Datalayer

__all__ = ["job_line", "job_table", "progress_bar", "watch"]

_ACTIVE = (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING)
_BAR = 24


def _seconds(job: JobRecord) -> str:
    if job.started_at is None:
        return "-"
    from pinnacle_protocols.serialization import utcnow

    end = job.finished_at or utcnow()
    return f"{(end - job.started_at).total_seconds():.1f}"


def _component(job: JobRecord) -> str:
    c = job.component
    return "-" if c is None else f"{c.identifier} v{c.version}"


def _rows(job: JobRecord) -> str:
    total = "?" if job.rows_total is None else str(job.rows_total)
    return f"{job.rows_done}/{total}" if job.tasks_total else "-"


def _tasks(job: JobRecord) -> str:
    if not job.tasks_total:
        return "-"
    failed = f" ({job.tasks_failed} failed)" if job.tasks_failed else ""
    return f"{job.tasks_done}/{job.tasks_total}{failed}"


def job_table(jobs: Sequence[JobRecord]) -> str:
    """A fixed-width table of jobs, one per line, with the error under a failed one."""
    head = ("JOB", "KIND", "COMPONENT", "STATUS", "TASKS", "ROWS", "SECONDS", "RUNNER", "CREATED")
    rows = [
        (
            j.job_id,
            j.kind,
            _component(j),
            j.status.value,
            _tasks(j),
            _rows(j),
            _seconds(j),
            j.runner or "-",
            j.created_at.strftime("%Y-%m-%d %H:%M:%S") if j.created_at else "-",
        )
        for j in jobs
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)).rstrip()]
    for job, row in zip(jobs, rows, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if job.error and job.status is JobStatus.FAILED:
            lines.append(f"    error: {job.error[:300]}")
    return "\n".join(lines) + "\n"


def _fraction(job: JobRecord) -> float:
    if job.rows_total:
        return min(1.0, job.rows_done / job.rows_total)
    if job.tasks_total:
        return min(1.0, (job.tasks_done + job.tasks_failed) / job.tasks_total)
    return 1.0 if job.status.finished else 0.0


def progress_bar(job: JobRecord) -> str:
    """``predict-ab12  outputs m v0  [#####.....]  42%  420/1000 rows  3/8 tasks  running``."""
    done = _fraction(job)
    filled = int(done * _BAR)
    bar = "#" * filled + "." * (_BAR - filled)
    return (
        f"{job.job_id}  {_component(job)}  [{bar}] {done * 100:3.0f}%  {_rows(job)} rows  "
        f"{_tasks(job)} tasks  {job.status.value}"
    )


def job_line(job: JobRecord) -> str:
    """One plain progress line (for logs and pipes)."""
    error = f"  error: {job.error[:200]}" if job.error and job.status.finished else ""
    return (
        f"{job.job_id} {job.status.value} rows {_rows(job)} tasks {_tasks(job)} "
        f"({_seconds(job)} s){error}"
    )


def watch(
    db: Datalayer,
    stream: TextIO,
    *,
    interval: float = 1.0,
    component: str | None = None,
    max_seconds: float | None = None,
) -> int:
    """Follow queued and running jobs until they all end; return 0 (1 if one failed).

    On a terminal each job has a progress bar redrawn in place; otherwise a plain line is
    written whenever a job's status or progress changes.
    """
    tty = bool(getattr(stream, "isatty", lambda: False)())
    followed: dict[str, JobRecord] = {}
    shown: dict[str, tuple[object, ...]] = {}
    drawn = 0
    failed = False
    start = time.monotonic()
    while True:
        active = [j for j in db.jobs(component=component, limit=None) if j.status in _ACTIVE]
        for job in active:
            followed.setdefault(job.job_id, job)
        if not followed:
            stream.write("no queued or running jobs\n")
            stream.flush()
            return 0
        current = {}
        for job_id, old in followed.items():
            try:
                current[job_id] = db.job(job_id)
            except Exception:
                current[job_id] = old
        if tty:
            if drawn:
                stream.write(f"\x1b[{drawn}F")
            for job in current.values():
                stream.write("\x1b[2K" + progress_bar(job) + "\n")
            drawn = len(current)
        else:
            for job_id, job in current.items():
                key = (job.status, job.rows_done, job.tasks_done, job.tasks_failed)
                if shown.get(job_id) != key:
                    stream.write(job_line(job) + "\n")
                    shown[job_id] = key
        stream.flush()
        followed = current
        if all(j.status.finished for j in current.values()):
            failed = any(j.status is JobStatus.FAILED for j in current.values())
            return 1 if failed else 0
        if max_seconds is not None and time.monotonic() - start > max_seconds:
            return 0
        time.sleep(interval)
