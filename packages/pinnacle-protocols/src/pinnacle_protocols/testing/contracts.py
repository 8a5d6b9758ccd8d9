"""The contract suites every store runs: subclass one per store and define ``make_store``.

See the package README ("Contract suite") for the fixtures, knobs and capability flags.
"""

from __future__ import annotations

from pinnacle_protocols.testing._artifact import (
    INVALID_REF_IDS,
    INVALID_REFS,
    ArtifactCorruptionContract,
    ArtifactStoreContract,
    Recorder,
)
from pinnacle_protocols.testing._base import ContractBase, StoreTracker
from pinnacle_protocols.testing._data import (
    BAD_FILTERS,
    BAD_ROWS,
    FILTER_CASES,
    ORDER_FILTER_CASES,
    DataBackendContract,
    canonical,
    check_row_types,
    normalize_row,
    reference_order,
)
from pinnacle_protocols.testing._metadata import MetadataStoreContract

__all__ = [
    "BAD_FILTERS",
    "BAD_ROWS",
    "FILTER_CASES",
    "INVALID_REFS",
    "INVALID_REF_IDS",
    "ORDER_FILTER_CASES",
    "ArtifactCorruptionContract",
    "ArtifactStoreContract",
    "ContractBase",
    "DataBackendContract",
    "MetadataStoreContract",
    "Recorder",
    "StoreTracker",
    "canonical",
    "check_row_types",
    "normalize_row",
    "reference_order",
]
