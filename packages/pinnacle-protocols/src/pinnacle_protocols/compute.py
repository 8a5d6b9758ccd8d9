"""The ComputeBackend contract: run a job made of tasks somewhere, and report on it.

A *task* is plain JSON data (:class:`Task`): what kind of work, the store URIs, the component key
and version, and a partition of source ids. It never holds a Datalayer, a model or a connection:
the worker opens its own stores from the URIs. The work itself is a *module-level* function
``(Task) -> JSONValue`` that the worker imports by reference (pickle stores functions by module
and name), so a task runs the same on a thread, a process pool or a Dask cluster.

Backends are found by URI scheme in the entry point group ``pinnacle.compute``
(``local://``, ``processes://?workers=N``, ``dask://HOST:PORT``, ``dask+local://?workers=N``).

This module also holds the in-process reference backend (:class:`InlineComputeBackend`, the
facade's ``local://``) and :func:`execute_task`, the wrapper every backend runs on its worker.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, TypeAlias, runtime_checkable

from attrs import field, frozen

from pinnacle_protocols.errors import InvalidRecord, JobNotFound, JobTimeout, PinnacleError
from pinnacle_protocols.records import JSONValue, check_json
from pinnacle_protocols.uri import RedactedURI, redact

__all__ = [
    "ComputeBackend",
    "FutureLike",
    "InlineComputeBackend",
    "JobProgress",
    "PooledComputeBackend",
    "Task",
    "TaskFunction",
    "TaskResult",
    "TaskStatus",
    "check_submission",
    "execute_task",
    "job_state",
    "positive_float_option",
    "positive_int_option",
    "task_key",
]


class TaskStatus(enum.StrEnum):
    """Lifecycle of one task."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the task has ended."""
        return self in (TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED)


def _check_payload(_inst: object, _attr: object, value: Mapping[str, JSONValue]) -> None:
    if not isinstance(value, Mapping):
        raise InvalidRecord(f"task payload must be a mapping, got {type(value).__name__}")
    check_json(dict(value), "task payload")


@frozen(kw_only=True)
class Task:
    """One unit of a job, as plain JSON data.

    Attributes:
        task_id: Unique within its job (``"0"``, ``"1"``, ...).
        kind: What the task does (``"predict"``); the worker looks the function up by it.
        payload: JSON arguments: store URIs, component key and version, the partition of source
            ids. It may hold credentials (inside store URIs): ``repr`` redacts them, and a
            backend must never put the payload in a task key, a task name or a log line.
        source: A short description of the partition (``"id 0..999"``) for progress and errors.
    """

    task_id: str
    kind: str
    payload: Mapping[str, JSONValue] = field(factory=dict, validator=_check_payload)
    source: str = ""

    def __repr__(self) -> str:
        return redact(
            f"Task(task_id={self.task_id!r}, kind={self.kind!r}, source={self.source!r}, "
            f"payload={dict(self.payload)!r})"
        )

    __str__ = __repr__


@frozen(kw_only=True)
class TaskResult:
    """What happened to one task.

    Attributes:
        task_id: The task.
        status: Its status.
        value: The function's JSON result (on success).
        error: ``Type: message`` of the last failure (redacted).
        attempts: How many times it was started.
        seconds: Wall time of the last attempt.
        exception: The exception object, only from in-process backends (not compared, not
            serialized), so a caller can re-raise the original error.
    """

    task_id: str
    status: TaskStatus
    value: JSONValue = None
    error: str | None = None
    attempts: int = 0
    seconds: float = 0.0
    exception: BaseException | None = field(default=None, eq=False, repr=False)


def job_state(results: Sequence[TaskResult], cancelled: bool = False) -> TaskStatus:
    """The status of a job from its tasks' (queued ... cancelled)."""
    statuses = [r.status for r in results]
    if any(not s.finished for s in statuses):
        if cancelled:
            return (
                TaskStatus.CANCELLED
                if all(s is not TaskStatus.RUNNING for s in statuses)
                else TaskStatus.RUNNING
            )
        started = any(s is not TaskStatus.QUEUED for s in statuses)
        return TaskStatus.RUNNING if started else TaskStatus.QUEUED
    if any(s is TaskStatus.FAILED for s in statuses):
        return TaskStatus.FAILED
    if cancelled or any(s is TaskStatus.CANCELLED for s in statuses):
        return TaskStatus.CANCELLED
    return TaskStatus.SUCCESS


@frozen(kw_only=True)
class JobProgress:
    """A snapshot of a submitted job: every task's result so far, in submission order."""

    job_id: str
    tasks: tuple[TaskResult, ...]
    cancelled: bool = False

    @property
    def status(self) -> TaskStatus:
        """queued (nothing started), running, success, failed (a task failed) or cancelled."""
        return job_state(self.tasks, self.cancelled)

    @property
    def finished(self) -> bool:
        """Whether every task has ended."""
        return all(t.status.finished for t in self.tasks)

    def count(self, status: TaskStatus) -> int:
        """How many tasks have ``status``."""
        return sum(1 for t in self.tasks if t.status is status)


TaskFunction: TypeAlias = Callable[[Task], JSONValue]


def task_key(job_id: str, index: int) -> str:
    """The engine-side name of a task: ``pinnacle-<job_id>-<n>`` (never any payload)."""
    return f"pinnacle-{job_id}-{index}"


def execute_task(
    function: TaskFunction, task: Task, retries: int = 0, *, keep_exception: bool = False
) -> TaskResult:
    """Run ``function(task)`` up to ``1 + retries`` times; never raise for a task's failure.

    Every backend runs this on its worker, so failures come back as a :class:`TaskResult`
    (with a redacted message) instead of an engine's own traceback log, which would print the
    task's arguments.
    """
    attempts = 0
    error: str | None = None
    exception: BaseException | None = None
    started = time.perf_counter()
    while attempts <= retries:
        attempts += 1
        started = time.perf_counter()
        try:
            value = function(task)
        except Exception as exc:
            error = redact(f"{type(exc).__name__}: {exc}")
            exception = exc
            continue
        check_json(value, f"result of task {task.task_id}")
        return TaskResult(
            task_id=task.task_id,
            status=TaskStatus.SUCCESS,
            value=value,
            attempts=attempts,
            seconds=time.perf_counter() - started,
        )
    return TaskResult(
        task_id=task.task_id,
        status=TaskStatus.FAILED,
        error=error,
        attempts=attempts,
        seconds=time.perf_counter() - started,
        exception=exception if keep_exception else None,
    )


@runtime_checkable
class ComputeBackend(Protocol):
    """Runs jobs made of tasks: in-process, on a process pool, on a Dask or Ray cluster.

    Capability flags (``ClassVar[bool]``) tell callers and the contract suite what to expect:

    * ``runs_in_process``: tasks run in the caller's process (stores passed as objects, and
      ``memory://`` stores, can be shared with them).
    * ``runs_concurrently``: several tasks of a job may run at the same time.
    """

    runs_in_process: ClassVar[bool]
    runs_concurrently: ClassVar[bool]

    @property
    def uri(self) -> RedactedURI:
        """Where the tasks run (password redacted when shown)."""
        ...

    def submit(
        self,
        job_id: str,
        tasks: Sequence[Task],
        function: TaskFunction,
        *,
        retries: int = 0,
    ) -> JobProgress:
        """Queue every task of a job; return at once (tasks run in the background).

        Args:
            job_id: Unique id of the job on this backend.
            tasks: The tasks (unique ``task_id`` each).
            function: A module-level function the worker imports by reference.
            retries: How many times a failed task is run again (tasks must be idempotent).

        Raises:
            VersionConflict: ``job_id`` was submitted before.
            BackendUnavailable: the engine cannot be reached.
        """
        ...

    def status(self, job_id: str) -> JobProgress:
        """The job's tasks so far (JobNotFound if never submitted here)."""
        ...

    def wait(self, job_id: str, timeout: float | None = None) -> JobProgress:
        """Block until every task has ended (or ``timeout`` seconds passed).

        Raises:
            JobTimeout: the job is still running after ``timeout`` (it keeps running).
        """
        ...

    def cancel(self, job_id: str) -> JobProgress:
        """Stop the job: no task starts after this returns; tasks already running may finish."""
        ...

    def close(self) -> None:
        """Cancel what is queued and release workers, clusters and connections."""
        ...


class InlineComputeBackend:
    """The reference backend: tasks run one after another in the caller's thread.

    Nothing runs at :meth:`submit`; :meth:`wait` runs queued tasks until they are done or the
    timeout has passed (it checks between tasks), so a job cancelled before the wait never
    starts. This is pinnacledb's ``local://``: today's behaviour, with no processes.
    """

    runs_in_process: ClassVar[bool] = True
    runs_concurrently: ClassVar[bool] = False

    def __init__(self, uri: str = "local://") -> None:
        """A backend named ``uri`` (shown in job records)."""
        self._uri = RedactedURI.parse(uri)
        self._lock = threading.RLock()
        self._jobs: dict[str, _InlineJob] = {}
        self._closed = False

    @classmethod
    def from_uri(cls, uri: str, **_options: Any) -> InlineComputeBackend:
        """Entry point factory for ``local://``."""
        return cls(uri)

    @property
    def uri(self) -> RedactedURI:
        """``local://``."""
        return self._uri

    def __repr__(self) -> str:
        return f"InlineComputeBackend({self._uri})"

    def submit(
        self,
        job_id: str,
        tasks: Sequence[Task],
        function: TaskFunction,
        *,
        retries: int = 0,
    ) -> JobProgress:
        """Queue the tasks; they run when someone waits."""
        from pinnacle_protocols.errors import VersionConflict

        check_submission(job_id, tasks, retries)
        with self._lock:
            if self._closed:
                raise PinnacleError(f"compute backend {self._uri} is closed")
            if job_id in self._jobs:
                raise VersionConflict(f"job {job_id!r} was already submitted to {self._uri}")
            self._jobs[job_id] = _InlineJob(list(tasks), function, retries)
            return self._progress(job_id)

    def _job(self, job_id: str) -> _InlineJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r} was submitted to {self._uri}")
        return job

    def _progress(self, job_id: str) -> JobProgress:
        job = self._job(job_id)
        return JobProgress(job_id=job_id, tasks=tuple(job.results), cancelled=job.cancelled)

    def status(self, job_id: str) -> JobProgress:
        """The job's tasks so far."""
        with self._lock:
            return self._progress(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> JobProgress:
        """Run the queued tasks in this thread until done or ``timeout`` has passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            job = self._job(job_id)
        while True:
            with self._lock:
                index = next(
                    (i for i, r in enumerate(job.results) if r.status is TaskStatus.QUEUED), None
                )
                if index is None:
                    return self._progress(job_id)
                if deadline is not None and time.monotonic() >= deadline:
                    raise JobTimeout(
                        f"job {job_id!r} on {self._uri} is not finished after {timeout} s"
                    )
                task = job.tasks[index]
                job.results[index] = TaskResult(task_id=task.task_id, status=TaskStatus.RUNNING)
            result = execute_task(job.function, task, job.retries, keep_exception=True)
            with self._lock:
                job.results[index] = result

    def cancel(self, job_id: str) -> JobProgress:
        """Mark every queued task cancelled."""
        with self._lock:
            job = self._job(job_id)
            job.cancelled = True
            job.results = [
                TaskResult(task_id=r.task_id, status=TaskStatus.CANCELLED)
                if r.status is TaskStatus.QUEUED
                else r
                for r in job.results
            ]
            return self._progress(job_id)

    def close(self) -> None:
        """Cancel every queued task."""
        with self._lock:
            for job_id in list(self._jobs):
                self.cancel(job_id)
            self._closed = True


class _InlineJob:
    def __init__(self, tasks: list[Task], function: TaskFunction, retries: int) -> None:
        self.tasks = tasks
        self.function = function
        self.retries = retries
        self.cancelled = False
        self.results = [TaskResult(task_id=t.task_id, status=TaskStatus.QUEUED) for t in tasks]


def positive_int_option(uri: RedactedURI, name: str, raw: object) -> int:
    """A compute URI option that must be an integer >= 1 (``?workers=2``), else ConfigError."""
    from pinnacle_protocols.errors import ConfigError

    try:
        value = int(str(raw))
    except ValueError:
        value = 0
    if value < 1 or isinstance(raw, bool):
        raise ConfigError(f"{uri}: {name} must be an integer >= 1, got {raw!r}")
    return value


def positive_float_option(uri: RedactedURI, name: str, raw: object) -> float:
    """A compute URI option that must be a number > 0 (``?timeout=5``), else ConfigError."""
    from pinnacle_protocols.errors import ConfigError

    try:
        value = float(str(raw))
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{uri}: {name} must be a number > 0, got {raw!r}")
    return value


def check_submission(job_id: str, tasks: Sequence[Task], retries: int) -> None:
    """Validate a submission the same way on every backend (InvalidRecord if wrong)."""
    if not isinstance(job_id, str) or not job_id or len(job_id) > 200:
        raise InvalidRecord(f"job_id must be a non-empty string of <= 200 chars, got {job_id!r}")
    ids = [t.task_id for t in tasks]
    if not all(isinstance(t, Task) for t in tasks):
        raise InvalidRecord("tasks must be Task records")
    if len(set(ids)) != len(ids):
        raise InvalidRecord(f"job {job_id!r}: task ids are not unique")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidRecord(f"retries must be an int >= 0, got {retries!r}")


class FutureLike(Protocol):
    """What :class:`PooledComputeBackend` needs of an engine's future."""

    def add_done_callback(self, fn: Callable[[Any], object], /) -> object:
        """Call ``fn(future)`` once the future is done (at once if it is)."""
        ...

    def cancel(self) -> object:
        """Try to stop the call before it starts."""
        ...

    def result(self, timeout: float | None = None) -> Any:
        """The call's return value (or raise its error)."""
        ...


class PooledComputeBackend:
    """Shared machinery of backends that hand tasks to an engine's futures.

    At most :meth:`capacity` tasks are handed to the engine at a time (one per worker slot), so a
    task handed over starts at once and :meth:`cancel` only has to drop what is still queued
    here: no task starts after ``cancel`` returns. A task whose worker died (the engine says so
    through :meth:`worker_lost`) is queued again, up to :attr:`max_requeues` times. When the
    engine itself is lost mid-job (:meth:`engine_lost`, or :meth:`capacity` raising while tasks
    are queued), the tasks it held and every queued task end FAILED with the reason, so
    :meth:`wait` returns instead of waiting for an engine that is gone.

    Subclasses implement :meth:`capacity`, :meth:`start` and :meth:`shutdown`.
    """

    runs_in_process: ClassVar[bool] = False
    runs_concurrently: ClassVar[bool] = True
    #: How many times a task whose worker died is queued again before it counts as failed.
    max_requeues: ClassVar[int] = 3
    #: How many tasks per worker slot (:meth:`capacity`) a job is cut into when its caller
    #: does not say (pinnacledb's ``db.predict`` and listener jobs; larger jobs get more, see
    #: ``pinnacledb.predict.default_partition_size``). More tasks even out workers of unequal
    #: speed and give finer progress, cancel and retry steps; fewer save the engine's cost
    #: per task (the hand-off from one task to the next, and the task's own set-up). An
    #: engine with a costly hand-off sets fewer.
    tasks_per_slot: ClassVar[int] = 8

    def __init__(self, uri: str) -> None:
        """A backend named ``uri`` (shown redacted)."""
        self._uri = RedactedURI.parse(uri)
        self._cond = threading.Condition(threading.RLock())
        self._jobs: dict[str, _PooledJob] = {}
        self._order: list[str] = []
        self._in_flight = 0
        self._closed = False

    @property
    def uri(self) -> RedactedURI:
        """Where the tasks run (redacted)."""
        return self._uri

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._uri})"

    # ------------------------------------------------------------------ engine hooks
    def capacity(self) -> int:
        """How many tasks may run at once (worker slots)."""
        raise NotImplementedError

    def start(self, key: str, function: TaskFunction, task: Task, retries: int) -> FutureLike:
        """Hand ``execute_task(function, task, retries)`` to the engine under name ``key``."""
        raise NotImplementedError

    def worker_lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` (raised by a future) means the worker died, not the task failed."""
        return False

    def engine_lost(self, exc: BaseException) -> str | None:
        """Why the engine itself is gone (its scheduler lost mid-job), if ``exc`` says so.

        A message here fails the task, and every task still queued on this backend, with that
        reason (the outputs of a re-run are idempotent): nothing waits for an engine that went
        away. None means ``exc`` is about the task (or its worker, see :meth:`worker_lost`).
        """
        return None

    def shutdown(self) -> None:
        """Release the engine."""

    # ------------------------------------------------------------------ protocol
    def submit(
        self,
        job_id: str,
        tasks: Sequence[Task],
        function: TaskFunction,
        *,
        retries: int = 0,
    ) -> JobProgress:
        """Queue every task; as many as the engine has slots for start at once."""
        from pinnacle_protocols.errors import VersionConflict

        check_submission(job_id, tasks, retries)
        with self._cond:
            if self._closed:
                raise PinnacleError(f"compute backend {self._uri} is closed")
            if job_id in self._jobs:
                raise VersionConflict(f"job {job_id!r} was already submitted to {self._uri}")
            self._jobs[job_id] = _PooledJob(job_id, list(tasks), function, retries)
            self._order.append(job_id)
            try:
                self._pump(raise_errors=True)
            except BaseException:
                self._jobs.pop(job_id, None)
                self._order.remove(job_id)
                raise
            return self._progress(job_id)

    def status(self, job_id: str) -> JobProgress:
        """The job's tasks so far."""
        with self._cond:
            return self._progress(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> JobProgress:
        """Block until every task has ended or ``timeout`` passed (JobTimeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                progress = self._progress(job_id)
                if progress.finished:
                    return progress
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise JobTimeout(
                        f"job {job_id!r} on {self._uri} is not finished after {timeout} s"
                    )
                self._cond.wait(left if left is not None else 1.0)

    def cancel(self, job_id: str) -> JobProgress:
        """Drop the queued tasks; tasks the engine is running finish."""
        with self._cond:
            job = self._job(job_id)
            job.cancelled = True
            for i, r in enumerate(job.results):
                if r.status is TaskStatus.QUEUED:
                    job.results[i] = TaskResult(task_id=r.task_id, status=TaskStatus.CANCELLED)
            self._cond.notify_all()
            return self._progress(job_id)

    def close(self) -> None:
        """Cancel queued tasks, wait for running ones, release the engine."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            for job_id in list(self._jobs):
                self.cancel(job_id)
        self.shutdown()

    # ------------------------------------------------------------------ internals
    def _job(self, job_id: str) -> _PooledJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r} was submitted to {self._uri}")
        return job

    def _progress(self, job_id: str) -> JobProgress:
        job = self._job(job_id)
        return JobProgress(job_id=job_id, tasks=tuple(job.results), cancelled=job.cancelled)

    def _pump(self, *, raise_errors: bool = False) -> None:
        """Start queued tasks while there are free slots (caller holds the lock)."""
        if self._closed:
            return
        if raise_errors:
            capacity = max(1, self.capacity())
        else:
            try:
                capacity = max(1, self.capacity())
            except Exception as exc:
                # the engine went away mid-job (called from a future's callback, where raising
                # would leave the queued tasks waiting forever): they fail with the reason
                self._fail_queued(f"engine {self._uri} is unreachable: {type(exc).__name__}: {exc}")
                return
        for job_id in list(self._order):
            job = self._jobs[job_id]
            while self._in_flight < capacity and not job.cancelled:
                index = job.next_queued()
                if index is None:
                    break
                task = job.tasks[index]
                attempt = job.starts[index]
                job.starts[index] += 1
                key = task_key(job_id, index) + (f"-r{attempt}" if attempt else "")
                job.results[index] = TaskResult(task_id=task.task_id, status=TaskStatus.RUNNING)
                self._in_flight += 1
                try:
                    future = self.start(key, job.function, task, job.retries)
                except Exception as exc:
                    self._in_flight -= 1
                    if raise_errors:
                        job.results[index] = TaskResult(
                            task_id=task.task_id, status=TaskStatus.QUEUED
                        )
                        raise
                    # the engine went away mid-job: the job ends FAILED with the reason
                    error = redact(f"engine {self._uri} refused the task: {exc}")
                    for i, r in enumerate(job.results):
                        if i == index or r.status is TaskStatus.QUEUED:
                            job.results[i] = TaskResult(
                                task_id=r.task_id, status=TaskStatus.FAILED, error=error
                            )
                    break
                future.add_done_callback(
                    lambda f, j=job, i=index: self._finished(j, i, f)  # type: ignore[misc]
                )
            if job.all_finished() and job_id in self._order:
                self._order.remove(job_id)

    def _finished(self, job: _PooledJob, index: int, future: FutureLike) -> None:
        task = job.tasks[index]
        try:
            result = future.result()
            if not isinstance(result, TaskResult):
                raise PinnacleError(f"engine returned {type(result).__name__}, not a TaskResult")
        except BaseException as exc:
            gone = self.engine_lost(exc)
            lost = gone is None and self.worker_lost(exc)
            with self._cond:
                self._in_flight -= 1
                if gone is not None:
                    job.results[index] = TaskResult(
                        task_id=task.task_id,
                        status=TaskStatus.FAILED,
                        error=redact(gone),
                        attempts=job.starts[index],
                    )
                    # nothing to start on an engine that is gone (asking it for capacity
                    # could block while its client tries to reconnect)
                    self._fail_queued(gone)
                    self._cond.notify_all()
                    return
                if lost and job.starts[index] <= self.max_requeues and not job.cancelled:
                    job.results[index] = TaskResult(task_id=task.task_id, status=TaskStatus.QUEUED)
                else:
                    cancelled = job.cancelled and _is_cancelled_error(exc)
                    job.results[index] = TaskResult(
                        task_id=task.task_id,
                        status=TaskStatus.CANCELLED if cancelled else TaskStatus.FAILED,
                        error=None if cancelled else redact(f"{type(exc).__name__}: {exc}"),
                        attempts=job.starts[index],
                    )
                self._after_finish()
            return
        with self._cond:
            self._in_flight -= 1
            job.results[index] = result
            self._after_finish()

    def _fail_queued(self, reason: str) -> None:
        """Fail every queued task of every job with ``reason`` (caller holds the lock)."""
        error = redact(reason)
        for job_id in list(self._order):
            job = self._jobs[job_id]
            for i, r in enumerate(job.results):
                if r.status is TaskStatus.QUEUED:
                    job.results[i] = TaskResult(
                        task_id=r.task_id, status=TaskStatus.FAILED, error=error
                    )
            if job.all_finished():
                self._order.remove(job_id)

    def _after_finish(self) -> None:
        try:
            self._pump()
        finally:
            self._cond.notify_all()


def _is_cancelled_error(exc: BaseException) -> bool:
    return "Cancelled" in type(exc).__name__


class _PooledJob:
    def __init__(
        self, job_id: str, tasks: list[Task], function: TaskFunction, retries: int
    ) -> None:
        self.job_id = job_id
        self.tasks = tasks
        self.function = function
        self.retries = retries
        self.cancelled = False
        self.results = [TaskResult(task_id=t.task_id, status=TaskStatus.QUEUED) for t in tasks]
        self.starts = [0] * len(tasks)

    def next_queued(self) -> int | None:
        return next((i for i, r in enumerate(self.results) if r.status is TaskStatus.QUEUED), None)

    def all_finished(self) -> bool:
        return all(r.status.finished for r in self.results)
