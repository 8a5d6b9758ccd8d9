"""db.predict: outputs table with model version and source ids, and a job record."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from pinnacle_protocols.errors import (
    InvalidRecord,
    PinnacleError,
    SchemaError,
    UntrustedMethodError,
    UntrustedSerializerError,
)
from pinnacle_protocols.records import ComponentKey, ComponentRecord, JobStatus, JSONValue
from pinnacledb import LinearModel, Model, pinnacle
from pinnacledb.base.datalayer import Datalayer
from pinnacledb.predict import output_table_name


# Models with a custom predict, defined at module level so the standard library's pickle (always
# installed) can store them; cloudpickle (extra ``pinnacledb[serializers]``) is not needed.
class Broken:
    def predict(self, xs: list[float]) -> list[float]:
        raise ValueError("the model exploded")


class Short:
    def predict(self, xs: list[float]) -> list[float]:
        return [0.0]


class Vec:
    def predict(self, xs: list[float]) -> list[object]:
        return [np.array([x, x * 2]) for x in xs]


def _setup(db: Datalayer, n: int = 30) -> LinearModel:
    db.create_table("xy", {"id": "int", "x1": "float", "x2": "float", "y": "float"})
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(n, 2))
    ys = xs @ np.array([2.0, -1.0]) + 0.5
    db.insert(
        "xy",
        [
            {"id": i, "x1": float(a), "x2": float(b), "y": float(c)}
            for i, ((a, b), c) in enumerate(zip(xs, ys, strict=True))
        ],
    )
    model = LinearModel.fit("reg", xs, ys)
    db.apply(model)
    return model


def test_predict_writes_outputs_with_version_and_source_ids(db: Datalayer) -> None:
    _setup(db)
    result = db.predict("reg", "xy", inputs=["x1", "x2"], batch_size=7)
    assert result.rows == 30
    assert result.output_table == "outputs__reg"
    rows = db.select("outputs__reg", order_by=["source_id"])
    assert [r["source_id"] for r in rows] == list(range(30))
    assert {r["model"] for r in rows} == {"reg"}
    assert {r["model_version"] for r in rows} == {0}
    assert {r["job_id"] for r in rows} == {result.job.job_id}
    source = {r["id"]: r["y"] for r in db.select("xy")}
    for r in rows:
        assert r["output"] == pytest.approx(source[r["source_id"]], abs=1e-9)

    job = db.metadata.get_job(result.job.job_id)
    assert job.kind == "predict"
    assert job.status is JobStatus.SUCCESS
    assert job.component == ComponentKey(type_id="model", identifier="reg", version=0)
    assert job.started_at is not None
    assert job.finished_at is not None
    assert job.finished_at >= job.started_at
    assert job.args["output"] == "outputs__reg"


def test_rerun_replaces_outputs_and_versions_are_kept_apart(db: Datalayer) -> None:
    _setup(db)
    db.predict("reg", "xy", inputs=["x1", "x2"], where={"id": {"$lt": 10}})
    db.predict("reg", "xy", inputs=["x1", "x2"], where={"id": {"$lt": 10}})
    assert db.count("outputs__reg") == (10 if db.databackend.supports_delete else 20)
    model2 = LinearModel.fit("reg", [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [1.0, 2.0, 3.0])
    db.apply(model2)
    result = db.predict(model2, "xy", inputs=["x1", "x2"], output="preds")
    assert result.job.component is not None
    assert result.job.component.version == 1
    assert {r["model_version"] for r in db.select("preds")} == {1}


def test_failed_predict_records_the_error(db: Datalayer) -> None:
    _setup(db)

    broken = Model(identifier="broken", object=Broken(), serializer="pickle")
    with pytest.raises(ValueError, match="exploded"):
        db.predict(broken, "xy", inputs="x1")
    (job,) = db.show_jobs("predict")
    assert job.status is JobStatus.FAILED
    assert "the model exploded" in (job.error or "")
    assert job.finished_at is not None


def test_missing_id_column_is_explained(mem_db: Datalayer) -> None:
    mem_db.create_table("t", {"key": "int", "x": "float"})
    mem_db.insert("t", [{"key": 1, "x": 1.0}])
    mem_db.apply(LinearModel.fit("m", [[1.0], [2.0]], [1.0, 2.0]))
    with pytest.raises((SchemaError, PinnacleError), match="id"):
        mem_db.predict("m", "t", inputs="x")
    result = mem_db.predict("m", "t", inputs="x", id_column="key")
    assert result.rows == 1


def test_wrong_number_of_outputs_is_an_error(mem_db: Datalayer) -> None:
    mem_db.create_table("t", {"id": "int", "x": "float"})
    mem_db.insert("t", [{"id": 1, "x": 1.0}, {"id": 2, "x": 2.0}])
    with pytest.raises(PinnacleError, match="1 outputs for 2 inputs"):
        mem_db.predict(Model(identifier="s", object=Short(), serializer="pickle"), "t", inputs="x")


def test_non_scalar_outputs_go_to_a_json_column(mem_db: Datalayer) -> None:
    mem_db.create_table("t", {"id": "int", "x": "float"})
    mem_db.insert("t", [{"id": 1, "x": 1.0}])
    mem_db.predict(Model(identifier="v", object=Vec(), serializer="pickle"), "t", inputs="x")
    assert mem_db.select("outputs__v")[0]["output"] == [1.0, 2.0]


def test_output_table_name_is_safe() -> None:
    assert output_table_name("my model/v2") == "outputs__my_model_v2"


# ------------------------------------------------ issue 15: a stored record must not choose code
def _plant(
    db: Datalayer,
    identifier: str,
    *,
    cls: str = "model",
    fields: dict[str, JSONValue],
    objects: dict[str, tuple[str, bytes]],
) -> None:
    """Write a model record directly through the metadata store, as an attacker who can write
    the metadata and artifact stores would (no db.apply, no class involved)."""
    refs = {name: db.artifact_store.put(blob) for name, (_, blob) in objects.items()}
    db.metadata.create_component(
        ComponentRecord(
            type_id="model",
            identifier=identifier,
            data={
                "class": cls,
                "fields": dict(fields),
                "serializers": {name: ser for name, (ser, _) in objects.items()},
            },
            artifacts=refs,
        )
    )


def _npy(value: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(value), allow_pickle=False)
    return buf.getvalue()


def test_stored_predict_method_cannot_write_a_file(db: Datalayer, tmp_path: Path) -> None:
    """The attack of issue 15: a numpy artifact (no trust needed) whose record names
    ``tofile``; the table holds the path to write (a ``.pth`` runs code at the next start)."""
    target = tmp_path / "evil.pth"
    db.create_table("paths", {"id": "int", "p": "str"})
    db.insert("paths", [{"id": 1, "p": str(target)}])
    _plant(
        db,
        "evil",
        fields={"predict_method": "tofile", "batched": False, "serializer": "numpy"},
        objects={"object": ("numpy", _npy(np.frombuffer(b"import os\n", dtype=np.uint8)))},
    )
    with pytest.raises(UntrustedMethodError) as info:
        db.predict("evil", "paths", inputs="p")
    message = str(info.value)
    for part in ("'evil'", "'tofile'", "predict_methods", "trust_serializers"):
        assert part in message
    assert not target.exists()
    assert "outputs__evil" not in db.list_tables()
    assert db.show_jobs("predict") == []
    with pytest.raises(UntrustedMethodError):
        db.load("model", "evil")
    # the trust in pickle does not extend to a numpy object's methods
    trusting = _trusting(db)
    with pytest.raises(UntrustedMethodError):
        trusting.predict("evil", "paths", inputs="p")
    assert not target.exists()


def _trusting(db: Datalayer) -> Datalayer:
    """The same stores, trusting pickle."""
    return pinnacle(
        db.databackend,
        metadata_store=db.metadata,
        artifact_store=db.artifact_store,
        trust_serializers={"pickle"},
    )


@pytest.mark.parametrize("name", ["__reduce_ex__", "__class__", "_private", "os.system", ""])
def test_stored_private_or_dunder_method_is_never_called(mem_db: Datalayer, name: str) -> None:
    _plant(
        mem_db,
        "m",
        fields={"predict_method": name, "serializer": "pickle"},
        objects={"object": ("pickle", pickle.dumps(Vec()))},
    )
    trusting = _trusting(mem_db)
    with pytest.raises(InvalidRecord, match="public method"):
        trusting.load("model", "m")


def test_record_cannot_smuggle_a_field_in_as_an_artifact(mem_db: Datalayer) -> None:
    """An artifact named like a data field would reach the class without verify_record."""
    _plant(
        mem_db,
        "m",
        fields={"serializer": "numpy"},
        objects={
            "object": ("numpy", _npy([1.0])),
            "predict_method": ("json", json.dumps("tofile").encode()),
        },
    )
    with pytest.raises(InvalidRecord, match="does not declare as artifact fields"):
        mem_db.load("model", "m")


def test_record_cannot_choose_another_serializer_than_the_class(mem_db: Datalayer) -> None:
    _plant(
        mem_db,
        "lin",
        cls="linear_model",
        fields={"bias": 0.0},
        objects={"weights": ("json", b"[1.0]")},  # LinearModel declares numpy
    )
    with pytest.raises(InvalidRecord, match="declares 'numpy'"):
        mem_db.load("model", "lin")
    _plant(
        mem_db,
        "m",
        fields={"serializer": "numpy"},
        objects={"object": ("json", b"[1.0]")},  # Model.serializer says numpy
    )
    with pytest.raises(InvalidRecord, match="declares 'numpy'"):
        mem_db.load("model", "m")


class Embedder:
    def embed(self, xs: list[float]) -> list[float]:
        return [x * 10 for x in xs]


def test_declared_or_trusted_methods_still_work(mem_db: Datalayer) -> None:
    """The two documented ways to allow another method."""
    from attrs import define

    @define(kw_only=True)
    class EmbeddingModel(Model):
        component_name: ClassVar[str | None] = "embedding_model"
        predict_methods: ClassVar[frozenset[str]] = Model.predict_methods | {"embed"}

    mem_db.create_table("t", {"id": "int", "x": "float"})
    mem_db.insert("t", [{"id": 1, "x": 1.5}])
    # declared by the class: a data-only object (json) may call it
    mem_db.apply(
        EmbeddingModel(identifier="e", object=[1.0], predict_method="embed", serializer="json")
    )
    loaded = mem_db.load("model", "e")
    assert isinstance(loaded, EmbeddingModel)
    assert loaded.predict_method == "embed"
    # trusted code-executing serializer: any public method of the object
    mem_db.apply(Model(identifier="p", object=Embedder(), predict_method="embed"))
    with pytest.raises(UntrustedSerializerError):
        mem_db.load("model", "p")
    trusting = _trusting(mem_db)
    trusting.register_component(EmbeddingModel)
    assert trusting.predict("p", "t", inputs="x").rows == 1
    assert [r["output"] for r in trusting.select("outputs__p")] == [15.0]
    # the generic Model with a data-only object may not call the subclass's declared name:
    # refused when applied already (nobody could load it), nothing written
    before = mem_db.show()
    with pytest.raises(UntrustedMethodError, match="'embed'"):
        mem_db.apply(Model(identifier="j", object=[1.0], predict_method="embed", serializer="json"))
    assert mem_db.show() == before


def test_apply_refuses_a_model_no_reader_could_load(db: Datalayer) -> None:
    """The planted record of the attack, made through db.apply: refused before any write."""
    with pytest.raises(UntrustedMethodError, match="'tofile'"):
        db.apply(
            Model(
                identifier="x", object=np.arange(3.0), serializer="numpy", predict_method="tofile"
            )
        )
    assert db.show() == []
    assert db.show_jobs("apply") == []
