"""gc running while a slow insert of by-reference values is between its puts and its rows.

The databackend here is a real SQLite backend wrapped so that, inside ``insert`` (after the
facade has put the artifacts and before the rows reach the table), time passes beyond the gc
grace period and a gc runs: an insert of many large values that takes longer than the grace
period, racing a scheduled ``pinnacle gc``. The rows must not end up pointing at deleted
artifacts.

gc runs twice inside the insert: once right after the puts (it first sees the new artifacts and
records when) and again after the grace period has passed since then. Only the write-ahead
journal (the insert's RUNNING job, whose owner is alive) protects the artifacts at the second
run, so a gc that ignored the journal would delete them there.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pinnacledb import DataType, Table, pinnacle
from pinnacledb.base.datalayer import Datalayer

GRACE = 1.0


class SlowInsert:
    """A real databackend whose ``insert`` first waits out the grace period and runs gc."""

    def __init__(self, inner: Any) -> None:
        """Wrap ``inner`` (every other call is passed through)."""
        self.inner = inner
        self.db: Datalayer | None = None
        self.gc_deleted: list[str] = []
        self.gc_runs = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def insert(self, table: str, rows: Any) -> int:
        assert self.db is not None
        for _ in range(2):  # first sight of the artifacts, then past the grace period
            report = self.db.gc(grace_seconds=GRACE)
            self.gc_deleted += [r.sha256 for r in report.deleted]
            self.gc_runs += 1
            time.sleep(GRACE * 1.2)
        count: int = self.inner.insert(table, rows)
        return count


@pytest.mark.sqlite
@pytest.mark.file
def test_gc_during_slow_insert_keeps_its_artifacts(tmp_path: Path) -> None:
    """The inserted rows' vectors survive a gc that runs while the insert is in progress."""
    from pinnacle_ibis import IbisDataBackend

    backend = SlowInsert(IbisDataBackend.from_uri(f"sqlite://{tmp_path}/data.db"))
    db = pinnacle(
        backend,  # type: ignore[arg-type]
        metadata_store=f"sqlite://{tmp_path}/meta.db",
        artifact_store=f"filesystem://{tmp_path}/artifacts",
    )
    backend.db = db
    try:
        vec = DataType(identifier="vec", encoder="numpy", by_reference=True)
        db.apply(Table.of("t", id="int", v=vec))
        db.insert("t", [{"id": i, "v": np.arange(100.0) + i} for i in range(3)])
        rows = db.select("t", order_by=["id"])  # decoding reads (and verifies) every vector
        assert [r["id"] for r in rows] == [0, 1, 2]
        assert backend.gc_runs == 2
        assert backend.gc_deleted == []
        # Once the rows are written the artifacts are referenced: still kept after the grace.
        time.sleep(GRACE * 1.2)
        assert db.gc(grace_seconds=GRACE).deleted == ()
        assert len(db.select("t")) == 3
    finally:
        db.close()
