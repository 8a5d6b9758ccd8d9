"""Components: apply/load, versions, lineage, remove/drop, trust and verification."""

from __future__ import annotations

import fractions
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
import pytest
from attrs import define, field

from pinnacle_protocols.errors import (
    ArtifactCorrupted,
    BackendUnavailable,
    ComponentInUse,
    ComponentNotFound,
    ConfigError,
    DropRefused,
    InvalidRecord,
    StoreFileGone,
    UntrustedSerializerError,
)
from pinnacle_protocols.memory import MemoryArtifactStore
from pinnacle_protocols.records import ComponentKey, ComponentRecord, JobStatus
from pinnacledb import Component, DataType, LinearModel, Model, Table, artifact, pinnacle
from pinnacledb.base.datalayer import Datalayer
from pinnacledb.components import UnknownComponentClass
from pinnacledb.serializers import Serializer

MakeDB = Callable[..., Datalayer]


def _model(seed: int = 0, ridge: float = 0.0) -> LinearModel:
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(40, 3))
    ys = xs @ np.array([1.0, -2.0, 0.5]) + 0.3 + rng.normal(scale=0.01, size=40)
    return LinearModel.fit("lin", xs, ys, features=["a", "b", "c"], ridge=ridge)


@define(kw_only=True)
class Pipeline(Component):
    """A component that references others (in a list and directly)."""

    type_id: ClassVar[str] = "pipeline"
    steps: list[Component] = field(factory=list)
    head: Model | None = None
    params: dict[str, Any] = field(factory=dict)


@define(kw_only=True)
class Blob(Component):
    """A component whose artifact goes through a named serializer."""

    type_id: ClassVar[str] = "blob"
    payload: Any = artifact(serializer="spy")  # noqa: RUF009


# ---------------------------------------------------------------- every stack
def test_apply_load_roundtrip(make_db: MakeDB) -> None:
    db = make_db()
    model = _model()
    record = db.apply(model)
    assert record.version == 0
    assert model.version == 0
    assert set(record.artifacts) == {"weights"}
    assert db.artifact_store.exists(record.artifacts["weights"])
    # a second Datalayer on the same stores (fresh registry, fresh connections)
    other = make_db()
    loaded = other.load("model", "lin")
    assert isinstance(loaded, LinearModel)
    assert loaded.version == 0
    np.testing.assert_array_equal(loaded.weights, model.weights)
    assert loaded.bias == model.bias
    assert loaded.features == ["a", "b", "c"]
    assert loaded == model  # eq covers every non-artifact field
    assert loaded.predict([[1.0, 2.0, 3.0]]) == model.predict([[1.0, 2.0, 3.0]])


def test_unchanged_reapply_returns_existing_version(db: Datalayer) -> None:
    first = db.apply(_model())
    again = db.apply(_model())
    assert again.version == first.version == 0
    assert again.created_at == first.created_at
    assert db.show("model", "lin") == [0]


def test_changed_component_gets_next_version(db: Datalayer) -> None:
    db.apply(_model())
    second = db.apply(_model(ridge=1.0))
    assert second.version == 1
    assert db.show("model", "lin") == [0, 1]
    assert db.load("model", "lin").ridge == 1.0  # type: ignore[attr-defined]
    assert db.load("model", "lin", 0).ridge == 0.0  # type: ignore[attr-defined]


def test_lineage_and_remove_in_use(db: Datalayer) -> None:
    dt = DataType(identifier="vec", encoder="numpy")
    table = Table.of("docs", id="int", body="str", vec=dt)
    rec = db.apply(table)
    md = db.metadata
    schema_key = ComponentKey(type_id="schema", identifier="docs", version=0)
    dt_key = ComponentKey(type_id="datatype", identifier="vec", version=0)
    assert md.get_children(rec.key) == [schema_key]
    assert md.get_children(schema_key) == [dt_key]
    assert md.get_parents(dt_key) == [schema_key]

    with pytest.raises(ComponentInUse, match=r"schema 'docs' v0"):
        db.remove("datatype", "vec")
    assert db.show("datatype", "vec") == [0]  # nothing was removed
    db.remove("table", "docs")
    db.remove("schema", "docs")
    assert db.remove("datatype", "vec") == [dt_key]
    assert db.show("datatype") == []


def test_remove_with_force(db: Datalayer) -> None:
    db.apply(Table.of("t", id="int", v=DataType(identifier="json", encoder="json")))
    db.remove("datatype", "json", force=True)
    assert db.show("datatype") == []


def test_remove_missing_component(db: Datalayer) -> None:
    with pytest.raises(ComponentNotFound):
        db.remove("model", "nope")
    db.apply(_model())
    with pytest.raises(ComponentNotFound):
        db.remove("model", "lin", 7)


def test_show(db: Datalayer) -> None:
    assert db.show() == []
    db.apply(_model())
    db.apply(_model(ridge=2.0))
    db.apply(DataType(identifier="arr", encoder="numpy"))
    assert db.show() == [
        ComponentKey(type_id="datatype", identifier="arr", version=0),
        ComponentKey(type_id="model", identifier="lin", version=1),
    ]
    assert db.show("model") == ["lin"]
    assert db.show("model", "lin") == [0, 1]
    assert db.show("nothing") == []


def test_drop_refuses_without_force(db: Datalayer) -> None:
    db.create_table("t", {"x": "int"})
    db.insert("t", [{"x": 1}])
    rec = db.apply(_model())
    with pytest.raises(DropRefused, match=r"force=True"):
        db.drop()
    with pytest.raises(DropRefused):
        db.drop(force="yes")  # type: ignore[arg-type]
    assert db.count("t") == 1
    assert db.show("model") == ["lin"]
    assert db.artifact_store.exists(rec.artifacts["weights"])
    db.drop(force=True)
    assert db.list_tables() == []
    assert db.show() == []
    assert list(db.artifact_store.iter_refs()) == []


# ---------------------------------------------------------------- unit (memory/local)
def test_nested_components_are_applied_first_with_lineage(mem_db: Datalayer) -> None:
    dt = DataType(identifier="d", encoder="json")
    head = _model()
    pipe = Pipeline(identifier="p", steps=[dt, head], head=head, params={"k": [1, 2]})
    rec = mem_db.apply(pipe)
    assert dt.version == 0
    assert head.version == 0
    children = mem_db.metadata.get_children(rec.key)
    assert [k.type_id for k in children] == ["datatype", "model"]
    loaded = mem_db.load("pipeline", "p")
    assert isinstance(loaded, Pipeline)
    assert isinstance(loaded.steps[1], LinearModel)
    assert loaded.head is loaded.steps[1]  # one child version, loaded once
    assert loaded.params == {"k": [1, 2]}


def test_child_change_makes_a_new_parent_version(mem_db: Datalayer) -> None:
    mem_db.apply(Pipeline(identifier="p", head=_model()))
    rec = mem_db.apply(Pipeline(identifier="p", head=_model(ridge=3.0)))
    assert rec.version == 1


def test_cycles_are_refused(mem_db: Datalayer) -> None:
    pipe = Pipeline(identifier="p")
    pipe.steps.append(pipe)
    with pytest.raises(InvalidRecord, match="cycle"):
        mem_db.apply(pipe)


def test_non_json_field_is_refused_before_any_write(mem_db: Datalayer) -> None:
    pipe = Pipeline(identifier="p", params={"w": np.zeros(3)})
    with pytest.raises(InvalidRecord, match="artifact"):
        mem_db.apply(pipe)
    assert mem_db.show() == []
    assert list(mem_db.artifact_store.iter_refs()) == []


def test_unknown_serializer_is_refused_before_any_write(mem_db: Datalayer) -> None:
    with pytest.raises(Exception, match="spy"):
        mem_db.apply(Blob(identifier="b", payload=b"x"))
    assert list(mem_db.artifact_store.iter_refs()) == []
    assert mem_db.show_jobs() == []


def test_class_is_resolved_from_the_registry_never_from_the_database(mem_db: Datalayer) -> None:
    mem_db.metadata.create_component(
        ComponentRecord(
            type_id="model",
            identifier="evil",
            data={"class": "os.system", "fields": {}, "serializers": {}},
        )
    )
    with pytest.raises(UnknownComponentClass, match=r"'os\.system'.*register_component"):
        mem_db.load("model", "evil")


def test_record_fields_not_declared_by_the_class_are_an_error(mem_db: Datalayer) -> None:
    mem_db.metadata.create_component(
        ComponentRecord(
            type_id="datatype",
            identifier="x",
            data={
                "class": "datatype",
                "fields": {"encoder": "json", "colour": 1},
                "serializers": {},
            },
        )
    )
    with pytest.raises(InvalidRecord, match="colour"):
        mem_db.load("datatype", "x")


def test_subclass_needs_its_own_component_name(mem_db: Datalayer) -> None:
    @define(kw_only=True)
    class MyModel(Model):
        pass

    with pytest.raises(ConfigError, match="component_name"):
        mem_db.apply(MyModel(identifier="m", object=None))


def test_user_components_are_registered_by_apply(local_db: Datalayer) -> None:
    local_db.apply(Pipeline(identifier="p", params={"a": 1}))
    fresh = pinnacle(
        "memory://",
        metadata_store="sqlite://.pinnacledb/metadata.db",
        artifact_store="filesystem://.pinnacledb/artifacts/",
    )
    with pytest.raises(UnknownComponentClass):
        fresh.load("pipeline", "p")
    fresh.register_component(Pipeline)
    assert fresh.load("pipeline", "p").params == {"a": 1}  # type: ignore[attr-defined]
    fresh.close()


def test_pickle_is_refused_unless_trusted_before_reading_bytes(local_db: Datalayer) -> None:
    obj = fractions.Fraction(1, 3)
    rec = local_db.apply(Model(identifier="m", object=obj, serializer="pickle"))
    uris: dict[str, Any] = {
        "metadata_store": "sqlite://.pinnacledb/metadata.db",
        "artifact_store": "filesystem://.pinnacledb/artifacts/",
    }
    untrusted = pinnacle("memory://", **uris)
    with pytest.raises(UntrustedSerializerError) as info:
        untrusted.load("model", "m")
    text = str(info.value)
    assert "trust_serializers={'pickle'}" in text
    assert "PINNACLEDB_TRUST_SERIALIZERS=pickle" in text
    # the refusal comes before any read: with the blob gone it is still the trust error
    local_db.artifact_store.delete(rec.artifacts["object"])
    with pytest.raises(UntrustedSerializerError):
        untrusted.load("model", "m")
    local_db.apply(Model(identifier="m", object=obj, serializer="pickle"))  # puts it back
    trusted = pinnacle("memory://", trust_serializers={"pickle"}, **uris)
    assert trusted.load("model", "m").object == obj  # type: ignore[attr-defined]
    untrusted.close()
    trusted.close()


def test_artifacts_are_verified_before_deserializing(local_db: Datalayer, tmp_path: Path) -> None:
    calls: list[bytes] = []

    def dump(value: Any, fh: IO[bytes]) -> None:
        fh.write(bytes(value))

    def load(data: bytes) -> bytes:
        calls.append(data)
        return data

    spy = Serializer(name="spy", dump=dump, load=load)
    local_db.serializers.register(spy)
    rec = local_db.apply(Blob(identifier="b", payload=b"genuine bytes"))
    assert local_db.load("blob", "b").payload == b"genuine bytes"  # type: ignore[attr-defined]
    assert len(calls) == 1
    sha = rec.artifacts["payload"].sha256
    (path,) = (p for p in (tmp_path / ".pinnacledb" / "artifacts").rglob(sha) if p.is_file())
    path.write_bytes(b"tampered bytes")
    with pytest.raises(ArtifactCorrupted):
        local_db.load("blob", "b")
    assert len(calls) == 1  # the deserializer never saw the tampered bytes


def test_apply_journal_records_artifacts(mem_db: Datalayer) -> None:
    rec = mem_db.apply(_model())
    (job,) = mem_db.show_jobs("apply")
    assert job.status is JobStatus.SUCCESS
    assert job.args["artifacts"] == [rec.artifacts["weights"].sha256]
    assert job.component == rec.key
    assert job.finished_at is not None


def test_failed_serialization_writes_nothing(mem_db: Datalayer) -> None:
    def boom(value: Any, fh: IO[bytes]) -> None:
        raise RuntimeError("cannot serialize this")

    mem_db.serializers.register(Serializer(name="spy", dump=boom, load=bytes))
    with pytest.raises(Exception, match="cannot serialize this"):
        mem_db.apply(Blob(identifier="b", payload=1))
    assert mem_db.show_jobs() == []
    assert mem_db.show() == []


def test_failed_put_marks_its_journal_failed() -> None:
    broken = MemoryArtifactStore.from_uri("memory://broken")
    broken.close()  # every put now fails with BackendUnavailable
    db = pinnacle("memory://", metadata_store="memory://", artifact_store=broken)
    with pytest.raises(BackendUnavailable):
        db.apply(_model())
    (job,) = db.show_jobs("apply")
    assert job.status is JobStatus.FAILED
    assert "BackendUnavailable" in (job.error or "")
    assert db.show() == []


def test_unchanged_reapply_writes_nothing(mem_db: Datalayer) -> None:
    rec = mem_db.apply(_model())
    jobs = mem_db.show_jobs()
    assert mem_db.apply(_model()).version == rec.version
    assert mem_db.show_jobs() == jobs  # no journal entry, no put


def test_reapply_repairs_a_missing_artifact(mem_db: Datalayer) -> None:
    rec = mem_db.apply(_model())
    mem_db.artifact_store.delete(rec.artifacts["weights"])
    assert mem_db.apply(_model()).version == rec.version
    assert mem_db.artifact_store.exists(rec.artifacts["weights"])
    assert isinstance(mem_db.load("model", "lin"), LinearModel)


def test_reapply_repairs_a_truncated_artifact(local_db: Datalayer) -> None:
    """A blob cut short on disk (same name) is put again by an unchanged re-apply."""
    rec = local_db.apply(_model())
    ref = rec.artifacts["weights"]
    path = Path(".pinnacledb/artifacts") / ref.sha256[:2] / ref.sha256
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(ArtifactCorrupted):
        local_db.load("model", "lin")
    assert local_db.apply(_model()).version == rec.version
    assert path.stat().st_size == ref.size
    assert isinstance(local_db.load("model", "lin"), LinearModel)


def test_model_predicts_with_its_object(mem_db: Datalayer) -> None:
    model = Model(
        identifier="m",
        object=fractions.Fraction(7, 2),
        predict_method="limit_denominator",
        batched=False,
        serializer="pickle",
    )
    assert model.predict([1, 2]) == [3, fractions.Fraction(7, 2)]
    for private in ("__mul__", "_private", "__class__", "", "not a name", "class", 1):
        with pytest.raises(InvalidRecord, match="public method"):
            Model(identifier="m", object=1, predict_method=private)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="no method"):
        Model(identifier="m", object=1, predict_method="nope").predict([1])


def test_hashing_buffer_handles_serializers_that_seek_back() -> None:
    import hashlib

    from pinnacledb.base._components import _HashingBuffer

    buf = _HashingBuffer()
    buf.write(b"abc")
    buf.write(b"def")
    assert buf.ref().sha256 == hashlib.sha256(b"abcdef").hexdigest()
    buf.seek(0)
    buf.write(b"X")  # e.g. a zip writer patching a header
    buf.seek(0, 2)
    buf.write(b"g")
    assert buf.ref().sha256 == hashlib.sha256(b"Xbcdefg").hexdigest()
    assert buf.ref().size == 7


def test_apply_after_the_sqlite_metadata_file_was_deleted_fails(local_db: Datalayer) -> None:
    """The write would go to the deleted file and be lost: a typed error instead."""
    local_db.apply(_model())
    for suffix in ("", "-wal", "-shm"):
        Path(f".pinnacledb/metadata.db{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreFileGone, match="deleted"):
        local_db.apply(LinearModel.fit("other", [[1.0], [2.0]], [1.0, 2.0]))
