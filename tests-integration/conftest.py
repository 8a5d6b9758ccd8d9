"""Fixtures of the integration suite: services, the store matrix, isolation, seeds.

Services are found through ``PINNACLE_TEST_<NAME>_URI`` or started here (see
``pinnacle_it/services.py``); with ``CI=true`` a missing service fails the tests that need it.
Random timings of the fault tests derive from one seed, printed in the report header and in
the test ids: ``PINNACLE_TEST_SEED=<n>`` replays a run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

# The directory name has a hyphen, so it cannot be a package: make its helpers importable.
sys.path.insert(0, str(Path(__file__).parent))

from pinnacle_it.matrix import Matrix
from pinnacle_it.seeds import BASE_SEED
from pinnacle_it.services import SERVICES, Services, is_ci


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which seed and which service sources this run uses."""
    lines = [
        f"pinnacle tests-integration: seed {BASE_SEED} (replay with PINNACLE_TEST_SEED="
        f"{BASE_SEED}); CI={'true' if is_ci() else 'false'}"
    ]
    for spec in SERVICES.values():
        where = "configured" if spec.env and os.environ.get(spec.env) else spec.default
        lines.append(f"  service {spec.name:<9} {where}")
    return lines


#: Node id prefixes that run on one pytest-xdist worker together (scope name -> prefixes).
#: ``bash scripts/test`` runs two workers with ``--dist loadscope`` (a test class, or a module's
#: functions, is one unit, so class- and module-scoped fixtures are built once); tests that
#: start a local Ray instance must share one worker: two local Ray instances on one machine
#: compete for its resources and ports. This conftest is the suite's only one loaded by the
#: xdist controller for a whole run (it is in ``testpaths``); Pants, which runs each package's
#: tests without xdist, never sees it.
_SHARED_SCOPES = {
    "ray": ("packages/pinnacle-ray/", "tests-integration/test_compute_runners.py"),
}


def _scope_of(nodeid: str) -> str | None:
    for scope, prefixes in _SHARED_SCOPES.items():
        if nodeid.startswith(prefixes):
            return scope
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the shared-scope (Ray) tests first, on a fresh xdist worker, before other scopes
    have started clusters and pools in its process. (CI saw every Ray test time out; the cause
    was Ray's ``uv run`` propagation, see pinnacle_ray._connection, not the order. Running the
    scope first still keeps its local Ray instance from sharing a worker with later pools.)
    Without xdist this order is the run's order; with it, the scheduler below hands the shared
    scopes out first."""
    items.sort(key=lambda item: _scope_of(item.nodeid) is None)  # stable: order kept otherwise


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope`` with the shared scopes of :data:`_SHARED_SCOPES`."""
    if config.getoption("dist", None) != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class _Scheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return _scope_of(nodeid) or str(super()._split_scope(nodeid))

        def _assign_work_unit(self, node: Any) -> None:
            # xdist orders the queue by scope size (--loadscope-reorder, its default), which put
            # the Ray scope last: hand out the shared scopes first, to a fresh worker.
            for scope in reversed(_SHARED_SCOPES):
                if scope in self.workqueue:
                    self.workqueue.move_to_end(scope, last=False)
            super()._assign_work_unit(node)

    return _Scheduling(config, log)


_SESSION: dict[str, Any] = {}


def _services() -> Services:
    if "services" not in _SESSION:
        workdir = Path(tempfile.mkdtemp(prefix="pinnacle-it-"))
        _SESSION["workdir"] = workdir
        _SESSION["services"] = Services(workdir)
    services: Services = _SESSION["services"]
    return services


def _needed_services(items: list[pytest.Item]) -> set[str]:
    needed = set()
    for item in items:
        needed |= {m.name for m in item.iter_markers() if m.name in SERVICES}
    return needed


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start slow things early, in the background, for the tests that were selected.

    The servers this suite starts itself (SeaweedFS, nx-27017, mongoeco, Spark) start in
    threads; a test module may define ``background_start(items)`` (the venv builds of
    ``test_install_alone.py``), called with its selected items.
    """
    if session.config.option.collectonly or not session.items:
        return
    _services().prewarm(sorted(_needed_services(session.items)))
    modules: dict[int, Any] = {}
    for item in session.items:
        module = getattr(item, "module", None)
        if module is not None and hasattr(module, "background_start"):
            modules.setdefault(id(module), module)
    for module in modules.values():
        module.background_start([i for i in session.items if getattr(i, "module", None) is module])
        _SESSION.setdefault("background", []).append(module)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop background work, servers; drop what the session created."""
    for module in _SESSION.pop("background", []):
        module.background_stop()
    services = _SESSION.pop("services", None)
    if services is not None:
        services.close()
    workdir = _SESSION.pop("workdir", None)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def services() -> Services:
    """Every service of the session, obtained on first use, stopped/dropped at the end."""
    return _services()


@pytest.fixture(scope="session")
def matrix(services: Services) -> Iterator[Matrix]:
    """The store matrix (pooled SQL databases live for the session)."""
    workdir = Path(tempfile.mkdtemp(prefix="pinnacle-it-matrix-"))
    m = Matrix(services, workdir)
    try:
        yield m
    finally:
        m.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test runs in its own working directory, without PINNACLEDB_* settings or CFG."""
    from pinnacledb import CFG

    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("PINNACLEDB_"):
            monkeypatch.delenv(name)
    saved = attrs.asdict(CFG, recurse=False)
    CFG.reset()
    try:
        yield tmp_path
    finally:
        for key, value in saved.items():
            setattr(CFG, key, value)
