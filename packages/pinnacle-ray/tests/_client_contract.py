"""Run by test_contract.py in its own process: the contract on ``ray://`` (Ray Client).

Not collected on its own (no ``test_`` prefix): it needs ``PINNACLE_TEST_RAY_URI``, the address
of a Ray Client server that test_contract.py starts on the session's Ray instance.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import ClassVar

import pytest

from pinnacle_protocols.compute import ComputeBackend, Task
from pinnacle_protocols.errors import BackendUnavailable, ConfigError
from pinnacle_protocols.testing import ComputeBackendContract
from pinnacle_protocols.testing._compute import failing_or_square
from pinnacle_ray import RayComputeBackend

URI = os.environ["PINNACLE_TEST_RAY_URI"]


def test_unreachable_cluster_is_a_typed_error_at_submit() -> None:
    # first, before this process connects anywhere: Ray allows one connection per process
    backend = RayComputeBackend.from_uri("ray://127.0.0.1:1?timeout=1")
    with pytest.raises(BackendUnavailable, match="cannot reach the Ray Client server"):
        backend.submit("j", [Task(task_id="0", kind="k", payload={"n": 1})], failing_or_square)
    with pytest.raises(Exception, match="no job"):
        backend.status("j")
    backend.close()


def test_ray_started_by_other_code_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # as after the user's ray.init()
    backend = RayComputeBackend.from_uri(URI)
    with pytest.raises(ConfigError, match="already initialized in this process by other code"):
        backend.submit("j", [Task(task_id="0", kind="k", payload={"n": 1})], failing_or_square)
    backend.close()


@pytest.fixture(scope="module")
def client() -> Iterator[RayComputeBackend]:
    backend = RayComputeBackend.from_uri(URI)
    assert backend.capacity() == 2
    yield backend
    backend.close()


class TestRayClientContract(ComputeBackendContract):
    # A Ray Client job crosses the client server, the GCS and the raylet: on a 2-core machine
    # under load (a CI run at load 16) a 7-task job took over the default 60 s; the bound is a
    # hang detector, not a latency target.
    wait_seconds: ClassVar[float] = 180.0

    @pytest.fixture
    def make_backend(self, client: RayComputeBackend) -> ComputeBackend:
        return client


def test_close_disconnects(client: RayComputeBackend) -> None:
    import ray

    assert ray.is_initialized()
    client.close()
    assert not ray.is_initialized()
