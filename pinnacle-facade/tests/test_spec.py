"""The examples of shared/spec/datalayer-overview.md, run as written (with pinnacledb names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pinnacledb import CFG, LinearModel, pinnacle
from pinnacledb.base.datalayer import Datalayer


def _uris(db: Datalayer) -> dict[str, str]:
    return {role: str(slot.uri) for role, slot in db.slots.items()}


def _equivalent(a: Datalayer, b: Datalayer) -> None:
    """Same stores: what one writes the other reads (data, components, artifacts)."""
    assert _uris(a) == _uris(b)
    a.create_table("docs", {"id": "int", "text": "str"})
    a.insert("docs", [{"id": 1, "text": "hello"}])
    rows = [{k: v for k, v in r.items() if k != "_id"} for r in b.select("docs")]
    assert rows == [{"id": 1, "text": "hello"}]
    model = LinearModel.fit("m", np.eye(3), np.arange(3.0))
    rec = a.apply(model)
    loaded = b.load("model", "m")
    np.testing.assert_array_equal(loaded.weights, model.weights)  # type: ignore[attr-defined]
    assert b.apply(model).version == rec.version  # b sees a's version: unchanged


@pytest.mark.duckdb
@pytest.mark.sqlite
def test_overview_example() -> None:
    # >>> from pinnacledb import pinnacle
    # >>> db = pinnacle()
    # >>> db.databackend / db.artifact_store / db.metadata
    from pinnacle_fs import FsspecArtifactStore
    from pinnacle_ibis import IbisDataBackend
    from pinnacle_sql import SQLAlchemyMetadataStore

    db = pinnacle()
    assert isinstance(db.databackend, IbisDataBackend)
    assert isinstance(db.artifact_store, FsspecArtifactStore)
    assert isinstance(db.metadata, SQLAlchemyMetadataStore)
    assert "duckdb://.pinnacledb/data.duckdb" in repr(db.databackend)
    db.close()


def test_cfg_artifact_store_mongodb() -> None:
    CFG.artifact_store = "mongodb://localhost:27017/documents"
    db = pinnacle("memory://")
    assert _uris(db)["artifact_store"] == "mongodb://localhost:27017/documents"
    assert db.slots["artifact_store"].class_path == "pinnacle_mongo.GridFSArtifactStore"


@pytest.mark.file
def test_cfg_artifact_store_filesystem(tmp_path: Path) -> None:
    CFG.artifact_store = "filesystem://./data"
    db = pinnacle("memory://", metadata_store="memory://")
    ref = db.apply(LinearModel.fit("m", np.eye(2), [1.0, 2.0])).artifacts["weights"]
    assert [p.name for p in (tmp_path / "data").rglob(ref.sha256)]


def test_cfg_metadata_mongodb() -> None:
    CFG.metadata = "mongodb://localhost:27017/documents"
    db = pinnacle("memory://")
    assert _uris(db)["metadata"] == "mongodb://localhost:27017/documents"
    assert db.slots["metadata"].class_path == "pinnacle_mongo.MongoMetadataStore"


@pytest.mark.nx27017
def test_mongodb_default_equivalence(mongo_server: Any) -> None:
    from pinnacle_mongo.testing import fresh_database_name

    uri = mongo_server.uri(fresh_database_name("spec"))
    # db = pinnacle('mongodb://localhost:27018/documents')
    short = pinnacle(uri)
    # db = pinnacle(uri, metadata_store=uri, artifact_store=uri)
    explicit = pinnacle(uri, metadata_store=uri, artifact_store=uri)
    _equivalent(short, explicit)  # a fresh database per test: nothing to clean up


@pytest.mark.sqlite
def test_sqlite_default_equivalence() -> None:
    # db = pinnacle('sqlite://<my-database>.db')
    short = pinnacle("sqlite://my-database.db")
    explicit = pinnacle(
        "sqlite://my-database.db",
        metadata_store="sqlite://my-database.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    _equivalent(short, explicit)
    short.close()
    explicit.close()


@pytest.mark.postgres
def test_postgres_equivalence(pg_uri: str) -> None:
    short = pinnacle(pg_uri)
    explicit = pinnacle(
        pg_uri, metadata_store=pg_uri, artifact_store="filesystem://.pinnacledb/artifacts/"
    )
    _equivalent(short, explicit)
    short.close()
    explicit.close()
