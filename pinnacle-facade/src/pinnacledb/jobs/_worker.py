"""The worker side: a Datalayer per set of store URIs, opened once per worker process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from pinnacle_protocols.errors import ConfigError
from pinnacledb._schemes import schemes_where

if TYPE_CHECKING:
    from pinnacledb.base._host import JobHost
    from pinnacledb.base.datalayer import Datalayer
    from pinnacledb.components._base import Component

__all__ = ["InProcessJob", "in_process", "register_in_process", "unregister_in_process"]

T = TypeVar("T")

#: Databackends whose file one process at a time may open (DuckDB): workers open them per
#: access and retry while another process holds the lock.
EXCLUSIVE_FILE_SCHEMES = schemes_where("exclusive")
#: How long a worker waits for its turn on such a file. Other workers hold it for one block
#: (a read or a write of one batch) at a time; the bound catches a process that keeps it open
#: (the error names that process). 120 s was too short on a 2-core CI machine at load 16.
LOCK_WAIT_SECONDS = 300.0
#: The longest pause between two attempts: short, so that a waiting worker is not starved by
#: others that take the lock again between its (otherwise exponentially longer) pauses.
LOCK_RETRY_MAX_DELAY = 0.1


class InProcessJob:
    """What an in-process runner's task may share with the caller (nothing is serialized)."""

    def __init__(self, db: JobHost, model: Component | None, where: Any) -> None:
        """The caller's Datalayer (as predict and listeners see it), the model object (None:
        the task loads what it needs from ``db``) and the original filter."""
        self._db = db
        self.model = model
        self.where = where

    @property
    def db(self) -> Datalayer:
        """The caller's Datalayer, which the task writes through."""
        from pinnacledb.base.datalayer import Datalayer

        if not isinstance(self._db, Datalayer):
            raise TypeError(f"an in-process job needs the caller's Datalayer, got {self._db!r}")
        return self._db


_lock = threading.Lock()
_in_process: dict[str, InProcessJob] = {}
_datalayers: dict[tuple[Any, ...], Datalayer] = {}
_components: dict[tuple[Any, ...], Component] = {}


def register_in_process(job_id: str, job: InProcessJob) -> None:
    """Let tasks of ``job_id`` that run in this process use the caller's objects."""
    with _lock:
        _in_process[job_id] = job


def unregister_in_process(job_id: str) -> None:
    """Forget the objects of a finished job."""
    with _lock:
        _in_process.pop(job_id, None)


def in_process(job_id: str) -> InProcessJob | None:
    """The caller's objects, when the task runs in the process that submitted it."""
    with _lock:
        return _in_process.get(job_id)


def worker_datalayer(payload: Mapping[str, Any]) -> Datalayer:
    """The Datalayer for a task's store URIs and trusted serializers in this worker (built
    once, then reused)."""
    from pinnacledb._wiring import pinnacle

    stores = payload["stores"]
    trust = [str(t) for t in payload.get("trust_serializers") or []]
    assert isinstance(stores, dict)
    for role in ("databackend", "metadata", "artifact_store"):
        if not isinstance(stores.get(role), str):
            raise ConfigError(f"task has no {role} URI; out-of-process runners need store URIs")
    key = (stores["databackend"], stores["metadata"], stores["artifact_store"], tuple(trust))
    with _lock:
        db = _datalayers.get(key)
        if db is None:
            db = pinnacle(
                stores["databackend"],
                metadata_store=stores["metadata"],
                artifact_store=stores["artifact_store"],
                compute="local://",
                trust_serializers=set(trust),
            )
            _datalayers[key] = db
        return db


def worker_component(db: Datalayer, type_id: str, identifier: str, version: int) -> Component:
    """A component version loaded once per worker (hash-verified, trust rules of ``db``)."""
    key = (id(db), type_id, identifier, version)
    with _lock:
        found = _components.get(key)
    if found is None:
        found = db.load(type_id, identifier, version)
        with _lock:
            _components[key] = found
    return found


@contextmanager
def exclusive_databackend(db: Datalayer, exclusive: bool) -> Iterator[None]:
    """For a single-process file (DuckDB): hold the databackend only inside the block."""
    if not exclusive:
        yield
        return
    try:
        yield
    finally:
        db.slots["databackend"].close()


def retry_locked(action: Callable[[], T], exclusive: bool) -> T:
    """Run ``action``; while another process holds the database file's lock, retry."""
    if not exclusive:
        return action()
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.02
    while True:
        try:
            return action()
        except Exception as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, LOCK_RETRY_MAX_DELAY)


def _is_lock_error(exc: BaseException | None) -> bool:
    while exc is not None:
        text = str(exc).lower()
        if "lock" in text and ("conflicting" in text or "could not set" in text):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
