"""What the Datalayer's helper modules need of it: three small Protocols, narrowest first.

:mod:`pinnacledb.gc`, :mod:`pinnacledb.copy`, :mod:`pinnacledb.predict` and
:mod:`pinnacledb.listeners` are called by :class:`~pinnacledb.base.datalayer.Datalayer` (which
imports them lazily) and are given the Datalayer. They depend on these Protocols, never on the
Datalayer module, so the dependency runs one way (``tests/test_layering.py`` checks it), and
what each helper may touch is written down here. The Datalayer satisfies all three (mypy checks
it where it hands itself over); the members are its internal API: documented and kept stable
for these helpers, not meant for applications.

* :class:`StoreHost`: the stores and each table's DataType columns (gc, copy, the vector index
  pointers).
* :class:`JobHost`: adds what running a model over a table needs (predict).
* :class:`EngineHost`: adds the write paths the listener engine works through (listeners).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pinnacle_protocols.compute import ComputeBackend
    from pinnacle_protocols.filters import Filter
    from pinnacle_protocols.protocols import ArtifactStore, DataBackend, MetadataStore
    from pinnacle_protocols.records import ComponentRecord
    from pinnacledb.base._lazy import LazyStore
    from pinnacledb.components._base import Component
    from pinnacledb.components.table import DataType
    from pinnacledb.jobs._driver import JobDriver
    from pinnacledb.listeners import InsertResult, Snapshot

__all__ = ["EngineHost", "JobHost", "StoreHost"]


class StoreHost(Protocol):
    """The three stores of a deployment and the DataType columns of its tables."""

    @property
    def databackend(self) -> DataBackend:
        """The user's data."""
        ...

    @property
    def metadata(self) -> MetadataStore:
        """Component records, lineage and jobs."""
        ...

    @property
    def artifact_store(self) -> ArtifactStore:
        """Blobs."""
        ...

    @property
    def slots(self) -> Mapping[str, LazyStore[Any]]:
        """The store slots (URI, class, built?) without building them."""
        ...

    def table_codec(self, table: str) -> dict[str, DataType] | None:
        """The DataType columns of ``table``'s Table component (None: none, or no component)."""
        ...


class JobHost(StoreHost, Protocol):
    """A deployment that runs models over its tables as jobs on its compute backend."""

    @property
    def compute(self) -> ComputeBackend:
        """Where jobs run."""
        ...

    @property
    def trusted_serializers(self) -> frozenset[str]:
        """Code-executing serializers the workers may load."""
        ...

    @property
    def job_driver(self) -> JobDriver:
        """Submits jobs and updates their records while someone waits."""
        ...

    def load(self, type_id: str, identifier: str, version: int | None = None) -> Component:
        """Rebuild a stored component (hash-verified, trust-checked)."""
        ...

    def apply(self, component: Component) -> ComponentRecord:
        """Store a component (and its children)."""
        ...

    def select(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        decode: bool = True,
    ) -> list[dict[str, Any]]:
        """Rows of ``table`` matching ``where``."""
        ...


class EngineHost(JobHost, Protocol):
    """A deployment whose listener engine writes outputs through its own write paths (the
    engine is also handed the deployment's vector index engine, which it keeps current)."""

    @property
    def trigger_job_rows(self) -> int:
        """A write changing at least this many rows runs its listener work as a job on an
        out-of-process compute backend (smaller writes compute in the writing process)."""
        ...

    def decode_rows(
        self, codec: Mapping[str, DataType], rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Decode the DataType columns of ``rows`` in place (and return them)."""
        ...

    def insert_with_snapshot(self, snap: Snapshot, table: str, rows: Any) -> InsertResult:
        """Insert as :meth:`~pinnacledb.base.datalayer.Datalayer.insert` does, triggering the
        listeners of ``snap`` (the listener set of the write that caused this one)."""
        ...

    def delete_with_snapshot(self, snap: Snapshot, table: str, where: Filter | None) -> int:
        """Delete as :meth:`~pinnacledb.base.datalayer.Datalayer.delete` does, under ``snap``."""
        ...
