"""MongoMetadataStore: component records, lineage, jobs and metadata in ``_pinnacle_*``.

Records are kept as documents in exactly the JSON-safe shape of the shared cattrs converter
(the same shape SQL stores keep in a JSON column), beside a few top-level fields for queries:

* ``_pinnacle_components``: ``{type_id, identifier, version, content_hash, artifacts,
  created_at, record}``, unique on ``(type_id, identifier, version)``.
* ``_pinnacle_counters``: ``{_id: json([type_id, identifier]), next}``. A version is allocated by
  ``find_one_and_update($inc, upsert)`` on the counter and then inserted; the unique index guards
  against explicit versions taken meanwhile (then the next number is tried). A number is never
  reused, even after its version is deleted.
* ``_pinnacle_lineage``: one document per edge, ``_id`` derived from both keys (idempotent).
* ``_pinnacle_jobs``: ``{_id: job_id, record, status, created_at, c_type_id, ...}``.
* ``_pinnacle_metadata``: ``{_id: key, value}``.
* ``_pinnacle_migrations``: the layout revision (see :mod:`pinnacle_mongo._migrations`).

An empty database is set up at the head revision on first use; a database at an older revision
raises MigrationRequired until :meth:`MongoMetadataStore.migrate` is run.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Self

import attrs

from pinnacle_mongo._connection import Document, MongoConnection
from pinnacle_mongo._migrations import (
    ALL_COLLECTIONS,
    COMPONENTS,
    COUNTERS,
    HEAD,
    JOBS,
    LINEAGE,
    METADATA,
    MIGRATIONS,
    MIGRATIONS_COLLECTION,
    counter_id,
)
from pinnacle_protocols.errors import (
    BackendUnavailable,
    ComponentInUse,
    ComponentNotFound,
    ConfigError,
    DropRefused,
    InvalidRecord,
    JobNotFound,
    MigrationRequired,
    PinnacleError,
    VersionConflict,
)
from pinnacle_protocols.records import (
    ComponentKey,
    ComponentRecord,
    JobRecord,
    JobStatus,
    JSONValue,
    SchemaRevision,
    check_json,
    check_reuse_unchanged,
)
from pinnacle_protocols.serialization import structure, unstructure, utcnow
from pinnacle_protocols.uri import RedactedURI

if TYPE_CHECKING:
    from datetime import datetime

    from pymongo.collection import Collection
    from pymongo.database import Database

__all__ = ["MongoMetadataStore"]

_SCHEMA_DOC = "schema"
_MAX_ALLOCATION_ATTEMPTS = 1000
# reuse_unchanged holds a lease on the counter document while it compares and allocates. A
# holder that died is overtaken once its lease expires; a live holder needs milliseconds.
_LEASE_SECONDS = 30.0
_LEASE_WAIT_SECONDS = 120.0


def _check_aware(value: datetime | None, what: str) -> None:
    if value is not None and value.tzinfo is None:
        raise InvalidRecord(f"{what} {value!r} is naive: use timezone-aware datetimes (UTC)")


def _key_fields(prefix: str, key: ComponentKey) -> dict[str, Any]:
    return {
        f"{prefix}_type_id": key.type_id,
        f"{prefix}_identifier": key.identifier,
        f"{prefix}_version": key.version,
    }


def _key_from(prefix: str, doc: Document) -> ComponentKey:
    return ComponentKey(
        type_id=doc[f"{prefix}_type_id"],
        identifier=doc[f"{prefix}_identifier"],
        version=int(doc[f"{prefix}_version"]),
    )


@attrs.define(kw_only=True, eq=False)
class MongoMetadataStore:
    """Versioned component records, lineage, jobs and metadata in one MongoDB database."""

    _conn: MongoConnection = attrs.field(alias="connection")
    _checked: bool = attrs.field(default=False, init=False)

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> Self:
        """A store in the database of ``mongodb://host:port/database`` (connects on first use).

        Args:
            uri: ``mongodb://`` or ``mongodb+srv://`` URI naming the database.
            **options: ``server_selection_timeout_ms``, ``client``, ``client_options``.

        Raises:
            InvalidURIError: the URI is not a MongoDB URI or names no database.
            ConfigError: an unknown option.
        """
        conn, rest = MongoConnection.from_options(uri, options, store="MongoMetadataStore")
        if rest:
            raise ConfigError(f"MongoMetadataStore: unknown options {sorted(rest)}")
        return cls(connection=conn)

    @property
    def uri(self) -> RedactedURI:
        """Where the store lives (password redacted when shown)."""
        return self._conn.uri

    def __repr__(self) -> str:
        return f"MongoMetadataStore({str(self._conn.uri)!r})"

    # ------------------------------------------------------------------ revision handling
    def _db(self) -> Database[Document]:
        return self._conn.database()

    def _coll(self, name: str) -> Collection[Document]:
        return self._db()[name]

    def _stored_revision(self) -> str | None:
        doc = self._coll(MIGRATIONS_COLLECTION).find_one({"_id": _SCHEMA_DOC})
        return None if doc is None else str(doc["revision"])

    def _current_or_setup(self) -> str | None:
        """The stored revision, after setting up a new database (or finishing its setup).

        A database without a schema document is new: it is set up at head. One whose schema
        document still has ``setup: True`` is being set up by another process (or a setup
        crashed): every step is idempotent, so this process completes it too. Anything else
        at an older revision holds data of an older release and waits for ``migrate()``.
        """
        doc = self._coll(MIGRATIONS_COLLECTION).find_one({"_id": _SCHEMA_DOC})
        if doc is None or doc.get("setup"):
            self._migrate_to(HEAD)
            return self._stored_revision()
        return str(doc["revision"])

    def _ready(self) -> None:
        """Check (once) that the layout is at head; set up an empty database."""
        if self._checked:
            self._conn.client()  # raises BackendUnavailable once closed
            return
        with self._conn.errors("check the metadata schema revision"):
            current = self._current_or_setup()
        if current != HEAD:
            raise self._outdated(current)
        self._checked = True

    def _outdated(self, current: str | None) -> PinnacleError:
        known = [m.revision for m in MIGRATIONS]
        if current in known or current is None:
            return MigrationRequired(
                f"the metadata in {self.uri} is at schema revision {current or 'unknown'}, "
                f"this pinnacle-mongo writes revision {HEAD}: run migrate() (CLI: "
                "`pinnacle migrate`) to upgrade it"
            )
        return PinnacleError(
            f"the metadata in {self.uri} is at schema revision {current!r}, which this "
            f"pinnacle-mongo (head {HEAD}) does not know: upgrade pinnacle-mongo"
        )

    def _migrate_to(self, target: str) -> None:
        """Apply every migration after the stored revision up to ``target`` (idempotent)."""
        from pymongo.errors import DuplicateKeyError

        revisions = [m.revision for m in MIGRATIONS]
        if target not in revisions:
            raise ConfigError(f"unknown metadata schema revision {target!r}; known: {revisions}")
        control = self._coll(MIGRATIONS_COLLECTION)
        current = self._stored_revision()
        if current is not None and current not in revisions:
            raise self._outdated(current)
        start = 0 if current is None else revisions.index(current) + 1
        stop = revisions.index(target) + 1
        for index in range(start, stop):
            migration = MIGRATIONS[index]
            migration.apply(self._db())
            entry = {"revision": migration.revision, "applied_at": utcnow()}
            if index == 0:
                # DuplicateKeyError: another process set the database up at the same time.
                with contextlib.suppress(DuplicateKeyError):
                    control.insert_one(
                        {
                            "_id": _SCHEMA_DOC,
                            "revision": migration.revision,
                            "history": [entry],
                            "setup": True,
                        }
                    )
            else:
                # Compare-and-set: only one of several concurrent migrators advances it.
                control.update_one(
                    {"_id": _SCHEMA_DOC, "revision": revisions[index - 1]},
                    {"$set": {"revision": migration.revision}, "$push": {"history": entry}},
                )
            current = self._stored_revision()
            if current not in revisions or revisions.index(current) < index:
                raise PinnacleError(
                    f"migrating {self.uri} to revision {migration.revision} did not take effect "
                    f"(stored revision: {current}); run migrate() again"
                )
        # Set up (to ``target``): later processes treat it like any database at that revision.
        control.update_one({"_id": _SCHEMA_DOC, "setup": True}, {"$unset": {"setup": ""}})

    def schema_revision(self) -> SchemaRevision:
        """The stored layout revision against this package's head (an empty database is set up
        at head first)."""
        with self._conn.errors("read the metadata schema revision"):
            current = self._current_or_setup()
        return SchemaRevision(current=current, head=HEAD)

    def migrate(self) -> None:
        """Bring the layout to head; safe to run concurrently and repeatedly."""
        with self._conn.errors("migrate the metadata"):
            self._migrate_to(HEAD)
        self._checked = False
        self._ready()

    # ------------------------------------------------------------------ components
    def create_component(
        self, record: ComponentRecord, *, reuse_unchanged: bool = False
    ) -> ComponentRecord:
        """Store a new version; with ``version=None`` allocate 1 + the highest ever allocated.

        With ``reuse_unchanged`` the latest version is returned instead when its content hash
        is the same. The comparison and the allocation run under a lease on the component's
        counter document (MongoDB has no multi-document atomicity without a replica set), so
        writers racing with identical content create one version; a holder that died is
        overtaken after 30 s.

        Raises:
            VersionConflict: the explicit version already exists.
            InvalidRecord: ``reuse_unchanged`` with an explicit version.
        """
        if not isinstance(record, ComponentRecord):
            raise InvalidRecord(f"expected a ComponentRecord, got {type(record).__name__}")
        _check_aware(record.created_at, "created_at")
        check_reuse_unchanged(record, reuse_unchanged)
        self._ready()
        if reuse_unchanged:
            cid = counter_id(record.type_id, record.identifier)
            what = f"{record.type_id}/{record.identifier}"
            with self._conn.errors(f"create {what}"), self._counter_lease(cid, what):
                latest = self._coll(COMPONENTS).find_one(
                    {"type_id": record.type_id, "identifier": record.identifier},
                    sort=[("version", -1)],
                )
                if latest is not None and latest.get("content_hash") == record.content_hash:
                    return self._record_of(latest)
                return self._create(record)
        return self._create(record)

    @contextlib.contextmanager
    def _counter_lease(self, cid: str, what: str) -> Iterator[None]:
        """Hold the lease of counter ``cid`` (fields ``lease``/``lease_until``) for the block."""
        counters = self._coll(COUNTERS)
        self._bump_counter(cid, 0)  # the counter document exists from here on
        token = uuid.uuid4().hex
        deadline = time.monotonic() + _LEASE_WAIT_SECONDS
        delay = 0.001
        while True:
            until = time.time() + _LEASE_SECONDS
            taken = counters.find_one_and_update(
                {"_id": cid, "lease": None}, {"$set": {"lease": token, "lease_until": until}}
            )
            if taken is None:
                doc = counters.find_one({"_id": cid}) or {}
                holder, expiry = doc.get("lease"), doc.get("lease_until")
                if holder is not None and isinstance(expiry, int | float) and expiry < time.time():
                    # The holder died (or stalled past its lease): compare-and-set on its token.
                    taken = counters.find_one_and_update(
                        {"_id": cid, "lease": holder},
                        {"$set": {"lease": token, "lease_until": until}},
                    )
            if taken is not None:
                break
            if time.monotonic() > deadline:
                raise BackendUnavailable(
                    f"metadata store {self.uri}: another writer of {what} has held its version "
                    f"lease for more than {_LEASE_WAIT_SECONDS:g} s; retry later"
                )
            time.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # an expired lease is released by expiry
                counters.update_one(
                    {"_id": cid, "lease": token}, {"$set": {"lease": None, "lease_until": None}}
                )

    def _record_of(self, doc: Document) -> ComponentRecord:
        return structure(doc["record"], ComponentRecord)

    def _create(self, record: ComponentRecord) -> ComponentRecord:
        from pymongo import ReturnDocument
        from pymongo.errors import DuplicateKeyError

        created_at = record.created_at or utcnow()
        counters = self._coll(COUNTERS)
        components = self._coll(COMPONENTS)
        cid = counter_id(record.type_id, record.identifier)
        with self._conn.errors(f"create {record.type_id}/{record.identifier}"):
            if record.version is not None:
                stored = attrs.evolve(record, created_at=created_at)
                self._bump_counter(cid, record.version + 1)
                try:
                    components.insert_one(self._component_doc(stored))
                except DuplicateKeyError as exc:
                    raise VersionConflict(
                        f"{record.type_id}/{record.identifier} version {record.version} already "
                        f"exists in {self.uri}; omit the version to allocate the next one"
                    ) from exc
                return structure(unstructure(stored), ComponentRecord)
            for _ in range(_MAX_ALLOCATION_ATTEMPTS):
                try:
                    counter = counters.find_one_and_update(
                        {"_id": cid},
                        {"$inc": {"next": 1}},
                        upsert=True,
                        return_document=ReturnDocument.AFTER,
                    )
                except DuplicateKeyError:
                    continue  # two upserts of a new counter raced; the loser retries
                if counter is None:  # pragma: no cover - upsert with AFTER returns the document
                    continue
                version = int(counter["next"]) - 1
                stored = attrs.evolve(record, version=version, created_at=created_at)
                try:
                    components.insert_one(self._component_doc(stored))
                except DuplicateKeyError:
                    continue  # taken by an explicit version meanwhile: allocate the next
                return structure(unstructure(stored), ComponentRecord)
        raise VersionConflict(
            f"could not allocate a version of {record.type_id}/{record.identifier} in {self.uri} "
            f"after {_MAX_ALLOCATION_ATTEMPTS} attempts"
        )

    def _bump_counter(self, cid: str, at_least: int) -> None:
        from pymongo.errors import DuplicateKeyError

        counters = self._coll(COUNTERS)
        for _ in range(3):
            try:
                counters.update_one({"_id": cid}, {"$max": {"next": at_least}}, upsert=True)
                return
            except DuplicateKeyError:
                continue
        counters.update_one({"_id": cid}, {"$max": {"next": at_least}})

    @staticmethod
    def _component_doc(record: ComponentRecord) -> Document:
        return {
            "type_id": record.type_id,
            "identifier": record.identifier,
            "version": record.version,
            "content_hash": record.content_hash,
            "artifacts": sorted({r.sha256 for r in record.artifacts.values()}),
            "created_at": record.created_at,
            "record": unstructure(record),
        }

    def _find_doc(self, type_id: str, identifier: str, version: int | None) -> Document:
        components = self._coll(COMPONENTS)
        query: dict[str, Any] = {"type_id": type_id, "identifier": identifier}
        if version is None:
            doc = components.find_one(query, sort=[("version", -1)])
            if doc is None:
                raise ComponentNotFound(f"no component {type_id}/{identifier} in {self.uri}")
            return doc
        doc = components.find_one({**query, "version": version})
        if doc is None:
            versions = self._versions(type_id, identifier)
            if not versions:
                raise ComponentNotFound(f"no component {type_id}/{identifier} in {self.uri}")
            raise ComponentNotFound(
                f"component {type_id}/{identifier} has no version {version} in {self.uri}; "
                f"stored versions: {versions}"
            )
        return doc

    def _versions(self, type_id: str, identifier: str) -> list[int]:
        docs = self._coll(COMPONENTS).find(
            {"type_id": type_id, "identifier": identifier}, {"version": 1, "_id": 0}
        )
        return sorted(int(d["version"]) for d in docs)

    def get_component(
        self, type_id: str, identifier: str, version: int | None = None
    ) -> ComponentRecord:
        """One version (``None`` = the latest).

        Raises:
            ComponentNotFound: no such component or version.
        """
        self._ready()
        with self._conn.errors(f"read {type_id}/{identifier}"):
            doc = self._find_doc(type_id, identifier, version)
        return structure(doc["record"], ComponentRecord)

    def show_components(self, type_id: str | None = None) -> list[ComponentKey]:
        """The latest version of every component (of ``type_id``), sorted by type and id."""
        self._ready()
        query: dict[str, Any] = {} if type_id is None else {"type_id": type_id}
        latest: dict[tuple[str, str], int] = {}
        with self._conn.errors("list components"):
            for doc in self._coll(COMPONENTS).find(
                query, {"type_id": 1, "identifier": 1, "version": 1, "_id": 0}
            ):
                name = (doc["type_id"], doc["identifier"])
                latest[name] = max(latest.get(name, -1), int(doc["version"]))
        return sorted(
            ComponentKey(type_id=t, identifier=i, version=v) for (t, i), v in latest.items()
        )

    def show_versions(self, type_id: str, identifier: str) -> list[int]:
        """Every stored version of a component, ascending (empty if none)."""
        self._ready()
        with self._conn.errors(f"list versions of {type_id}/{identifier}"):
            return self._versions(type_id, identifier)

    def delete_component_version(
        self, type_id: str, identifier: str, version: int, *, force: bool = False
    ) -> None:
        """Delete one version and its lineage edges.

        Raises:
            ComponentNotFound: no such version.
            ComponentInUse: another component depends on it and ``force`` is False.
        """
        self._ready()
        with self._conn.errors(f"delete {type_id}/{identifier}@{version}"):
            doc = self._find_doc(type_id, identifier, version)
            key = ComponentKey(type_id=type_id, identifier=identifier, version=version)
            parents = self._edges("c", key, "p")
            if parents and not force:
                shown = ", ".join(f"{p.type_id}/{p.identifier}@{p.version}" for p in parents)
                raise ComponentInUse(
                    f"{type_id}/{identifier}@{version} is used by {shown} in {self.uri}; "
                    "remove those first or pass force=True"
                )
            self._coll(COMPONENTS).delete_one({"_id": doc["_id"]})
            lineage = self._coll(LINEAGE)
            lineage.delete_many(_key_fields("c", key))
            lineage.delete_many(_key_fields("p", key))

    def referenced_artifacts(self) -> set[str]:
        """sha256 of every artifact referenced by any stored record."""
        self._ready()
        with self._conn.errors("list referenced artifacts"):
            docs = self._coll(COMPONENTS).find({}, {"artifacts": 1, "_id": 0})
            return {sha for d in docs for sha in d.get("artifacts") or ()}

    # ------------------------------------------------------------------ lineage
    def _require(self, key: ComponentKey) -> None:
        if not isinstance(key, ComponentKey):
            raise InvalidRecord(f"expected a ComponentKey, got {type(key).__name__}")
        self._find_doc(key.type_id, key.identifier, key.version)

    def _edges(self, match: str, key: ComponentKey, other: str) -> list[ComponentKey]:
        docs = self._coll(LINEAGE).find(_key_fields(match, key))
        return sorted({_key_from(other, d) for d in docs})

    def create_parent_child(self, parent: ComponentKey, child: ComponentKey) -> None:
        """Record that ``parent`` depends on ``child`` (idempotent).

        Raises:
            ComponentNotFound: either version does not exist.
        """
        self._ready()
        from pymongo.errors import DuplicateKeyError

        with self._conn.errors("create a lineage edge"):
            self._require(parent)
            self._require(child)
            edge_id = json.dumps(
                [
                    [parent.type_id, parent.identifier, parent.version],
                    [child.type_id, child.identifier, child.version],
                ],
                ensure_ascii=False,
                separators=(",", ":"),
            )
            with contextlib.suppress(DuplicateKeyError):
                self._coll(LINEAGE).insert_one(
                    {"_id": edge_id, **_key_fields("p", parent), **_key_fields("c", child)}
                )

    def get_parents(self, child: ComponentKey) -> list[ComponentKey]:
        """Components that depend on ``child``, sorted."""
        self._ready()
        with self._conn.errors("read lineage"):
            return self._edges("c", child, "p")

    def get_children(self, parent: ComponentKey) -> list[ComponentKey]:
        """Components that ``parent`` depends on, sorted."""
        self._ready()
        with self._conn.errors("read lineage"):
            return self._edges("p", parent, "c")

    # ------------------------------------------------------------------ jobs
    @staticmethod
    def _check_job(job: object) -> JobRecord:
        if not isinstance(job, JobRecord):
            raise InvalidRecord(f"expected a JobRecord, got {type(job).__name__}")
        for name in ("created_at", "started_at", "finished_at", "updated_at"):
            _check_aware(getattr(job, name), name)
        return job

    @staticmethod
    def _job_doc(job: JobRecord) -> Document:
        doc: Document = {
            "_id": job.job_id,
            "kind": job.kind,
            "status": job.status.value,
            "created_at": job.created_at,
            "record": unstructure(job),
        }
        if job.component is not None:
            doc.update(_key_fields("c", job.component))
        return doc

    def create_job(self, job: JobRecord) -> JobRecord:
        """Store a new job (``created_at`` set if missing).

        Raises:
            VersionConflict: a job with this id exists.
        """
        self._check_job(job)
        self._ready()
        from pymongo.errors import DuplicateKeyError

        stored = attrs.evolve(job, created_at=job.created_at or utcnow())
        with self._conn.errors(f"create job {job.job_id!r}"):
            try:
                self._coll(JOBS).insert_one(self._job_doc(stored))
            except DuplicateKeyError as exc:
                raise VersionConflict(
                    f"job {job.job_id!r} already exists in {self.uri}; use update_job"
                ) from exc
        return structure(unstructure(stored), JobRecord)

    def get_job(self, job_id: str) -> JobRecord:
        """One job (JobNotFound if absent)."""
        self._ready()
        with self._conn.errors(f"read job {job_id!r}"):
            doc = self._coll(JOBS).find_one({"_id": job_id})
        if doc is None:
            raise JobNotFound(f"no job {job_id!r} in {self.uri}")
        return structure(doc["record"], JobRecord)

    def update_job(self, job: JobRecord) -> JobRecord:
        """Replace a stored job; a ``created_at`` of None keeps the stored creation time.

        Raises:
            JobNotFound: no job with this id.
        """
        self._check_job(job)
        self._ready()
        jobs = self._coll(JOBS)
        with self._conn.errors(f"update job {job.job_id!r}"):
            created_at = job.created_at
            if created_at is None:
                old = jobs.find_one({"_id": job.job_id}, {"record": 1})
                if old is None:
                    raise JobNotFound(f"no job {job.job_id!r} in {self.uri}; create it first")
                created_at = structure(old["record"], JobRecord).created_at
            stored = attrs.evolve(job, created_at=created_at)
            result = jobs.replace_one({"_id": job.job_id}, self._job_doc(stored))
            if result.matched_count == 0:
                raise JobNotFound(f"no job {job.job_id!r} in {self.uri}; create it first")
        return structure(unstructure(stored), JobRecord)

    def delete_job(self, job_id: str) -> None:
        """Delete one job record.

        Raises:
            JobNotFound: no job with this id.
        """
        self._ready()
        with self._conn.errors(f"delete job {job_id!r}"):
            result = self._coll(JOBS).delete_one({"_id": job_id})
        if result.deleted_count == 0:
            raise JobNotFound(f"no job {job_id!r} in {self.uri}")

    def show_jobs(
        self, *, component: ComponentKey | None = None, status: JobStatus | None = None
    ) -> list[JobRecord]:
        """Jobs, optionally of one component version and/or status, by creation time then id."""
        self._ready()
        query: dict[str, Any] = {}
        if component is not None:
            query.update(_key_fields("c", component))
        if status is not None:
            query["status"] = JobStatus(status).value
        with self._conn.errors("list jobs"):
            jobs = [structure(d["record"], JobRecord) for d in self._coll(JOBS).find(query)]
        from datetime import UTC, datetime

        epoch = datetime.min.replace(tzinfo=UTC)
        jobs.sort(key=lambda j: (j.created_at or epoch, j.job_id))
        return jobs

    # ------------------------------------------------------------------ metadata
    def get_metadata(self, key: str, default: JSONValue = None) -> JSONValue:
        """The JSON value stored under ``key``, or ``default``."""
        self._ready()
        with self._conn.errors(f"read metadata {key!r}"):
            doc = self._coll(METADATA).find_one({"_id": key})
        if doc is None:
            return default
        value: JSONValue = doc["value"]
        return value

    def set_metadata(self, key: str, value: JSONValue) -> None:
        """Store a JSON value under ``key`` (overwrites)."""
        if not isinstance(key, str) or not key or "\x00" in key:
            raise InvalidRecord(f"metadata keys are non-empty strings without NUL, got {key!r}")
        check_json(value, f"metadata {key!r}")
        self._ready()
        with self._conn.errors(f"write metadata {key!r}"):
            self._coll(METADATA).replace_one(
                {"_id": key}, {"_id": key, "value": value, "rev": uuid.uuid4().hex}, upsert=True
            )

    def swap_metadata(self, key: str, expected: JSONValue, value: JSONValue) -> bool:
        """Store ``value`` under ``key`` only if it holds ``expected`` (SupportsMetadataSwap).

        Every write of a metadata document gives it a fresh ``rev`` token. The stored value is
        read and compared as JSON data here; the write then matches the document on the
        ``rev`` read (one atomic ``update_one``), so a writer that changed it meanwhile makes
        the swap match nothing. An absent key is claimed with ``insert_one``: of two racing
        inserts, the one hitting the duplicate key loses.
        """
        from pymongo.errors import DuplicateKeyError

        if not isinstance(key, str) or not key or "\x00" in key:
            raise InvalidRecord(f"metadata keys are non-empty strings without NUL, got {key!r}")
        check_json(value, f"metadata {key!r}")
        self._ready()
        coll = self._coll(METADATA)
        with self._conn.errors(f"swap metadata {key!r}"):
            doc = coll.find_one({"_id": key})
            current: JSONValue = None if doc is None else doc.get("value")
            if current != expected:
                return False
            new = {"value": value, "rev": uuid.uuid4().hex}
            if doc is None:
                try:
                    coll.insert_one({"_id": key, **new})
                except DuplicateKeyError:
                    return False
                return True
            rev = doc.get("rev")
            match = {"_id": key, "rev": rev if rev is not None else {"$exists": False}}
            return bool(coll.update_one(match, {"$set": new}).matched_count)

    # ------------------------------------------------------------------ lifecycle
    def ping(self) -> None:
        """Check that the server answers (BackendUnavailable otherwise)."""
        self._conn.ping()

    def drop(self, *, force: bool = False) -> None:
        """Delete every ``_pinnacle_*`` metadata collection (never user data or artifacts).

        Raises:
            DropRefused: ``force`` is not True; nothing was deleted.
        """
        if force is not True:
            raise DropRefused(
                f"refusing to delete every record of {self.uri}; call drop(force=True) to confirm"
            )
        with self._conn.errors("drop the metadata"):
            db = self._db()
            for name in ALL_COLLECTIONS:
                db.drop_collection(name)
        self._checked = False

    def close(self) -> None:
        """Close the client (if this store created it); later calls raise BackendUnavailable."""
        self._conn.close()
