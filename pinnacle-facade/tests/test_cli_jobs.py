"""``pinnacle jobs``: the table, ``--status``, ``--rm`` and ``--watch`` (plain lines and bars)."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest

from pinnacle_protocols.records import JobStatus
from pinnacledb import LinearModel, pinnacle
from pinnacledb.base.datalayer import Datalayer
from pinnacledb.cli import main
from pinnacledb.jobs._view import progress_bar, watch

SQLITE = [
    "--databackend",
    "sqlite://data.db",
    "--metadata",
    "sqlite://metadata.db",
    "--artifact-store",
    "filesystem://artifacts/",
]


def _db() -> Datalayer:
    return pinnacle(
        "sqlite://data.db",
        metadata_store="sqlite://metadata.db",
        artifact_store="filesystem://artifacts/",
    )


def _fill(db: Datalayer, n: int = 30) -> None:
    db.create_table("t", {"id": "int", "x": "float"})
    db.insert("t", [{"id": i, "x": float(i)} for i in range(n)])
    db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_jobs_table_status_filter_and_rm(capsys: pytest.CaptureFixture[str]) -> None:
    with _db() as db:
        _fill(db)
        done = db.predict("m", "t", inputs="x", partition_size=10, batch_size=10)
    code, out, _ = _run(capsys, "jobs", *SQLITE)
    assert code == 0
    header = out.splitlines()[0]
    for column in ("JOB", "KIND", "COMPONENT", "STATUS", "TASKS", "ROWS", "RUNNER"):
        assert column in header
    line = next(x for x in out.splitlines() if x.startswith(done.job.job_id))
    assert "predict" in line
    assert "m v0" in line
    assert "success" in line
    assert "3/3" in line
    assert "30/30" in line
    assert "local://" in line

    code, out, _ = _run(capsys, "jobs", "--status", "failed", *SQLITE)
    assert code == 0
    assert out.startswith("no jobs in sqlite://metadata.db")

    code, _, err = _run(capsys, "jobs", "--rm", *SQLITE)
    assert code == 2
    assert "--older-than" in err
    code, out, _ = _run(capsys, "jobs", "--rm", "--status", "success", *SQLITE)
    assert code == 0
    assert "removed" in out
    with _db() as db:
        assert db.jobs(status="success", kind="predict") == []


def test_watch_without_a_terminal_writes_a_plain_line_per_change(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with _db() as db:
        _fill(db, 60)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with _db() as db:
                db.predict("m", "t", inputs="x", partition_size=1, batch_size=1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    with _db() as db:
        while not db.jobs(kind="predict") and time.monotonic() < deadline:
            time.sleep(0.02)
    code, _out, err = _run(capsys, "jobs", "--watch", "--interval", "0.05", *SQLITE)
    worker.join()
    assert not errors
    assert code == 0
    lines = [x for x in err.splitlines() if x.startswith("predict-")]
    assert lines, err
    assert "\x1b[" not in err  # no cursor movement when stderr is not a terminal
    assert lines[-1].split()[1] == "success"
    assert "rows 60/60" in lines[-1]
    assert len(lines) == len(set(lines))  # a line only when something changed


class _Terminal(io.StringIO):
    """A stand-in terminal (a StringIO that says it is a TTY): checks the redraw codes."""

    def isatty(self) -> bool:
        return True


def test_watch_on_a_terminal_redraws_progress_bars(tmp_path: Path) -> None:
    with _db() as db:
        _fill(db, 20)
        stream = _Terminal()
        # nothing running: says so
        assert watch(db, stream) == 0
        assert "no queued or running jobs" in stream.getvalue()
        from pinnacle_protocols.compute import Task
        from pinnacle_protocols.records import JobRecord

        record = JobRecord(job_id="predict-watched", kind="predict", rows_total=20)
        db.job_driver.submit(
            db.metadata, db.compute, record, [Task(task_id="0", kind="predict", payload={})]
        )
        stream = _Terminal()
        assert watch(db, stream, interval=0.01, max_seconds=0.05) == 0
        text = stream.getvalue()
        assert "\x1b[2K" in text
        assert "predict-watched" in text
        assert "[" + "." * 24 + "]   0%" in text
        db.cancel("predict-watched")
    job = _db().job("predict-watched")
    assert job.status is JobStatus.CANCELLED
    assert progress_bar(job).endswith("cancelled")


def test_info_shows_the_compute_backend(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "info", "--compute", "processes://?workers=2", *SQLITE)
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("compute "))
    assert "processes://?workers=2" in line
    assert "from argument" in out.split(line, 1)[1].splitlines()[1]
    assert "processes" in out.split("installed schemes", 1)[1]
