"""The three contract suites run on the in-memory reference stores."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pinnacle_protocols.errors import (
    BackendUnavailable,
    ConfigError,
    FilterError,
    InvalidURIError,
    PinnacleError,
    SchemaError,
)
from pinnacle_protocols.memory import MemoryArtifactStore, MemoryDataBackend, MemoryMetadataStore
from pinnacle_protocols.records import JobRecord, JobStatus, Schema
from pinnacle_protocols.testing import (
    ArtifactCorruptionContract,
    ArtifactStoreContract,
    DataBackendContract,
    MetadataStoreContract,
)
from pinnacle_protocols.uri import RedactedURI

pytestmark = pytest.mark.memory


class TestMemoryArtifactStore(
    ArtifactStoreContract[MemoryArtifactStore], ArtifactCorruptionContract[MemoryArtifactStore]
):
    """MemoryArtifactStore against the artifact contract, corruption tests included."""

    @pytest.fixture
    def make_store(self) -> Callable[[], MemoryArtifactStore]:
        return lambda: MemoryArtifactStore.from_uri("memory://artifacts", chunk_size=2**16)

    def corrupt(self, store: MemoryArtifactStore, sha256: str) -> None:
        blobs = store._blobs
        blobs[sha256] = blobs[sha256][:-1] + bytes([blobs[sha256][-1] ^ 1])


class TestMemoryMetadataStore(MetadataStoreContract[MemoryMetadataStore]):
    """MemoryMetadataStore against the metadata contract."""

    @pytest.fixture
    def make_store(self) -> Callable[[], MemoryMetadataStore]:
        return lambda: MemoryMetadataStore.from_uri("memory://metadata")


class TestMemoryDataBackend(DataBackendContract[MemoryDataBackend]):
    """MemoryDataBackend against the databackend contract."""

    @pytest.fixture
    def make_store(self) -> Callable[[], MemoryDataBackend]:
        return lambda: MemoryDataBackend.from_uri("memory://data")


# ---------------------------------------------------------------------------- memory specifics
SECRET_URI = "memory://store?password=hunter2&token=s3cr3t"


def test_secrets_never_in_messages() -> None:
    """A secret in the URI shows in no repr and no error message."""
    artifacts = MemoryArtifactStore.from_uri(SECRET_URI)
    metadata = MemoryMetadataStore.from_uri(SECRET_URI)
    data = MemoryDataBackend.from_uri(SECRET_URI)
    messages = [str(artifacts.uri), repr(artifacts.uri), repr(artifacts), repr(data)]
    failing: list[Callable[[], object]] = [
        lambda: artifacts.get("0" * 64),
        artifacts.drop,
        lambda: metadata.get_component("t", "i"),
        lambda: metadata.get_job("j"),
        metadata.drop,
        lambda: data.select("missing"),
        data.drop,
    ]
    for call in failing:
        with pytest.raises(PinnacleError) as info:
            call()
        messages.append(str(info.value))
    for store in (artifacts, metadata, data):
        store.close()
    with pytest.raises(BackendUnavailable) as closed:
        data.list_tables()
    messages.append(str(closed.value))
    for message in messages:
        assert "hunter2" not in message
        assert "s3cr3t" not in message


def test_from_uri_rejects_other_schemes_and_options() -> None:
    """Only memory:// URIs; unknown options are a ConfigError naming them."""
    with pytest.raises(InvalidURIError):
        MemoryDataBackend.from_uri("sqlite://x.db")
    with pytest.raises(ConfigError, match="bogus"):
        MemoryMetadataStore.from_uri("memory://", bogus=1)
    with pytest.raises(ConfigError):
        MemoryArtifactStore.from_uri("memory://", chunk_size=0)


def test_each_from_uri_is_a_fresh_store() -> None:
    """Two stores from the same URI share nothing."""
    first = MemoryDataBackend.from_uri("memory://same")
    second = MemoryDataBackend.from_uri("memory://same")
    first.create_table("t", Schema.of(x="int"))
    assert second.list_tables() == []


def test_native_and_execute() -> None:
    """native() is a copy of the rows; execute() runs a select mapping."""
    backend = MemoryDataBackend.from_uri("memory://")
    backend.create_table("t", Schema.of(x="int"))
    backend.insert("t", [{"x": 2}, {"x": 1}])
    rows = backend.native("t")
    rows.clear()
    assert backend.count("t") == 2
    assert backend.execute({"table": "t", "where": {"x": {"$gt": 1}}}) == [{"x": 2}]
    assert backend.execute({"table": "t", "order_by": ["x"], "limit": 1}) == [{"x": 1}]
    with pytest.raises(FilterError):
        backend.execute({"table": "t", "bogus": 1})
    assert backend.default_metadata_uri() == RedactedURI.parse("memory://")
    assert backend.default_artifact_uri() == RedactedURI.parse("memory://")


def test_order_by_unorderable_column_is_a_schema_error() -> None:
    """JSON and vector columns have no portable order."""
    backend = MemoryDataBackend.from_uri("memory://")
    backend.create_table("t", Schema.of(j="json", v="vector"))
    for column in ("j", "v"):
        with pytest.raises(SchemaError):
            backend.select("t", order_by=[column])


def test_update_job_without_created_at_keeps_it() -> None:
    """update_job with created_at=None keeps the stored creation time (memory semantics)."""
    store = MemoryMetadataStore.from_uri("memory://")
    created = store.create_job(JobRecord(job_id="j", kind="k"))
    updated = store.update_job(JobRecord(job_id="j", kind="k", status=JobStatus.RUNNING))
    assert updated.created_at == created.created_at


# ---------------------------------------------------------------------------- the plugin
pytest_plugins = ("pytester",)

_GAP_MODULE = """
import pytest
from pinnacle_protocols.errors import UnsupportedOperation
from pinnacle_protocols.memory import MemoryDataBackend
from pinnacle_protocols.testing import DataBackendContract


class NoUpdate(MemoryDataBackend):
    def update(self, table, where, values):
        raise UnsupportedOperation("no update here")


class TestGaps(DataBackendContract[NoUpdate]):
    known_gaps = {
        "test_update": pytest.mark.notimpl(reason="no update", raises=UnsupportedOperation),
        "test_filter[ne-matches-null]": pytest.mark.notyet(reason="x", raises=AssertionError),
    }

    @pytest.fixture
    def make_store(self):
        return lambda: NoUpdate.from_uri("memory://")

    @pytest.mark.notimpl(reason="declared on an override", raises=UnsupportedOperation)
    def test_update_rejects_bad_values(self, store):
        super().test_update_rejects_bad_values(store)
"""


def test_known_gaps_become_strict_xfails(pytester: pytest.Pytester) -> None:
    """known_gaps and notimpl marks turn into strict xfails; a gap that passes fails the run."""
    pytester.makepyfile(test_gaps=_GAP_MODULE)
    result = pytester.runpytest("-k", "update or ne-matches-null", "-q", "--strict-markers")
    # test_update and test_update_rejects_bad_values xfail; the $ne case really passes on the
    # memory store, so its strict xfail turns into a failure (XPASS(strict)).
    result.assert_outcomes(xfailed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_filter?ne-matches-null?*XPASS(strict)*"])


def test_gap_marker_needs_raises(pytester: pytest.Pytester) -> None:
    """A notimpl mark without raises= is a usage error, not a silent xfail."""
    pytester.makepyfile(
        test_bad="""
import pytest

@pytest.mark.notimpl(reason="forgot raises")
def test_x():
    pass
"""
    )
    result = pytester.runpytest("-q", "--strict-markers")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*needs reason= and raises=*"])


def test_profiles_are_registered() -> None:
    """The plugin registered dev and ci; ci runs at least 200 examples per state machine."""
    from hypothesis import settings

    assert settings.get_profile("ci").max_examples >= 200
    assert settings.get_profile("dev").deadline is None


def test_count_many_falls_back_to_one_call_per_count() -> None:
    """``count_many`` on a backend without SupportsMatchCounts: count / count_unmatched each."""
    from pinnacle_protocols.errors import UnsupportedOperation
    from pinnacle_protocols.protocols import SupportsMatchCounts, count_many
    from pinnacle_protocols.records import CountQuery

    store = MemoryDataBackend.from_uri("memory://")
    assert not isinstance(store, SupportsMatchCounts)
    store.create_table("l", Schema.of(id="int", x="str"))
    store.create_table("r", Schema.of(k="int", y="str"))
    store.insert("l", [{"id": 1, "x": "a"}, {"id": 2, "x": None}, {"id": 3, "x": "c"}])
    store.insert("r", [{"k": 1, "y": "a"}, {"k": 2, "y": None}, {"k": 3, "y": "C"}])
    queries = [
        CountQuery(table="l", other="r", on=(("id", "k"), ("x", "y"))),  # 3: case counts
        CountQuery(table="r", other="l", on=(("k", "id"),), other_where={"id": {"$lt": 3}}),
        CountQuery(table="l", where={"x": None}),
        CountQuery(table="r"),
    ]
    assert count_many(store, queries) == [1, 1, 1, 3]
    assert count_many(store, []) == []

    class NoMatchCount:
        """A backend with count only (no count_unmatched)."""

        uri = "plain://"

        def count(self, table: str, where: object = None) -> int:
            return 7

    plain: object = NoMatchCount()
    assert count_many(plain, [CountQuery(table="l")]) == [7]  # type: ignore[arg-type]
    with pytest.raises(UnsupportedOperation, match="SupportsMatchCount"):
        count_many(plain, queries)  # type: ignore[arg-type]
