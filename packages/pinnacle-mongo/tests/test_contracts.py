"""The pinnacle_protocols contract suites on MongoDB wire-protocol servers.

One class per (contract, server): ``mongoeco`` and ``nx-27017`` always, a real mongod when
``PINNACLE_TEST_MONGODB_URI`` is set. Each store gets a fresh database. Where a test server
answers wrongly, the test is a strict xfail (``known_gaps``) that names the server and the
error or wrong result; the library has no workaround for either server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import pytest
from hypothesis import Phase, settings

from pinnacle_mongo import GridFSArtifactStore, MongoDataBackend, MongoMetadataStore
from pinnacle_mongo.testing import FreshDatabases, contract_gap_marks, external_mongodb
from pinnacle_protocols.records import DType
from pinnacle_protocols.testing import (
    ArtifactCorruptionContract,
    ArtifactStoreContract,
    DataBackendContract,
    MetadataStoreContract,
)

# Known gaps of the test servers: pinnacle_mongo.testing.CONTRACT_GAPS (shared with the store
# matrix of tests-integration). mongoeco compares an explicit ``null`` as lower than every value
# in $lt/$lte (MongoDB's type bracketing never matches null there).


class _NoShrink:
    """For state machines that are known to fail on a server: find the failure, don't shrink.

    Shrinking a failure that is the server's, not ours, costs minutes and tells nothing.
    """

    max_examples: ClassVar[int | None] = 10

    def state_machine_settings(self) -> settings:
        base: settings = super().state_machine_settings()  # type: ignore[misc]
        return settings(
            base,
            phases=(Phase.explicit, Phase.reuse, Phase.generate),
            report_multiple_bugs=False,
        )


class _OnServer:
    """Mixin: ``make_store`` builds stores on fresh databases of the class's ``server_kind``.

    ``example_cap`` caps the state machine's examples below the profile's (``ci``: 200): both
    wire servers are Python programs that answer in ~3 ms, and the invariants check the whole
    store after every step, so 200 examples of 30 steps would take many minutes per machine.
    """

    server_kind: ClassVar[str]
    store_class: ClassVar[Any]
    store_options: ClassVar[Mapping[str, Any]] = {}
    example_cap: ClassVar[int | None] = None

    def state_machine_settings(self) -> settings:
        base: settings = super().state_machine_settings()  # type: ignore[misc]
        if self.example_cap is None or base.max_examples <= self.example_cap:
            return base
        return settings(base, max_examples=self.example_cap)

    @pytest.fixture
    def server_dbs(self, request: pytest.FixtureRequest) -> Iterator[FreshDatabases]:
        databases = FreshDatabases(request.getfixturevalue(f"{self.server_kind}_server"))
        yield databases
        databases.drop_all()

    @pytest.fixture
    def make_store(self, server_dbs: FreshDatabases) -> Callable[[], Any]:
        return lambda: self.store_class.from_uri(server_dbs.uri(), **self.store_options)


class _GridFSCorruption(ArtifactCorruptionContract[GridFSArtifactStore]):
    def corrupt(self, store: GridFSArtifactStore, sha256: str) -> None:
        db = store._conn.database()
        files = db[f"{store.bucket}.files"].find_one({"filename": sha256})
        assert files is not None
        chunks = db[f"{store.bucket}.chunks"]
        chunk = chunks.find_one({"files_id": files["_id"], "n": 0})
        assert chunk is not None, "no chunk 0 to corrupt"
        data = bytes(chunk["data"])
        flipped = bytes([data[0] ^ 0xFF]) + data[1:]
        result = chunks.update_one({"_id": chunk["_id"]}, {"$set": {"data": flipped}})
        assert result.modified_count == 1, "the chunk was not changed"


# ============================================================================ mongoeco
@pytest.mark.mongoeco
class TestArtifactStoreMongoeco(
    _OnServer, ArtifactStoreContract[GridFSArtifactStore], _GridFSCorruption
):
    """GridFSArtifactStore on mongoeco."""

    server_kind = "mongoeco"
    store_class = GridFSArtifactStore
    max_blob_size = 2**20
    example_cap = 100


@pytest.mark.mongoeco
class TestMetadataStoreMongoeco(_OnServer, MetadataStoreContract[MongoMetadataStore]):
    """MongoMetadataStore on mongoeco."""

    server_kind = "mongoeco"
    store_class = MongoMetadataStore
    example_cap = 60


@pytest.mark.mongoeco
class TestDataBackendMongoeco(_OnServer, DataBackendContract[MongoDataBackend]):
    """MongoDataBackend on mongoeco."""

    server_kind = "mongoeco"
    store_class = MongoDataBackend
    example_cap = 40
    # The state machine would draw $lt/$lte over NULL cells and hit mongoeco's bug at random;
    # range filters and order_by on these dtypes are covered by test_mongoeco_ranges.py.
    unordered_dtypes = frozenset({DType.INT, DType.FLOAT, DType.STR, DType.BYTES, DType.DATETIME})
    known_gaps: ClassVar[Mapping[str, pytest.MarkDecorator]] = contract_gap_marks(
        "databackend", "mongoeco"
    )


# ============================================================================ nx-27017
@pytest.mark.nx27017
class TestArtifactStoreNx27017(
    _NoShrink, _OnServer, ArtifactStoreContract[GridFSArtifactStore], _GridFSCorruption
):
    """GridFSArtifactStore on nx-27017."""

    server_kind = "nx27017"
    store_class = GridFSArtifactStore
    max_blob_size = 2**20
    known_gaps: ClassVar[Mapping[str, pytest.MarkDecorator]] = contract_gap_marks(
        "artifact_store", "nx27017"
    )

    def release_store(self, store: GridFSArtifactStore) -> None:
        # drop() fails on nx-27017 (see known_gaps); the test's databases are dropped anyway.
        store.close()


@pytest.mark.nx27017
class TestMetadataStoreNx27017(_OnServer, MetadataStoreContract[MongoMetadataStore]):
    """MongoMetadataStore on nx-27017."""

    server_kind = "nx27017"
    store_class = MongoMetadataStore
    example_cap = 60


@pytest.mark.nx27017
class TestDataBackendNx27017(_NoShrink, _OnServer, DataBackendContract[MongoDataBackend]):
    """MongoDataBackend on nx-27017."""

    server_kind = "nx27017"
    store_class = MongoDataBackend
    known_gaps: ClassVar[Mapping[str, pytest.MarkDecorator]] = contract_gap_marks(
        "databackend", "nx27017"
    )


# ============================================================================ real MongoDB
if external_mongodb() is not None:

    @pytest.mark.mongodb
    class TestArtifactStoreMongoDB(
        _OnServer, ArtifactStoreContract[GridFSArtifactStore], _GridFSCorruption
    ):
        """GridFSArtifactStore on the real MongoDB of PINNACLE_TEST_MONGODB_URI."""

        server_kind = "mongodb"
        store_class = GridFSArtifactStore

    @pytest.mark.mongodb
    class TestMetadataStoreMongoDB(_OnServer, MetadataStoreContract[MongoMetadataStore]):
        """MongoMetadataStore on the real MongoDB of PINNACLE_TEST_MONGODB_URI."""

        server_kind = "mongodb"
        store_class = MongoMetadataStore

    @pytest.mark.mongodb
    class TestDataBackendMongoDB(_OnServer, DataBackendContract[MongoDataBackend]):
        """MongoDataBackend on the real MongoDB of PINNACLE_TEST_MONGODB_URI."""

        server_kind = "mongodb"
        store_class = MongoDataBackend
