"""Ordered schema migrations of the MongoDB metadata store.

MongoDB has no DDL to migrate, but a metadata database still has a layout that changes between
releases: indexes, collections and fields derived from the stored records. The layout's
revision is kept in ``_pinnacle_migrations`` (``{_id: "schema", revision: "2", history: [...]}``)
and every change is one :class:`Migration`, applied in order by
:meth:`MongoMetadataStore.migrate`.

Every step is idempotent (creating an index that exists is a no-op, backfills skip documents
already done, counters only move up with ``$max``) and the revision advances by compare-and-set,
so two processes migrating at once do the same work twice at worst, never something wrong.

Revisions:

1. Collections ``_pinnacle_components`` (unique index on ``(type_id, identifier, version)``),
   ``_pinnacle_lineage``, ``_pinnacle_jobs`` and ``_pinnacle_metadata``. Versions were allocated
   as 1 + the highest stored version.
2. ``_pinnacle_counters``: one document per component name holding the next version, so a
   number is never reused even after the latest version is deleted (seeded from the highest
   stored version); component documents gain ``content_hash``, ``artifacts`` (the sha256 list
   for garbage collection) and a BSON ``created_at`` (backfilled from the stored records);
   indexes for ``referenced_artifacts`` and ``show_jobs``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from pinnacle_protocols.records import ComponentRecord
from pinnacle_protocols.serialization import structure

if TYPE_CHECKING:
    from pymongo.database import Database

__all__ = [
    "ALL_COLLECTIONS",
    "COMPONENTS",
    "COUNTERS",
    "HEAD",
    "JOBS",
    "LINEAGE",
    "METADATA",
    "MIGRATIONS",
    "MIGRATIONS_COLLECTION",
    "Migration",
    "counter_id",
]

COMPONENTS = "_pinnacle_components"
COUNTERS = "_pinnacle_counters"
LINEAGE = "_pinnacle_lineage"
JOBS = "_pinnacle_jobs"
METADATA = "_pinnacle_metadata"
MIGRATIONS_COLLECTION = "_pinnacle_migrations"
#: Every collection the metadata store owns (``drop`` removes exactly these).
ALL_COLLECTIONS = (COMPONENTS, COUNTERS, LINEAGE, JOBS, METADATA, MIGRATIONS_COLLECTION)


def counter_id(type_id: str, identifier: str) -> str:
    """The ``_id`` of a component name's counter document (unambiguous for any strings)."""
    return json.dumps([type_id, identifier], ensure_ascii=False, separators=(",", ":"))


@attrs.frozen(kw_only=True)
class Migration:
    """One step of the layout.

    Attributes:
        revision: The revision this step brings the database to.
        description: What it does, for humans.
        apply: The idempotent step.
    """

    revision: str
    description: str
    apply: Callable[[Database[dict[str, Any]]], None]


def _revision_1(db: Database[dict[str, Any]]) -> None:
    from pymongo import ASCENDING

    db[COMPONENTS].create_index(
        [("type_id", ASCENDING), ("identifier", ASCENDING), ("version", ASCENDING)],
        unique=True,
        name="pinnacle_component_version",
    )
    db[LINEAGE].create_index(
        [("c_type_id", ASCENDING), ("c_identifier", ASCENDING), ("c_version", ASCENDING)],
        name="pinnacle_lineage_child",
    )
    db[LINEAGE].create_index(
        [("p_type_id", ASCENDING), ("p_identifier", ASCENDING), ("p_version", ASCENDING)],
        name="pinnacle_lineage_parent",
    )


def _revision_2(db: Database[dict[str, Any]]) -> None:
    from pymongo import ASCENDING

    components = db[COMPONENTS]
    highest: dict[tuple[str, str], int] = {}
    for doc in components.find({}, {"type_id": 1, "identifier": 1, "version": 1}):
        name = (doc["type_id"], doc["identifier"])
        highest[name] = max(highest.get(name, -1), int(doc["version"]))
    for (type_id, identifier), version in highest.items():
        db[COUNTERS].update_one(
            {"_id": counter_id(type_id, identifier)},
            {"$max": {"next": version + 1}},
            upsert=True,
        )
    for doc in components.find({"content_hash": {"$exists": False}}, {"record": 1}):
        record = structure(doc["record"], ComponentRecord)
        components.update_one(
            {"_id": doc["_id"]},
            {
                "$set": {
                    "content_hash": record.content_hash,
                    "artifacts": sorted({r.sha256 for r in record.artifacts.values()}),
                    "created_at": record.created_at,
                }
            },
        )
    components.create_index([("artifacts", ASCENDING)], name="pinnacle_component_artifacts")
    db[JOBS].create_index(
        [("c_type_id", ASCENDING), ("c_identifier", ASCENDING), ("c_version", ASCENDING)],
        name="pinnacle_job_component",
    )
    db[JOBS].create_index([("status", ASCENDING)], name="pinnacle_job_status")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        revision="1",
        description="components with a unique (type_id, identifier, version), lineage, jobs, "
        "metadata",
        apply=_revision_1,
    ),
    Migration(
        revision="2",
        description="version counters; content_hash, artifacts and created_at fields on "
        "components; indexes for garbage collection and job queries",
        apply=_revision_2,
    ),
)
#: The revision this package writes.
HEAD = MIGRATIONS[-1].revision
