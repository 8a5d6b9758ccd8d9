"""Concurrent writers on one indexed table: the vector index loses, duplicates and resurrects
nothing, and its stored chain stays whole.

WRITERS processes (:mod:`pinnacle_it.vector_workers`) insert, update and delete rows of one
table under a vector index at the same time, round after round (a barrier lines them up), each
on rows of its own and all of them on shared rows with identical content (the same update, the
same delete). A small ``max_deltas`` makes change files and compactions both happen. Then, on a
fresh Datalayer (a new process's view of the same stores):

* the table holds exactly the rows the writers left (no id lost, duplicated or brought back);
* the stored index (pointer + base + change files), loaded without any rebuild, holds exactly
  the current rows' ids: no writer's change file was dropped by another writer's pointer;
* ``db.search`` on the ``exact`` engine equals a brute-force scan of the current rows, with and
  without ``where``; an ANN engine returns only current, matching rows, ``n`` of them;
* ``db.catch_up(stale=False)`` finds nothing to repair (listener outputs and index current; an
  ANN engine's pending segment may be folded into its graph), and no upkeep failed.

On SQLite (data and metadata in one file) and PostgreSQL (data and metadata in one fresh
database); artifacts on the local filesystem. DuckDB, the embedded default, opens its file for
one process only, so it cannot take concurrent writer processes.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pinnacle_it.seeds import derived_seed
from pinnacle_it.services import Services
from pinnacle_it.vector_workers import (
    INDEX,
    encoder,
    setup_index,
    shared_final,
    write_rounds,
)
from pinnacle_it.workers import context

from pinnacle_protocols.vectors import VectorId, brute_force
from pinnacledb import pinnacle

WRITERS = 4
ROUNDS = {"sqlite": 8, "postgres": 8}
#: Change files after which a write compacts (small, so both paths race).
MAX_DELTAS = 6
QUERIES = ("alpha beta", "gamma omega kappa", "shared sigma", "theta", "rho zeta delta")


@contextlib.contextmanager
def _uris(kind: str, root: Path, services: Services) -> Iterator[dict[str, str]]:
    artifacts = f"filesystem://{root}/artifacts"
    if kind == "sqlite":
        uri = f"sqlite://{root}/data.db"
    else:
        server = services.require("postgres")
        uri = server.uri_of(server.create_database(), scheme="postgres")
    yield {"databackend": uri, "metadata": uri, "artifact_store": artifacts}


def _run_writers(uris: dict[str, str], rounds: int, seed: int) -> dict[int, str]:
    """Start the writers together; return the own rows they left (id -> text)."""
    rng = random.Random(seed)
    ctx = context()
    barrier = ctx.Barrier(WRITERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=write_rounds,
            args=(uris, w, rounds, rng.randrange(2**31), barrier, results, MAX_DELTAS),
        )
        for w in range(WRITERS)
    ]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():  # pragma: no cover - only after a failure above
                p.kill()
    errors = {w: e for w, _, e in got if e}
    assert not errors, f"writers failed (seed {seed}): {errors}"
    own: dict[int, str] = {}
    for _, rows, _ in got:
        own.update(rows)
    return own


def _same(got: list[Any], want: list[tuple[Any, float]], what: str) -> None:
    """Same scores in order, each id's score its true one (tie-order free)."""
    assert [h.score for h in got] == pytest.approx([s for _, s in want], abs=1e-4), what
    truth = dict(want)
    for h in got:
        if h.id in truth:
            assert h.score == pytest.approx(truth[h.id], abs=1e-4), what


def _check(db: Any, expected: dict[int, str], engine: str, seed: int) -> None:
    """The invariants of the module docstring, on a fresh Datalayer ``db``."""
    rows = db.select("docs")
    counts = Counter(r["id"] for r in rows)
    assert [i for i, c in counts.items() if c > 1] == [], "duplicated rows"
    assert {r["id"]: r["text"] for r in rows} == expected, f"rows lost or back (seed {seed})"

    vectors = db._vectors
    info, active = vectors._resolve(INDEX)
    ptr = vectors.pointer(INDEX)
    assert ptr is not None, "the index has no pointer"
    assert vectors._current(info, active, ptr), f"stale pointer {ptr}"
    loaded = vectors.engine_at(info, ptr)  # base + change files, no rebuild
    assert loaded is not None
    held = {i for i in expected if i in loaded}
    missing = sorted(set(expected) - held)
    assert missing == [], (
        f"the stored index lacks {len(missing)} current rows {missing[:8]} ({len(ptr.deltas)} "
        f"change files): a writer's change was lost (seed {seed})"
    )
    assert len(loaded) == len(expected), (
        f"the stored index holds {len(loaded)} vectors for {len(expected)} rows: deleted rows "
        f"are still indexed (seed {seed})"
    )
    assert ptr.count == len(expected)

    model = encoder()
    truth: dict[VectorId, Any] = dict(
        zip(expected, model.predict(list(expected.values())), strict=True)
    )
    odd = {i for i, r in ((r["id"], r) for r in rows) if r["g"] == 1}
    for text in QUERIES:
        q = model.predict([text])[0]
        for where, allowed in ((None, None), ({"g": 1}, odd)):
            hits = db.search(INDEX, like=text, n=10, where=where)
            want = brute_force("cosine", truth, q, 10, allowed)
            what = f"query {text!r} where {where} (seed {seed})"
            if engine == "exact":
                _same(hits, want, what)
            else:
                assert len(hits) == len(want), what
                assert {h.id for h in hits} <= (set(truth) if allowed is None else allowed), what
            for h in hits:
                assert h["text"] == expected[h.id], what

    report = db.catch_up(stale=False)
    # an ANN engine's pending segment is folded into its graph (not a repair: nothing rebuilt)
    done = "folded" if engine != "exact" and report.indexes == {INDEX: "folded"} else "current"
    assert report.indexes == {INDEX: done}, f"catch_up had to repair: {report}"
    if done == "folded":
        assert db.catch_up(stale=False).indexes == {INDEX: "current"}
    assert report.changed == 0, f"listener outputs were not current: {report}"
    bad = [
        (j.kind, j.status.value, j.error)
        for j in db.show_jobs()
        if j.kind.startswith("vector_index") and j.status.value != "success"
    ]
    assert bad == [], f"vector index jobs left failed or running: {bad}"
    rebuilt = [j.job_id for j in db.show_jobs() if j.kind == "vector_index.rebuild"]
    assert rebuilt == [], f"a write had to rebuild the index: {rebuilt}"


@pytest.mark.slow
@pytest.mark.file
@pytest.mark.parametrize(
    ("kind", "engine"),
    [
        pytest.param("sqlite", "exact", id="sqlite-exact", marks=pytest.mark.sqlite),
        pytest.param("postgres", "exact", id="postgres-exact", marks=pytest.mark.postgres),
        pytest.param("sqlite", "usearch", id="sqlite-usearch", marks=pytest.mark.sqlite),
    ],
)
def test_concurrent_writers_keep_the_index_whole(
    kind: str,
    engine: str,
    tmp_path: Path,
    services: Services,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """WRITERS processes write one indexed table at once; see the module docstring."""
    seed = derived_seed(f"vector-concurrency-{kind}-{engine}")
    started = time.monotonic()
    with _uris(kind, tmp_path, services) as uris:
        setup_index(uris, engine)
        rounds = ROUNDS[kind]
        own = _run_writers(uris, rounds, seed)
        wrote = time.monotonic() - started
        expected = {**shared_final(rounds), **own}
        db = pinnacle(
            uris["databackend"],
            metadata_store=uris["metadata"],
            artifact_store=uris["artifact_store"],
        )
        try:
            _check(db, expected, engine, seed)
        finally:
            db.close()
    with capsys.disabled():
        print(
            f"\nvector concurrency {kind}/{engine} seed {seed}: {len(expected)} rows, "
            f"{WRITERS} writers x {rounds} rounds in {wrote:.1f}s, "
            f"checked in {time.monotonic() - started - wrote:.1f}s"
        )
