"""The contract suites every store runs: subclass one per store and define ``make_store``; their
state machines, to subclass on their own.

See the package README ("Contract suite") for the fixtures, knobs and capability flags.
"""

from __future__ import annotations

from pinnacle_protocols.testing._artifact import (
    INVALID_REF_IDS,
    INVALID_REFS,
    ArtifactCorruptionContract,
    ArtifactStoreContract,
    ArtifactStoreStateMachine,
    Recorder,
)
from pinnacle_protocols.testing._base import ContractBase, StoreStateMachine, StoreTracker
from pinnacle_protocols.testing._compute import ComputeBackendContract
from pinnacle_protocols.testing._data import (
    BAD_FILTERS,
    BAD_ROWS,
    FILTER_CASES,
    ORDER_FILTER_CASES,
    DataBackendContract,
    DataBackendStateMachine,
    canonical,
    check_row_types,
    normalize_row,
    reference_order,
)
from pinnacle_protocols.testing._metadata import MetadataStoreContract, MetadataStoreStateMachine
from pinnacle_protocols.testing._vectors import (
    VectorEngineContract,
    VectorEngineStateMachine,
    brute_force,
    check_result,
    seeded_vectors,
)

__all__ = [
    "BAD_FILTERS",
    "BAD_ROWS",
    "FILTER_CASES",
    "INVALID_REFS",
    "INVALID_REF_IDS",
    "ORDER_FILTER_CASES",
    "ArtifactCorruptionContract",
    "ArtifactStoreContract",
    "ArtifactStoreStateMachine",
    "ComputeBackendContract",
    "ContractBase",
    "DataBackendContract",
    "DataBackendStateMachine",
    "MetadataStoreContract",
    "MetadataStoreStateMachine",
    "Recorder",
    "StoreStateMachine",
    "StoreTracker",
    "VectorEngineContract",
    "VectorEngineStateMachine",
    "brute_force",
    "canonical",
    "check_result",
    "check_row_types",
    "normalize_row",
    "reference_order",
    "seeded_vectors",
]
