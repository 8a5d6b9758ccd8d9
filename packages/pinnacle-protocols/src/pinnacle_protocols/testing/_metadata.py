"""The MetadataStore contract: example tests and a rule-based state machine."""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from pinnacle_protocols.errors import (
    ComponentInUse,
    ComponentNotFound,
    DropRefused,
    InvalidRecord,
    JobNotFound,
    VersionConflict,
)
from pinnacle_protocols.protocols import MetadataStore, SupportsMetadataSwap
from pinnacle_protocols.records import (
    ArtifactRef,
    ComponentKey,
    ComponentRecord,
    JobRecord,
    JobStatus,
    JSONValue,
    SchemaRevision,
)
from pinnacle_protocols.testing._artifact import drop_without_force
from pinnacle_protocols.testing._base import ContractBase, StoreStateMachine
from pinnacle_protocols.testing.strategies import (
    component_records,
    identifiers,
    job_records,
    json_values,
)
from pinnacle_protocols.uri import RedactedURI

__all__ = ["MetadataStoreContract", "MetadataStoreStateMachine"]

MS = TypeVar("MS", bound=MetadataStore)

_T0 = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
_SHA = "ab" * 32


def _rec(type_id: str, identifier: str, **kwargs: Any) -> ComponentRecord:
    return ComponentRecord(type_id=type_id, identifier=identifier, **kwargs)


def _key(type_id: str, identifier: str, version: int) -> ComponentKey:
    return ComponentKey(type_id=type_id, identifier=identifier, version=version)


def _check_created(returned: ComponentRecord, sent: ComponentRecord, version: int) -> None:
    assert returned.version == version, f"allocated version {returned.version}, expected {version}"
    assert returned.created_at is not None, "created_at was not set"
    assert returned.created_at.tzinfo is not None, "created_at is naive"
    expected = attrs.evolve(
        sent, version=version, created_at=sent.created_at or returned.created_at
    )
    assert returned == expected, f"create_component returned {returned!r}, sent {sent!r}"


def _confusable(name: str) -> list[str]:
    """Names a sloppy store might treat as ``name``: case, trailing space, normalization."""
    variants = [
        name.upper(),
        name.lower(),
        name.swapcase(),
        name + " ",
        " " + name,
        unicodedata.normalize("NFD", name),
        unicodedata.normalize("NFKC", name),
    ]
    return [v for v in variants if v != name and 0 < len(v) <= 255 and "\x00" not in v]


#: Records and jobs without names: drawn, then given a name from the machine's pool.
_RECORD_BODIES = component_records(type_ids=st.just("t"), names=st.just("i"))
_NAME = st.tuples(
    st.one_of(st.sampled_from(["model", "listener", "' OR 1=1 --"]), identifiers()), identifiers()
)
_DEFAULTS = st.one_of(st.none(), st.sampled_from([0, "default", [], {"d": None}]))
_JOB_BODIES = job_records(job_ids=st.just("j"), components=st.none())
_TYPE_IDS = st.one_of(st.sampled_from(["model", "listener", "' OR 1=1 --"]), identifiers())
_NAMES = st.tuples(_TYPE_IDS, identifiers())
# Weighted by repetition: most deletes hit the interesting cases.
_DELETE_TARGETS = st.sampled_from(["any", "latest", "used", "used"])
_FORCE = st.sampled_from([False, False, True])
_GHOST = st.sampled_from([None, None, None, "parent", "child"])
_JOB_ACTIONS = st.sampled_from(["create", "update", "check"])


@attrs.define
class _Component:
    versions: dict[int, ComponentRecord] = attrs.field(factory=dict)
    highest: int = -1


class MetadataStoreStateMachine(StoreStateMachine[MS], Generic[MS]):
    """The metadata contract's state machine. Model: dicts of versions, a set of edges, dicts
    of jobs and metadata. Subclass it, define :meth:`make_store` (a fresh, migrated store), and
    run it (see :class:`StoreStateMachine`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.components: dict[tuple[str, str], _Component] = {}
        self.names: list[tuple[str, str]] = []
        self.edges: set[tuple[ComponentKey, ComponentKey]] = set()
        self.linked: set[ComponentKey] = set()  # every key that was ever in an edge
        self.jobs: dict[str, JobRecord] = {}
        self.meta: dict[str, JSONValue] = {}
        self.meta_keys: list[str] = []

    # -------------------------------------------------------------- helpers
    def keys(self) -> list[ComponentKey]:
        return sorted(
            _key(t, i, v) for (t, i), comp in self.components.items() for v in comp.versions
        )

    def parents_of(self, child: ComponentKey) -> list[ComponentKey]:
        return sorted(p for p, c in self.edges if c == child)

    def children_of(self, parent: ComponentKey) -> list[ComponentKey]:
        return sorted(c for p, c in self.edges if p == parent)

    def versions(self, key: ComponentKey) -> set[int]:
        return set(self.components.get((key.type_id, key.identifier), _Component()).versions)

    def has_keys(self) -> bool:
        return bool(self.keys())

    def pick_key(self, data: st.DataObject) -> ComponentKey:
        return data.draw(st.sampled_from(self.keys()), label="key")

    def pick_name(self, data: st.DataObject) -> tuple[str, str]:
        return data.draw(st.sampled_from(self.names), label="name")

    def create_as(self, name: tuple[str, str], body: ComponentRecord) -> None:
        sent = attrs.evolve(body, type_id=name[0], identifier=name[1])
        comp = self.components.setdefault(name, _Component())
        expected = comp.highest + 1
        returned = self.store.create_component(sent)
        _check_created(returned, sent, expected)
        comp.versions[expected] = returned
        comp.highest = expected

    # -------------------------------------------------------------- names
    @initialize(
        names=st.lists(st.tuples(_TYPE_IDS, identifiers()), min_size=1, max_size=3, unique=True),
        bodies=st.lists(_RECORD_BODIES, max_size=3),
        variant=st.one_of(st.none(), st.integers(0, 6)),
    )
    def start(
        self, names: list[tuple[str, str]], bodies: list[ComponentRecord], variant: int | None
    ) -> None:
        self.names = list(names)
        type_id, identifier = names[0]
        variants = _confusable(identifier)
        if variant is not None and variants:
            # A name a sloppy store would merge with the first one (case, spaces, NFD).
            confusable = (type_id, variants[variant % len(variants)])
            if confusable not in self.names:
                self.names.append(confusable)
        for body in bodies:
            self.create_as(self.names[0], body)

    @rule(data=st.data(), confusable=st.booleans())
    def new_name(self, data: st.DataObject, confusable: bool) -> None:
        if confusable:
            # Names a sloppy store might merge with an existing one (case, spaces, NFD).
            type_id, base = self.pick_name(data)
            variants = _confusable(base)
            if not variants:
                return
            identifier = data.draw(st.sampled_from(variants), label="variant")
        else:
            type_id, identifier = data.draw(_NAME, label="name")
        if (type_id, identifier) not in self.names and len(self.names) < 6:
            self.names.append((type_id, identifier))

    # -------------------------------------------------------------- components
    @rule(data=st.data(), body=_RECORD_BODIES)
    def create(self, data: st.DataObject, body: ComponentRecord) -> None:
        self.create_as(self.pick_name(data), body)

    @rule(data=st.data(), body=_RECORD_BODIES)
    def create_explicit(self, data: st.DataObject, body: ComponentRecord) -> None:
        type_id, identifier = self.pick_name(data)
        comp = self.components.get((type_id, identifier), _Component())
        version = data.draw(
            st.one_of(
                st.integers(0, comp.highest + 3),
                st.sampled_from(sorted(comp.versions) or [0]),
            ),
            label="version",
        )
        sent = attrs.evolve(body, type_id=type_id, identifier=identifier, version=version)
        if version in comp.versions:
            with pytest.raises(VersionConflict):
                self.store.create_component(sent)
            return
        returned = self.store.create_component(sent)
        _check_created(returned, sent, version)
        comp.versions[version] = returned
        comp.highest = max(comp.highest, version)
        self.components[(type_id, identifier)] = comp

    @rule(data=st.data(), latest=st.booleans(), version=st.integers(0, 40))
    def get(self, data: st.DataObject, latest: bool, version: int) -> None:
        type_id, identifier = self.pick_name(data)
        comp = self.components.get((type_id, identifier), _Component())
        if latest and comp.versions:
            expected = comp.versions[max(comp.versions)]
            got = self.store.get_component(type_id, identifier)
        elif latest:
            with pytest.raises(ComponentNotFound):
                self.store.get_component(type_id, identifier)
            return
        elif version in comp.versions:
            expected = comp.versions[version]
            got = self.store.get_component(type_id, identifier, version)
        else:
            with pytest.raises(ComponentNotFound):
                self.store.get_component(type_id, identifier, version)
            with pytest.raises(ComponentNotFound):
                self.store.delete_component_version(type_id, identifier, version)
            return
        assert got == expected, f"get_component returned {got!r}, expected {expected!r}"
        if self.has_keys():  # lineage of any version, linked or not
            key = self.pick_key(data)
            assert self.store.get_parents(key) == self.parents_of(key)
            assert self.store.get_children(key) == self.children_of(key)

    @precondition(lambda self: self.has_keys())
    @rule(data=st.data(), force=_FORCE, which=_DELETE_TARGETS)
    def delete(self, data: st.DataObject, force: bool, which: str) -> None:
        key = self.pick_key(data)
        used = sorted({c for _, c in self.edges})
        if which == "latest":  # deleting the latest version is where allocation bugs hide
            versions = self.components[(key.type_id, key.identifier)].versions
            key = _key(key.type_id, key.identifier, max(versions))
        elif which == "used" and used:  # a version others depend on
            key = data.draw(st.sampled_from(used), label="used key")
        if self.parents_of(key) and not force:
            with pytest.raises(ComponentInUse):
                self.store.delete_component_version(key.type_id, key.identifier, key.version)
            return
        if force:
            self.store.delete_component_version(
                key.type_id, key.identifier, key.version, force=True
            )
        else:
            self.store.delete_component_version(key.type_id, key.identifier, key.version)
        del self.components[(key.type_id, key.identifier)].versions[key.version]
        self.edges = {(p, c) for p, c in self.edges if key not in (p, c)}

    # -------------------------------------------------------------- lineage
    @precondition(lambda self: len(self.keys()) >= 2)
    @rule(data=st.data(), twice=st.booleans(), ghost=_GHOST)
    def link(self, data: st.DataObject, twice: bool, ghost: str | None) -> None:
        parent = self.pick_key(data)
        child = data.draw(st.sampled_from([k for k in self.keys() if k != parent]))
        if ghost is not None:
            # A version that does not exist on one side: ComponentNotFound, no edge.
            missing = data.draw(st.integers(0, 40).filter(lambda v: v not in self.versions(child)))
            fake = _key(child.type_id, child.identifier, missing)
            parent, child = (fake, child) if ghost == "parent" else (parent, fake)
            with pytest.raises(ComponentNotFound):
                self.store.create_parent_child(parent, child)
            return
        self.store.create_parent_child(parent, child)
        if twice:
            self.store.create_parent_child(parent, child)
        self.edges.add((parent, child))
        self.linked |= {parent, child}

    # -------------------------------------------------------------- jobs
    @rule(data=st.data(), action=_JOB_ACTIONS)
    def job_rule(self, data: st.DataObject, action: str) -> None:
        """Create (or conflict), update, or check jobs."""
        if action == "create":
            self.create_job(data)
        elif action == "update" and self.jobs:
            self.update_job(data)
        else:
            self.check_jobs(data, data.draw(identifiers(), label="missing job id"))

    def create_job(self, data: st.DataObject) -> None:
        job_id = data.draw(
            st.one_of(identifiers(), st.sampled_from(sorted(self.jobs) or ["j"])),
            label="job_id",
        )
        keys: list[ComponentKey | None] = [None, *self.keys()]
        components = st.sampled_from(keys)
        component = data.draw(components, label="component")
        body = data.draw(_JOB_BODIES, label="job")
        job = attrs.evolve(body, job_id=job_id, component=component)
        if job_id in self.jobs:
            with pytest.raises(VersionConflict):
                self.store.create_job(job)
            return
        returned = self.store.create_job(job)
        assert returned.created_at is not None
        assert returned.created_at.tzinfo is not None
        expected = attrs.evolve(job, created_at=job.created_at or returned.created_at)
        assert returned == expected, f"create_job returned {returned!r}, sent {job!r}"
        self.jobs[job_id] = returned

    def update_job(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)), label="job_id")
        old = self.jobs[job_id]
        component = data.draw(st.sampled_from([old.component, *self.keys(), None]))
        body = data.draw(_JOB_BODIES, label="job")
        new = attrs.evolve(body, job_id=job_id, component=component)
        created = data.draw(st.sampled_from([old.created_at, new.created_at]))
        new = attrs.evolve(new, created_at=created or old.created_at)
        returned = self.store.update_job(new)
        assert returned == new, f"update_job returned {returned!r}, sent {new!r}"
        self.jobs[job_id] = new

    def check_jobs(self, data: st.DataObject, missing_id: str) -> None:
        if self.jobs:
            job_id = data.draw(st.sampled_from(sorted(self.jobs)), label="job_id")
            assert self.store.get_job(job_id) == self.jobs[job_id]
        if missing_id not in self.jobs:
            with pytest.raises(JobNotFound):
                self.store.get_job(missing_id)
            with pytest.raises(JobNotFound):
                self.store.update_job(JobRecord(job_id=missing_id, kind="k", created_at=_T0))
        used = sorted({j.component for j in self.jobs.values() if j.component is not None})
        choices: list[ComponentKey | None] = [None, *used]
        component = data.draw(st.sampled_from(choices))
        status = data.draw(st.one_of(st.none(), st.sampled_from(list(JobStatus))))
        expected = sorted(
            (
                j
                for j in self.jobs.values()
                if (component is None or j.component == component)
                and (status is None or j.status == status)
            ),
            key=lambda j: (j.created_at, j.job_id),
        )
        got = self.store.show_jobs(component=component, status=status)
        assert got == expected, f"show_jobs({component}, {status}) = {got}, want {expected}"

    # -------------------------------------------------------------- metadata
    @rule(data=st.data(), default=_DEFAULTS)
    def metadata(self, data: st.DataObject, default: JSONValue) -> None:
        keys = st.one_of(identifiers(), st.sampled_from(self.meta_keys or ["k"]))
        if data.draw(st.booleans(), label="set"):
            key = data.draw(keys, label="key")
            value = data.draw(json_values(), label="value")
            self.store.set_metadata(key, value)
            self.meta[key] = value
            if key not in self.meta_keys:
                self.meta_keys.append(key)
        key = data.draw(keys, label="key")
        expected = self.meta.get(key, default)
        got = self.store.get_metadata(key, default)
        assert got == expected, f"get_metadata({key!r}) = {got!r}, expected {expected!r}"
        force = data.draw(st.sampled_from([None, False]), label="drop force")
        with pytest.raises(DropRefused):  # nothing may change: the invariants check it
            drop_without_force(self.store, force)

    # -------------------------------------------------------------- invariants
    @invariant()
    def same_components(self) -> None:
        expected = sorted(
            _key(t, i, max(c.versions)) for (t, i), c in self.components.items() if c.versions
        )
        got = self.store.show_components()
        assert got == expected, f"show_components() = {got}, expected {expected}"

    @invariant()
    def same_lineage(self) -> None:
        existing = set(self.keys())
        for key in sorted(self.linked & existing):
            parents = self.store.get_parents(key)
            assert parents == self.parents_of(key), f"get_parents({key}) = {parents}"
            children = self.store.get_children(key)
            assert children == self.children_of(key), f"get_children({key}) = {children}"

    @invariant()
    def same_versions(self) -> None:
        for t, i in self.names:
            expected = sorted(self.components.get((t, i), _Component()).versions)
            got = self.store.show_versions(t, i)
            assert got == expected, f"show_versions({t!r}, {i!r}) = {got}, expected {expected}"

    @invariant()
    def same_artifacts(self) -> None:
        expected = {
            ref.sha256
            for comp in self.components.values()
            for record in comp.versions.values()
            for ref in record.artifacts.values()
        }
        assert self.store.referenced_artifacts() == expected


class MetadataStoreContract(ContractBase[MS], Generic[MS]):
    """Contract tests for a :class:`~pinnacle_protocols.protocols.MetadataStore`.

    Subclass as ``class TestMyStore(MetadataStoreContract[MyStore])`` and define the
    ``make_store`` fixture (each call: a fresh, empty, ready-to-use store, migrated if your store
    needs that). Knobs: ``concurrent_writers`` (threads racing on version allocation in
    :meth:`test_concurrent_version_allocation`, default 4) and ``versions_per_writer``
    (default 5), plus those of the base.
    """

    machine = MetadataStoreStateMachine
    concurrent_writers: ClassVar[int] = 4
    versions_per_writer: ClassVar[int] = 5

    # ------------------------------------------------------------------ basics
    def test_is_a_metadata_store(self, store: MS) -> None:
        """The store satisfies the runtime-checkable protocol and has a RedactedURI."""
        assert isinstance(store, MetadataStore)
        assert isinstance(store.uri, RedactedURI)

    def test_starts_empty(self, store: MS) -> None:
        """A fresh store has no components, jobs or metadata."""
        assert store.show_components() == []
        assert store.show_jobs() == []
        assert store.referenced_artifacts() == set()
        assert store.get_metadata("anything") is None

    def test_schema_revision_and_migrate(self, store: MS) -> None:
        """migrate() is repeatable and leaves the store up to date."""
        store.migrate()
        store.migrate()
        revision = store.schema_revision()
        assert isinstance(revision, SchemaRevision)
        assert revision.up_to_date, revision

    # ------------------------------------------------------------------ components
    def test_versions_are_allocated_from_zero(self, store: MS) -> None:
        """Versions 0, 1, 2 are allocated in order; created_at is set when missing."""
        sent = _rec("model", "m", data={"a": 1, "nested": {"x": [1, 2.5, None, "s"]}})
        for expected in range(3):
            _check_created(store.create_component(sent), sent, expected)
        assert store.show_versions("model", "m") == [0, 1, 2]

    def test_created_at_is_kept(self, store: MS) -> None:
        """An explicit created_at is stored as given (millisecond precision)."""
        sent = _rec("model", "m", created_at=_T0)
        returned = store.create_component(sent)
        assert returned.created_at == _T0
        assert store.get_component("model", "m").created_at == _T0

    def test_version_not_reused_after_deleting_latest(self, store: MS) -> None:
        """Deleting the latest version does not free its number (1 + highest ever allocated)."""
        for _ in range(2):
            store.create_component(_rec("model", "m"))
        store.delete_component_version("model", "m", 1)
        assert store.create_component(_rec("model", "m")).version == 2
        for v in (0, 2):
            store.delete_component_version("model", "m", v)
        assert store.show_versions("model", "m") == []
        assert store.create_component(_rec("model", "m")).version == 3

    def test_explicit_version(self, store: MS) -> None:
        """An explicit version is stored as is, counts as allocated, and conflicts if taken."""
        assert store.create_component(_rec("model", "m", version=5)).version == 5
        assert store.create_component(_rec("model", "m")).version == 6
        assert store.create_component(_rec("model", "m", version=2)).version == 2
        with pytest.raises(VersionConflict):
            store.create_component(_rec("model", "m", version=5, data={"other": True}))
        assert store.show_versions("model", "m") == [2, 5, 6]
        assert store.get_component("model", "m", 5).data == {}

    def test_get_component(self, store: MS) -> None:
        """get_component returns one version, the latest when version is None."""
        first = store.create_component(_rec("model", "m", data={"v": 0}))
        second = store.create_component(_rec("model", "m", data={"v": 1}))
        assert store.get_component("model", "m") == second
        assert store.get_component("model", "m", None) == second
        assert store.get_component("model", "m", 0) == first

    def test_record_round_trip(self, store: MS) -> None:
        """Data and artifacts come back exactly (unicode, nesting, big ints, floats)."""
        refs = {
            "weights": ArtifactRef(sha256=_SHA, size=2**40),
            "é": ArtifactRef(sha256=_SHA, size=0),
        }
        data: dict[str, JSONValue] = {
            "int": 2**63 - 1,
            "neg": -(2**63),
            "float": 0.1,
            "big": 1e300,
            "text": "' OR 1=1 -- 日本語 😀",
            "list": [True, False, None, [], {}],
            "$x": {"a.b": "dotted"},
        }
        sent = _rec("' OR 1=1 --", "a/b 😀", data=data, artifacts=refs, created_at=_T0)
        returned = store.create_component(sent)
        assert returned == attrs.evolve(sent, version=0)
        assert store.get_component("' OR 1=1 --", "a/b 😀", 0) == returned

    def test_component_not_found(self, store: MS) -> None:
        """Unknown components and versions raise ComponentNotFound."""
        with pytest.raises(ComponentNotFound):
            store.get_component("model", "nope")
        store.create_component(_rec("model", "m"))
        with pytest.raises(ComponentNotFound):
            store.get_component("model", "m", 1)
        with pytest.raises(ComponentNotFound):
            store.get_component("other", "m")
        with pytest.raises(ComponentNotFound):
            store.delete_component_version("model", "m", 7)
        assert store.show_versions("model", "nope") == []

    def test_identifiers_are_exact(self, store: MS) -> None:
        """Identifiers differing only by case, trailing space or normalization are distinct."""
        names = ["m", "M", "m ", " m", "e\u0301", "\u00e9", "ß", "ss"]
        for name in names:
            assert store.create_component(_rec("model", name)).version == 0
        assert [k.identifier for k in store.show_components("model")] == sorted(names)

    def test_show_components(self, store: MS) -> None:
        """The latest version of each component, sorted by type then identifier."""
        store.create_component(_rec("model", "b"))
        store.create_component(_rec("model", "b"))
        store.create_component(_rec("model", "a"))
        store.create_component(_rec("listener", "z"))
        assert store.show_components() == [
            _key("listener", "z", 0),
            _key("model", "a", 0),
            _key("model", "b", 1),
        ]
        assert store.show_components("model") == [_key("model", "a", 0), _key("model", "b", 1)]
        assert store.show_components("nothing") == []

    def test_delete_component_version(self, store: MS) -> None:
        """Deleting a middle version keeps the others; latest follows."""
        for _ in range(3):
            store.create_component(_rec("model", "m"))
        store.delete_component_version("model", "m", 1)
        assert store.show_versions("model", "m") == [0, 2]
        with pytest.raises(ComponentNotFound):
            store.get_component("model", "m", 1)
        store.delete_component_version("model", "m", 2)
        assert store.get_component("model", "m").version == 0
        store.delete_component_version("model", "m", 0)
        assert store.show_components() == []

    def test_referenced_artifacts(self, store: MS) -> None:
        """Every artifact of every stored version is referenced until its record is deleted."""
        a, b = "a" * 64, "b" * 64
        store.create_component(_rec("model", "m", artifacts={"w": ArtifactRef(sha256=a, size=1)}))
        store.create_component(_rec("model", "n", artifacts={"w": ArtifactRef(sha256=b, size=1)}))
        assert store.referenced_artifacts() == {a, b}
        store.delete_component_version("model", "m", 0)
        assert store.referenced_artifacts() == {b}

    # ------------------------------------------------------------------ lineage
    def test_lineage(self, store: MS) -> None:
        """Edges are idempotent, sorted, and block deletion of the child unless forced."""
        parent = store.create_component(_rec("model", "p")).key
        child_b = store.create_component(_rec("encoder", "b")).key
        child_a = store.create_component(_rec("encoder", "a")).key
        store.create_parent_child(parent, child_b)
        store.create_parent_child(parent, child_a)
        store.create_parent_child(parent, child_a)
        assert store.get_children(parent) == [child_a, child_b]
        assert store.get_parents(child_a) == [parent]
        assert store.get_parents(parent) == []
        with pytest.raises(ComponentInUse):
            store.delete_component_version("encoder", "a", 0)
        assert store.get_component("encoder", "a", 0).key == child_a
        assert store.get_children(parent) == [child_a, child_b]

    def test_force_delete_removes_edges(self, store: MS) -> None:
        """A forced delete removes the version and every edge touching it."""
        parent = store.create_component(_rec("model", "p")).key
        child = store.create_component(_rec("encoder", "c")).key
        store.create_parent_child(parent, child)
        store.delete_component_version("encoder", "c", 0, force=True)
        assert store.get_children(parent) == []
        store.create_component(_rec("encoder", "c"))
        assert store.get_parents(_key("encoder", "c", 1)) == []

    def test_deleting_parent_removes_edges(self, store: MS) -> None:
        """Deleting a parent (allowed) removes its edges, freeing the child."""
        parent = store.create_component(_rec("model", "p")).key
        child = store.create_component(_rec("encoder", "c")).key
        store.create_parent_child(parent, child)
        store.delete_component_version("model", "p", 0)
        assert store.get_parents(child) == []
        store.delete_component_version("encoder", "c", 0)

    def test_lineage_needs_existing_versions(self, store: MS) -> None:
        """create_parent_child raises ComponentNotFound if either side is missing."""
        real = store.create_component(_rec("model", "p")).key
        ghost = _key("model", "ghost", 0)
        with pytest.raises(ComponentNotFound):
            store.create_parent_child(real, ghost)
        with pytest.raises(ComponentNotFound):
            store.create_parent_child(ghost, real)
        assert store.get_children(real) == []

    # ------------------------------------------------------------------ jobs
    def test_jobs(self, store: MS) -> None:
        """create/get/update/show jobs; created_at set when missing; order by time then id."""
        component = store.create_component(_rec("model", "m")).key
        early = JobRecord(job_id="b", kind="predict", component=component, created_at=_T0)
        late = JobRecord(
            job_id="a", kind="predict", created_at=_T0 + timedelta(seconds=1), args={"n": 1}
        )
        same_time = JobRecord(job_id="c", kind="train", created_at=_T0)
        for job in (early, late, same_time):
            assert store.create_job(job) == job
        auto = store.create_job(JobRecord(job_id="d", kind="x"))
        assert auto.created_at is not None
        assert auto.created_at.tzinfo is not None
        assert store.get_job("a") == late
        assert [j.job_id for j in store.show_jobs()][:3] == ["b", "c", "a"]
        assert store.show_jobs(component=component) == [early]
        done = attrs.evolve(
            early,
            status=JobStatus.FAILED,
            started_at=_T0,
            finished_at=_T0 + timedelta(milliseconds=5),
            error="boom ' OR 1=1 --",
        )
        assert store.update_job(done) == done
        assert store.get_job("b") == done
        assert store.show_jobs(status=JobStatus.FAILED) == [done]
        assert store.show_jobs(component=component, status=JobStatus.PENDING) == []

    def test_job_errors(self, store: MS) -> None:
        """Duplicate ids raise VersionConflict; unknown ids raise JobNotFound."""
        job = JobRecord(job_id="j", kind="predict", created_at=_T0)
        store.create_job(job)
        with pytest.raises(VersionConflict):
            store.create_job(attrs.evolve(job, kind="other"))
        assert store.get_job("j") == job
        with pytest.raises(JobNotFound):
            store.get_job("nope")
        with pytest.raises(JobNotFound):
            store.update_job(JobRecord(job_id="nope", kind="x", created_at=_T0))

    def test_job_progress_fields_and_new_statuses(self, store: MS) -> None:
        """queued/cancelled and the progress fields (runner, rows, tasks, failures) round-trip."""
        component = store.create_component(_rec("model", "m")).key
        job = JobRecord(
            job_id="p",
            kind="predict",
            status=JobStatus.QUEUED,
            component=component,
            created_at=_T0,
            runner="dask://scheduler:8786",
            rows_total=1000,
            tasks_total=4,
        )
        assert store.create_job(job) == job
        assert store.show_jobs(status=JobStatus.QUEUED) == [job]
        progressed = attrs.evolve(
            job,
            status=JobStatus.CANCELLED,
            rows_done=500,
            tasks_done=2,
            tasks_failed=1,
            failed_sources=("id 500..749",),
            error="task 2 (id 500..749): ValueError: x",
            updated_at=_T0 + timedelta(seconds=3),
        )
        assert store.update_job(progressed) == progressed
        assert store.get_job("p") == progressed
        assert store.show_jobs(component=component, status=JobStatus.CANCELLED) == [progressed]
        assert store.show_jobs(status=JobStatus.QUEUED) == []

    def test_delete_job(self, store: MS) -> None:
        """delete_job removes one record; an unknown id raises JobNotFound."""
        for job_id in ("keep", "drop"):
            store.create_job(JobRecord(job_id=job_id, kind="predict", created_at=_T0))
        store.delete_job("drop")
        assert [j.job_id for j in store.show_jobs()] == ["keep"]
        with pytest.raises(JobNotFound):
            store.get_job("drop")
        with pytest.raises(JobNotFound):
            store.delete_job("drop")
        with pytest.raises(JobNotFound):
            store.delete_job("x" * 300)

    # ------------------------------------------------------------------ metadata
    def test_metadata(self, store: MS) -> None:
        """JSON values are stored, overwritten and returned exactly; default when absent."""
        assert store.get_metadata("k") is None
        assert store.get_metadata("k", {"d": 1}) == {"d": 1}
        value: JSONValue = {"a": [1, 2.5, None, True, "é"], "b": {"c": -(2**63)}}
        store.set_metadata("k", value)
        assert store.get_metadata("k") == value
        store.set_metadata("k", "replaced")
        assert store.get_metadata("k") == "replaced"
        store.set_metadata("' OR 1=1 --", None)
        assert store.get_metadata("' OR 1=1 --", "default") is None

    def test_swap_metadata(self, store: MS) -> None:
        """SupportsMetadataSwap: stores only over the expected value (None: absent), compared
        as JSON data; a lost swap changes nothing."""
        capable = isinstance(store, SupportsMetadataSwap)
        if not capable:
            assert not hasattr(store, "swap_metadata"), "swap_metadata without the Protocol"
            return
        swap: Any = store  # a MetadataStore that is also SupportsMetadataSwap
        assert swap.swap_metadata("k", {"a": 1}, {"v": 0}) is False  # absent, not {"a": 1}
        assert store.get_metadata("k") is None
        assert swap.swap_metadata("k", None, {"v": 1, "w": [1, 2]}) is True
        assert swap.swap_metadata("k", None, {"v": 9}) is False  # present now
        assert store.get_metadata("k") == {"v": 1, "w": [1, 2]}
        assert swap.swap_metadata("k", {"w": [1, 2], "v": 1}, "two") is True  # key order free
        assert swap.swap_metadata("k", {"v": 1, "w": [1, 2]}, "stale") is False
        assert store.get_metadata("k") == "two"
        store.set_metadata("k", None)
        assert swap.swap_metadata("k", None, 3) is True  # a stored None counts as absent
        assert store.get_metadata("k") == 3
        with pytest.raises(InvalidRecord):
            swap.swap_metadata("", None, 1)

    def test_concurrent_swaps_lose_no_update(self, store: MS) -> None:
        """SupportsMetadataSwap: writers that read, change and swap, retrying lost swaps,
        keep every one of their changes."""
        capable = isinstance(store, SupportsMetadataSwap)
        if not capable:
            return  # checked by test_swap_metadata
        swap: Any = store
        writers, each = max(2, self.concurrent_writers), 4
        start = threading.Barrier(writers)

        def work(n: int) -> int:
            start.wait(timeout=60)
            lost = 0
            for i in range(each):
                while True:
                    old = store.get_metadata("log")
                    items = list(old) if isinstance(old, list) else []
                    if swap.swap_metadata("log", old, [*items, f"{n}-{i}"]):
                        break
                    lost += 1
            return lost

        with ThreadPoolExecutor(max_workers=writers) as pool:
            list(pool.map(work, range(writers)))
        got = store.get_metadata("log")
        assert isinstance(got, list)
        want = sorted(f"{n}-{i}" for n in range(writers) for i in range(each))
        assert sorted(str(g) for g in got) == want, "a swap lost another writer's update"

    # ------------------------------------------------------------------ drop
    def test_drop_refused_without_force(self, store: MS) -> None:
        """drop() without force=True raises DropRefused and deletes nothing."""
        record = store.create_component(_rec("model", "m"))
        store.set_metadata("k", 1)
        with pytest.raises(DropRefused):
            store.drop()
        with pytest.raises(DropRefused):
            store.drop(force=False)
        assert store.get_component("model", "m") == record
        assert store.get_metadata("k") == 1

    def test_drop_force(self, store: MS) -> None:
        """drop(force=True) succeeds on a store with data."""
        store.create_component(_rec("model", "m"))
        store.drop(force=True)

    def test_stores_are_independent(self, store_factory: Callable[[], MS]) -> None:
        """Two fresh stores from the factory do not see each other's records."""
        first = store_factory()
        second = store_factory()
        first.create_component(_rec("model", "m"))
        assert second.show_components() == []

    # ------------------------------------------------------------------ concurrency
    def test_concurrent_version_allocation(self, store: MS) -> None:
        """Writers racing on one component get distinct, gap-free versions."""
        writers, each = self.concurrent_writers, self.versions_per_writer

        def work(n: int) -> list[int]:
            out = []
            for i in range(each):
                record = store.create_component(_rec("model", "race", data={"w": n, "i": i}))
                assert record.version is not None
                out.append(record.version)
            return out

        with ThreadPoolExecutor(max_workers=writers) as pool:
            versions = [v for vs in pool.map(work, range(writers)) for v in vs]
        assert sorted(versions) == list(range(writers * each)), sorted(versions)
        assert store.show_versions("model", "race") == list(range(writers * each))

    def test_reuse_unchanged(self, store: MS) -> None:
        """reuse_unchanged returns the latest version when its content is the same."""
        first = store.create_component(_rec("model", "m", data={"v": 0}), reuse_unchanged=True)
        assert first.version == 0
        again = store.create_component(
            _rec("model", "m", data={"v": 0}, created_at=_T0), reuse_unchanged=True
        )
        assert again == first, "unchanged content must return the stored version"
        changed = store.create_component(_rec("model", "m", data={"v": 1}), reuse_unchanged=True)
        assert changed.version == 1
        # Only the latest counts: going back to earlier content is a new version.
        back = store.create_component(_rec("model", "m", data={"v": 0}), reuse_unchanged=True)
        assert back.version == 2
        # Without the option the same content is a new version.
        assert store.create_component(_rec("model", "m", data={"v": 0})).version == 3
        # After deleting the latest, the version below it is the latest again.
        store.delete_component_version("model", "m", 3)
        store.delete_component_version("model", "m", 2)
        reused = store.create_component(_rec("model", "m", data={"v": 1}), reuse_unchanged=True)
        assert reused.version == 1
        assert store.show_versions("model", "m") == [0, 1]
        with pytest.raises(InvalidRecord):
            store.create_component(_rec("model", "m", version=9), reuse_unchanged=True)
        assert store.show_versions("model", "m") == [0, 1]

    def test_concurrent_identical_content_makes_one_version(self, store: MS) -> None:
        """Writers racing with identical content and reuse_unchanged create exactly one version."""
        writers = max(2, self.concurrent_writers)
        refs = {"w": ArtifactRef(sha256=_SHA, size=3)}
        # Every writer of a round starts at the same instant (a thread pool alone let the first
        # writer finish before the last one started on a loaded machine: no race at all).
        start = threading.Barrier(writers)

        def work(_n: int) -> int:
            start.wait(timeout=60)
            record = store.create_component(
                _rec("model", "same", data={"x": 1}, artifacts=refs), reuse_unchanged=True
            )
            assert record.version is not None
            return record.version

        with ThreadPoolExecutor(max_workers=writers) as pool:
            versions = list(pool.map(work, range(writers)))  # the first version races
            versions += pool.map(work, range(writers))  # then every writer reuses it
        assert set(versions) == {0}, versions
        assert store.show_versions("model", "same") == [0]
