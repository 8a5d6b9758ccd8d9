"""The scheme registry: entry points, lazy loading, unknown schemes, conflicts.

Fake distributions are real ``*.dist-info`` directories on ``sys.path`` (see conftest), found by
``importlib.metadata`` exactly as installed wheels are.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pinnacle_protocols.errors import ConfigError, SchemeConflictError, UnknownSchemeError
from pinnacledb import pinnacle
from pinnacledb._registry import INSTALL_HINTS, Role, StoreRegistry

FakeDist = Callable[..., Path]

FAKE_STORE = """
from pinnacle_protocols.memory import MemoryDataBackend, MemoryMetadataStore

LOADED = True


def backend(uri, **options):
    store = MemoryDataBackend.from_uri("memory://fake")
    store.default_metadata_uri = lambda: "nosuchscheme://x"
    store.default_artifact_uri = lambda: None
    return store


def metadata(uri, **options):
    return MemoryMetadataStore.from_uri("memory://")
"""


def test_installed_schemes_are_listed() -> None:
    reg = StoreRegistry.from_entry_points()
    assert "memory" in reg.schemes("databackend")
    assert "memory" in reg.schemes("metadata")
    assert "memory" in reg.schemes("artifact_store")


def test_unknown_scheme_lists_known_schemes() -> None:
    with pytest.raises(UnknownSchemeError) as info:
        pinnacle("nosuchdb://host/db")
    text = str(info.value)
    assert "nosuchdb" in text
    assert "memory://" in text
    assert "pinnacle.databackends" in text


def test_unknown_scheme_names_the_package_to_install() -> None:
    """A registry without pinnacle-mongo (built from an empty entry list, no mocking)."""
    empty = StoreRegistry({})
    with pytest.raises(UnknownSchemeError, match=r"pip install pinnacle-mongo"):
        empty.entry("databackend", "mongodb")
    with pytest.raises(UnknownSchemeError, match=r"pip install pinnacle-sql\[postgres\]"):
        empty.entry("metadata", "postgres")
    with pytest.raises(UnknownSchemeError, match=r"pip install pinnacle-ibis\[postgres\]"):
        empty.entry("databackend", "postgresql")
    with pytest.raises(UnknownSchemeError, match=r"pip install pinnacle-fs\[s3\]"):
        empty.entry("artifact_store", "s3")


def test_hint_table_covers_every_first_party_scheme() -> None:
    reg = StoreRegistry.from_entry_points()
    roles: tuple[Role, ...] = ("databackend", "metadata", "artifact_store")
    for role in roles:
        for scheme in reg.schemes(role):
            entry = reg.entry(role, scheme)
            if entry.distribution.startswith("pinnacle-"):
                assert scheme in INSTALL_HINTS[role], (role, scheme)
                # the hint names the distribution that claims the scheme (stale facts fail)
                hinted = INSTALL_HINTS[role][scheme].split("[")[0]
                assert hinted == entry.distribution, (role, scheme, hinted)


def test_embedded_default_without_its_packages_says_what_to_install() -> None:
    with pytest.raises(UnknownSchemeError, match=r"pinnacledb\[embedded\]"):
        pinnacle(registry=StoreRegistry({}))


def test_two_distributions_claiming_a_scheme_conflict(fake_dist: FakeDist) -> None:
    fake_dist(
        "fake-pinnacle-memory",
        {"pinnacle.databackends": {"memory": "fake_memory_store:backend"}},
        {"fake_memory_store": FAKE_STORE},
    )
    with pytest.raises(SchemeConflictError) as info:
        pinnacle("memory://")
    text = str(info.value)
    assert "fake-pinnacle-memory" in text
    assert "pinnacle-protocols" in text
    assert "Uninstall" in text
    # other roles of the same scheme are unaffected
    assert StoreRegistry.from_entry_points().entry("metadata", "memory")


def test_entry_point_store_is_imported_lazily(fake_dist: FakeDist) -> None:
    fake_dist(
        "fake-pinnacle-store",
        {
            "pinnacle.databackends": {"fakedb": "fake_lazy_store:backend"},
            "pinnacle.metadata_stores": {"fakemeta": "fake_lazy_store:metadata"},
        },
        {"fake_lazy_store": FAKE_STORE},
    )
    db = pinnacle("memory://", metadata_store="fakemeta://anything")
    assert "fake_lazy_store" not in sys.modules
    assert db.show() == []
    assert "fake_lazy_store" in sys.modules


def test_default_rule_falls_back_when_proposed_scheme_is_not_installed(
    fake_dist: FakeDist,
) -> None:
    """The fake backend proposes metadata on 'nosuchscheme://' and no artifact store."""
    fake_dist(
        "fake-pinnacle-fallback",
        {"pinnacle.databackends": {"fakedb": "fake_fallback_store:backend"}},
        {"fake_fallback_store": FAKE_STORE},
    )
    db = pinnacle("fakedb://x")
    # a plain function factory declares no proposal: the backend is built and asked
    assert db.slots["databackend"].loaded
    assert str(db.slots["metadata"].uri) == "sqlite://.pinnacledb/metadata.db"
    assert str(db.slots["artifact_store"].uri) == "filesystem://.pinnacledb/artifacts/"


COUNTING_STORE = """
from pinnacle_protocols.memory import MemoryDataBackend
from pinnacle_protocols.uri import RedactedURI

BUILT = []


class CountingBackend(MemoryDataBackend):
    @classmethod
    def from_uri(cls, uri="memory://", **options):
        BUILT.append(uri)
        return super().from_uri("memory://counted", **options)

    @classmethod
    def default_metadata_uri_for(cls, uri):
        return RedactedURI.parse("memory://proposed-metadata")

    @classmethod
    def default_artifact_uri_for(cls, uri):
        return RedactedURI.parse("memory://proposed-artifacts")
"""


def test_default_rule_asks_the_entry_point_class_without_building_it(
    fake_dist: FakeDist,
) -> None:
    """A backend class that declares its proposal (SupportsDefaultsFromURI) is not built by
    pinnacle(): its from_uri runs once, at first use."""
    fake_dist(
        "fake-pinnacle-counting",
        {"pinnacle.databackends": {"countdb": "fake_counting_store:CountingBackend.from_uri"}},
        {"fake_counting_store": COUNTING_STORE},
    )
    db = pinnacle("countdb://somewhere")
    built: list[str] = sys.modules["fake_counting_store"].BUILT
    assert built == []
    assert str(db.slots["metadata"].uri) == "memory://proposed-metadata"
    assert str(db.slots["artifact_store"].uri) == "memory://proposed-artifacts"
    assert not db.slots["databackend"].loaded
    assert db.databackend.list_tables() == []
    assert db.databackend.list_tables() == []
    assert built == ["countdb://somewhere"]


def test_broken_entry_point_is_a_clear_error(fake_dist: FakeDist) -> None:
    fake_dist(
        "fake-pinnacle-broken",
        {"pinnacle.metadata_stores": {"brokenmeta": "no_such_module_xyz:factory"}},
    )
    db = pinnacle("memory://", metadata_store="brokenmeta://")
    with pytest.raises(ConfigError, match=r"fake-pinnacle-broken.*Reinstall") as info:
        db.show()
    assert "no_such_module_xyz" in str(info.value)


def test_component_classes_come_from_the_components_entry_point(fake_dist: FakeDist) -> None:
    fake_dist(
        "fake-pinnacle-components",
        {"pinnacle.components": {"fake_note": "fake_components:Note"}},
        {
            "fake_components": """
            from typing import ClassVar
            from attrs import define
            from pinnacledb import Component

            @define(kw_only=True)
            class Note(Component):
                type_id: ClassVar[str] = "note"
                component_name: ClassVar[str] = "fake_note"
                text: str = ""
            """
        },
    )
    import fake_components  # type: ignore[import-not-found]

    first = pinnacle("memory://", metadata_store="sqlite://m.db", artifact_store="memory://")
    first.apply(fake_components.Note(identifier="n", text="hello"))
    # a new Datalayer that never saw the class finds it through the entry point
    second = pinnacle("memory://", metadata_store="sqlite://m.db", artifact_store="memory://")
    loaded = second.load("note", "n")
    assert loaded.text == "hello"  # type: ignore[attr-defined]
    first.close()
    second.close()
