"""Concurrent writers: 8 processes apply versions of one component and put the same artifacts.

Each writer applies STEPS versions of ``versioned/shared`` with an artifact of its own and an
artifact identical in every writer (the same bytes are put concurrently), started together
by a barrier, with small random (seeded) pauses. Afterwards: every apply got a distinct
version, the versions are exactly 0..N-1, each stored version holds what its writer sent,
every artifact is intact (hash-verified), and every version loads.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pinnacle_it.seeds import derived_seed
from pinnacle_it.services import Services
from pinnacle_it.workers import Versioned, common_array, context, own_array, write_versions

from pinnacledb import pinnacle

WRITERS = 8
STEPS = 5


def _params() -> list[Any]:
    out = []
    for kind in ("sqlite", "postgres"):
        seed = derived_seed(f"concurrent-{kind}")
        marks = [getattr(pytest.mark, kind), pytest.mark.file]
        out.append(pytest.param(kind, seed, id=f"{kind}-file-seed{seed}", marks=marks))
    return out


@contextlib.contextmanager
def _uris(kind: str, services: Services, tmp_path: Path) -> Iterator[dict[str, str]]:
    if kind == "sqlite":
        metadata = f"sqlite://{tmp_path}/meta.db"
    else:
        server = services.require("postgres")
        metadata = server.uri_of(server.create_database(), scheme="postgres")
    yield {
        "databackend": "memory://",
        "metadata": metadata,
        "artifact_store": f"filesystem://{tmp_path}/artifacts",
    }


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "seed"), _params())
def test_concurrent_writers(kind: str, seed: int, services: Services, tmp_path: Path) -> None:
    """WRITERS processes x STEPS applies; see the module docstring for what must hold."""
    rng = random.Random(seed)
    with _uris(kind, services, tmp_path) as uris:
        # create the schema once, so the writers race on versions, not on migrations
        setup = pinnacle(
            uris["databackend"],
            metadata_store=uris["metadata"],
            artifact_store=uris["artifact_store"],
            components=[Versioned],
        )
        setup.show()
        setup.close()

        ctx = context()
        barrier = ctx.Barrier(WRITERS)
        results = ctx.Queue()
        procs = [
            ctx.Process(
                target=write_versions,
                args=(uris, w, STEPS, rng.randrange(2**31), barrier, results),
            )
            for w in range(WRITERS)
        ]
        for p in procs:
            p.start()
        got: dict[int, Any] = {}
        for _ in procs:
            writer, out, error = results.get(timeout=300)
            got[writer] = (out, error)
        for p in procs:
            p.join(60)
        errors = {w: e for w, (_, e) in got.items() if e}
        assert not errors, f"writers failed (seed {seed}): {errors}"

        applied = [item for out, _ in got.values() for item in out]
        assert len(applied) == WRITERS * STEPS
        versions = [v for v, *_ in applied]
        assert len(set(versions)) == len(versions), f"two applies got one version: {versions}"

        db = pinnacle(
            uris["databackend"],
            metadata_store=uris["metadata"],
            artifact_store=uris["artifact_store"],
            components=[Versioned],
        )
        try:
            assert db.show("versioned", "shared") == list(range(WRITERS * STEPS))
            commons = {c for *_, c in applied}
            assert len(commons) == 1, "the shared artifact got different refs"
            for version, writer, step, own_sha, common_sha in applied:
                rec = db.get_record("versioned", "shared", version)
                assert rec.artifacts["own"].sha256 == own_sha
                assert rec.artifacts["common"].sha256 == common_sha
                loaded = db.load("versioned", "shared", version)  # verifies both blobs
                assert isinstance(loaded, Versioned)
                assert (loaded.writer, loaded.step) == (writer, step)
                assert np.array_equal(loaded.own, own_array(writer, step))
                assert np.array_equal(loaded.common, common_array())
            stored = {r.sha256 for r in db.artifact_store.iter_refs()}
            assert stored == {s for *_, s, _ in applied} | commons
            for ref in db.artifact_store.iter_refs():
                assert len(db.artifact_store.get(ref)) == ref.size
            assert not [j for j in db.show_jobs() if j.status.value != "success"]
        finally:
            db.close()
