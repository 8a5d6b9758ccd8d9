"""pinnacle_protocols.testing: the reusable contract suite (extra ``[testing]``).

Needs pytest and Hypothesis. ``pinnacle_protocols`` itself never imports this package.

Example::

    from pinnacle_protocols.testing import ArtifactStoreContract

    class TestMyStore(ArtifactStoreContract[MyStore]):
        @pytest.fixture
        def make_store(self, tmp_path) -> Callable[[], MyStore]:
            counter = itertools.count()
            return lambda: MyStore.from_uri(f"file://{tmp_path}/{next(counter)}")
"""

from __future__ import annotations

from pinnacle_protocols.testing import strategies
from pinnacle_protocols.testing.contracts import (
    ArtifactCorruptionContract,
    ArtifactStoreContract,
    ContractBase,
    DataBackendContract,
    MetadataStoreContract,
    Recorder,
    StoreTracker,
)

__all__ = [
    "ArtifactCorruptionContract",
    "ArtifactStoreContract",
    "ContractBase",
    "DataBackendContract",
    "MetadataStoreContract",
    "Recorder",
    "StoreTracker",
    "strategies",
]
