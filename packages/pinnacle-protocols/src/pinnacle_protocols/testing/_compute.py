"""The ComputeBackend contract: subclass it and define ``make_backend``.

Example::

    class TestMyRunner(ComputeBackendContract):
        @pytest.fixture(scope="class")
        def make_backend(self) -> Iterator[ComputeBackend]:
            backend = MyRunner.from_uri("my://?workers=2")
            yield backend
            backend.close()

The fixture may be class-scoped (a cluster is slow to start): every test uses its own job ids.
Tasks talk to the test through files in a temporary directory, so the backend's workers must
share this machine's filesystem (a Dask cluster started for the test does).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pinnacle_protocols.compute import ComputeBackend, Task, TaskStatus
from pinnacle_protocols.errors import JobNotFound, JobTimeout, VersionConflict
from pinnacle_protocols.records import JSONValue

__all__ = [
    "SECRET",
    "ComputeBackendContract",
    "count_runs",
    "exit_on_first_attempt",
    "fail_first_attempt",
    "failing_or_square",
    "record_and_sleep",
]

#: A password the contract puts into task payloads; it must never come back.
SECRET = "s3cr3t-pw-contract"  # noqa: S105 - a fake password the suite looks for
_SECRET_URI = f"postgresql://user:{SECRET}@db.example/app"


def _dir(task: Task) -> Path:
    return Path(str(task.payload["dir"]))


def count_runs(task: Task) -> JSONValue:
    """Append a line per run to ``<dir>/runs/<task_id>``; return ``n * n``."""
    runs = _dir(task) / "runs"
    runs.mkdir(exist_ok=True)
    with (runs / task.task_id).open("a") as fh:
        fh.write(f"{os.getpid()}\n")
    n = task.payload["n"]
    assert isinstance(n, int)
    return n * n


def failing_or_square(task: Task) -> JSONValue:
    """Raise for tasks with ``fail`` set (the message holds a URI with a password)."""
    n = task.payload["n"]
    assert isinstance(n, int)
    if task.payload.get("fail"):
        raise ValueError(f"boom {n} while reading {_SECRET_URI}")
    return n * n


def record_and_sleep(task: Task) -> JSONValue:
    """Write ``<dir>/started/<task_id>`` (the start time), then sleep ``seconds``."""
    started = _dir(task) / "started"
    started.mkdir(exist_ok=True)
    (started / task.task_id).write_text(repr(time.time()))
    seconds = task.payload["seconds"]
    assert isinstance(seconds, (int, float))
    time.sleep(seconds)
    return task.task_id


def fail_first_attempt(task: Task) -> JSONValue:
    """Idempotent effect (``<dir>/out/<task_id>`` overwritten), then fail on the first attempt."""
    base = _dir(task)
    (base / "out").mkdir(exist_ok=True)
    (base / "attempts").mkdir(exist_ok=True)
    (base / "out" / task.task_id).write_text(f"value {task.task_id}")
    marker = base / "attempts" / task.task_id
    with marker.open("a") as fh:
        fh.write("x")
    if len(marker.read_text()) == 1:
        raise RuntimeError(f"transient failure of task {task.task_id}")
    return len(marker.read_text())


def exit_on_first_attempt(task: Task) -> JSONValue:
    """Kill the worker process (``os._exit``) on the first attempt; then write the effect.

    Only for backends whose tasks run in other processes: it kills the process it runs in.
    """
    base = _dir(task)
    (base / "kills").mkdir(exist_ok=True)
    (base / "out").mkdir(exist_ok=True)
    marker = base / "kills" / task.task_id
    if not marker.exists():
        marker.write_text("killed")
        os._exit(1)
    (base / "out" / task.task_id).write_text(f"value {task.task_id}")
    return task.task_id


class ComputeBackendContract:
    """What every ComputeBackend does; subclasses define the ``make_backend`` fixture.

    Attributes:
        wait_seconds: Upper bound for a small job to finish on this backend (cluster latency).
    """

    wait_seconds: ClassVar[float] = 60.0

    @pytest.fixture
    def make_backend(self) -> ComputeBackend:
        """Abstract: yield a ready backend (function or class scoped) and close it after."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `make_backend` fixture yielding a backend"
        )

    @pytest.fixture
    def backend(self, make_backend: ComputeBackend) -> ComputeBackend:
        """The backend under test."""
        return make_backend

    @staticmethod
    def job_id() -> str:
        """A fresh job id."""
        return f"contract-{uuid.uuid4().hex[:12]}"

    @staticmethod
    def tasks(n: int, **payload: Any) -> list[Task]:
        """``n`` tasks with payload ``{"n": i, **payload}``."""
        return [
            Task(task_id=str(i), kind="contract", payload={"n": i, **payload}, source=f"n={i}")
            for i in range(n)
        ]

    # ------------------------------------------------------------------ tests
    def test_protocol_and_flags(self, backend: ComputeBackend) -> None:
        assert isinstance(backend, ComputeBackend)
        assert isinstance(type(backend).runs_in_process, bool)
        assert isinstance(type(backend).runs_concurrently, bool)
        assert str(backend.uri)

    def test_every_task_runs_once(self, backend: ComputeBackend, tmp_path: Path) -> None:
        job = self.job_id()
        backend.submit(job, self.tasks(7, dir=str(tmp_path)), count_runs)
        done = backend.wait(job, timeout=self.wait_seconds)
        assert done.finished
        assert done.status is TaskStatus.SUCCESS
        assert [t.task_id for t in done.tasks] == [str(i) for i in range(7)]
        assert [t.value for t in done.tasks] == [i * i for i in range(7)]
        assert all(t.attempts == 1 and t.error is None for t in done.tasks)
        for i in range(7):
            assert (tmp_path / "runs" / str(i)).read_text().count("\n") == 1
        assert backend.status(job) == done

    def test_failures_are_reported_per_task(self, backend: ComputeBackend) -> None:
        job = self.job_id()
        tasks = [
            Task(task_id=str(i), kind="contract", payload={"n": i, "fail": i in (1, 3)})
            for i in range(5)
        ]
        backend.submit(job, tasks, failing_or_square)
        done = backend.wait(job, timeout=self.wait_seconds)
        assert done.status is TaskStatus.FAILED
        by_id = {t.task_id: t for t in done.tasks}
        for i in (0, 2, 4):
            assert by_id[str(i)].status is TaskStatus.SUCCESS
            assert by_id[str(i)].value == i * i
        for i in (1, 3):
            failed = by_id[str(i)]
            assert failed.status is TaskStatus.FAILED
            assert failed.error is not None
            assert f"ValueError: boom {i}" in failed.error
            assert SECRET not in failed.error
        assert done.count(TaskStatus.FAILED) == 2

    def test_wait_times_out_and_the_job_goes_on(
        self, backend: ComputeBackend, tmp_path: Path
    ) -> None:
        job = self.job_id()
        backend.submit(job, self.tasks(2, dir=str(tmp_path), seconds=0.8), record_and_sleep)
        with pytest.raises(JobTimeout) as caught:
            backend.wait(job, timeout=0.05)
        assert isinstance(caught.value, TimeoutError)
        assert not backend.status(job).finished
        done = backend.wait(job, timeout=self.wait_seconds)
        assert done.status is TaskStatus.SUCCESS

    def test_cancel_stops_tasks_not_started(self, backend: ComputeBackend, tmp_path: Path) -> None:
        job = self.job_id()
        backend.submit(job, self.tasks(12, dir=str(tmp_path), seconds=0.3), record_and_sleep)
        cancelled = backend.cancel(job)
        assert cancelled.cancelled
        done = backend.wait(job, timeout=self.wait_seconds)
        assert done.finished
        assert done.status is TaskStatus.CANCELLED
        statuses = {t.task_id: t.status for t in done.tasks}
        assert set(statuses.values()) <= {TaskStatus.SUCCESS, TaskStatus.CANCELLED}
        assert TaskStatus.CANCELLED in statuses.values()
        time.sleep(0.5)  # nothing may start late
        started_dir = tmp_path / "started"
        started = {p.name for p in started_dir.iterdir()} if started_dir.exists() else set()
        for task_id, status in statuses.items():
            if status is TaskStatus.CANCELLED:
                assert task_id not in started, f"cancelled task {task_id} ran"
            else:
                assert task_id in started
        # cancelling again, or a finished job, is harmless
        assert backend.cancel(job).finished

    def test_status_transitions(self, backend: ComputeBackend, tmp_path: Path) -> None:
        job = self.job_id()
        with pytest.raises(JobNotFound):
            backend.status(job)
        first = backend.submit(job, self.tasks(2, dir=str(tmp_path), seconds=0.2), record_and_sleep)
        assert first.job_id == job
        assert first.status in (TaskStatus.QUEUED, TaskStatus.RUNNING)
        assert len(first.tasks) == 2
        assert all(not t.status.finished for t in first.tasks)
        with pytest.raises(VersionConflict):
            backend.submit(job, self.tasks(1, dir=str(tmp_path), seconds=0), record_and_sleep)
        seen = {backend.status(job).status}
        done = backend.wait(job, timeout=self.wait_seconds)
        seen.add(done.status)
        assert done.status is TaskStatus.SUCCESS
        assert seen <= {TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCESS}
        assert backend.wait(job, timeout=0) == done

    def test_retry_does_not_duplicate_idempotent_effects(
        self, backend: ComputeBackend, tmp_path: Path
    ) -> None:
        job = self.job_id()
        backend.submit(job, self.tasks(3, dir=str(tmp_path)), fail_first_attempt, retries=1)
        done = backend.wait(job, timeout=self.wait_seconds)
        assert done.status is TaskStatus.SUCCESS
        assert [t.attempts for t in done.tasks] == [2, 2, 2]
        outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
        assert outputs == ["0", "1", "2"]
        for name in outputs:
            assert (tmp_path / "out" / name).read_text() == f"value {name}"
        # without retries the first failure is final
        job2 = self.job_id()
        other = tmp_path / "again"
        other.mkdir()
        backend.submit(job2, self.tasks(1, dir=str(other)), fail_first_attempt)
        failed = backend.wait(job2, timeout=self.wait_seconds)
        assert failed.status is TaskStatus.FAILED
        assert failed.tasks[0].attempts == 1

    def test_no_credentials_in_results_or_reprs(self, backend: ComputeBackend) -> None:
        job = self.job_id()
        tasks = [
            Task(task_id="0", kind="contract", payload={"n": 0, "fail": True, "uri": _SECRET_URI})
        ]
        assert SECRET not in repr(tasks[0])
        backend.submit(job, tasks, failing_or_square)
        done = backend.wait(job, timeout=self.wait_seconds)
        assert SECRET not in repr(done)
        assert SECRET not in repr(backend)
        assert SECRET not in str(backend.uri)
