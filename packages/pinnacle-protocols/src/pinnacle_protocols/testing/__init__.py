"""pinnacle_protocols.testing: the reusable contract suite (extra ``[testing]``).

Needs pytest and Hypothesis. ``pinnacle_protocols`` itself never imports this package.

Example::

    from pinnacle_protocols.testing import ArtifactStoreContract

    class TestMyStore(ArtifactStoreContract[MyStore]):
        @pytest.fixture
        def make_store(self, tmp_path) -> Callable[[], MyStore]:
            counter = itertools.count()
            return lambda: MyStore.from_uri(f"file://{tmp_path}/{next(counter)}")

The state machines are classes of their own (``ArtifactStoreStateMachine``...): subclass one,
define ``make_store`` and collect ``MyMachine.TestCase`` (see the package README).
"""

from __future__ import annotations

from pinnacle_protocols.testing import strategies
from pinnacle_protocols.testing._base import FuzzReport, fuzz_state_machine
from pinnacle_protocols.testing.contracts import (
    ArtifactCorruptionContract,
    ArtifactStoreContract,
    ArtifactStoreStateMachine,
    ComputeBackendContract,
    ContractBase,
    DataBackendContract,
    DataBackendStateMachine,
    MetadataStoreContract,
    MetadataStoreStateMachine,
    Recorder,
    StoreStateMachine,
    StoreTracker,
    VectorEngineContract,
    VectorEngineStateMachine,
)

__all__ = [
    "ArtifactCorruptionContract",
    "ArtifactStoreContract",
    "ArtifactStoreStateMachine",
    "ComputeBackendContract",
    "ContractBase",
    "DataBackendContract",
    "DataBackendStateMachine",
    "FuzzReport",
    "MetadataStoreContract",
    "MetadataStoreStateMachine",
    "Recorder",
    "StoreStateMachine",
    "StoreTracker",
    "VectorEngineContract",
    "VectorEngineStateMachine",
    "fuzz_state_machine",
    "strategies",
]
