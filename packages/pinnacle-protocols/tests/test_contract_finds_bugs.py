"""The contract suites must fail on stores with planted bugs.

Each broken store is a subclass of an in-memory reference store with one deliberate bug. The
test runs the contract's state machine (and, where one exists, the example test aimed at that
bug) programmatically and asserts that it fails. Shrinking is switched off (only detection
matters here) and the Hypothesis database is not used, so every run must find the bug afresh.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import attrs
import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from pinnacle_protocols.errors import PinnacleError
from pinnacle_protocols.filters import Filter, evaluate, validate_filter
from pinnacle_protocols.memory import (
    MemoryArtifactStore,
    MemoryDataBackend,
    MemoryMetadataStore,
    _Table,
)
from pinnacle_protocols.protocols import OrderBy, ProgressCallback, RefLike
from pinnacle_protocols.records import ArtifactRef, ComponentRecord
from pinnacle_protocols.testing import (
    ArtifactStoreContract,
    ContractBase,
    DataBackendContract,
    MetadataStoreContract,
)
from pinnacle_protocols.testing.contracts import FILTER_CASES

pytestmark = pytest.mark.memory

#: What a contract failure looks like: a failed assertion, an unexpected store error, or a
#: ``pytest.raises`` that did not see the expected error.
CONTRACT_FAILURE: tuple[type[BaseException], ...] = (
    AssertionError,
    PinnacleError,
    pytest.fail.Exception,
)


#: Detection is judged at the strength CI uses (the ``ci`` profile's 200 examples), whatever
#: the active profile; a run stops at the first failure, so this costs little on broken stores.
DETECTION_EXAMPLES = 200


def detection_settings(contract: ContractBase[Any]) -> settings:
    """The active profile's settings without shrinking and without the example database."""
    base = contract.state_machine_settings()
    return settings(
        base,
        max_examples=max(base.max_examples, DETECTION_EXAMPLES),
        phases=(Phase.explicit, Phase.generate),
        database=None,
        print_blob=False,
    )


def run_machine(contract: Any, factory: Callable[[], Any]) -> None:
    """Run ``contract``'s state machine on ``factory`` with detection settings."""
    run_state_machine_as_test(
        contract.state_machine(factory), settings=detection_settings(contract)
    )


# ============================================================================ artifacts
class TruncatingArtifactStore(MemoryArtifactStore):
    """Bug: put drops the last byte of the data (and hashes what it kept)."""

    def put(
        self, data: bytes | IO[bytes], *, callback: ProgressCallback | None = None
    ) -> ArtifactRef:
        raw = data if isinstance(data, bytes) else data.read()
        return super().put(raw[:-1], callback=callback)


class LyingArtifactStore(MemoryArtifactStore):
    """Bug: put keeps the right ref but stores bytes without the last byte."""

    def put(
        self, data: bytes | IO[bytes], *, callback: ProgressCallback | None = None
    ) -> ArtifactRef:
        raw = data if isinstance(data, bytes) else data.read()
        ref = super().put(raw, callback=callback)
        self._blobs[ref.sha256] = raw[:-1]
        return ref


class UndeletableArtifactStore(MemoryArtifactStore):
    """Bug: delete does nothing."""

    def delete(self, ref: RefLike) -> None:
        pass


class TrustingArtifactStore(MemoryArtifactStore):
    """Bug: exists() does not validate its key."""

    def exists(self, ref: RefLike) -> bool:
        key = ref.sha256 if isinstance(ref, ArtifactRef) else ref
        return key in self._blobs


class EagerDropArtifactStore(MemoryArtifactStore):
    """Bug: drop() deletes everything before refusing."""

    def drop(self, *, force: bool = False) -> None:
        self._blobs.clear()
        super().drop(force=force)


ARTIFACT_BUGS = [
    TruncatingArtifactStore,
    LyingArtifactStore,
    UndeletableArtifactStore,
    TrustingArtifactStore,
    EagerDropArtifactStore,
]


class _ArtifactContract(ArtifactStoreContract[MemoryArtifactStore]):
    max_blob_size = 2**20


@pytest.mark.parametrize("broken", ARTIFACT_BUGS, ids=lambda c: c.__name__)
def test_artifact_state_machine_finds(broken: type[MemoryArtifactStore]) -> None:
    """The artifact state machine fails on each broken artifact store."""
    with pytest.raises(CONTRACT_FAILURE):
        run_machine(_ArtifactContract(), lambda: broken.from_uri("memory://broken"))


def test_artifact_example_tests_find_truncation() -> None:
    """The example test for put/get fails on the truncating store too."""
    with pytest.raises(CONTRACT_FAILURE):
        _ArtifactContract().test_put_get_bytes(TruncatingArtifactStore.from_uri("memory://"))


# ============================================================================ metadata
class ReusingVersionStore(MemoryMetadataStore):
    """Bug: the next version is max(stored versions) + 1, so a deleted latest is reused."""

    def create_component(self, record: ComponentRecord) -> ComponentRecord:
        if record.version is None:
            versions = self.show_versions(record.type_id, record.identifier)
            record = attrs.evolve(record, version=max(versions) + 1 if versions else 0)
        return super().create_component(record)


class OneBasedVersionStore(MemoryMetadataStore):
    """Bug: version allocation starts at 1."""

    def create_component(self, record: ComponentRecord) -> ComponentRecord:
        if record.version is None:
            versions = self.show_versions(record.type_id, record.identifier)
            record = attrs.evolve(record, version=max(versions, default=0) + 1)
        return super().create_component(record)


class CaseInsensitiveStore(MemoryMetadataStore):
    """Bug: identifiers are compared case-insensitively (a MySQL ``_ci`` collation)."""

    def create_component(self, record: ComponentRecord) -> ComponentRecord:
        for key in self.show_components(record.type_id):
            if key.identifier.casefold() == record.identifier.casefold():
                record = attrs.evolve(record, identifier=key.identifier)
        return super().create_component(record)


class StickyLineageStore(MemoryMetadataStore):
    """Bug: deleting a version leaves its lineage edges behind."""

    def delete_component_version(
        self, type_id: str, identifier: str, version: int, *, force: bool = False
    ) -> None:
        edges = set(self._edges)
        super().delete_component_version(type_id, identifier, version, force=force)
        self._edges = edges


class CarelessDeleteStore(MemoryMetadataStore):
    """Bug: deleting a version others depend on does not raise ComponentInUse."""

    def delete_component_version(
        self, type_id: str, identifier: str, version: int, *, force: bool = False
    ) -> None:
        super().delete_component_version(type_id, identifier, version, force=True)


METADATA_BUGS = [
    ReusingVersionStore,
    OneBasedVersionStore,
    CaseInsensitiveStore,
    StickyLineageStore,
    CarelessDeleteStore,
]


class _MetadataContract(MetadataStoreContract[MemoryMetadataStore]):
    pass


@pytest.mark.parametrize("broken", METADATA_BUGS, ids=lambda c: c.__name__)
def test_metadata_state_machine_finds(broken: type[MemoryMetadataStore]) -> None:
    """The metadata state machine fails on each broken metadata store."""
    with pytest.raises(CONTRACT_FAILURE):
        run_machine(_MetadataContract(), lambda: broken.from_uri("memory://broken"))


def test_metadata_example_tests_find_version_reuse() -> None:
    """The example test for version reuse fails on the reusing store too."""
    with pytest.raises(CONTRACT_FAILURE):
        _MetadataContract().test_version_not_reused_after_deleting_latest(
            ReusingVersionStore.from_uri("memory://")
        )


# ============================================================================ data
def _ne_excludes_null(where: Any) -> Any:
    """Rewrite a filter so that ``$ne`` also requires the column to be non-NULL (SQL's ``<>``)."""
    if isinstance(where, list):
        return [_ne_excludes_null(w) for w in where]
    if not isinstance(where, Mapping):
        return where
    out: dict[str, Any] = {}
    for key, value in where.items():
        if key in ("$and", "$or"):
            out[key] = _ne_excludes_null(value)
        elif isinstance(value, Mapping) and "$ne" in value:
            out[key] = {**value, "$exists": True} if "$exists" not in value else dict(value)
        else:
            out[key] = value
    return out


class SqlNeBackend(MemoryDataBackend):
    """Bug: ``$ne`` excludes NULL rows (a naive ``col <> v`` translation)."""

    def _matching(self, table: str, where: Filter | None) -> tuple[_Table, list[dict[str, Any]]]:
        tbl = self._table(table)
        validate_filter(where, tbl.schema)
        buggy = _ne_excludes_null(where)
        return tbl, [r for r in tbl.rows if evaluate(buggy, r)]


class DeleteAllBackend(MemoryDataBackend):
    """Bug: delete ignores its filter (but reports the number of matching rows)."""

    def delete(self, table: str, where: Filter | None) -> int:
        matched = self.count(table, where)
        super().delete(table, None)
        return matched


class NullsLastBackend(MemoryDataBackend):
    """Bug: NULL sorts last when ascending (PostgreSQL's default)."""

    def select(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
    ) -> list[dict[str, Any]]:
        result = super().select(table, where, columns=columns, limit=limit, order_by=order_by)
        if order_by:
            first = order_by[0]
            column, direction = (first, "asc") if isinstance(first, str) else first
            if direction == "asc":
                result.sort(key=lambda r: r.get(column) is None)
        return result


class SharedRowsBackend(MemoryDataBackend):
    """Bug: select returns the stored dicts themselves, so callers can change the table."""

    def select(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
    ) -> list[dict[str, Any]]:
        if columns is None and limit is None and not order_by:
            return self._matching(table, where)[1]
        return super().select(table, where, columns=columns, limit=limit, order_by=order_by)


class LossyFloatBackend(MemoryDataBackend):
    """Bug: float columns come back rounded to float32."""

    def select(
        self,
        table: str,
        where: Filter | None = None,
        *,
        columns: Sequence[str] | None = None,
        limit: int | None = None,
        order_by: OrderBy | None = None,
    ) -> list[dict[str, Any]]:
        import struct

        result = super().select(table, where, columns=columns, limit=limit, order_by=order_by)
        schema = self.table_schema(table)
        for row in result:
            for name, value in row.items():
                if isinstance(value, float) and schema[name].dtype.value == "float":
                    row[name] = struct.unpack("f", struct.pack("f", value))[0]
        return result


DATA_BUGS = [SqlNeBackend, DeleteAllBackend, NullsLastBackend, LossyFloatBackend]


class _DataContract(DataBackendContract[MemoryDataBackend]):
    pass


@pytest.mark.parametrize("broken", DATA_BUGS, ids=lambda c: c.__name__)
def test_data_state_machine_finds(broken: type[MemoryDataBackend]) -> None:
    """The databackend state machine fails on each broken backend."""
    with pytest.raises(CONTRACT_FAILURE):
        run_machine(_DataContract(), lambda: broken.from_uri("memory://broken"))


def test_data_example_tests_find_ne_null() -> None:
    """The filter example ``ne-matches-null`` fails on the ``$ne`` backend."""
    case, where, expected = next(c for c in FILTER_CASES if c[0] == "ne-matches-null")
    with pytest.raises(CONTRACT_FAILURE):
        _DataContract().test_filter(SqlNeBackend.from_uri("memory://"), case, where, expected)


def test_data_example_tests_find_shared_rows() -> None:
    """``test_returned_rows_are_copies`` fails when select hands out the stored dicts."""
    with pytest.raises(CONTRACT_FAILURE):
        _DataContract().test_returned_rows_are_copies(SharedRowsBackend.from_uri("memory://"))


def test_bytes_io_helper_is_not_a_bug_source() -> None:
    """Sanity: the truncating store really truncates, so detection is not vacuous."""
    store = TruncatingArtifactStore.from_uri("memory://")
    assert store.put(io.BytesIO(b"abc")).size == 2
