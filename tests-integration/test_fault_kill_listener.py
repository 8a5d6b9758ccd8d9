"""SIGKILL during listener work: a backfill, and insert/update/delete-triggered runs.

A child process (see :mod:`pinnacle_it.listener_workers`) either applies new model versions
in a loop (each apply backfills a few thousand rows, several batches) or writes rows through
the Datalayer (each write runs the listener's trigger work), and the parent kills it with
SIGKILL, in turn: after a random (seeded) delay, or at an exact point of the listener
machinery (the model ran but no output is written; half of a batch of outputs is inserted;
outputs were deleted and nothing written after; a data write is done and its listener work
not started). After every kill, on a new Datalayer (a new
process's view of the same files):

* before ``catch_up``: no source row has two outputs of the current model version, and every
  output whose input hash matches its row's current inputs holds ``model(inputs)`` (nothing
  half-written is visible as a valid output);
* ``db.catch_up()`` completes the set exactly: the outputs of the current model version are
  ``model(x)`` for exactly the current rows matching ``where``, once each, with the
  deterministic ids;
* a second ``catch_up`` has nothing to do.

On SQLite (data and metadata in one file), DuckDB (data) + SQLite (metadata) files, and
PostgreSQL (data and metadata in one fresh database; each kill point once, to stay cheap).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pinnacle_it.listener_workers import (
    LISTENER,
    POINTS,
    listen_forever,
    setup_listener_target,
)
from pinnacle_it.seeds import derived_seed
from pinnacle_it.services import Services
from pinnacle_it.workers import context

from pinnacledb import pinnacle
from pinnacledb.listeners import input_hash

#: Where each trial's kill lands, in turn ("random": after a random delay); twice each.
MODES = {
    # a backfill of a new model version finds no outputs, so it only inserts (no delete)
    "backfill": ("random", "before-outputs", "mid-insert"),
    "trigger": ("random", *POINTS),
}
ROWS = {"backfill": 2500, "trigger": 600}


#: Kills per mode: PostgreSQL's trials cost more (a server round trip per statement).
REPEATS = {"sqlite": 2, "duckdb": 2, "postgres": 1}


@contextlib.contextmanager
def _uris(kind: str, root: Path, services: Services) -> Iterator[dict[str, str]]:
    artifacts = f"filesystem://{root}/artifacts"
    if kind == "sqlite":
        yield {
            "databackend": f"sqlite://{root}/data.db",
            "metadata": f"sqlite://{root}/data.db",
            "artifact_store": artifacts,
        }
    elif kind == "duckdb":
        yield {
            "databackend": f"duckdb://{root}/data.duckdb",
            "metadata": f"sqlite://{root}/metadata.db",
            "artifact_store": artifacts,
        }
    else:
        server = services.require("postgres")
        uri = server.uri_of(server.create_database(), scheme="postgres")
        yield {"databackend": uri, "metadata": uri, "artifact_store": artifacts}


def _state(db: Any) -> tuple[Any, Any, dict[Any, float], list[dict[str, Any]]]:
    """(active listener, its model, expected output per matching source id, current outputs)."""
    active = db._listeners.snapshot().by_id[LISTENER]
    model = db.load("listener", LISTENER).model
    rows = db.select(active.table, active.where, columns=[active.id_column, *active.columns])
    predicted = model.predict([r["x"] for r in rows])
    expected = {r["id"]: y for r, y in zip(rows, predicted, strict=True)}
    hashes = {r["id"]: input_hash([r["x"]]) for r in rows}
    outs: list[dict[str, Any]] = []
    if active.output_table in db.list_tables():
        outs = db.select(active.output_table, {"model_version": active.model_version})
    for o in outs:
        o["current"] = hashes.get(o["source_id"]) == o["input_hash"]
    return active, model, expected, outs


def _check_before(db: Any, trial: int) -> int:
    """No duplicate; every output computed from the current inputs is right. Returns how many
    matching rows miss an output (what the kill left for catch_up)."""
    _active, _model, expected, outs = _state(db)
    counts = Counter(o["source_id"] for o in outs)
    dups = sorted(s for s, c in counts.items() if c > 1)
    assert dups == [], f"trial {trial}: duplicate outputs after the kill: {dups[:10]}"
    for o in outs:
        if o["current"] and o["source_id"] in expected:
            assert o["output"] == pytest.approx(expected[o["source_id"]]), (
                f"trial {trial}: a wrong output is visible for row {o['source_id']}"
            )
    return len(set(expected) - set(counts))


def _check_complete(db: Any, trial: int) -> None:
    """Outputs == model(x) for exactly the matching rows, once each (the module's invariant)."""
    active, _model, expected, outs = _state(db)
    counts = Counter(o["source_id"] for o in outs)
    dups = sorted(s for s, c in counts.items() if c > 1)
    assert dups == [], f"trial {trial}: duplicate outputs after catch_up: {dups[:10]}"
    got = {o["source_id"]: o for o in outs}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    assert (missing[:10], extra[:10]) == ([], []), f"trial {trial}: outputs for the wrong rows"
    for sid, y in expected.items():
        out = got[sid]
        assert out["output"] == pytest.approx(y), f"trial {trial}: row {sid}"
        assert out["current"], f"trial {trial}: row {sid} has a stale input hash"
        assert out["id"] == f"{active.model_version}:{sid}"


@pytest.mark.slow
@pytest.mark.file
@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("sqlite", id="sqlite", marks=pytest.mark.sqlite),
        pytest.param("duckdb", id="duckdb", marks=[pytest.mark.duckdb, pytest.mark.sqlite]),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ],
)
@pytest.mark.parametrize("work", ["backfill", "trigger"])
def test_sigkill_during_listener_work(
    kind: str,
    work: str,
    tmp_path: Path,
    services: Services,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Kills during listener work; the invariants of the module docstring after each."""
    with _uris(kind, tmp_path, services) as uris:
        _kill_trials(kind, work, uris, capsys)


def _kill_trials(
    kind: str, work: str, uris: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    seed = derived_seed(f"sigkill-listener-{kind}-{work}")
    rng = random.Random(seed)
    started = time.monotonic()
    setup_listener_target(uris, ROWS[work], listen=work == "trigger")
    log: list[str] = [f"setup {time.monotonic() - started:.1f}s"]
    ctx = context()
    left_missing = 0
    modes = MODES[work]
    for trial in range(REPEATS[kind] * len(modes)):
        mode = modes[trial % len(modes)]
        started = time.monotonic()
        ready, paused = ctx.Event(), ctx.Event()
        pause_at = None if mode == "random" else mode
        proc = ctx.Process(
            target=listen_forever,
            args=(uris, work, rng.randrange(2**31), 1_000_000 * (trial + 1), ready),
            kwargs={"pause_at": pause_at, "skip": rng.randrange(3), "paused": paused},
        )
        proc.start()
        try:
            assert ready.wait(120), "the child did not start"
            if mode == "random":
                time.sleep(rng.uniform(0.2, 2.0))
            else:
                assert paused.wait(120), f"trial {trial}: the child never reached {mode}"
            assert proc.pid is not None
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.join(60)
        assert proc.exitcode == -signal.SIGKILL, f"trial {trial}: child ended by itself"

        db = pinnacle(
            uris["databackend"],
            metadata_store=uris["metadata"],
            artifact_store=uris["artifact_store"],
        )
        try:
            missing = _check_before(db, trial)
            left_missing += missing
            report = db.catch_up()
            _check_complete(db, trial)
            again = db.catch_up()
            assert again.changed == 0, f"trial {trial}: a second catch_up still changed {again}"
        finally:
            db.close()
        log.append(
            f"trial {trial}: kill {mode}, {missing} outputs missing, catch_up computed "
            f"{sum(report.computed.values())}, recomputed {sum(report.recomputed.values())}, "
            f"removed {sum(report.removed.values())} ({time.monotonic() - started:.1f}s)"
        )
    with capsys.disabled():
        print(f"\n{kind} {work} seed {seed}\n" + "\n".join(log))
    assert left_missing > 0, f"no kill left work for catch_up (seed {seed}):\n{log}"
