"""The contract state machines used the way a third-party store author uses them (the README's
example): subclassed outside the package with ``make_store``, collected through ``TestCase``
or run with ``run_state_machine_as_test``; and a subclass on a planted broken store fails."""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from pinnacle_protocols.errors import BackendUnavailable
from pinnacle_protocols.memory import MemoryArtifactStore, MemoryDataBackend, MemoryMetadataStore
from pinnacle_protocols.protocols import ArrowTableLike, Rows
from pinnacle_protocols.records import DType
from pinnacle_protocols.testing import (
    ArtifactStoreStateMachine,
    DataBackendStateMachine,
    MetadataStoreStateMachine,
    VectorEngineStateMachine,
)
from pinnacle_protocols.vectors import MemoryVectorEngine

pytestmark = pytest.mark.memory


class MemoryDataMachine(DataBackendStateMachine[MemoryDataBackend]):
    """What a third party writes: a fresh store per example, and a knob or two."""

    max_rows = 20
    unordered_dtypes = frozenset({DType.BYTES})
    made: list[MemoryDataBackend] = []  # noqa: RUF012 - the test reads it back

    def make_store(self) -> MemoryDataBackend:
        store = MemoryDataBackend.from_uri("memory://")
        self.made.append(store)
        return store


class MemoryArtifactMachine(ArtifactStoreStateMachine[MemoryArtifactStore]):
    max_blob_size = 2**16

    def make_store(self) -> MemoryArtifactStore:
        return MemoryArtifactStore.from_uri("memory://")


class MemoryMetadataMachine(MetadataStoreStateMachine[MemoryMetadataStore]):
    def make_store(self) -> MemoryMetadataStore:
        return MemoryMetadataStore.from_uri("memory://")


class MemoryVectorMachine(VectorEngineStateMachine):
    engine_type = MemoryVectorEngine
    exact = True


# Collected by pytest as a unittest case (few examples: test_memory_contracts runs the same
# machine on the same store at full size).
TestMemoryDataMachine = MemoryDataMachine.TestCase
TestMemoryDataMachine.settings = settings(max_examples=10)


@pytest.mark.parametrize(
    "machine", [MemoryArtifactMachine, MemoryMetadataMachine, MemoryVectorMachine]
)
def test_the_other_machines_subclass_alike(machine: type[RuleBasedStateMachine]) -> None:
    """The artifact, metadata and vector machines run from a subclass just the same."""
    run_state_machine_as_test(machine, settings=settings(max_examples=5))


def test_each_example_gets_a_fresh_store_that_is_released() -> None:
    """``make_store`` runs once per example and ``teardown`` releases (closes) its store."""
    MemoryDataMachine.made.clear()
    run_state_machine_as_test(MemoryDataMachine, settings=settings(max_examples=5))
    assert len(MemoryDataMachine.made) >= 5
    assert len({id(s) for s in MemoryDataMachine.made}) == len(MemoryDataMachine.made)
    for store in MemoryDataMachine.made:
        with pytest.raises(BackendUnavailable, match="closed"):
            store.list_tables()


class ForgetfulBackend(MemoryDataBackend):
    """Bug: an insert of several rows keeps all but the last."""

    def insert(self, table: str, rows: Rows | ArrowTableLike) -> int:
        got = list(rows.to_pylist() if isinstance(rows, ArrowTableLike) else rows)
        if len(got) > 1:
            super().insert(table, got[:-1])
            return len(got)
        return super().insert(table, got)


class ForgetfulMachine(MemoryDataMachine):
    def make_store(self) -> MemoryDataBackend:
        return ForgetfulBackend.from_uri("memory://")


def test_a_subclassed_machine_catches_a_broken_store() -> None:
    """The same subclass, pointed at a store with a planted bug, fails."""
    detection = settings(max_examples=200, phases=(Phase.explicit, Phase.generate), database=None)
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        run_state_machine_as_test(ForgetfulMachine, settings=detection)
