"""Crash safety: SIGKILL at random points of apply never leaves a record without its artifact.

A child process applies components in a loop on SQLite metadata and filesystem artifacts; the
parent kills it with SIGKILL after a random (seeded) delay, then checks that every artifact of
every stored version exists and verifies, and that every model loads. Finally gc removes every
orphan the kills left.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from pinnacledb import pinnacle

SEED = 20240611
KILLS = 16
URIS: dict[str, Any] = {
    "metadata_store": "sqlite://.pinnacledb/metadata.db",
    "artifact_store": "filesystem://.pinnacledb/artifacts/",
}


def _child(seed: int, ready: Any) -> None:  # pragma: no cover - runs in the killed child
    import numpy as np

    from pinnacledb import DataType, LinearModel, Table

    db = pinnacle("memory://", **URIS)
    rng = np.random.default_rng(seed)
    db.show()
    ready.set()
    for i in range(1000):
        weights = rng.normal(size=100_000)  # 800 kB: puts take a while, so kills land inside
        db.apply(LinearModel(identifier=f"m{i % 3}", weights=weights, bias=float(i)))
        db.apply(
            Table.of(f"t{i % 2}", id="int", v=DataType(identifier=f"d{i % 4}", encoder="numpy"))
        )


def _check_invariant() -> int:
    db = pinnacle("memory://", **URIS)
    checked = 0
    try:
        for key in db.show():
            for version in db.show(key.type_id, key.identifier):
                record = db.get_record(key.type_id, key.identifier, version)
                for ref in record.artifacts.values():
                    assert db.artifact_store.exists(ref), (key, version, ref)
                    assert len(db.artifact_store.get(ref)) == ref.size  # verifies sha256
                    checked += 1
        for ident in db.show("model"):
            db.load("model", ident)
    finally:
        db.close()
    return checked


@pytest.mark.slow
@pytest.mark.sqlite
@pytest.mark.file
def test_sigkill_during_apply_leaves_no_dangling_record(tmp_path: Path) -> None:
    """Children are forked after the store packages are imported, so each starts at once."""
    import numpy  # noqa: F401 - imported before forking so children start fast

    import pinnacle_fs  # noqa: F401
    import pinnacle_sql.store  # noqa: F401

    rnd = random.Random(SEED)
    ctx = multiprocessing.get_context("fork")
    for kill in range(KILLS):
        ready = ctx.Event()
        proc = ctx.Process(target=_child, args=(kill, ready), daemon=True)
        proc.start()
        try:
            assert ready.wait(60), "the child did not start"
            time.sleep(rnd.uniform(0.0, 0.5))
            assert proc.pid is not None
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.join(30)
        assert proc.exitcode == -signal.SIGKILL, f"child ended by itself: {proc.exitcode}"
        _check_invariant()

    assert _check_invariant() > 0
    db = pinnacle("memory://", **URIS)
    report = db.gc(grace_seconds=0)
    after = db.gc(dry_run=True, grace_seconds=0)
    assert after.deletable == ()
    assert after.young == ()
    assert report.scanned - len(report.deleted) == after.scanned == after.referenced
    # the kills left RUNNING journal entries; gc marked them FAILED (abandoned)
    jobs = db.show_jobs("apply")
    assert all(j.status.value != "running" for j in jobs)
    abandoned = [j for j in jobs if j.error and "abandoned" in j.error]
    assert abandoned, "no kill landed inside an apply; the test did not test anything"
    db.close()
    _check_invariant()
