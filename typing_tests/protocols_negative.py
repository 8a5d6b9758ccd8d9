"""Negative static checks: mypy must reject these (checked by mypy --strict).

Each line carries ``# type: ignore[code]``. mypy --strict warns about unused ignores, so if
one of these ever type-checked (a Protocol became too loose, or a store satisfied the wrong
Protocol), the ignore would become unused and ``mypy typing_tests`` would fail.
"""

from __future__ import annotations

from collections.abc import Iterator

from pinnacle_protocols import ArtifactRef, ArtifactStore, DataBackend, MetadataStore, RedactedURI
from pinnacle_protocols.memory import MemoryArtifactStore, MemoryDataBackend, MemoryMetadataStore


class IncompleteArtifactStore:
    """Has most of ArtifactStore but no ``put`` and a wrongly typed ``get``."""

    @property
    def uri(self) -> RedactedURI:
        """The store's URI."""
        return RedactedURI.parse("memory://")

    def get(self, ref: int) -> str:
        """Wrong parameter and return types."""
        return str(ref)

    def exists(self, ref: ArtifactRef | str) -> bool:
        """Whether the blob exists."""
        return False

    def iter_refs(self) -> Iterator[ArtifactRef]:
        """No blobs."""
        return iter(())

    def close(self) -> None:
        """Nothing to close."""


def stores_are_not_each_others_protocols() -> None:
    """A store of one role does not satisfy another role's Protocol."""
    a: ArtifactStore = MemoryMetadataStore.from_uri("memory://")  # type: ignore[assignment]
    b: MetadataStore = MemoryDataBackend.from_uri("memory://")  # type: ignore[assignment]
    c: DataBackend = MemoryArtifactStore.from_uri("memory://")  # type: ignore[assignment]


def incomplete_store_is_rejected() -> None:
    """A class missing methods or with wrong signatures is not an ArtifactStore."""
    store: ArtifactStore = IncompleteArtifactStore()  # type: ignore[assignment]


def protocol_methods_are_typed() -> None:
    """Wrong argument types are caught through the Protocol."""
    store: ArtifactStore = MemoryArtifactStore.from_uri("memory://")
    store.put("not bytes")  # type: ignore[arg-type]
    store.get(123)  # type: ignore[arg-type]
