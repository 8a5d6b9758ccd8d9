"""The fence between ``pinnacle gc`` deleting artifacts and writers putting the same bytes.

Artifacts are content-addressed, so a writer that puts bytes gc is about to delete re-uses the
blob gc deletes. gc re-reads the journal right before deleting, but a writer that journals
*after* that re-read and puts before the delete would still lose its blob. The fence closes
that window with two ordered steps on each side, on the metadata store (which every process
shares):

* gc **announces** the artifacts it is about to delete under :data:`DELETING_KEY` (one entry
  per gc run), *then* re-reads the journal, deletes what is still unclaimed, and withdraws
  its entry;
* a writer **journals** the artifacts it will put, *then* reads :data:`DELETING_KEY` and, if
  a live gc run announced one of them, waits until that run withdraws before putting.

Whichever of the two second steps runs later sees the other's first step: either gc's
re-read finds the writer's journal job (and keeps the artifact), or the writer finds the
announcement (and puts only after the delete, so the blob exists when its record is
written). An announcement names its gc process (as journal jobs name theirs,
:mod:`pinnacledb.base._owner`): one whose process is gone (checked on the same host) or that is
older than :data:`STALE_SECONDS` (any host) belongs to a gc that died; writers ignore it, with
a log line while they wait for a live one, and the next gc run drops it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Final

from pinnacle_protocols.errors import VersionConflict
from pinnacle_protocols.protocols import MetadataStore, SupportsMetadataSwap
from pinnacle_protocols.records import JSONValue
from pinnacle_protocols.serialization import utcnow
from pinnacledb.base._owner import OWNER_KEY, current_owner, owner_alive

__all__ = ["DELETING_KEY", "STALE_SECONDS", "announce", "wait_while_deleting", "withdraw"]

#: Metadata key of the gc runs' announcements: ``{run_id: {"at": iso, "artifacts": [sha]}}``.
DELETING_KEY: Final = "pinnacle.gc.deleting"
#: An announcement older than this (seconds) is from a gc that died; nobody waits for it.
STALE_SECONDS: Final = 600.0
logger = logging.getLogger("pinnacledb.gc")

#: Tries of a compare-and-set before giving up (other gc runs changing the key meanwhile).
_SWAP_TRIES: Final = 60


def _runs(md: MetadataStore) -> dict[str, JSONValue]:
    raw = md.get_metadata(DELETING_KEY, None)
    return dict(raw) if isinstance(raw, dict) else {}


def _at(entry: JSONValue) -> datetime | None:
    if not isinstance(entry, dict) or not isinstance(at := entry.get("at"), str):
        return None
    try:
        return datetime.fromisoformat(at)
    except ValueError:
        return None


def _live(entry: JSONValue, now: datetime) -> bool:
    """Whether the gc run of ``entry`` may still be deleting (not stale, owner not gone)."""
    at = _at(entry)
    if at is None or now - at >= timedelta(seconds=STALE_SECONDS):
        return False
    owner = entry.get(OWNER_KEY) if isinstance(entry, dict) else None
    return owner_alive(owner) is not False


def _change(md: MetadataStore, edit: Callable[[dict[str, JSONValue]], None]) -> None:
    """Apply ``edit`` to the announcements atomically where the store can compare-and-set
    (concurrent gc runs keep each other's entries), else read-modify-write."""
    for _ in range(_SWAP_TRIES):
        raw = md.get_metadata(DELETING_KEY, None)
        runs = dict(raw) if isinstance(raw, dict) else {}
        edit(runs)
        value: JSONValue = runs or None
        if not isinstance(md, SupportsMetadataSwap):
            md.set_metadata(DELETING_KEY, value)
            return
        if md.swap_metadata(DELETING_KEY, raw, value):
            return
    raise VersionConflict(
        f"could not update {DELETING_KEY!r}: other gc runs changed it {_SWAP_TRIES} times in a "
        "row; run gc again once they have finished"
    )


def announce(md: MetadataStore, shas: Iterable[str]) -> str:
    """Announce that this gc run is about to delete ``shas``; return the run's id.

    Announcements of dead gc runs (older than :data:`STALE_SECONDS`) are dropped on the way.
    """
    run_id = uuid.uuid4().hex
    now = utcnow()
    entry: JSONValue = {
        "at": now.isoformat(),
        "artifacts": list[JSONValue](sorted(set(shas))),
        OWNER_KEY: current_owner(),
    }

    def add(runs: dict[str, JSONValue]) -> None:
        for key in [k for k, v in runs.items() if not _live(v, now)]:
            del runs[key]
        runs[run_id] = entry

    _change(md, add)
    return run_id


def withdraw(md: MetadataStore, run_id: str) -> None:
    """Remove this gc run's announcement (its deletes are done)."""

    def drop(runs: dict[str, JSONValue]) -> None:
        runs.pop(run_id, None)

    _change(md, drop)


def wait_while_deleting(
    md: MetadataStore,
    shas: Iterable[str],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once no live gc run has announced one of ``shas`` (called after journaling).

    One metadata read when nothing is being deleted. Otherwise polls (10 ms, doubling up to
    0.5 s) until the run withdraws or its announcement goes stale.
    """
    wanted = set(shas)
    if not wanted:
        return
    delay = 0.01
    while True:
        now = utcnow()
        busy = False
        for entry in _runs(md).values():
            if not _live(entry, now) or not isinstance(entry, dict):
                continue
            listed = entry.get("artifacts")
            if isinstance(listed, list) and not wanted.isdisjoint(
                s for s in listed if isinstance(s, str)
            ):
                busy = True
                break
        if not busy:
            return
        if delay == 0.01:
            logger.info(
                "waiting for a running gc to finish deleting artifacts this write puts again"
            )
        sleep(delay)
        delay = min(0.5, delay * 2)
