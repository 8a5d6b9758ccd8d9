"""db.predict: outputs table with model version and source ids, and a job record."""

from __future__ import annotations

import numpy as np
import pytest

from pinnacle_protocols.errors import PinnacleError, SchemaError
from pinnacle_protocols.records import ComponentKey, JobStatus
from pinnacledb import LinearModel, Model
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
