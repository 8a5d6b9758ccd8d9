"""This process's one connection to Ray, shared by every backend that asks for the same one.

Ray keeps its driver state per process (``ray.init`` once, ``ray.shutdown`` once): a process is
a driver of one local instance *or* a client of one ``ray://`` cluster. This module mirrors that
state with a reference count, so two Datalayers with the same compute URI share the
connection (the last ``close`` shuts it down) and a backend that needs a different one gets a
:class:`~pinnacle_protocols.errors.ConfigError` saying why, instead of Ray's ``RuntimeError``
(or, worse, tasks silently sent to the other cluster).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from attrs import define

from pinnacle_protocols.errors import BackendUnavailable, ConfigError
from pinnacle_protocols.uri import RedactedURI, redact

__all__ = ["ClientTarget", "LocalTarget", "Target", "acquire", "release"]

logger = logging.getLogger("pinnacle_ray")


#: Ray settings of a ``ray+local://`` instance. ``worker_niceness``: Ray renices its workers by
#: +15 by default (to keep its own daemons responsive on a shared node), so under CPU contention
#: (another test process, a build) the local workers got a fraction of the CPU that the caller's
#: other processes got: a predict on DuckDB took 170 s instead of 10 on a loaded 2-core machine,
#: where ``processes://`` and Dask workers (which keep the caller's priority) slowed down 2x.
#: Local workers are this process's own pool and keep its priority, as theirs do.
LOCAL_SYSTEM_CONFIG: dict[str, object] = {"worker_niceness": 0}

#: How many times ``ray+local://`` starts its node. Ray waits a fixed 30 s (not configurable)
#: for the raylet to register with the GCS and then gives up with the message below; on a
#: loaded machine the seven processes it starts can take longer, and a second start works.
LOCAL_START_ATTEMPTS = 2
_STARTUP_TIMEOUT = "timed out during startup"


@define(frozen=True, kw_only=True)
class LocalTarget:
    """A Ray instance started in this process with ``workers`` CPUs (``ray+local://``)."""

    workers: int

    def describe(self) -> str:
        return f"a local Ray instance of {self.workers} CPUs"


@define(frozen=True, kw_only=True)
class ClientTarget:
    """A running cluster reached through Ray Client (``ray://HOST:PORT``)."""

    host: str
    port: int
    timeout: float

    def describe(self) -> str:
        return f"the Ray cluster at ray://{self.host}:{self.port}"


Target = LocalTarget | ClientTarget


@define(kw_only=True)
class _Held:
    target: Target
    uri: RedactedURI
    users: int
    remote: Any  # ray.remote(execute_task), made once per connection


class _ProcessRay:
    """The connection of this process (None when not connected), guarded by a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: _Held | None = None


_PROCESS = _ProcessRay()


def _same(a: Target, b: Target) -> bool:
    if isinstance(a, ClientTarget) and isinstance(b, ClientTarget):
        return (a.host, a.port) == (b.host, b.port)
    return a == b


def acquire(target: Target, uri: RedactedURI) -> Any:
    """Connect this process to ``target`` (or share the connection); return the remote function.

    Raises:
        ConfigError: this process is already connected to Ray differently.
        BackendUnavailable: Ray cannot be started or the cluster cannot be reached.
    """
    with _PROCESS.lock:
        held = _PROCESS.held
        if held is not None:
            if not _same(held.target, target):
                raise ConfigError(
                    f"{uri} needs {target.describe()}, but this process is already connected "
                    f"to {held.target.describe()} (through {held.uri}); Ray allows one "
                    "connection per process: close the other Datalayer first, or use the "
                    "same compute URI"
                )
            held.users += 1
            return held.remote
        import ray

        from pinnacle_protocols.compute import execute_task

        if ray.is_initialized():
            raise ConfigError(
                f"{uri}: Ray is already initialized in this process by other code; Ray allows "
                "one connection per process. Call ray.shutdown() first, or run the jobs "
                "there through ray://HOST:PORT from another process"
            )
        _connect(ray, target, uri)
        remote = ray.remote(execute_task)
        _PROCESS.held = _Held(target=target, uri=uri, users=1, remote=remote)
        return remote


@contextlib.contextmanager
def _without_uv_run_propagation() -> Iterator[None]:
    """``ray.init`` without Ray's ``uv run`` propagation (Ray >= 2.43, on by default).

    When the driver runs under ``uv run``, Ray uploads the current directory as the job's
    working_dir and starts every worker as ``uv run ... python`` inside that copy. A task here
    is data (:func:`pinnacle_protocols.compute.execute_task`), not code from the working
    directory: workers need pinnacle installed, nothing else. And the propagation breaks
    ordinary setups: under ``uv run --no-sync`` (a uv workspace, as this project's own test
    command) the copy has no environment, every worker dies at start and the raylet starts
    new ones forever, so no task ever runs (seen in CI: every Ray test timed out). Local
    workers therefore run this interpreter, as without uv, and a cluster's workers their own
    environment. ``RAY_ENABLE_UV_RUN_RUNTIME_ENV`` is read when Ray is imported, so the
    constant is switched off for the call and restored after.
    """
    try:
        from ray._private import ray_constants
    except ImportError:  # pragma: no cover - a Ray without the private module
        yield
        return
    before = getattr(ray_constants, "RAY_ENABLE_UV_RUN_RUNTIME_ENV", None)
    if before is None:
        yield
        return
    ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = False
    try:
        yield
    finally:
        ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = before


def _connect(ray: Any, target: Target, uri: RedactedURI) -> None:
    with _without_uv_run_propagation():
        _init(ray, target, uri)


def _init(ray: Any, target: Target, uri: RedactedURI) -> None:
    started = time.perf_counter()
    if isinstance(target, LocalTarget):
        for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
            try:
                ray.init(
                    num_cpus=target.workers,
                    include_dashboard=False,
                    # worker output stays in the session's log files, as on a cluster
                    log_to_driver=False,
                    _system_config=LOCAL_SYSTEM_CONFIG,
                )
                break
            except Exception as exc:
                if attempt < LOCAL_START_ATTEMPTS and _STARTUP_TIMEOUT in str(exc):
                    logger.warning(
                        "compute: %s: Ray's node did not register within its fixed 30 s "
                        "(attempt %d of %d, a loaded machine?); starting it again",
                        uri,
                        attempt,
                        LOCAL_START_ATTEMPTS,
                    )
                    with contextlib.suppress(Exception):
                        ray.shutdown()
                    continue
                raise BackendUnavailable(
                    redact(
                        f"{uri}: could not start a local Ray instance ({type(exc).__name__}: {exc})"
                    )
                ) from exc
        logger.info(
            "compute: %s started a local Ray instance of %d CPUs in %.1f s",
            uri,
            target.workers,
            time.perf_counter() - started,
        )
        return
    address = f"{target.host}:{target.port}"
    try:
        # Ray Client retries for half a minute or more; an address nobody listens on fails here
        socket.create_connection((target.host, target.port), timeout=target.timeout).close()
    except OSError as exc:
        raise BackendUnavailable(
            f"cannot reach the Ray Client server of {uri} within {target.timeout:g} s "
            f"({type(exc).__name__}); is the cluster running (`ray start --head` listens on "
            "port 10001), and is the address right?"
        ) from exc
    try:
        ray.init(f"ray://{address}", log_to_driver=False)
    except Exception as exc:
        raise BackendUnavailable(
            redact(f"{uri}: Ray Client could not connect ({type(exc).__name__}: {exc}). ")
            + "If the cluster uses token authentication (the default of `ray start` in Ray "
            "2.60), set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) in this "
            "process's environment; the client also needs the same Ray and Python versions "
            "as the cluster"
        ) from exc
    logger.info("compute: %s connected in %.1f s", uri, time.perf_counter() - started)


def release(target: Target) -> None:
    """Drop one user of the connection; the last one shuts Ray down in this process."""
    with _PROCESS.lock:
        held = _PROCESS.held
        if held is None or not _same(held.target, target):
            return
        held.users -= 1
        if held.users > 0:
            return
        _PROCESS.held = None
        import ray

        ray.shutdown()
