"""Static conformance: each in-memory reference store is its Protocol (checked by mypy --strict).

This file is not a test module for pytest: ``mypy typing_tests`` checks it. An assignment
below fails type checking as soon as a store's signature drifts from its Protocol.
"""

from __future__ import annotations

from typing import assert_type

from pinnacle_protocols import (
    ArtifactRef,
    ArtifactStore,
    ComponentRecord,
    DataBackend,
    MetadataStore,
    RedactedURI,
    Schema,
    StoreFactory,
)
from pinnacle_protocols.memory import MemoryArtifactStore, MemoryDataBackend, MemoryMetadataStore


def stores_are_their_protocols() -> None:
    """Assign each in-memory store to its Protocol type."""
    artifacts: ArtifactStore = MemoryArtifactStore.from_uri("memory://")
    metadata: MetadataStore = MemoryMetadataStore.from_uri("memory://")
    data: DataBackend = MemoryDataBackend.from_uri("memory://")


def from_uri_returns_the_concrete_class() -> None:
    """``from_uri`` is typed ``-> Self``: callers keep the concrete type."""
    assert_type(MemoryArtifactStore.from_uri("memory://"), MemoryArtifactStore)
    assert_type(MemoryMetadataStore.from_uri("memory://"), MemoryMetadataStore)
    assert_type(MemoryDataBackend.from_uri("memory://"), MemoryDataBackend)


def from_uri_is_a_store_factory() -> None:
    """The entry points point at ``from_uri``; it fits ``StoreFactory``."""
    factories: list[StoreFactory] = [
        MemoryArtifactStore.from_uri,
        MemoryMetadataStore.from_uri,
        MemoryDataBackend.from_uri,
    ]


def capability_flags_are_class_level() -> None:
    """``supports_update`` / ``supports_delete`` are readable on the class, as ClassVar[bool]."""
    flags: tuple[bool, bool] = (
        MemoryDataBackend.supports_update,
        MemoryDataBackend.supports_delete,
    )


def use_through_the_protocols(
    artifacts: ArtifactStore, metadata: MetadataStore, data: DataBackend
) -> None:
    """Code written against the Protocols only (what the facade does)."""
    ref = artifacts.put(b"abc")
    assert_type(ref, ArtifactRef)
    assert_type(artifacts.get(ref.sha256), bytes)
    assert_type(artifacts.uri, RedactedURI)
    record = metadata.create_component(ComponentRecord(type_id="model", identifier="m"))
    assert_type(record, ComponentRecord)
    data.create_table("t", Schema.of(id="int"))
    assert_type(data.insert("t", [{"id": 1}]), int)
    assert_type(data.count("t", {"id": {"$gt": 0}}), int)


def call_with_memory_stores() -> None:
    """The concrete stores are accepted wherever the Protocols are expected."""
    use_through_the_protocols(
        MemoryArtifactStore.from_uri("memory://"),
        MemoryMetadataStore.from_uri("memory://"),
        MemoryDataBackend.from_uri("memory://"),
    )
