"""Garbage collection of artifacts that nothing references any more.

Artifact stores do not expose modification times, so the age of an artifact is tracked in the
metadata store:

* Write-ahead journal. Every write of artifacts by the facade (``apply``, ``insert`` and
  ``update`` of by-reference values) hashes the serialized bytes in memory, creates a RUNNING
  job of kind ``apply``/``insert``/``update`` in the metadata store naming those sha256 and its
  owner process, puts the artifacts, writes the record/rows and only then marks the job
  SUCCESS (FAILED with the error if a step raised). A job's ``created_at`` is therefore a lower
  bound of when its artifacts were last claimed, and a RUNNING job whose owner process is still
  running (checked when gc runs on the same host, :mod:`pinnacledb.base._owner`) claims its
  artifacts now, however long the write takes.
  Vector index upkeep journals its base builds the same way (kind ``vector_index``) and deletes
  the job once the index pointer names the artifact (a pointer is a reference, see below), so
  frequent writes do not pile up job records. Its small change files (ids only, at most
  ``UNJOURNALED_MAX`` bytes) are not journaled: gc reads an unreferenced artifact of that size
  and keeps it when it is a change file that follows a current index pointer's base at a
  position the pointer has not passed, i.e. one a write may still name
  (:func:`pinnacledb.vector_search.upcoming_change_files`); the write passes the fence below
  after reading the pointer and before its put.
* First seen. An unreferenced artifact that no journal job mentions (written by another tool,
  or before this scheme existed) gets a "first seen" time in the metadata key
  ``pinnacle.gc.first_seen`` the first time ``gc`` meets it (not in dry runs).

An artifact is deleted only if (1) no component record or vector index pointer references it
(``MetadataStore.referenced_artifacts()``) and it is no change file a pointer may still name, (2) no
row of a table with by-reference DataType columns holds it, and (3) its last claim (newest journal
job naming it, or its first-seen time) is older than the grace period. A RUNNING journal job that
does not name its artifacts (other writers may journal before they know them) blocks every deletion
while it is younger than the grace period (or while its owner runs), because it may be re-using an
existing blob. RUNNING
journal jobs older than the grace period whose owner is gone or cannot be checked (another
host) belong to processes that died; gc marks them FAILED. A write slower than the grace
period from another host therefore still needs a grace period longer than the write.

The last window, a writer that journals after gc's final re-read of the journal and puts
identical bytes before gc deletes them, is closed by a fence in the metadata store
(:mod:`pinnacledb.base._gcfence`): gc announces what it is about to delete before that
re-read, and a writer reads the announcements after journaling and waits for the delete to
finish before putting, so one of the two always sees the other.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TextIO

import attrs
from attrs import frozen

from pinnacle_protocols.errors import ComponentNotFound, TableNotFound
from pinnacle_protocols.protocols import SupportsStaleTempCleanup
from pinnacle_protocols.records import ArtifactRef, JobRecord, JobStatus
from pinnacle_protocols.serialization import utcnow
from pinnacledb.base._components import JOURNAL_KINDS
from pinnacledb.base._gcfence import announce, withdraw
from pinnacledb.base._owner import OWNER_KEY, owner_alive

if TYPE_CHECKING:
    from pinnacledb.base._host import StoreHost

__all__ = ["FIRST_SEEN_KEY", "GCReport", "Progress", "TextProgress", "collect_garbage"]

FIRST_SEEN_KEY: Final = "pinnacle.gc.first_seen"

#: ``progress(phase, done, total)``; phase is ``"scanning"`` then ``"deleting"``.
Progress = Callable[[str, int, int], None]


@frozen(kw_only=True)
class GCReport:
    """What a gc run found and did.

    Attributes:
        scanned: Artifacts in the store.
        referenced: Of those, referenced by a record, a data row or an in-flight job.
        deletable: Unreferenced and older than the grace period (deleted unless dry run).
        young: Unreferenced but younger than the grace period (kept).
        deleted: Actually deleted (empty on a dry run).
        dry_run: Whether nothing was changed.
        blocked_by: Journal jobs in flight that made gc delete nothing, if any.
        temp_files: Temp files left by killed puts and older than the grace period, removed
            (counted only, on a dry run); 0 for stores that stage no temp files.
    """

    scanned: int
    referenced: int
    deletable: tuple[ArtifactRef, ...]
    young: tuple[ArtifactRef, ...]
    deleted: tuple[ArtifactRef, ...]
    dry_run: bool
    blocked_by: tuple[str, ...] = ()
    temp_files: int = 0


class TextProgress:
    """A dependency-free text progress report on a stream.

    On a terminal it is a bar redrawn in place (``scanning  [#####.....] 50/100``); on anything
    else (a log file, a pipe, CI) each update is a plain line, written at most every tenth of a
    phase and at its end, so logs get no ``\\r`` frames.
    """

    def __init__(
        self, stream: TextIO | None = None, width: int = 30, *, tty: bool | None = None
    ) -> None:
        """Draw on ``stream`` (default stderr); ``tty`` overrides ``stream.isatty()``."""
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = _isatty(self.stream) if tty is None else tty
        self._last: tuple[str, int] | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        """Report when the bar (a tenth, off a terminal) changes and when a phase completes."""
        steps = self.width if self.tty else 10
        filled = steps if total <= 0 else min(steps, int(steps * done / total))
        if (phase, filled) == self._last and done != total:
            return
        self._last = (phase, filled)
        if self.tty:
            bar = "#" * filled + "." * (self.width - filled)
            end = "\n" if done >= total else ""
            self.stream.write(f"\r{phase:<9} [{bar}] {done}/{total}{end}")
        else:
            percent = 100 if total <= 0 else min(100, int(100 * done / total))
            self.stream.write(f"{phase:<9} {done}/{total} ({percent}%)\n")
        self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _data_references(db: StoreHost) -> set[str]:
    """sha256 values held by by-reference DataType columns of tables with a Table component,
    and the stored builds vector index pointers name."""
    from pinnacledb.vector_search import pointer_references

    refs: set[str] = pointer_references(db)
    md = db.metadata
    for key in md.show_components("table"):
        try:
            codec = db.table_codec(key.identifier)
        except ComponentNotFound:
            continue
        cols = [c for c, dt in (codec or {}).items() if dt.by_reference]
        if not cols:
            continue
        try:
            rows = db.databackend.select(key.identifier, columns=cols)
        except TableNotFound:
            continue
        for row in rows:
            for c in cols:
                v = row.get(c)
                if isinstance(v, str):
                    refs.add(v)
    return refs


def _journal(db: StoreHost) -> list[JobRecord]:
    return [j for j in db.metadata.show_jobs() if j.kind in JOURNAL_KINDS]


def _owner_running(job: JobRecord) -> bool:
    """A RUNNING job whose owner process is known to be still running (same host)."""
    return job.status is JobStatus.RUNNING and owner_alive(job.args.get(OWNER_KEY)) is True


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return None


def _scan_journal(
    db: StoreHost, now: datetime, grace: timedelta, *, dry_run: bool
) -> tuple[dict[str, datetime], list[str]]:
    """Last claim time per sha256, and in-flight jobs that have not yet listed their artifacts.

    RUNNING journal jobs older than the grace period are marked FAILED (unless ``dry_run``).
    """
    last_claim: dict[str, datetime] = {}
    blocked: list[str] = []
    for job in _journal(db):
        created = job.created_at or job.started_at or now
        shas = job.args.get("artifacts")
        alive = _owner_running(job)
        in_flight = job.status is JobStatus.RUNNING and (alive or now - created < grace)
        claimed = now if alive else created
        if in_flight and not isinstance(shas, list):
            blocked.append(job.job_id)
        for sha in shas if isinstance(shas, list) else []:
            if isinstance(sha, str) and (sha not in last_claim or last_claim[sha] < claimed):
                last_claim[sha] = claimed
        if job.status is JobStatus.RUNNING and not in_flight and not dry_run:
            db.metadata.update_job(
                attrs.evolve(
                    job,
                    status=JobStatus.FAILED,
                    finished_at=now,
                    error="abandoned: the process writing these artifacts stopped before "
                    "finishing (found by gc after the grace period)",
                )
            )
    return last_claim, blocked


def _upcoming(
    db: StoreHost, refs: list[ArtifactRef], heads: dict[str, tuple[str, int] | None]
) -> set[str]:
    """Small vector index change files a write may be about to name (not journaled)."""
    from pinnacledb.vector_search import upcoming_change_files

    return upcoming_change_files(db, refs, heads)


def _still_claimed(
    db: StoreHost,
    candidates: list[ArtifactRef],
    now: datetime,
    grace: timedelta,
    heads: dict[str, tuple[str, int] | None] | None = None,
) -> set[str]:
    """References and journal claims re-read right before deleting."""
    again = set(db.metadata.referenced_artifacts()) | _data_references(db)
    again |= _upcoming(db, candidates, {} if heads is None else heads)
    for job in _journal(db):
        if job.status is not JobStatus.RUNNING:
            continue
        shas = job.args.get("artifacts")
        if isinstance(shas, list):
            again.update(s for s in shas if isinstance(s, str))
        elif _owner_running(job) or now - (job.created_at or now) < grace:
            again.update(r.sha256 for r in candidates)  # a new in-flight job: keep everything
    return again


def collect_garbage(
    db: StoreHost,
    *,
    dry_run: bool = False,
    grace_seconds: float,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> GCReport:
    """Find (and unless ``dry_run`` delete) unreferenced artifacts older than the grace period."""
    now = now or utcnow()
    grace = timedelta(seconds=grace_seconds)
    store = db.artifact_store
    md = db.metadata

    all_refs = list(store.iter_refs())
    referenced = set(md.referenced_artifacts()) | _data_references(db)
    heads: dict[str, tuple[str, int] | None] = {}  # change file headers read (upcoming)
    referenced |= _upcoming(db, [r for r in all_refs if r.sha256 not in referenced], heads)
    last_claim, blocked = _scan_journal(db, now, grace, dry_run=dry_run)

    raw_seen = md.get_metadata(FIRST_SEEN_KEY, {})
    stored_seen = dict(raw_seen) if isinstance(raw_seen, dict) else {}
    present = {r.sha256 for r in all_refs}
    first_seen = {
        sha: t for sha, t in stored_seen.items() if sha in present and sha not in referenced
    }

    deletable: list[ArtifactRef] = []
    young: list[ArtifactRef] = []
    for i, ref in enumerate(all_refs, 1):
        if ref.sha256 not in referenced:
            seen = _as_time(first_seen.get(ref.sha256))
            if seen is None and ref.sha256 not in last_claim:
                seen = now
                first_seen[ref.sha256] = now.isoformat()
            claimed = max(t for t in (seen, last_claim.get(ref.sha256)) if t is not None)
            (deletable if now - claimed >= grace else young).append(ref)
        if progress is not None:
            progress("scanning", i, len(all_refs))
    if blocked:
        young.extend(deletable)
        deletable = []

    deleted: list[ArtifactRef] = []
    if not dry_run:
        if deletable:
            # the fence: announce, then re-read the claims (pinnacledb.base._gcfence)
            run_id = announce(md, (r.sha256 for r in deletable))
            try:
                again = _still_claimed(db, deletable, now, grace, heads)
                for j, ref in enumerate(deletable, 1):
                    if ref.sha256 not in again:
                        store.delete(ref)
                        deleted.append(ref)
                        first_seen.pop(ref.sha256, None)
                    if progress is not None:
                        progress("deleting", j, len(deletable))
            finally:
                withdraw(md, run_id)
        if first_seen != stored_seen:
            md.set_metadata(FIRST_SEEN_KEY, dict(first_seen))
    # A put killed half-way leaves its temp file; one younger than the grace period may
    # belong to a put still running, so the same grace applies.
    temp_files = 0
    if isinstance(store, SupportsStaleTempCleanup):
        temp_files = store.remove_stale_temp_files(grace_seconds, dry_run=dry_run)
    return GCReport(
        scanned=len(all_refs),
        referenced=sum(1 for r in all_refs if r.sha256 in referenced),
        deletable=tuple(deletable),
        young=tuple(young),
        deleted=tuple(deleted),
        dry_run=dry_run,
        blocked_by=tuple(blocked),
        temp_files=temp_files,
    )
