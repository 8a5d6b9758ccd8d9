"""Child-process bodies of the listener SIGKILL test (importable, so a forkserver can run them).

The child works on a source table ``src`` (``id int, x float, g int``) watched by the listener
:data:`LISTENER` (``where`` :data:`WHERE`), until the parent kills it:

* ``backfill``: applies new model versions in a loop, so each apply runs a backfill of every
  matching row (several batches);
* ``trigger``: inserts, updates and deletes rows through the Datalayer in a loop, so each write
  runs the listener's trigger work.

With ``pause_at`` the child stops at one exact point of the listener machinery, sets ``paused``
and hangs there, so the parent's kill lands in that window:

* ``before-outputs``: the model ran on a batch, no output of it is written yet;
* ``mid-insert``: half of a batch of outputs is inserted, the other half is not (what a backend
  without atomic multi-row inserts, such as MongoDB's ``insert_many``, can leave);
* ``after-delete``: outputs were deleted (the first half of a rewrite or a deleted row's
  cleanup), nothing written after it;
* ``after-write`` (``trigger`` only): a data write is done, its listener work not started.

The pause happens at the ``skip``-th occurrence of the point (0: the first), so it can land in
a later batch of a backfill too.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any, Final

from pinnacledb import LinearModel, Listener, pinnacle

__all__ = ["LISTENER", "POINTS", "WHERE", "listen_forever", "model_for", "setup_listener_target"]

LISTENER: Final = "lst"
WHERE: Final[dict[str, Any]] = {"g": {"$lt": 2}}
POINTS: Final = ("before-outputs", "mid-insert", "after-delete", "after-write")


def _db(uris: Mapping[str, str]) -> Any:
    return pinnacle(
        uris["databackend"],
        metadata_store=uris["metadata"],
        artifact_store=uris["artifact_store"],
    )


def model_for(step: int) -> LinearModel:
    """The model version a child applies at ``step`` (distinct weights per step)."""
    import numpy as np

    return LinearModel(identifier="lin", weights=np.array([1.5 + step]), bias=float(step % 7))


def _listener(step: int) -> Listener:
    return Listener(
        identifier=LISTENER, model=model_for(step), table="src", inputs="x", where=WHERE
    )


def setup_listener_target(uris: Mapping[str, str], rows: int, *, listen: bool) -> None:
    """Create ``src`` with ``rows`` rows (ids ``0..rows-1``), and the listener if ``listen``."""
    db = _db(uris)
    try:
        db.create_table("src", {"id": "int", "x": "float", "g": "int"})
        rng = random.Random(rows)
        db.insert(
            "src",
            [{"id": i, "x": rng.randrange(-400, 400) / 4, "g": i % 3} for i in range(rows)],
        )
        if listen:
            db.apply(_listener(0))
    finally:
        db.close()


def _pause(
    point: str, skip: int, paused: Any
) -> None:  # pragma: no cover - runs in child processes
    """Patch the listener machinery so that the ``skip``-th ``point`` hangs after ``paused``."""
    from pinnacledb.listeners import ListenerEngine

    seen = [0]

    def hit() -> bool:
        seen[0] += 1
        return seen[0] > skip

    def hang() -> None:
        paused.set()
        time.sleep(3600)

    if point == "before-outputs":
        original_write = ListenerEngine._write_outputs

        def write(self: Any, *args: Any, **kwargs: Any) -> None:
            if hit():
                hang()
            original_write(self, *args, **kwargs)

        ListenerEngine._write_outputs = write  # type: ignore[method-assign]
    elif point == "after-delete":
        original_delete = ListenerEngine._delete_outputs

        def delete(self: Any, *args: Any, **kwargs: Any) -> None:
            original_delete(self, *args, **kwargs)
            if hit():
                hang()

        ListenerEngine._delete_outputs = delete  # type: ignore[method-assign]
    elif point == "mid-insert":
        original_outputs = ListenerEngine._write_outputs

        def half(self: Any, snap: Any, active: Any, done: Any, *args: Any, **kwargs: Any) -> None:
            if len(done) > 1 and hit():
                original_outputs(self, snap, active, done[: len(done) // 2], *args, **kwargs)
                hang()
            original_outputs(self, snap, active, done, *args, **kwargs)

        ListenerEngine._write_outputs = half  # type: ignore[method-assign]
    elif point == "after-write":
        for name in ("after_insert", "after_update", "after_delete"):
            original = getattr(ListenerEngine, name)

            def trigger(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
                if hit():
                    hang()
                return _original(self, *args, **kwargs)

            setattr(ListenerEngine, name, trigger)
    else:
        raise ValueError(f"unknown pause point {point!r}")


def listen_forever(
    uris: Mapping[str, str],
    mode: str,
    seed: int,
    first_id: int,
    ready: Any,
    pause_at: str | None = None,
    skip: int = 0,
    paused: Any = None,
) -> None:  # pragma: no cover - runs in child processes
    """Drive listener work (``mode``: ``backfill`` or ``trigger``) until killed.

    ``first_id``: ids of rows this child inserts start there (unique across children).
    """
    if pause_at is not None:
        _pause(pause_at, skip, paused)
    rng = random.Random(seed)
    db = _db(uris)
    db.show()
    db.count("src")
    ready.set()
    next_id = first_id
    for step in range(1, 100_000):
        if mode == "backfill":
            db.apply(_listener(seed % 1000 + step))
            continue
        batch = [
            {"id": next_id + k, "x": rng.randrange(-400, 400) / 4, "g": rng.randrange(3)}
            for k in range(rng.randrange(1, 40))
        ]
        next_id += len(batch)
        db.insert("src", batch)
        ids = [r["id"] for r in db.select("src", columns=["id"], limit=2000)]
        picked = rng.sample(ids, min(len(ids), rng.randrange(1, 30)))
        values: dict[str, Any] = rng.choice(
            [{"x": rng.randrange(-400, 400) / 4}, {"g": rng.randrange(3)}]
        )
        db.update("src", {"id": {"$in": picked}}, values)
        gone = rng.sample(ids, min(len(ids), rng.randrange(0, 15)))
        db.delete("src", {"id": {"$in": gone}})
