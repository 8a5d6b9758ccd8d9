"""The contract suites must fail on stores with planted bugs.

Each broken store is a subclass of an in-memory reference store with one deliberate bug. The
test runs the contract's state machine (and, where one exists, the example test aimed at that
bug) programmatically and asserts that it fails. Shrinking is switched off (only detection
matters here) and the Hypothesis database is not used, so every run must find the bug afresh.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import attrs
import pytest
from hypothesis import Phase, seed, settings
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
from pinnacle_protocols.records import ArtifactRef, ComponentRecord, JSONValue
from pinnacle_protocols.testing import (
    ArtifactStoreContract,
    ContractBase,
    DataBackendContract,
    MetadataStoreContract,
    fuzz_state_machine,
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

    def create_component(
        self, record: ComponentRecord, *, reuse_unchanged: bool = False
    ) -> ComponentRecord:
        if record.version is None:
            versions = self.show_versions(record.type_id, record.identifier)
            record = attrs.evolve(record, version=max(versions) + 1 if versions else 0)
        return super().create_component(record, reuse_unchanged=reuse_unchanged)


class OneBasedVersionStore(MemoryMetadataStore):
    """Bug: version allocation starts at 1."""

    def create_component(
        self, record: ComponentRecord, *, reuse_unchanged: bool = False
    ) -> ComponentRecord:
        if record.version is None:
            versions = self.show_versions(record.type_id, record.identifier)
            record = attrs.evolve(record, version=max(versions, default=0) + 1)
        return super().create_component(record, reuse_unchanged=reuse_unchanged)


class CaseInsensitiveStore(MemoryMetadataStore):
    """Bug: identifiers are compared case-insensitively (a MySQL ``_ci`` collation)."""

    def create_component(
        self, record: ComponentRecord, *, reuse_unchanged: bool = False
    ) -> ComponentRecord:
        for key in self.show_components(record.type_id):
            if key.identifier.casefold() == record.identifier.casefold():
                record = attrs.evolve(record, identifier=key.identifier)
        return super().create_component(record, reuse_unchanged=reuse_unchanged)


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


class CheckThenCreateStore(MemoryMetadataStore):
    """Bug: reuse_unchanged compares with the latest outside the lock that allocates."""

    def create_component(
        self, record: ComponentRecord, *, reuse_unchanged: bool = False
    ) -> ComponentRecord:
        if reuse_unchanged:
            versions = self.show_versions(record.type_id, record.identifier)
            if versions:
                latest = self.get_component(record.type_id, record.identifier)
                if latest.content_hash == record.content_hash:
                    return latest
            time.sleep(0.01)  # the window in which another writer checks too
        return super().create_component(record)


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


def test_metadata_example_tests_find_check_then_create() -> None:
    """Racing identical writers find a reuse check made outside the allocating lock."""
    with pytest.raises(CONTRACT_FAILURE):
        _MetadataContract().test_concurrent_identical_content_makes_one_version(
            CheckThenCreateStore.from_uri("memory://")
        )


class CheckThenSwapStore(MemoryMetadataStore):
    """Bug: the compare of a swap is not atomic with its write (read, pause, then set)."""

    def swap_metadata(self, key: str, expected: JSONValue, value: JSONValue) -> bool:
        if self.get_metadata(key) != expected:
            return False
        time.sleep(0.001)  # another writer's swap lands here
        self.set_metadata(key, value)
        return True


class BlindSwapStore(MemoryMetadataStore):
    """Bug: a swap overwrites whatever is stored (``set_metadata`` under another name)."""

    def swap_metadata(self, key: str, expected: JSONValue, value: JSONValue) -> bool:
        self.set_metadata(key, value)
        return True


def test_metadata_example_tests_find_a_non_atomic_swap() -> None:
    """Racing read-change-swap writers lose updates on a check-then-set swap."""
    with pytest.raises(CONTRACT_FAILURE):
        _MetadataContract().test_concurrent_swaps_lose_no_update(
            CheckThenSwapStore.from_uri("memory://")
        )


def test_metadata_example_tests_find_a_blind_swap() -> None:
    """A swap that ignores ``expected`` fails the swap example test."""
    with pytest.raises(CONTRACT_FAILURE):
        _MetadataContract().test_swap_metadata(BlindSwapStore.from_uri("memory://"))


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


def _c_escapes(where: Any) -> Any:
    """A filter whose string operands lost their control characters to an escaping layer.

    Issue 19 was one case: MySQL read sqlglot's ``\\a \\v \\f`` as the letters a, v, f.
    """
    if isinstance(where, str):
        return "".join(c if ord(c) >= 0x20 else "?" for c in where)
    if isinstance(where, list):
        return [_c_escapes(w) for w in where]
    if isinstance(where, Mapping):
        return {k: _c_escapes(v) for k, v in where.items()}
    return where


class CEscapeBackend(MemoryDataBackend):
    """Bug (like issue 19): control characters in filter strings compare as ``?``."""

    def _matching(self, table: str, where: Filter | None) -> tuple[_Table, list[dict[str, Any]]]:
        tbl = self._table(table)
        validate_filter(where, tbl.schema)
        buggy = _c_escapes(where)
        return tbl, [r for r in tbl.rows if evaluate(buggy, r)]


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


def test_data_example_tests_find_control_character_escapes() -> None:
    """``test_control_characters_in_values`` fails when filters lose control characters.

    (The state machine draws such filters too, but matching rows are rare enough that 200
    examples do not find this bug reliably: the example test is the guarantee.)
    """
    with pytest.raises(CONTRACT_FAILURE):
        _DataContract().test_control_characters_in_values(CEscapeBackend.from_uri("memory://"))


def test_data_example_tests_find_shared_rows() -> None:
    """``test_returned_rows_are_copies`` fails when select hands out the stored dicts."""
    with pytest.raises(CONTRACT_FAILURE):
        _DataContract().test_returned_rows_are_copies(SharedRowsBackend.from_uri("memory://"))


def test_bytes_io_helper_is_not_a_bug_source() -> None:
    """Sanity: the truncating store really truncates, so detection is not vacuous."""
    store = TruncatingArtifactStore.from_uri("memory://")
    assert store.put(io.BytesIO(b"abc")).size == 2


# ============================================================================ fuzz rounds
def test_fuzz_rounds_report_a_replay_that_fails_again() -> None:
    """A failing fuzz round names its seed and size; replaying exactly that round fails again."""
    contract = _DataContract()
    machine = contract.state_machine(lambda: DeleteAllBackend.from_uri("memory://broken"))
    base = settings(detection_settings(contract), max_examples=DETECTION_EXAMPLES)
    with pytest.raises(CONTRACT_FAILURE) as info:
        fuzz_state_machine(machine, base, 30.0, 1234, "tests/x.py::T::test_state_machine")
    notes = "\n".join(getattr(info.value, "__notes__", []))
    found = re.search(
        r"FUZZ-REPLAY: HYPOTHESIS_PROFILE=\S+ PINNACLE_FUZZ_EXAMPLES=(\d+) uv run pytest "
        r"tests/x.py::T::test_state_machine --hypothesis-seed=(\d+)",
        notes,
    )
    assert found, notes
    examples, round_seed = int(found[1]), int(found[2])
    assert round_seed >= 1234
    with pytest.raises(CONTRACT_FAILURE):
        run_state_machine_as_test(
            seed(round_seed)(machine), settings=settings(base, max_examples=examples)
        )


def test_fuzz_rounds_fill_the_budget_on_a_correct_store() -> None:
    """On a correct store the rounds run (with consecutive seeds) until the budget is spent."""
    contract = _DataContract()
    machine = contract.state_machine(lambda: MemoryDataBackend.from_uri("memory://"))
    base = settings(detection_settings(contract), max_examples=50, stateful_step_count=5)
    report = fuzz_state_machine(machine, base, 2.0, 7, "t")
    assert report.seconds >= 2.0
    assert report.rounds >= 2
    assert report.last_seed == 7 + report.rounds - 1
    assert report.examples >= report.rounds
    assert str(report).startswith("t: ")
