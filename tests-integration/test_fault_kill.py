"""SIGKILL during ``db.apply`` (and by-reference inserts), many times, at random moments.

A child process applies ~1.6 MB models and inserts rows whose vectors go to the artifact store,
in a loop, on SQLite (data and metadata in one file, the default rule's layout) and filesystem
artifacts. The parent kills it with SIGKILL after a random (seeded) delay. After every kill:

* ``pinnacle doctor`` on the same stores passes;
* no record points at a missing or corrupt artifact, and every model loads;
* ``gc`` (grace 0) deletes exactly the unreferenced artifacts and marks the dead apply's
  journal job abandoned;
* a re-apply succeeds (and re-applying unchanged is a no-op).
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pinnacle_it.seeds import derived_seed
from pinnacle_it.workers import apply_forever, context, setup_kill_target

from pinnacledb import LinearModel, pinnacle
from pinnacledb.cli import main as cli_main

TRIALS = 12
SEED = derived_seed("sigkill")


def _uris(root: Path) -> dict[str, str]:
    return {
        "databackend": f"sqlite://{root}/data.db",
        "metadata": f"sqlite://{root}/data.db",
        "artifact_store": f"filesystem://{root}/artifacts",
    }


def _doctor(uris: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(
        [
            "doctor",
            "--databackend",
            uris["databackend"],
            "--metadata",
            uris["metadata"],
            "--artifact-store",
            uris["artifact_store"],
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, f"pinnacle doctor failed after the kill:\n{out}"


def _check_records(db: Any) -> tuple[set[str], int]:
    """Every artifact of every record exists and verifies; every latest model loads."""
    referenced: set[str] = set()
    checked = 0
    for key in db.show():
        for version in db.show(key.type_id, key.identifier):
            record = db.get_record(key.type_id, key.identifier, version)
            for name, ref in record.artifacts.items():
                assert db.artifact_store.exists(ref), f"{key} v{version} {name}: {ref} missing"
                assert len(db.artifact_store.get(ref)) == ref.size  # get() verifies sha256
                referenced.add(ref.sha256)
                checked += 1
    for ident in db.show("model"):
        assert isinstance(db.load("model", ident), LinearModel)
    rows = db.select("vectors", decode=False)
    for row in rows:
        assert db.artifact_store.exists(row["v"]), f"row {row['id']}: vector {row['v']} missing"
        referenced.add(row["v"])
    decoded = db.select("vectors")  # decoding verifies every vector's sha256
    assert len(decoded) == len(rows)
    return referenced, checked


@pytest.mark.slow
@pytest.mark.sqlite
@pytest.mark.file
@pytest.mark.parametrize("seed", [SEED], ids=[f"seed{SEED}"])
def test_sigkill_during_apply(
    seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """TRIALS kills at random moments; every invariant of the module docstring after each."""
    rng = random.Random(seed)
    uris = _uris(tmp_path)
    setup_kill_target(uris)
    ctx = context()
    mid_apply = 0
    log: list[str] = []
    for trial in range(TRIALS):
        ready = ctx.Event()
        proc = ctx.Process(target=apply_forever, args=(uris, rng.randrange(2**31), ready))
        t0 = time.monotonic()
        proc.start()
        try:
            assert ready.wait(120), "the child did not start"
            t_ready = time.monotonic() - t0
            delay = rng.uniform(0.0, 1.5)
            time.sleep(delay)
            assert proc.pid is not None
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.join(60)
        assert proc.exitcode == -signal.SIGKILL, f"trial {trial}: child ended by itself"

        t1 = time.monotonic()
        _doctor(uris, capsys)
        t_doctor = time.monotonic() - t1
        db = pinnacle(
            uris["databackend"],
            metadata_store=uris["metadata"],
            artifact_store=uris["artifact_store"],
        )
        try:
            referenced, _ = _check_records(db)
            stored = {r.sha256 for r in db.artifact_store.iter_refs()}
            orphans = stored - referenced
            running = [j.job_id for j in db.show_jobs() if j.status.value == "running"]
            report = db.gc(grace_seconds=0)
            assert {r.sha256 for r in report.deleted} == orphans, f"trial {trial}: gc"
            assert {r.sha256 for r in db.artifact_store.iter_refs()} == referenced
            abandoned = [j.job_id for j in db.show_jobs() if j.error and "abandoned" in j.error]
            assert set(running) <= set(abandoned), "gc did not mark the dead job abandoned"
            assert not [j for j in db.show_jobs() if j.status.value == "running"]
            mid_apply += bool(running)
            _check_records(db)
            # a re-apply succeeds, and an unchanged re-apply is a no-op
            model = LinearModel(identifier="after", weights=np.arange(5.0) + trial, bias=1.0)
            first = db.apply(model)
            again = db.apply(
                LinearModel(identifier="after", weights=np.arange(5.0) + trial, bias=1.0)
            )
            assert again.version == first.version
            loaded = db.load("model", "after")
            assert isinstance(loaded, LinearModel)
            assert np.array_equal(loaded.weights, np.arange(5.0) + trial)
        finally:
            db.close()
        log.append(
            f"trial {trial}: kill after {delay:.3f} s, {len(orphans)} orphans, {len(running)} "
            f"running journal jobs (child ready in {t_ready:.1f} s, doctor {t_doctor:.1f} s, "
            f"checks {time.monotonic() - t1 - t_doctor:.1f} s)"
        )
    with capsys.disabled():
        print(f"\nseed {seed}\n" + "\n".join(log))
    assert mid_apply > 0, f"no kill landed inside an apply/insert (seed {seed}):\n{log}"
    _doctor(uris, capsys)
