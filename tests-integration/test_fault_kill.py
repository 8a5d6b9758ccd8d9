"""SIGKILL during ``db.apply`` (and by-reference inserts), many times, at random moments.

A child process applies ~1.6 MB models and inserts rows whose vectors go to the artifact store,
in a loop, on SQLite (data and metadata in one file, the default rule's layout) and filesystem
artifacts. The parent kills it with SIGKILL, in turn: after a random (seeded) delay; in the
middle of a put (its temp file half written); and between publishing a blob and writing the
record or row that references it (the child's first put stops at that point and tells the
parent). After every kill:

* ``pinnacle doctor`` on the same stores passes;
* no record points at a missing or corrupt artifact, and every model loads;
* ``gc`` (grace 0) deletes exactly the unreferenced artifacts, removes every temp file the
  killed put left in ``.pinnacle-tmp`` (and reports them), and marks the dead apply's journal
  job abandoned;
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
#: Where each trial's kill lands, in turn.
MODES = ("random", "mid-put", "published")


def _temp_files(root: Path) -> list[Path]:
    return sorted((root / "artifacts" / ".pinnacle-tmp").glob("*.part"))


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
        mode = MODES[trial % len(MODES)]
        ready, paused = ctx.Event(), ctx.Event()
        pause_at = None if mode == "random" else mode
        proc = ctx.Process(
            target=apply_forever, args=(uris, rng.randrange(2**31), ready, pause_at, paused)
        )
        t0 = time.monotonic()
        proc.start()
        try:
            assert ready.wait(120), "the child did not start"
            t_ready = time.monotonic() - t0
            delay = rng.uniform(0.0, 1.5)
            if mode == "random":
                time.sleep(delay)
            else:
                assert paused.wait(120), f"trial {trial}: the child never reached {mode}"
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
            running = [j for j in db.show_jobs() if j.status.value == "running"]
            temps = _temp_files(tmp_path)
            if mode == "mid-put":
                assert temps, f"trial {trial}: a put killed half-way left no temp file"
            if mode == "published":
                assert orphans, f"trial {trial}: the published blob is not an orphan"
                claimed: set[Any] = set()
                for job in running:
                    listed = job.args.get("artifacts")
                    claimed.update(listed if isinstance(listed, list) else [])
                assert orphans <= claimed, f"trial {trial}: orphans not in the running journal"
            report = db.gc(grace_seconds=0)
            assert {r.sha256 for r in report.deleted} == orphans, f"trial {trial}: gc"
            assert report.temp_files == len(temps), f"trial {trial}: gc temp files"
            assert _temp_files(tmp_path) == [], f"trial {trial}: temp files left after gc"
            assert {r.sha256 for r in db.artifact_store.iter_refs()} == referenced
            abandoned = [j.job_id for j in db.show_jobs() if j.error and "abandoned" in j.error]
            assert {j.job_id for j in running} <= set(abandoned), "gc did not mark it abandoned"
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
        when = f"after {delay:.3f} s" if mode == "random" else f"at {mode}"
        log.append(
            f"trial {trial}: kill {when}, {len(orphans)} orphans, "
            f"{len(temps)} temp files, {len(running)} "
            f"running journal jobs (child ready in {t_ready:.1f} s, doctor {t_doctor:.1f} s, "
            f"checks {time.monotonic() - t1 - t_doctor:.1f} s)"
        )
    with capsys.disabled():
        print(f"\nseed {seed}\n" + "\n".join(log))
    assert mid_apply > 0, f"no kill landed inside an apply/insert (seed {seed}):\n{log}"
    _doctor(uris, capsys)
