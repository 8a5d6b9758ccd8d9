"""Garbage collection: unreferenced AND older than the grace period; in-flight writes kept."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from pinnacle_protocols.records import JobStatus, JSONValue
from pinnacle_protocols.serialization import utcnow
from pinnacledb import DataType, LinearModel, Table, pinnacle
from pinnacledb.base._components import ComponentIO
from pinnacledb.base._owner import OWNER_KEY, current_owner, owner_alive
from pinnacledb.base.datalayer import Datalayer
from pinnacledb.gc import FIRST_SEEN_KEY, TextProgress, collect_garbage

LONG_AGO = "2000-01-01T00:00:00+00:00"


def _journal(db: Datalayer) -> ComponentIO:
    """Writes apply journal jobs to ``db``'s stores, as an apply in flight in any process does."""
    return ComponentIO(
        metadata=lambda: db.metadata,
        artifacts=lambda: db.artifact_store,
        serializers=db.serializers,
        registry=db.components,
    )


def _two_versions(db: Datalayer) -> tuple[str, str]:
    v0 = db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))
    v1 = db.apply(LinearModel.fit("m", [[1.0], [2.0]], [2.0, 5.0]))
    return v0.artifacts["weights"].sha256, v1.artifacts["weights"].sha256


def test_removed_version_is_collected_after_grace(db: Datalayer) -> None:
    old, new = _two_versions(db)
    assert db.gc(dry_run=True, grace_seconds=0).deletable == ()
    db.remove("model", "m", 0)

    young = db.gc(grace_seconds=3600)
    assert [r.sha256 for r in young.young] == [old]
    assert young.deleted == ()
    assert db.artifact_store.exists(old)

    dry = db.gc(dry_run=True, grace_seconds=0)
    assert [r.sha256 for r in dry.deletable] == [old]
    assert dry.deleted == ()
    assert db.artifact_store.exists(old)

    report = db.gc(grace_seconds=0)
    assert [r.sha256 for r in report.deleted] == [old]
    assert report.referenced == 1
    assert not db.artifact_store.exists(old)
    assert db.artifact_store.exists(new)
    model = db.load("model", "m")
    assert isinstance(model, LinearModel)
    assert model.predict([[3.0]]) == pytest.approx([8.0])


def test_unknown_artifacts_get_a_first_seen_time(mem_db: Datalayer) -> None:
    ref = mem_db.artifact_store.put(b"written by someone else")
    dry = mem_db.gc(dry_run=True, grace_seconds=3600)
    assert dry.young == (ref,)
    assert mem_db.metadata.get_metadata(FIRST_SEEN_KEY) is None  # dry runs write nothing
    first = mem_db.gc(grace_seconds=3600)
    assert first.young == (ref,)
    seen = mem_db.metadata.get_metadata(FIRST_SEEN_KEY)
    assert isinstance(seen, dict)
    assert set(seen) == {ref.sha256}
    later = collect_garbage(mem_db, grace_seconds=3600, now=utcnow() + timedelta(hours=2))
    assert later.deleted == (ref,)
    assert not mem_db.artifact_store.exists(ref)
    assert mem_db.metadata.get_metadata(FIRST_SEEN_KEY) == {}


def test_in_flight_apply_without_artifact_list_blocks_deletion(mem_db: Datalayer) -> None:
    orphan = mem_db.artifact_store.put(b"old orphan")
    mem_db.metadata.set_metadata(FIRST_SEEN_KEY, {orphan.sha256: LONG_AGO})
    io = _journal(mem_db)
    job = io.journal_start("apply", {"type_id": "model", "identifier": "x"})
    report = mem_db.gc(grace_seconds=3600)
    assert report.blocked_by == (job.job_id,)
    assert report.deleted == ()
    assert mem_db.artifact_store.exists(orphan)
    io.journal_finish(job)
    assert mem_db.gc(grace_seconds=3600).deleted == (orphan,)


def test_in_flight_apply_protects_exactly_its_artifacts(mem_db: Datalayer) -> None:
    claimed = mem_db.artifact_store.put(b"being applied right now")
    other = mem_db.artifact_store.put(b"forgotten")
    mem_db.metadata.set_metadata(FIRST_SEEN_KEY, {claimed.sha256: LONG_AGO, other.sha256: LONG_AGO})
    io = _journal(mem_db)
    job = io.journal_start("apply", {"type_id": "model", "identifier": "x"})
    io.journal_artifacts(job, [claimed.sha256])
    report = mem_db.gc(grace_seconds=3600)
    assert report.deleted == (other,)
    assert report.young == (claimed,)


def _dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


@pytest.mark.parametrize("owner", ["another host", "dead process", "not recorded"])
def test_stale_running_journal_is_marked_failed(mem_db: Datalayer, owner: str) -> None:
    """A RUNNING job past the grace period whose owner is gone (or unknown) was abandoned."""
    io = _journal(mem_db)
    job = io.journal_start("apply", {"type_id": "model", "identifier": "x"})
    me = current_owner()
    args = dict(job.args)
    if owner == "another host":
        args[OWNER_KEY] = {**me, "host": "elsewhere|boot|pid:[1]"}
    elif owner == "dead process":
        args[OWNER_KEY] = {**me, "pid": _dead_pid()}
    else:
        del args[OWNER_KEY]
    job = mem_db.metadata.update_job(attrs.evolve(job, args=args))
    ref = mem_db.artifact_store.put(b"left behind by a crash")
    io.journal_artifacts(job, [ref.sha256])
    report = collect_garbage(mem_db, grace_seconds=60, now=utcnow() + timedelta(minutes=5))
    assert report.deleted == (ref,)
    stale = mem_db.metadata.get_job(job.job_id)
    assert stale.status is JobStatus.FAILED
    assert "abandoned" in (stale.error or "")


def test_running_journal_of_a_live_process_is_kept_past_the_grace(mem_db: Datalayer) -> None:
    """A slow writer that is still running is not mistaken for a crashed one."""
    io = _journal(mem_db)
    job = io.journal_start("insert", {"table": "t"})
    assert job.args[OWNER_KEY] == current_owner()
    assert owner_alive(job.args[OWNER_KEY]) is True
    ref = mem_db.artifact_store.put(b"being written by a slow insert")
    job = io.journal_artifacts(job, [ref.sha256])
    later = utcnow() + timedelta(minutes=5)
    report = collect_garbage(mem_db, grace_seconds=60, now=later)
    assert report.deleted == ()
    assert report.young == (ref,)
    assert mem_db.metadata.get_job(job.job_id).status is JobStatus.RUNNING
    io.journal_finish(job)
    assert collect_garbage(mem_db, grace_seconds=60, now=later).deleted == (ref,)


def test_owner_liveness_probe() -> None:
    me = current_owner()
    assert owner_alive(me) is True
    assert owner_alive({**me, "pid": _dead_pid()}) is False
    assert owner_alive({**me, "host": "elsewhere"}) is None
    assert owner_alive(None) is None
    assert owner_alive({**me, "pid": "1"}) is None
    if isinstance(me["start"], int):  # Linux: a reused pid has another start time
        assert owner_alive({**me, "start": me["start"] - 1}) is False
        parent = {**me, "pid": os.getppid(), "start": 0}
        assert owner_alive(parent) is False


class _GCDuringWrite:
    """The real in-memory databackend; ``insert``/``update`` first run a gc that sees the
    claimed artifacts as older than the grace period (``now`` moved past it): an insert of many
    large by-reference values that takes longer than the grace period racing ``pinnacle gc``.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.db: Datalayer | None = None
        self.deleted: list[str] = []
        self.fail: Exception | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _race(self) -> None:
        assert self.db is not None
        (job,) = [j for j in self.db.show_jobs() if j.status is JobStatus.RUNNING]
        assert job.kind in ("insert", "update")  # still claimed while the rows are written
        report = collect_garbage(self.db, grace_seconds=60, now=utcnow() + timedelta(minutes=5))
        self.deleted += [r.sha256 for r in report.deleted]
        if self.fail is not None:
            raise self.fail

    def insert(self, table: str, rows: Any) -> int:
        self._race()
        count: int = self.inner.insert(table, rows)
        return count

    def update(self, table: str, where: Any, values: Any) -> int:
        self._race()
        count: int = self.inner.update(table, where, values)
        return count


def _racing_db() -> tuple[Datalayer, _GCDuringWrite]:
    from pinnacle_protocols.memory import MemoryDataBackend

    backend = _GCDuringWrite(MemoryDataBackend.from_uri("memory://"))
    db = pinnacle(backend, metadata_store="memory://", artifact_store="memory://")  # type: ignore[arg-type]
    backend.db = db
    vec = DataType(identifier="vec", encoder="json", by_reference=True)
    db.apply(Table.of("t", id="int", v=vec))
    return db, backend


def test_gc_during_insert_keeps_the_new_artifacts() -> None:
    """Regression: the insert journal job used to be SUCCESS before the rows were written."""
    db, backend = _racing_db()
    db.insert("t", [{"id": i, "v": [float(i)] * 50} for i in range(3)])
    assert backend.deleted == []
    assert [r["v"][0] for r in db.select("t", order_by=["id"])] == [0.0, 1.0, 2.0]
    (job,) = db.show_jobs("insert")
    assert job.status is JobStatus.SUCCESS
    assert len(job.args["artifacts"]) == 3  # type: ignore[arg-type]


def test_gc_during_update_keeps_the_new_artifacts() -> None:
    db, backend = _racing_db()
    backend.inner.insert("t", [{"id": 1, "v": None}])
    assert db.update("t", {"id": 1}, {"v": [7.0, 8.0]}) == 1
    assert backend.deleted == []
    assert db.select("t")[0]["v"] == [7.0, 8.0]
    (job,) = db.show_jobs("update")
    assert job.status is JobStatus.SUCCESS


def test_failed_row_write_marks_its_journal_failed() -> None:
    db, backend = _racing_db()
    backend.fail = RuntimeError("the databackend went away")
    with pytest.raises(RuntimeError, match="went away"):
        db.insert("t", [{"id": 1, "v": [1.0]}])
    (job,) = db.show_jobs("insert")
    assert job.status is JobStatus.FAILED
    assert "RuntimeError: the databackend went away" in (job.error or "")
    assert job.finished_at is not None
    assert db.count("t") == 0


def test_by_reference_values_in_tables_are_kept(db: Datalayer) -> None:
    db.apply(Table.of("t", id="int", a=DataType(identifier="a", encoder="json", by_reference=True)))
    db.insert("t", [{"id": 1, "a": {"big": "value"}}, {"id": 2, "a": {"other": 1}}])
    assert db.gc(grace_seconds=0).deleted == ()
    assert db.select("t", {"id": 1})[0]["a"] == {"big": "value"}
    if db.databackend.supports_delete:
        db.delete("t", {"id": 2})
        assert len(db.gc(grace_seconds=0).deleted) == 1
        assert db.select("t")[0]["a"] == {"big": "value"}


def test_progress_is_reported(mem_db: Datalayer) -> None:
    _two_versions(mem_db)
    mem_db.remove("model", "m", 0)
    calls: list[tuple[str, int, int]] = []
    mem_db.gc(grace_seconds=0, progress=lambda *a: calls.append(a))
    assert calls[-1] == ("deleting", 1, 1)
    assert ("scanning", 2, 2) in calls


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_text_progress_off_a_terminal_writes_plain_lines() -> None:
    """A log file or pipe gets at most one line per tenth of a phase and no \\r frames."""
    stream = _Stream(tty=False)
    bar = TextProgress(stream)
    for i in range(1001):
        bar("scanning", i, 1000)
    bar("deleting", 0, 0)
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0] == "scanning  0/1000 (0%)"
    assert lines[-2] == "scanning  1000/1000 (100%)"
    assert lines[-1] == "deleting  0/0 (100%)"
    assert len(lines) == 12


def test_text_progress_on_a_terminal_redraws_in_place() -> None:
    stream = _Stream(tty=True)
    bar = TextProgress(stream, width=10)
    for i in range(101):
        bar("scanning", i, 100)
    text = stream.getvalue()
    assert text.count("\r") == 11
    assert text.endswith("\rscanning  [##########] 100/100\n")
    assert TextProgress(stream, tty=False).tty is False


def test_gc_removes_temp_files_of_killed_puts_after_the_grace(local_db: Datalayer) -> None:
    """A put killed half-way leaves ``.pinnacle-tmp/*.part``: gc removes it once it is older
    than the grace period, counts it on a dry run, and keeps a younger one (a put running)."""
    local_db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))
    tmp = Path(".pinnacledb/artifacts/.pinnacle-tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    stale = tmp / ("d" * 32 + ".part")
    running = tmp / ("e" * 32 + ".part")
    stale.write_bytes(b"half a blob")
    running.write_bytes(b"a blob being written")
    week_ago = time.time() - 7 * 86400
    os.utime(stale, (week_ago, week_ago))

    dry = local_db.gc(dry_run=True, grace_seconds=3600)
    assert dry.temp_files == 1
    assert stale.exists()
    report = local_db.gc(grace_seconds=3600)
    assert report.temp_files == 1
    assert not stale.exists()
    assert running.exists()
    assert local_db.gc(grace_seconds=3600).temp_files == 0


class _DeleteAfterWriter:
    """An in-memory artifact store whose ``delete`` first lets a writer thread run (up to a
    second): the residual race of a gc that re-read the journal, then stalled, while an apply
    of identical bytes journaled and put them."""

    def __init__(self, inner: Any, writer: Any) -> None:
        self.inner = inner
        self.writer = writer
        self.thread: threading.Thread | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def delete(self, ref: Any) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self.writer)
            self.thread.start()
            self.thread.join(timeout=1.0)  # the writer finishes here unless the fence holds it
        self.inner.delete(ref)


@pytest.mark.parametrize("metadata", ["memory://", "sqlite"])
def test_gc_never_deletes_bytes_a_concurrent_apply_just_put(tmp_path: Path, metadata: str) -> None:
    """gc announces its deletes before its last journal re-read; an apply journaling after that
    re-read waits for the delete before putting, so the blob its record names exists.
    Without the fence the apply finishes first and gc deletes its weights (ArtifactNotFound)."""
    from pinnacle_protocols.memory import MemoryArtifactStore

    md = "memory://" if metadata == "memory://" else f"sqlite:///{tmp_path / 'md.db'}"
    fit = LinearModel.fit
    errors: list[BaseException] = []
    holder: dict[str, Datalayer] = {}

    def writer() -> None:
        try:
            holder["db"].apply(fit("again", [[1.0], [2.0]], [1.0, 2.0]))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    store = _DeleteAfterWriter(MemoryArtifactStore.from_uri("memory://"), writer)
    db = pinnacle("memory://", metadata_store=md, artifact_store=store)
    holder["db"] = db
    old = db.apply(fit("m", [[1.0], [2.0]], [1.0, 2.0])).artifacts["weights"].sha256
    db.remove("model", "m", 0)

    report = db.gc(grace_seconds=0)
    assert store.thread is not None
    store.thread.join(timeout=30)
    assert not store.thread.is_alive()
    assert errors == []
    assert [r.sha256 for r in report.deleted] == [old]  # gc did delete what it had decided
    again = db.metadata.get_component("model", "again")
    assert again.artifacts["weights"].sha256 == old  # identical bytes, same blob
    assert db.artifact_store.exists(old), "the apply's weights were deleted by the racing gc"
    model = db.load("model", "again")
    assert isinstance(model, LinearModel)
    assert db.metadata.get_metadata("pinnacle.gc.deleting", None) is None  # withdrawn


def test_gc_fence_announcements(mem_db: Datalayer) -> None:
    """Two gc runs keep each other's announcements; a writer waits only for a live run naming
    one of its artifacts; a stale announcement (a gc that died) holds nobody and is dropped."""
    from pinnacledb.base import _gcfence as fence

    md = mem_db.metadata
    a = fence.announce(md, ["a" * 64])
    b = fence.announce(md, ["b" * 64])
    assert set(md.get_metadata(fence.DELETING_KEY, None)) == {a, b}  # type: ignore[arg-type]
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 3:
            fence.withdraw(md, a)

    fence.wait_while_deleting(md, ["c" * 64], sleep=nap)
    assert naps == []  # nothing of ours is being deleted: one read, no wait
    fence.wait_while_deleting(md, ["a" * 64, "c" * 64], sleep=nap)
    assert naps == [0.01, 0.02, 0.04]  # waited (backing off) until run a withdrew
    assert set(md.get_metadata(fence.DELETING_KEY, None)) == {b}  # type: ignore[arg-type]

    stale_at = utcnow() - timedelta(seconds=fence.STALE_SECONDS + 1)
    dead: dict[str, JSONValue] = {"at": stale_at.isoformat(), "artifacts": ["d" * 64]}
    md.set_metadata(fence.DELETING_KEY, {"dead": dead})
    fence.wait_while_deleting(md, ["d" * 64], sleep=nap)
    assert len(naps) == 3  # a stale announcement holds nobody
    c = fence.announce(md, [])
    assert set(md.get_metadata(fence.DELETING_KEY, None)) == {c}  # type: ignore[arg-type]
    fence.withdraw(md, c)
    assert md.get_metadata(fence.DELETING_KEY, None) is None


def test_gc_fence_ignores_a_killed_gc_on_this_host(mem_db: Datalayer) -> None:
    """A gc killed between announcing and withdrawing (its process gone) holds no writer, even
    within STALE_SECONDS; a live owner (this process) does."""
    from pinnacledb.base import _gcfence as fence

    md = mem_db.metadata
    dead_owner: JSONValue = {**current_owner(), "pid": _dead_pid(), "start": None}
    killed: dict[str, JSONValue] = {
        "at": utcnow().isoformat(),
        "artifacts": ["e" * 64],
        OWNER_KEY: dead_owner,
    }
    md.set_metadata(fence.DELETING_KEY, {"killed": killed})
    naps: list[float] = []

    def must_not_wait(seconds: float) -> None:
        raise AssertionError("waited for a gc whose process is gone")

    fence.wait_while_deleting(md, ["e" * 64], sleep=must_not_wait)
    alive = fence.announce(md, ["f" * 64])
    # the next gc run drops the killed run's announcement
    assert set(md.get_metadata(fence.DELETING_KEY, None)) == {alive}  # type: ignore[arg-type]

    def nap(seconds: float) -> None:
        naps.append(seconds)
        fence.withdraw(md, alive)

    fence.wait_while_deleting(md, ["f" * 64], sleep=nap)
    assert naps == [0.01]  # a live gc (this process) is waited for
