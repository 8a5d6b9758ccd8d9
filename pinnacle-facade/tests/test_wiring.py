"""pinnacle(): the default rule, laziness, repr and store objects."""

from __future__ import annotations

from pathlib import Path
from typing import assert_type

import pytest

from pinnacle_protocols.compute import ComputeBackend
from pinnacle_protocols.errors import BackendUnavailable, ConfigError, InvalidURIError
from pinnacle_protocols.memory import MemoryArtifactStore, MemoryDataBackend, MemoryMetadataStore
from pinnacledb import CFG, LinearModel, pinnacle
from pinnacledb._config import DEFAULT_ARTIFACT_URI, DEFAULT_DATABACKEND_URI, DEFAULT_METADATA_URI
from pinnacledb.base._lazy import LazyStore
from pinnacledb.base.datalayer import Datalayer


def _uris(db: Datalayer) -> dict[str, str]:
    return {role: str(slot.uri) for role, slot in db.slots.items()}


def test_nothing_configured_is_the_embedded_default(tmp_path: Path) -> None:
    db = pinnacle()
    assert _uris(db) == {
        "databackend": DEFAULT_DATABACKEND_URI,
        "metadata": DEFAULT_METADATA_URI,
        "artifact_store": DEFAULT_ARTIFACT_URI,
    }
    assert DEFAULT_DATABACKEND_URI == "duckdb://.pinnacledb/data.duckdb"
    assert DEFAULT_METADATA_URI == "sqlite://.pinnacledb/metadata.db"
    assert DEFAULT_ARTIFACT_URI == "filesystem://.pinnacledb/artifacts/"
    # cheap: nothing built, nothing on disk
    assert not any(slot.loaded for slot in db.slots.values())
    assert not (tmp_path / ".pinnacledb").exists()
    assert db.config is not None
    sources = db.config.sources()
    assert {sources[k] for k in ("databackend", "metadata", "artifact_store")} == {
        "default (embedded)"
    }


@pytest.mark.duckdb
@pytest.mark.sqlite
def test_embedded_default_works_without_a_server(tmp_path: Path) -> None:
    db = pinnacle()
    db.create_table("t", {"id": "int"})
    db.insert("t", [{"id": 1}])
    db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))
    assert db.count("t") == 1
    assert db.show("model") == ["m"]
    db.close()
    assert (tmp_path / ".pinnacledb" / "data.duckdb").is_file()
    assert (tmp_path / ".pinnacledb" / "metadata.db").is_file()
    assert (tmp_path / ".pinnacledb" / "artifacts").is_dir()


def test_mongodb_uri_puts_all_three_stores_on_it() -> None:
    uri = "mongodb://127.0.0.1:1/documents"
    db = pinnacle(uri)
    assert set(_uris(db).values()) == {uri}
    assert db.config is not None
    assert "default_metadata_uri" in db.config.sources()["metadata"]
    assert "default_artifact_uri" in db.config.sources()["artifact_store"]


def test_proposed_defaults_stay_redacted_uris_parsed_once() -> None:
    """The databackend's proposal is its own RedactedURI, used as it is: never a plain string
    with the password in the settings, revealed only to the store's factory.

    The proposal comes from the backend's class (the backend is not built for it), so it is the
    databackend slot's URI, parsed once in pinnacle(); the backend built later from the
    revealed string has an equal one."""
    db = pinnacle("mongodb://someone:s3cret-pw@127.0.0.1:1/documents")
    assert db.config is not None
    proposed = db.slots["databackend"].uri
    for role in ("metadata", "artifact_store"):
        setting = getattr(db.config, role)
        assert setting.value is proposed
        assert db.slots[role].uri is proposed
        assert db.slots[role].reveal_uri() == proposed.reveal()
    assert "s3cret-pw" in proposed.reveal()
    assert "s3cret-pw" not in repr(db.config) + repr(db)
    assert db.databackend.uri == proposed
    assert db.databackend.uri.reveal() == proposed.reveal()


@pytest.mark.sqlite
def test_sql_uri_puts_metadata_in_the_same_database() -> None:
    db = pinnacle("sqlite://my-database.db")
    assert _uris(db) == {
        "databackend": "sqlite://my-database.db",
        "metadata": "sqlite://my-database.db",
        "artifact_store": "filesystem://.pinnacledb/artifacts/",
    }


@pytest.mark.postgres
def test_postgres_uri_puts_metadata_in_the_same_database() -> None:
    uri = "postgresql://someone:pw@127.0.0.1:5432/test"
    db = pinnacle(uri)
    shown = "postgresql://someone:***@127.0.0.1:5432/test"
    assert _uris(db) == {
        "databackend": shown,
        "metadata": shown,
        "artifact_store": "filesystem://.pinnacledb/artifacts/",
    }


@pytest.mark.polars
def test_scheme_without_metadata_store_falls_back_to_sqlite_and_filesystem() -> None:
    db = pinnacle("polars://")
    assert _uris(db)["metadata"] == "sqlite://.pinnacledb/metadata.db"
    assert _uris(db)["artifact_store"] == "filesystem://.pinnacledb/artifacts/"
    assert db.config is not None
    assert "fallback" in db.config.sources()["metadata"]


def test_memory_uri_gives_memory_stores() -> None:
    db = pinnacle("memory://")
    assert set(_uris(db).values()) == {"memory://"}
    assert isinstance(db.metadata, MemoryMetadataStore)


def test_only_the_missing_stores_follow_the_default_rule() -> None:
    db = pinnacle("mongodb://127.0.0.1:1/db", metadata_store="memory://m")
    assert _uris(db)["metadata"] == "memory://m"
    assert _uris(db)["artifact_store"] == "mongodb://127.0.0.1:1/db"


def test_store_objects_can_be_passed() -> None:
    backend = MemoryDataBackend.from_uri("memory://objects")
    store = MemoryArtifactStore.from_uri("memory://objects")
    db = pinnacle(
        backend, metadata_store=MemoryMetadataStore.from_uri("memory://"), artifact_store=store
    )
    assert db.databackend is backend
    assert db.artifact_store is store
    assert "memory://objects" in repr(db)
    db.close()  # objects passed in are the caller's: not closed
    assert backend.list_tables() == []


def test_cfg_objects_are_stores_too() -> None:
    backend = MemoryDataBackend.from_uri("memory://cfg")
    CFG.databackend = "memory://x"
    db = pinnacle(backend)
    assert db.databackend is backend


def test_repr_shows_redacted_uris_and_classes() -> None:
    db = pinnacle(
        "mongodb://alice:s3cr3t-pw@127.0.0.1:1/db",
        metadata_store="postgresql://bob:s3cr3t-pw@127.0.0.1:1/db",
        artifact_store="s3://key:s3cr3t-pw@bucket/prefix?endpoint_url=http://127.0.0.1:1",
    )
    text = repr(db)
    assert "s3cr3t-pw" not in text
    assert "mongodb://alice:***@127.0.0.1:1/db" in text
    assert "pinnacle_mongo.MongoDataBackend" in text
    assert "pinnacle_sql.SQLAlchemyMetadataStore" in text
    assert "pinnacle_fs.FsspecArtifactStore" in text
    assert "s3cr3t-pw" not in repr(db.slots)


def test_stores_are_built_on_first_use_only() -> None:
    db = pinnacle("memory://")

    def loaded() -> dict[str, bool]:
        return {role: slot.loaded for role, slot in db.slots.items()}

    # the default stores come from the backend's class: nothing is built yet
    assert loaded() == {"databackend": False, "metadata": False, "artifact_store": False}
    db.show()
    assert loaded() == {"databackend": False, "metadata": True, "artifact_store": False}
    assert db.databackend.list_tables() == []
    assert loaded() == {"databackend": True, "metadata": True, "artifact_store": False}


@pytest.mark.parametrize(
    ("uri", "metadata", "artifacts"),
    [
        ("memory://", "memory://", "memory://"),
        ("mongodb://127.0.0.1:1/documents", "mongodb://127.0.0.1:1/documents", "same"),
        ("postgresql://someone:pw@127.0.0.1:1/test", "same", DEFAULT_ARTIFACT_URI),
        ("sqlalchemy+sqlite://data.db", "sqlite://data.db", DEFAULT_ARTIFACT_URI),
    ],
)
def test_default_stores_do_not_build_the_databackend(
    uri: str, metadata: str, artifacts: str, tmp_path: Path
) -> None:
    """The default rule asks the backend's class (issue #17): pinnacle() builds nothing,
    connects nothing (port 1 has no server) and writes nothing; the backend is built on first
    use, and proposes the same stores then."""
    db = pinnacle(uri)
    assert not any(slot.loaded for slot in db.slots.values())
    shown = str(db.slots["databackend"].uri)
    expected = {
        "databackend": shown,
        "metadata": shown if metadata == "same" else metadata,
        "artifact_store": shown if artifacts == "same" else artifacts,
    }
    assert _uris(db) == expected
    assert db.config is not None
    assert "default_metadata_uri" in db.config.sources()["metadata"]
    assert list(tmp_path.iterdir()) == []
    backend = db.databackend
    assert db.slots["databackend"].loaded
    assert str(backend.default_metadata_uri()) == expected["metadata"]
    proposed_artifacts = backend.default_artifact_uri()
    if proposed_artifacts is not None:
        assert str(proposed_artifacts) == expected["artifact_store"]
    db.close()


def test_unreachable_databackend_fails_at_first_use_not_in_pinnacle() -> None:
    """PostgreSQL on a port without a server: pinnacle() returns, the first use says so.

    Where the PostgreSQL driver is not installed (the facade's install-alone venv), the first
    use says that instead, with the ``pip install`` line: still not ``pinnacle()``.
    """
    import importlib.util

    db = pinnacle("postgresql://someone:pw@127.0.0.1:1/test")
    assert not db.slots["databackend"].loaded
    if importlib.util.find_spec("psycopg") is None:
        with pytest.raises(ConfigError, match="needs the Python driver 'psycopg'"):
            db.databackend.list_tables()
    else:
        with pytest.raises(BackendUnavailable):
            db.databackend.list_tables()


def test_invalid_databackend_uri_still_fails_in_pinnacle() -> None:
    """The class checks the URI as from_uri does: a MongoDB URI without a database is refused
    by pinnacle(), not at first use."""
    with pytest.raises(InvalidURIError, match="names no database"):
        pinnacle("mongodb://127.0.0.1:1")


def test_explicit_stores_need_not_build_the_backend() -> None:
    db = pinnacle("memory://", metadata_store="memory://", artifact_store="memory://")
    assert not any(slot.loaded for slot in db.slots.values())


@pytest.mark.duckdb
def test_duckdb_file_databackend_round_trip() -> None:
    db = pinnacle("duckdb://my.duckdb")
    assert _uris(db)["metadata"] in ("duckdb://my.duckdb", "sqlite://.pinnacledb/metadata.db")
    db.create_table("t", {"id": "int"})
    db.insert("t", [{"id": 1}])
    db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))
    db.close()
    again = pinnacle("duckdb://my.duckdb")
    assert again.count("t") == 1
    assert again.show("model") == ["m"]
    again.close()


def test_lazy_store_get_is_typed() -> None:
    """``LazyStore[S].get()`` returns an ``S`` (the assert_type lines are checked by mypy)."""
    db = pinnacle("memory://")
    assert_type(db.compute_slot.get(), ComputeBackend)
    store = MemoryMetadataStore()
    slot = LazyStore("metadata", instance=store)
    assert_type(slot.get(), MemoryMetadataStore)
    assert slot.get() is store
    assert slot.loaded
