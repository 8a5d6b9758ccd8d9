"""The ComputeBackend contract on ``dask+local://`` (a real LocalCluster of worker processes)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pinnacle_dask import DaskComputeBackend
from pinnacle_dask.backend import LOCAL_CLUSTER_CONFIG, local_cluster_config
from pinnacle_protocols.compute import ComputeBackend, Task, TaskStatus
from pinnacle_protocols.errors import BackendUnavailable, ConfigError
from pinnacle_protocols.testing import ComputeBackendContract
from pinnacle_protocols.testing._compute import SECRET, exit_on_first_attempt, failing_or_square


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskComputeBackend]:
    backend = DaskComputeBackend.from_uri("dask+local://?workers=2")
    yield backend
    backend.close()


class TestDaskLocalContract(ComputeBackendContract):
    @pytest.fixture
    def make_backend(self, cluster: DaskComputeBackend) -> ComputeBackend:
        return cluster


def test_keys_logs_and_results_hold_no_credentials(
    cluster: DaskComputeBackend, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    uri = f"postgresql://user:{SECRET}@db.example/app"
    tasks = [
        Task(task_id=str(i), kind="k", payload={"n": i, "fail": i == 1, "uri": uri})
        for i in range(3)
    ]
    cluster.submit("secret-job", tasks, failing_or_square)
    done = cluster.wait("secret-job", timeout=60)
    assert [t.status for t in done.tasks] == [
        TaskStatus.SUCCESS,
        TaskStatus.FAILED,
        TaskStatus.SUCCESS,
    ]

    def scheduler_view(dask_scheduler: Any) -> list[str]:
        seen = [str(k) for k in dask_scheduler.tasks]
        seen += [repr(t) for t in getattr(dask_scheduler, "transition_log", [])]
        seen += [repr(e) for e in dask_scheduler.get_events()]
        return seen

    seen = cluster.run_on_scheduler(scheduler_view)
    keys = [s for s in seen if "pinnacle-secret-job-" in s]
    assert keys, "the scheduler saw our task keys"
    assert all(SECRET not in s for s in seen)
    out, err = capfd.readouterr()
    assert SECRET not in out + err + caplog.text
    assert SECRET not in repr(done)


def test_uri_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="needs the scheduler's host"):
        DaskComputeBackend.from_uri("dask://")
    with pytest.raises(ConfigError, match="workers must be an integer"):
        DaskComputeBackend.from_uri("dask+local://?workers=zero")
    with pytest.raises(ConfigError, match="unknown option"):
        DaskComputeBackend.from_uri("dask://h:1?workers=2")
    backend = DaskComputeBackend.from_uri("dask://sched.example?timeout=3")
    assert backend.address == "tcp://sched.example:8786"
    assert backend.timeout == 3.0


def test_unreachable_scheduler_is_a_typed_error_at_submit() -> None:
    backend = DaskComputeBackend.from_uri("dask://u:pw-not-shown@127.0.0.1:1?timeout=1")
    with pytest.raises(BackendUnavailable, match="cannot reach the Dask scheduler") as caught:
        backend.submit("j", [Task(task_id="0", kind="k", payload={"n": 1})], failing_or_square)
    assert "pw-not-shown" not in str(caught.value)
    with pytest.raises(Exception, match="no job"):
        backend.status("j")
    backend.close()


def test_a_worker_killed_mid_task_is_replaced_and_the_task_runs_again(
    cluster: DaskComputeBackend, tmp_path: Path
) -> None:
    # each task's first attempt kills its worker process (os._exit); the nanny starts another
    tasks = [Task(task_id=str(i), kind="k", payload={"dir": str(tmp_path)}) for i in range(2)]
    cluster.submit("killed", tasks, exit_on_first_attempt)
    done = cluster.wait("killed", timeout=300)  # a hang bound: restarts are slow under load
    assert done.status is TaskStatus.SUCCESS, done
    assert sorted(p.name for p in (tmp_path / "kills").iterdir()) == ["0", "1"]
    for name in ("0", "1"):  # every output written, once
        assert (tmp_path / "out" / name).read_text() == f"value {name}"
    assert [t.value for t in done.tasks] == ["0", "1"]


def test_the_local_cluster_runs_without_dask_background_profiling(
    cluster: DaskComputeBackend,
) -> None:
    # the statistical profiler (every 10 ms) and the 20 ms event-loop tick took CPU from the
    # tasks on a small machine: the LocalCluster that dask+local:// starts runs without them,
    # in its first workers and in those that replace a killed one (the test above kills both)
    def worker_view(dask_worker: Any) -> tuple[bool, float, bool]:
        import dask

        return (
            "profile" in dask_worker.periodic_callbacks,
            dask_worker._tick_interval,
            bool(dask.config.get("distributed.worker.profile.enabled")),
        )

    views = cluster.client.run(worker_view)
    assert len(views) == 2
    assert all(v == (False, 1.0, False) for v in views.values()), views
    tick = cluster.run_on_scheduler(lambda dask_scheduler: dask_scheduler._tick_interval)
    assert tick == 1.0


def test_a_dask_setting_the_user_made_wins_over_the_local_cluster_defaults() -> None:
    import dask

    assert local_cluster_config() == LOCAL_CLUSTER_CONFIG
    with dask.config.set({"distributed.admin.tick.interval": "50ms"}):
        chosen = local_cluster_config()
    assert "distributed.admin.tick.interval" not in chosen
    assert chosen["distributed.worker.profile.enabled"] is False
