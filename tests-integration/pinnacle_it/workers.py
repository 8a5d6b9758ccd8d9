"""Child-process bodies of the fault tests (importable, so a forkserver can run them).

Children are started from a ``forkserver`` context whose server preloads the store packages:
each child starts at once from a clean single-threaded process (forking the test process
itself could copy locks held by its threads: Spark, pymongo, pytest-timeout).
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from attrs import define

from pinnacledb import Component, DataType, LinearModel, Table, artifact, pinnacle

__all__ = [
    "PRELOAD",
    "Versioned",
    "apply_forever",
    "apply_identical",
    "context",
    "identical_component",
    "write_versions",
]

#: Modules the forkserver imports once, so that every child starts in milliseconds.
PRELOAD = [
    "numpy",
    "pinnacledb",
    "pinnacledb.base.datalayer",
    "pinnacledb.cli",
    "pinnacle_sql.store",
    "pinnacle_fs",
    "pinnacle_ibis",
    "pinnacle_ibis.engines",
    "ibis",
    "ibis.backends.sqlite",
    "ibis.backends.duckdb",
    "pinnacle_it.workers",
    "pinnacle_it.listener_workers",
    "pinnacle_it.vector_workers",
]


def context() -> Any:
    """The multiprocessing context of the fault tests (a forkserver with :data:`PRELOAD`)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


@define(kw_only=True)
class Versioned(Component):
    """A component with an artifact of its own and one every writer shares (same bytes)."""

    type_id: ClassVar[str] = "versioned"

    writer: int
    step: int
    own: Any = artifact(serializer="numpy")  # noqa: RUF009 - an attrs field
    common: Any = artifact(serializer="numpy")  # noqa: RUF009


def own_array(writer: int, step: int) -> Any:
    """The ``own`` artifact of a writer's step (distinct for every pair)."""
    import numpy as np

    return np.full(2000, writer * 1000 + step, dtype=np.float64)


def common_array() -> Any:
    """The artifact every writer puts (identical bytes)."""
    import numpy as np

    return np.arange(100_000, dtype=np.float64)


def _db(uris: Mapping[str, str]) -> Any:
    return pinnacle(
        uris["databackend"],
        metadata_store=uris["metadata"],
        artifact_store=uris["artifact_store"],
        components=[Versioned],
    )


class _StallingReader:
    """A binary reader that hands out one small chunk, then signals and hangs (mid-put)."""

    def __init__(self, inner: Any, stalled: Any) -> None:
        self.inner = inner
        self.stalled = stalled
        self.calls = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.calls:
            self.stalled.set()
            time.sleep(3600)  # killed here, with the temp file half written
        self.calls += 1
        data: bytes = self.inner.read(64 * 1024)
        return data


def _pause_puts(point: str, paused: Any) -> None:  # pragma: no cover - child processes
    """Make the first put stop at ``point`` ("mid-put" or "published") and set ``paused``."""
    import io

    from pinnacle_fs import FsspecArtifactStore

    original = FsspecArtifactStore.put

    def put(self: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        if point == "mid-put":
            if isinstance(data, bytes | bytearray | memoryview):
                data = io.BytesIO(bytes(data))
            data = _StallingReader(data, paused)
        ref = original(self, data, *args, **kwargs)
        if point == "published":
            paused.set()  # the blob is in place; its record or row is not written yet
            time.sleep(3600)
        return ref

    FsspecArtifactStore.put = put  # type: ignore[method-assign]


def apply_forever(
    uris: Mapping[str, str],
    seed: int,
    ready: Any,
    pause_at: str | None = None,
    paused: Any = None,
) -> None:  # pragma: no cover
    """Apply models and insert by-reference rows until killed (the SIGKILL test's child).

    With ``pause_at`` ("mid-put", "published") the first put stops there and sets ``paused``,
    so the parent's kill lands exactly in that window.
    """
    import numpy as np

    if pause_at is not None:
        _pause_puts(pause_at, paused)
    db = _db(uris)
    db.show()
    db.count("vectors")
    rng = np.random.default_rng(seed)
    ready.set()
    for i in range(100_000):
        # ~1.6 MB of weights: each put takes a while, so kills land inside applies.
        weights = rng.normal(size=200_000)
        db.apply(LinearModel(identifier=f"m{i % 3}", weights=weights, bias=float(i)))
        if i % 2 == 0:
            db.insert("vectors", [{"id": i, "v": rng.normal(size=50_000)}])


def setup_kill_target(uris: Mapping[str, str]) -> None:
    """Create the by-reference table the SIGKILL child inserts into."""
    db = _db(uris)
    db.apply(
        Table.of(
            "vectors", id="int", v=DataType(identifier="vec", encoder="numpy", by_reference=True)
        )
    )
    db.close()


def write_versions(
    uris: Mapping[str, str],
    writer: int,
    steps: int,
    seed: int,
    barrier: Any,
    results: Any,
) -> None:  # pragma: no cover - runs in the child processes
    """Apply ``steps`` new versions of ``versioned/shared`` as fast as possible."""
    db = _db(uris)
    db.show()
    rng = random.Random(seed)
    out: list[tuple[int, int, int, str, str]] = []
    try:
        barrier.wait(120)
        for step in range(steps):
            time.sleep(rng.uniform(0, 0.02))
            rec = db.apply(
                Versioned(
                    identifier="shared",
                    writer=writer,
                    step=step,
                    own=own_array(writer, step),
                    common=common_array(),
                )
            )
            assert rec.version is not None
            out.append(
                (
                    rec.version,
                    writer,
                    step,
                    rec.artifacts["own"].sha256,
                    rec.artifacts["common"].sha256,
                )
            )
        results.put((writer, out, None))
    except BaseException as exc:
        results.put((writer, out, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        db.close()


def identical_component() -> Versioned:
    """The component every writer of the identical-content race applies (same bytes)."""
    return Versioned(
        identifier="same", writer=0, step=0, own=own_array(0, 0), common=common_array()
    )


def apply_identical(
    uris: Mapping[str, str], writer: int, barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in the child processes
    """Apply :func:`identical_component` at the same moment as the other writers, twice."""
    db = _db(uris)
    db.show()
    versions: list[int] = []
    try:
        barrier.wait(120)
        for _ in range(2):
            rec = db.apply(identical_component())
            assert rec.version is not None
            versions.append(rec.version)
        results.put((writer, versions, None))
    except BaseException as exc:
        results.put((writer, versions, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        db.close()
