"""The same scenario through the facade on every store combination users get here.

Each combination is wired by ``pinnacle()`` from URIs (the default rule fills in what is not
given), runs :func:`pinnacle_it.scenario.run_scenario` (apply, load, predict, remove, gc, data
changes) and must produce exactly the summary of the in-memory reference stores: the same
versions, artifact sha256, predictions, errors and gc results. On every combination, too,
untrusted pickle never runs and a stored record cannot choose the method ``db.predict`` calls.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from pinnacle_it.scenario import Pipeline, Summary, run_scenario
from pinnacle_it.services import Services

from pinnacle_protocols.errors import UntrustedMethodError, UntrustedSerializerError
from pinnacle_protocols.records import ComponentRecord
from pinnacledb import DataType, Model, Table, pinnacle
from pinnacledb.base.datalayer import Datalayer

Build = Callable[[Services, Path, list[Callable[[], None]]], Datalayer]


@attrs.frozen(kw_only=True)
class Combo:
    """A (databackend, metadata, artifact store) combination and the classes it must get."""

    name: str
    marks: tuple[str, ...]
    build: Build
    classes: tuple[str, str, str]  # databackend, metadata, artifact store class names
    how: str  # which rule produced it
    gap: Any = None  # a notyet/notimpl mark when a test server cannot run the scenario


def _mongo_uri(services: Services, kind: str, cleanups: list[Callable[[], None]]) -> str:
    from pinnacle_mongo.testing import fresh_database_name

    server = services.require(kind)
    name = fresh_database_name("itx")

    def drop() -> None:
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(
            server.uri("admin"), serverSelectionTimeoutMS=5000
        )
        with contextlib.suppress(Exception):
            client.drop_database(name)
        client.close()

    cleanups.append(drop)
    uri: str = server.uri(name)
    return uri


def _sql_uri(services: Services, kind: str, scheme: str) -> str:
    server = services.require(kind)
    uri: str = server.uri_of(server.create_database(), scheme=scheme)
    return uri


def _embedded(services: Services, tmp: Path, cleanups: list[Callable[[], None]]) -> Datalayer:
    return pinnacle(components=[Pipeline])


def _memory(services: Services, tmp: Path, cleanups: list[Callable[[], None]]) -> Datalayer:
    return pinnacle(
        "memory://", metadata_store="memory://", artifact_store="memory://", components=[Pipeline]
    )


def _sqlite(services: Services, tmp: Path, cleanups: list[Callable[[], None]]) -> Datalayer:
    return pinnacle("sqlite://data.db", components=[Pipeline])


def _postgres_s3(services: Services, tmp: Path, cleanups: list[Callable[[], None]]) -> Datalayer:
    s3 = services.require("s3")
    return pinnacle(
        _sql_uri(services, "postgres", "postgres"),
        artifact_store=s3.fresh_uri("x"),
        components=[Pipeline],
    )


def _mariadb_file(services: Services, tmp: Path, cleanups: list[Callable[[], None]]) -> Datalayer:
    return pinnacle(
        _sql_uri(services, "mariadb", "mysql"),
        artifact_store="filesystem://./artifacts",
        components=[Pipeline],
    )


def _mongo_nx(services: Services, tmp: Path, cleanups: list[Callable[[], None]]) -> Datalayer:
    return pinnacle(_mongo_uri(services, "nx27017", cleanups), components=[Pipeline])


def _mongo_eco(services: Services, tmp: Path, cleanups: list[Callable[[], None]]) -> Datalayer:
    return pinnacle(_mongo_uri(services, "mongoeco", cleanups), components=[Pipeline])


def _duckdb_mongoeco(
    services: Services, tmp: Path, cleanups: list[Callable[[], None]]
) -> Datalayer:
    uri = _mongo_uri(services, "mongoeco", cleanups)
    return pinnacle(
        "duckdb://data.duckdb", metadata_store=uri, artifact_store=uri, components=[Pipeline]
    )


_IBIS = "pinnacle_ibis"
_SQL = "pinnacle_sql.SQLAlchemyMetadataStore"
_FS = "pinnacle_fs.FsspecArtifactStore"
_MEM = "pinnacle_protocols.memory"

COMBOS = (
    Combo(
        name="memory",
        marks=("memory",),
        build=_memory,
        classes=(
            f"{_MEM}.MemoryDataBackend",
            f"{_MEM}.MemoryMetadataStore",
            f"{_MEM}.MemoryArtifactStore",
        ),
        how="all three given",
    ),
    Combo(
        name="embedded-default",
        marks=("duckdb", "sqlite", "file"),
        build=_embedded,
        classes=(f"{_IBIS}.DuckDBDataBackend", _SQL, _FS),
        how="nothing configured: the embedded default",
    ),
    Combo(
        name="sqlite-sqlite-file",
        marks=("sqlite", "file"),
        build=_sqlite,
        classes=(f"{_IBIS}.SQLiteDataBackend", _SQL, _FS),
        how="databackend given; metadata in the same SQLite file, artifacts on the filesystem",
    ),
    Combo(
        name="postgres-postgres-s3",
        marks=("postgres", "s3"),
        build=_postgres_s3,
        classes=(f"{_IBIS}.PostgresDataBackend", _SQL, _FS),
        how="databackend and artifact store given; metadata in the same database",
    ),
    Combo(
        name="mariadb-mariadb-file",
        marks=("mariadb", "file"),
        build=_mariadb_file,
        classes=(f"{_IBIS}.MySQLDataBackend", _SQL, _FS),
        how="databackend and artifact store given; metadata in the same database",
    ),
    Combo(
        name="mongo-nx27017",
        marks=("nx27017", "gridfs"),
        build=_mongo_nx,
        classes=(
            "pinnacle_mongo.MongoDataBackend",
            "pinnacle_mongo.MongoMetadataStore",
            "pinnacle_mongo.GridFSArtifactStore",
        ),
        how="databackend given; metadata and GridFS artifacts in the same MongoDB database",
    ),
    Combo(
        name="mongo-mongoeco",
        marks=("mongoeco", "gridfs"),
        build=_mongo_eco,
        classes=(
            "pinnacle_mongo.MongoDataBackend",
            "pinnacle_mongo.MongoMetadataStore",
            "pinnacle_mongo.GridFSArtifactStore",
        ),
        how="databackend given; metadata and GridFS artifacts in the same MongoDB database",
    ),
    Combo(
        name="duckdb-mongoeco-gridfs",
        marks=("duckdb", "mongoeco", "gridfs"),
        build=_duckdb_mongoeco,
        classes=(
            f"{_IBIS}.DuckDBDataBackend",
            "pinnacle_mongo.MongoMetadataStore",
            "pinnacle_mongo.GridFSArtifactStore",
        ),
        how="all three given (DuckDB data, MongoDB metadata, GridFS artifacts)",
    ),
)


def _class_name(store: Any) -> str:
    cls = type(store)
    return f"{cls.__module__}.{cls.__qualname__}"


def _same_class(got: str, want: str) -> bool:
    # Re-exported names: pinnacle_ibis.engines.DuckDBDataBackend is pinnacle_ibis.DuckDB...
    mod, _, name = want.rpartition(".")
    return got.endswith(f".{name}") and got.startswith(mod.split(".")[0])


@pytest.fixture
def stack(
    request: pytest.FixtureRequest, services: Services, tmp_path: Path
) -> Iterator[tuple[Combo, Datalayer]]:
    combo: Combo = request.param
    cleanups: list[Callable[[], None]] = []
    db = combo.build(services, tmp_path, cleanups)
    try:
        yield combo, db
    finally:
        try:
            with contextlib.suppress(Exception):
                db.drop(force=True)
            db.close()
        finally:
            for cleanup in cleanups:
                cleanup()


@pytest.fixture(scope="module")
def reference() -> Summary:
    """The summary on the in-memory reference stores."""
    db = pinnacle(
        "memory://", metadata_store="memory://", artifact_store="memory://", components=[Pipeline]
    )
    try:
        return run_scenario(db)
    finally:
        db.close()


def _params() -> list[Any]:
    return [
        pytest.param(
            c,
            id=c.name,
            marks=[getattr(pytest.mark, m) for m in c.marks] + ([c.gap] if c.gap else []),
        )
        for c in COMBOS
    ]


@pytest.mark.parametrize("stack", _params(), indirect=True)
def test_same_observable_results(stack: tuple[Combo, Datalayer], reference: Summary) -> None:
    """Every combination gives exactly the reference summary (and is wired as expected)."""
    combo, db = stack
    got = [_class_name(db.databackend), _class_name(db.metadata), _class_name(db.artifact_store)]
    for role, have, want in zip(
        ("databackend", "metadata", "artifacts"), got, combo.classes, strict=True
    ):
        assert _same_class(have, want), f"{combo.name} ({combo.how}): {role} is {have}, want {want}"
    summary = run_scenario(db)
    diff = {
        k: (summary.get(k), reference.get(k)) for k in reference if summary.get(k) != reference[k]
    }
    assert not diff, f"{combo.name} differs from the in-memory reference (got, want): {diff}"
    assert summary.keys() == reference.keys()


def test_reference_summary_is_right(reference: Summary) -> None:
    """The reference itself: facts that follow from the scenario, independent of any store."""
    r = reference
    assert r["model_v0"] == 0
    assert r["reapply_unchanged"] == 0
    assert r["model_v1"] == 1
    assert r["versions"] == [0, 1]
    assert r["v0_exact"] is True
    assert r["v0_params"] == [pytest.approx(3.0), pytest.approx(-1.0)]
    assert r["emb_roundtrip"] is True
    assert r["emb_after_gc"] is True
    assert r["predict_rows"] == 24
    assert r["predict_again_rows"] == 12
    assert r["outputs_after_again"] == 24
    assert [p[3] for p in r["predictions"]] == [round(3 * i / 4 - 1, 6) for i in range(24)]
    assert r["remove_in_use"] == "ComponentInUse"
    assert r["remove_missing"] == "ComponentNotFound"
    assert r["remove_missing_version"] == "ComponentNotFound"
    assert r["load_removed"] == "ComponentNotFound"
    assert r["removed_v0"] == [0]
    # v0's weights and the 4 deleted rows' vectors are garbage; nothing else is.
    assert r["gc_deleted"] == r["gc_dry_deletable"]
    assert len(r["gc_deleted"]) == 5
    assert r["weights_sha"][0] in r["gc_deleted"]
    assert r["weights_sha"][1] in r["stored_artifacts"]
    assert r["gc_after"] == [r["gc_scanned"] - 5, r["gc_scanned"] - 5, 0, 0]
    assert r["v1_after_gc"] is True
    assert r["show_end"] == [
        ("datatype", "vec3", 0),
        ("schema", "points", 0),
        ("table", "points", 0),
    ]


# ----------------------------------------------------------------- trust, on every combination
class _RunsCode:
    """A pickle payload that makes a directory when unpickled: visible proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def _same_stores(db: Datalayer, **options: Any) -> Datalayer:
    return pinnacle(
        db.databackend,
        metadata_store=db.metadata,
        artifact_store=db.artifact_store,
        components=[Pipeline],
        **options,
    )


@pytest.mark.parametrize("stack", _params(), indirect=True)
def test_untrusted_pickle_never_runs(stack: tuple[Combo, Datalayer], tmp_path: Path) -> None:
    """A pickle artifact and a pickle-encoded column are refused before a byte is unpickled.

    A no-op trust check makes the payload create its marker and this test fail; the trusting
    Datalayer at the end shows that the payload would indeed have run.
    """
    _, db = stack
    model_marker, row_marker = tmp_path / "model-ran", tmp_path / "row-ran"
    db.apply(Model(identifier="evil", object=_RunsCode(model_marker), serializer="pickle"))
    pickled = DataType(identifier="pickled", encoder="pickle")
    db.apply(Table.of("evil_rows", id="int", v=pickled))
    db.insert("evil_rows", [{"id": 1, "v": _RunsCode(row_marker)}])

    fresh = _same_stores(db)  # a reader that trusts nothing
    with pytest.raises(UntrustedSerializerError, match="trust_serializers"):
        fresh.load("model", "evil")
    with pytest.raises(UntrustedSerializerError):
        fresh.predict("evil", "evil_rows", inputs="id")
    with pytest.raises(UntrustedSerializerError):
        fresh.select("evil_rows")
    assert not model_marker.exists()
    assert not row_marker.exists()
    assert "outputs__evil" not in fresh.list_tables()

    trusting = _same_stores(db, trust_serializers={"pickle"})
    trusting.load("model", "evil")
    trusting.select("evil_rows")
    assert model_marker.is_dir()
    assert row_marker.is_dir()


@pytest.mark.parametrize("stack", _params(), indirect=True)
def test_stored_record_cannot_choose_a_method(
    stack: tuple[Combo, Datalayer], tmp_path: Path
) -> None:
    """A record written straight into the metadata store names ``ndarray.tofile`` as the
    predict method of a numpy artifact (no trust needed): refused, nothing written."""
    _, db = stack
    target = tmp_path / "planted.pth"
    db.create_table("paths", {"id": "int", "p": "str"})
    db.insert("paths", [{"id": 1, "p": str(target)}])
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(b"import os\n", dtype=np.uint8), allow_pickle=False)
    ref = db.artifact_store.put(buf.getvalue())
    db.metadata.create_component(
        ComponentRecord(
            type_id="model",
            identifier="planted",
            data={
                "class": "model",
                "fields": {"predict_method": "tofile", "batched": False, "serializer": "numpy"},
                "serializers": {"object": "numpy"},
            },
            artifacts={"object": ref},
        )
    )
    for reader in (db, _same_stores(db, trust_serializers={"pickle"})):
        with pytest.raises(UntrustedMethodError, match="'tofile'"):
            reader.predict("planted", "paths", inputs="p")
    assert not target.exists()
    assert "outputs__planted" not in db.list_tables()
    assert db.show_jobs("predict") == []
