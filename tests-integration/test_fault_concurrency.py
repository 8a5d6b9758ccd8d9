"""Concurrent writers: 8 processes apply versions of one component and put the same artifacts.

Two races, on every metadata store that several processes can share (SQLite, PostgreSQL,
MariaDB, MongoDB wire servers; DuckDB opens a file for one process only):

Each writer applies STEPS versions of ``versioned/shared`` with an artifact of its own and an
artifact identical in every writer (the same bytes are put concurrently), started together
by a barrier, with small random (seeded) pauses. Afterwards: every apply got a distinct
version, the versions are exactly 0..N-1, each stored version holds what its writer sent,
every artifact is intact (hash-verified), and every version loads.

Identical content: 8 writers apply the same component at the same moment (twice each). The
"unchanged content returns the existing version" rule must hold across processes: exactly one
version, and every apply returns it.
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
from pinnacle_it.workers import (
    Versioned,
    apply_identical,
    common_array,
    context,
    identical_component,
    own_array,
    write_versions,
)

from pinnacledb import pinnacle

WRITERS = 8
STEPS = 5


KINDS = ("sqlite", "postgres", "mariadb", "nx27017", "mongoeco")


def _params(race: str) -> list[Any]:
    out = []
    for kind in KINDS:
        seed = derived_seed(f"concurrent-{kind}" if race == "distinct" else f"{race}-{kind}")
        marks = [getattr(pytest.mark, kind), pytest.mark.file]
        out.append(pytest.param(kind, seed, id=f"{kind}-file-seed{seed}", marks=marks))
    return out


@contextlib.contextmanager
def _uris(kind: str, services: Services, tmp_path: Path) -> Iterator[dict[str, str]]:
    if kind == "sqlite":
        metadata = f"sqlite://{tmp_path}/meta.db"
    elif kind in ("postgres", "mariadb"):
        server = services.require(kind)
        scheme = "postgres" if kind == "postgres" else "mysql"
        metadata = server.uri_of(server.create_database(), scheme=scheme)
    else:
        mongo = services.require(kind)
        metadata = mongo.uri(f"pinnacle_it_{tmp_path.name[-20:]}_{random.randrange(10**9)}")
    yield {
        "databackend": "memory://",
        "metadata": metadata,
        "artifact_store": f"filesystem://{tmp_path}/artifacts",
    }


def _setup(uris: dict[str, str]) -> None:
    # create the schema once, so the writers race on versions, not on migrations
    setup = pinnacle(
        uris["databackend"],
        metadata_store=uris["metadata"],
        artifact_store=uris["artifact_store"],
        components=[Versioned],
    )
    setup.show()
    setup.close()


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "seed"), _params("distinct"))
def test_concurrent_writers(kind: str, seed: int, services: Services, tmp_path: Path) -> None:
    """WRITERS processes x STEPS applies; see the module docstring for what must hold."""
    rng = random.Random(seed)
    with _uris(kind, services, tmp_path) as uris:
        _setup(uris)
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


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "seed"), _params("identical"))
def test_concurrent_identical_applies_make_one_version(
    kind: str, seed: int, services: Services, tmp_path: Path
) -> None:
    """WRITERS processes apply identical content at once: one version, returned to all."""
    del seed  # no randomness: the barrier alone lines the writers up
    with _uris(kind, services, tmp_path) as uris:
        _setup(uris)
        ctx = context()
        barrier = ctx.Barrier(WRITERS)
        results = ctx.Queue()
        procs = [
            ctx.Process(target=apply_identical, args=(uris, w, barrier, results))
            for w in range(WRITERS)
        ]
        for p in procs:
            p.start()
        got = [results.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(60)
        errors = {w: e for w, _, e in got if e}
        assert not errors, f"writers failed: {errors}"
        versions = sorted(v for _, vs, _ in got for v in vs)
        assert versions == [0] * (2 * WRITERS), f"identical applies got versions {versions}"

        db = pinnacle(
            uris["databackend"],
            metadata_store=uris["metadata"],
            artifact_store=uris["artifact_store"],
            components=[Versioned],
        )
        try:
            assert db.show("versioned", "same") == [0]
            rec = db.get_record("versioned", "same", 0)
            expected = db.apply(identical_component())  # unchanged: the same version again
            assert expected.version == 0
            assert rec.content_hash == expected.content_hash
            loaded = db.load("versioned", "same")
            assert isinstance(loaded, Versioned)
            assert np.array_equal(loaded.common, common_array())
            assert not [j for j in db.show_jobs() if j.status.value != "success"]
        finally:
            db.close()
