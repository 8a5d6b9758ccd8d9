"""The ComputeBackend contract on the facade's runners: ``local://`` and ``processes://``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pinnacle_protocols.compute import ComputeBackend, InlineComputeBackend
from pinnacle_protocols.errors import ConfigError
from pinnacle_protocols.testing import ComputeBackendContract
from pinnacledb.compute import local_backend, processes_backend
from pinnacledb.compute._processes import ProcessesComputeBackend


class TestLocalContract(ComputeBackendContract):
    @pytest.fixture
    def make_backend(self) -> Iterator[ComputeBackend]:
        backend = local_backend("local://")
        yield backend
        backend.close()


class TestProcessesContract(ComputeBackendContract):
    @pytest.fixture(scope="class")
    @classmethod
    def make_backend(cls) -> Iterator[ComputeBackend]:
        backend = processes_backend("processes://?workers=2")
        yield backend
        backend.close()


def test_processes_options_are_checked() -> None:
    assert ProcessesComputeBackend.from_uri("processes://?workers=3").workers == 3
    assert ProcessesComputeBackend.from_uri("processes://", workers=1).workers == 1
    with pytest.raises(ConfigError, match="workers must be an integer >= 1"):
        ProcessesComputeBackend.from_uri("processes://?workers=0")
    with pytest.raises(ConfigError, match="unknown option"):
        ProcessesComputeBackend.from_uri("processes://?threads=2")
    with pytest.raises(ConfigError, match="no host"):
        ProcessesComputeBackend.from_uri("processes://somewhere:1")
    with pytest.raises(ConfigError, match="no host"):
        local_backend("local://elsewhere")
    assert isinstance(local_backend(), InlineComputeBackend)


def test_a_worker_killed_mid_task_is_replaced_and_the_task_runs_again(tmp_path: Path) -> None:
    from pinnacle_protocols.compute import Task, TaskStatus
    from pinnacle_protocols.testing._compute import exit_on_first_attempt

    backend = processes_backend("processes://?workers=2")
    try:
        tasks = [Task(task_id=str(i), kind="k", payload={"dir": str(tmp_path)}) for i in range(3)]
        backend.submit("killed", tasks, exit_on_first_attempt)
        done = backend.wait("killed", timeout=300)
        assert [t.status for t in done.tasks] == [TaskStatus.SUCCESS] * 3
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0", "1", "2"]
    finally:
        backend.close()
