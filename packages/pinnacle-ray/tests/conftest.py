"""One Ray instance for every test of the package (starting Ray takes 10-30 s on 2 cores).

Package-scoped (``tests/`` is a package for that), so the instance stops after this package's
last test instead of idling through the rest of a whole-repository run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pinnacle_ray import RayComputeBackend


@pytest.fixture(scope="package")
def ray_local() -> Iterator[RayComputeBackend]:
    """``ray+local://?workers=2``, started once for the package's tests."""
    backend = RayComputeBackend.from_uri("ray+local://?workers=2")
    assert backend.capacity() == 2  # starts Ray here, not inside the first test's timing
    # ...and its two worker processes: the first tasks of a fresh instance wait for them to
    # start and import (CI once took over 60 s here while the other xdist worker was busy).
    from pinnacle_protocols.compute import Task
    from pinnacle_protocols.testing._compute import failing_or_square

    backend.submit(
        "warm-up",
        [Task(task_id=str(i), kind="k", payload={"n": i}) for i in range(2)],
        failing_or_square,
    )
    backend.wait("warm-up", timeout=300)
    yield backend
    backend.close()
