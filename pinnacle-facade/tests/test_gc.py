"""Garbage collection: unreferenced AND older than the grace period; in-flight writes kept."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pinnacle_protocols.records import JobStatus
from pinnacle_protocols.serialization import utcnow
from pinnacledb import DataType, LinearModel, Table
from pinnacledb.base.datalayer import Datalayer
from pinnacledb.gc import FIRST_SEEN_KEY, collect_garbage

LONG_AGO = "2000-01-01T00:00:00+00:00"


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
    io = mem_db._component_io
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
    io = mem_db._component_io
    job = io.journal_start("apply", {"type_id": "model", "identifier": "x"})
    io.journal_artifacts(job, [claimed.sha256])
    report = mem_db.gc(grace_seconds=3600)
    assert report.deleted == (other,)
    assert report.young == (claimed,)


def test_stale_running_journal_is_marked_failed(mem_db: Datalayer) -> None:
    io = mem_db._component_io
    job = io.journal_start("apply", {"type_id": "model", "identifier": "x"})
    ref = mem_db.artifact_store.put(b"left behind by a crash")
    io.journal_artifacts(job, [ref.sha256])
    report = collect_garbage(mem_db, grace_seconds=60, now=utcnow() + timedelta(minutes=5))
    assert report.deleted == (ref,)
    stale = mem_db.metadata.get_job(job.job_id)
    assert stale.status is JobStatus.FAILED
    assert "abandoned" in (stale.error or "")


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
