"""One apply / load / predict / remove / gc scenario, summarized so stacks can be compared.

:func:`run_scenario` drives a Datalayer through the facade only and returns a
:class:`Summary`: plain, normalized data (sorted lists, rounded floats, sha256 of artifacts,
error type names) that must be identical whatever the three stores are.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from attrs import define, field

from pinnacle_protocols.errors import PinnacleError
from pinnacledb import Component, DataType, LinearModel, Table
from pinnacledb.base.datalayer import Datalayer

__all__ = ["ROWS", "Pipeline", "Summary", "run_scenario"]

Summary = dict[str, Any]

#: Rows of the source table: y = 3x - 1 exactly, plus a small numpy vector per row.
ROWS = 24


@define(kw_only=True)
class Pipeline(Component):
    """A component that uses a model (lineage: the pipeline depends on the model version)."""

    type_id: ClassVar[str] = "pipeline"

    model: LinearModel
    threshold: float = 0.5
    tags: list[str] = field(factory=list)


def _error(fn: Any) -> str:
    try:
        fn()
    except PinnacleError as exc:
        return type(exc).__name__
    return "no error"


def _rows() -> list[dict[str, Any]]:
    import numpy as np

    return [
        {
            "id": i,
            "x": float(i) / 4,
            "y": 3 * (float(i) / 4) - 1,
            "label": "even" if i % 2 == 0 else "odd",
            "emb": np.arange(3, dtype=np.float64) + i,
        }
        for i in range(ROWS)
    ]


def run_scenario(db: Datalayer) -> Summary:
    """Apply, load, predict, remove and gc on ``db``; return what an observer can see."""
    import numpy as np

    s: Summary = {}
    vec = DataType(identifier="vec3", encoder="numpy", by_reference=True)
    table = Table.of("points", id="int", x="float", y="float", label="str", emb=vec)
    s["table_version"] = db.apply(table).version
    s["tables"] = sorted(t for t in db.list_tables() if not t.startswith("_"))
    s["inserted"] = db.insert("points", _rows())
    s["count_even"] = db.count("points", {"label": "even"})
    s["count_range"] = db.count("points", {"$and": [{"x": {"$gte": 1.0}}, {"x": {"$lt": 3.0}}]})
    rows = db.select("points", order_by=["id"])
    s["emb_roundtrip"] = all(
        np.array_equal(r["emb"], np.arange(3, dtype=np.float64) + r["id"]) for r in rows
    )

    # ------------------------------------------------------------------ apply and versions
    xs = np.array([[r["x"]] for r in rows])
    ys = np.array([r["y"] for r in rows])
    model = LinearModel.fit("line", xs, ys, features=["x"])
    rec0 = db.apply(model)
    s["model_v0"] = rec0.version
    s["reapply_unchanged"] = db.apply(LinearModel.fit("line", xs, ys, features=["x"])).version
    rec1 = db.apply(LinearModel.fit("line", xs, ys, features=["x"], ridge=10.0))
    s["model_v1"] = rec1.version
    s["weights_sha"] = [rec0.artifacts["weights"].sha256, rec1.artifacts["weights"].sha256]
    s["weights_size"] = [rec0.artifacts["weights"].size, rec1.artifacts["weights"].size]
    latest = db.load("model", "line")
    assert isinstance(latest, LinearModel)
    pipe = Pipeline(identifier="p", model=latest, threshold=0.25, tags=["a", "b"])
    s["pipeline_version"] = db.apply(pipe).version
    s["versions"] = db.show("model", "line")
    s["show"] = [(k.type_id, k.identifier, k.version) for k in db.show()]

    # ------------------------------------------------------------------ load
    v0 = db.load("model", "line", 0)
    v1 = db.load("model", "line", 1)
    assert isinstance(v0, LinearModel)
    assert isinstance(v1, LinearModel)
    s["v0_exact"] = bool(np.array_equal(v0.weights, model.weights)) and v0.bias == model.bias
    s["v0_params"] = [round(float(v0.weights[0]), 9), round(v0.bias, 9)]
    s["v1_params"] = [round(float(v1.weights[0]), 9), round(v1.bias, 9)]
    loaded_pipe = db.load("pipeline", "p")
    assert isinstance(loaded_pipe, Pipeline)
    s["pipeline_loaded"] = [
        loaded_pipe.model.version,
        loaded_pipe.threshold,
        loaded_pipe.tags,
        bool(np.array_equal(loaded_pipe.model.weights, v1.weights)),
    ]

    # ------------------------------------------------------------------ predict
    result = db.predict("line", "points", inputs="x", version=0)
    s["predict_rows"] = result.rows
    s["predict_status"] = result.job.status.value
    out = db.select(result.output_table, order_by=["source_id"])
    s["predictions"] = [
        (int(r["source_id"]), r["model"], r["model_version"], round(float(r["output"]), 6))
        for r in out
    ]
    again = db.predict("line", "points", inputs="x", version=0, where={"label": "odd"})
    s["predict_again_rows"] = again.rows
    s["outputs_after_again"] = db.count(result.output_table)

    # ------------------------------------------------------------------ data changes
    s["updated"] = db.update("points", {"label": "odd"}, {"y": 0.0})
    s["deleted"] = db.delete("points", {"id": {"$gte": ROWS - 4}})
    s["count_after"] = db.count("points")

    # ------------------------------------------------------------------ remove
    s["remove_in_use"] = _error(lambda: db.remove("model", "line", 1))
    s["remove_missing"] = _error(lambda: db.remove("model", "nope"))
    s["remove_missing_version"] = _error(lambda: db.remove("model", "line", 7))
    s["removed_pipeline"] = [k.version for k in db.remove("pipeline", "p")]
    s["removed_v0"] = [k.version for k in db.remove("model", "line", 0)]
    s["versions_after_remove"] = db.show("model", "line")
    s["load_removed"] = _error(lambda: db.load("model", "line", 0))

    # ------------------------------------------------------------------ gc
    dry = db.gc(dry_run=True, grace_seconds=0)
    report = db.gc(grace_seconds=0)
    s["gc_dry_deletable"] = sorted(r.sha256 for r in dry.deletable)
    s["gc_deleted"] = sorted(r.sha256 for r in report.deleted)
    s["gc_scanned"] = report.scanned
    s["gc_referenced"] = report.referenced
    after = db.gc(dry_run=True, grace_seconds=0)
    s["gc_after"] = [after.scanned, after.referenced, len(after.deletable), len(after.young)]
    s["stored_artifacts"] = sorted(r.sha256 for r in db.artifact_store.iter_refs())
    s["v1_after_gc"] = bool(np.array_equal(db.load("model", "line", 1).weights, v1.weights))  # type: ignore[attr-defined]
    s["emb_after_gc"] = all(
        np.array_equal(r["emb"], np.arange(3, dtype=np.float64) + r["id"])
        for r in db.select("points", order_by=["id"])
    )
    s["jobs"] = sorted(Counter((j.kind, j.status.value) for j in db.show_jobs()).items())
    s["remove_all"] = [k.version for k in db.remove("model", "line")]
    s["show_end"] = [(k.type_id, k.identifier, k.version) for k in db.show()]
    s["missing_after_all"] = _error(lambda: db.load("model", "line"))
    return s
