"""The scheduler of a ``dask://HOST:PORT`` cluster killed mid-job: the job fails, nothing hangs.

The scheduler and the worker are separate processes (``dask scheduler``, ``dask worker``), as a
user runs them; the test SIGKILLs the scheduler while a task is blocked on its worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinnacle_dask import DaskComputeBackend
from pinnacle_dask.testing import ProcessCluster
from pinnacle_protocols.compute import Task, TaskStatus
from pinnacle_protocols.errors import BackendUnavailable
from pinnacle_protocols.testing._compute import record_and_sleep

PASSWORD = "pw-never-shown-51c"


@pytest.fixture
def cluster() -> Iterator[ProcessCluster]:
    with ProcessCluster(workers=1, threads=1) as running:
        yield running


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_scheduler_killed_mid_job_fails_the_job_promptly(
    cluster: ProcessCluster, tmp_path: Path
) -> None:
    backend = DaskComputeBackend.from_uri(f"dask://user:{PASSWORD}@{cluster.address}?timeout=5")
    try:
        # one worker thread: task 0 runs (blocked for a minute), tasks 1 and 2 wait here
        tasks = [
            Task(task_id=str(i), kind="k", payload={"dir": str(tmp_path), "seconds": 60})
            for i in range(3)
        ]
        backend.submit("lost", tasks, record_and_sleep)
        _wait_for(tmp_path / "started" / "0", timeout=30)
        assert backend.status("lost").status is TaskStatus.RUNNING

        cluster.kill_scheduler()
        started = time.monotonic()
        done = backend.wait("lost", timeout=15)
        assert time.monotonic() - started < 5, "wait noticed the lost scheduler late"
        assert done.status is TaskStatus.FAILED
        assert [t.status for t in done.tasks] == [TaskStatus.FAILED] * 3
        for task in done.tasks:
            assert task.error is not None
            assert f"lost the Dask scheduler tcp://{cluster.address}" in task.error
            assert PASSWORD not in task.error
        assert backend.status("lost") == done
        assert not (tmp_path / "started" / "1").exists()  # queued tasks never started

        # a new job while the scheduler is gone: a typed error at once, naming no password
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="unreachable") as caught:
            backend.submit("next", tasks, record_and_sleep)
        assert time.monotonic() - started < 5
        assert PASSWORD not in str(caught.value)
    finally:
        started = time.monotonic()
        backend.close()
        assert time.monotonic() - started < 10


def test_a_restarted_scheduler_serves_the_next_job(cluster: ProcessCluster, tmp_path: Path) -> None:
    backend = DaskComputeBackend.from_uri(f"dask://{cluster.address}?timeout=1")
    try:
        tasks = [
            Task(task_id="0", kind="k", payload={"dir": str(tmp_path), "seconds": 60}),
        ]
        backend.submit("first", tasks, record_and_sleep)
        _wait_for(tmp_path / "started" / "0", timeout=30)
        cluster.kill_scheduler()
        cluster.kill_workers()
        assert backend.wait("first", timeout=15).status is TaskStatus.FAILED
        time.sleep(1.5)  # past the client's timeout: Dask closed it, the backend reconnects
        cluster.start_scheduler()
        cluster.start_workers()
        cluster.wait_ready()
        quick = [Task(task_id="0", kind="k", payload={"dir": str(tmp_path), "seconds": 0})]
        backend.submit("second", quick, record_and_sleep)
        assert backend.wait("second", timeout=30).status is TaskStatus.SUCCESS
    finally:
        backend.close()
