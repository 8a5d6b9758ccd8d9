"""``pinnacle demo``: the whole loop on real data, on whatever stores are configured.

1. a Table component creates ``iris`` and Fisher's Iris data (150 rows) is inserted;
2. a numpy least-squares model is fitted (petal width from the other measurements);
3. it is applied: weights go to the artifact store, the record to the metadata store;
4. a fresh Python process loads it back (hash-verified) and predicts over the table into an
   outputs table, tracked by a job record;
5. a second version (ridge regression) is applied;
6. a listener applies it to the table: new rows get their predictions as they are inserted, an
   updated row's prediction changes, deleted rows lose theirs (the demo rows are removed again,
   so the table keeps its 150 rows);
7. what lives where is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from pinnacledb.base.datalayer import Datalayer

__all__ = ["DEMO_MODEL", "DEMO_TABLE", "run_demo"]

DEMO_TABLE = "iris"
DEMO_MODEL = "iris-petal-width"
FEATURES = ("sepal_length", "sepal_width", "petal_length")
TARGET = "petal_width"


def _r2(y: Any, pred: Any) -> float:
    import numpy as np

    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float)
    return float(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def run_demo(db: Datalayer, out: TextIO) -> int:
    """Run the demo on ``db`` and narrate it on ``out``; return the exit status."""
    import numpy as np

    from pinnacledb._iris import iris_rows
    from pinnacledb.components import LinearModel, Table

    out.write(f"pinnacledb demo on these stores (passwords redacted):\n{db!r}\n\n")

    # 1. data
    table = Table.of(
        DEMO_TABLE,
        id="int",
        sepal_length="float",
        sepal_width="float",
        petal_length="float",
        petal_width="float",
        species="str",
    )
    rec = db.apply(table)
    rows = iris_rows()
    have = db.count(DEMO_TABLE)
    if have == 0:
        db.insert(DEMO_TABLE, rows)
        out.write(
            f"1. data    inserted {len(rows)} rows of Fisher's Iris into table "
            f"{DEMO_TABLE!r} (Table component v{rec.version})\n"
        )
    else:
        out.write(
            f"1. data    table {DEMO_TABLE!r} already holds {have} rows (from an earlier "
            f"run); Table component v{rec.version}\n"
        )

    # 2. fit
    data = db.select(DEMO_TABLE, order_by=["id"])
    xs = np.array([[r[f] for f in FEATURES] for r in data], dtype=float)
    ys = np.array([r[TARGET] for r in data], dtype=float)
    model = LinearModel.fit(DEMO_MODEL, xs, ys, features=list(FEATURES))
    out.write(
        f"2. fit     least squares {TARGET} ~ {' + '.join(FEATURES)}: "
        f"weights {np.round(model.weights, 3).tolist()}, bias {model.bias:.3f}, "
        f"R^2 {_r2(ys, model.predict(xs.tolist())):.3f}\n"
    )

    # 3. apply
    before = db.show("model", DEMO_MODEL) if DEMO_MODEL in db.show("model") else []
    rec = db.apply(model)
    ref = rec.artifacts["weights"]
    status = "new version" if rec.version not in before else "unchanged, existing version"
    out.write(
        f"3. apply   model {DEMO_MODEL!r} -> {status} v{rec.version}; weights "
        f"({ref.size} B, numpy format, no pickle) -> artifact sha256:{ref.sha256[:16]}...\n"
    )
    again = db.apply(model)
    out.write(f"           applying it again unchanged returns v{again.version}\n")

    # 4. fresh process: load (hash-verified) and predict into an outputs table
    child = _run_child(db, rec.version)
    where = (
        f"a fresh process (pid {child['pid']})"
        if child["pid"] != os.getpid()
        else "this process (memory:// stores cannot be shared with another process)"
    )
    out.write(
        f"4. load    {where} loaded v{child['version']} "
        f"(weights verified by sha256 before deserializing) and predicted "
        f"{child['rows']} rows into {child['output_table']!r} "
        f"(job {child['job_id']}: {child['status']}, {child['seconds']:.3f} s)\n"
    )
    sample = db.select(
        child["output_table"], {"model_version": rec.version}, order_by=["source_id"], limit=3
    )
    for row in sample:
        src = data[int(row["source_id"])]
        out.write(
            f"           id {row['source_id']:>3}  {src['species']:<10} petal_width "
            f"{src[TARGET]:.1f}  predicted {row['output']:.2f}\n"
        )

    # 5. second version
    ridge = LinearModel.fit(DEMO_MODEL, xs, ys, features=list(FEATURES), ridge=5.0)
    rec2 = db.apply(ridge)
    out.write(
        f"5. version ridge regression (alpha 5) applied as v{rec2.version}; versions of "
        f"{DEMO_MODEL!r}: {db.show('model', DEMO_MODEL)}\n"
    )

    # 6. listener
    _listen(db, ridge, out)

    # 7. what lives where
    _where(db, out)
    db.close()
    return 0


def _listen(db: Datalayer, model: Any, out: TextIO) -> None:
    from pinnacledb.components import Listener

    listener = Listener(model=model, table=DEMO_TABLE, inputs=list(FEATURES))
    name = listener.identifier
    demo_ids = [1000, 1001]
    db.delete(DEMO_TABLE, {"id": {"$in": demo_ids}})  # left over by an interrupted run
    rec = db.apply(listener)
    outputs = db.count(listener.output_table, {"model_version": model.version})
    out.write(
        f"6. listen  listener {name!r} v{rec.version} keeps {TARGET} predictions of model "
        f"v{model.version} in {listener.output_table!r} ({outputs} rows)\n"
    )
    new = [
        {"id": 1000, "sepal_length": 5.0, "sepal_width": 3.4, "petal_length": 1.5,
         "petal_width": None, "species": None},
        {"id": 1001, "sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2,
         "petal_width": None, "species": None},
    ]  # fmt: skip
    inserted = db.insert(DEMO_TABLE, new)
    rows = db.select(DEMO_TABLE, {"id": {"$in": demo_ids}}, order_by=["id"], outputs=[name])
    out.write(f"           inserted rows {list(inserted.ids)}; their predictions appeared:\n")
    for row in rows:
        out.write(f"           id {row['id']}  petal_length {row['petal_length']:.1f}  "
                  f"predicted {TARGET} {row[name]:.2f}\n")  # fmt: skip
    db.update(DEMO_TABLE, {"id": 1000}, {"petal_length": 4.5})
    (row,) = db.select(DEMO_TABLE, {"id": 1000}, outputs=[name])
    out.write(f"           updated id 1000 petal_length to 4.5: predicted {TARGET} is now "
              f"{row[name]:.2f}\n")  # fmt: skip
    db.delete(DEMO_TABLE, {"id": {"$in": demo_ids}})
    left = db.count(listener.output_table, {"source_id": {"$in": demo_ids}})
    out.write(f"           deleted both rows: {left} of their outputs remain\n\n")


def _where(db: Datalayer, out: TextIO) -> None:
    slots = db.slots
    out.write("what lives where\n")
    out.write(f"  databackend     {slots['databackend'].uri}\n")
    for name in db.list_tables():
        out.write(f"    table {name:<28} {db.count(name)} rows\n")
    out.write(f"  metadata        {slots['metadata'].uri}\n")
    for key in db.show():
        versions = db.show(key.type_id, key.identifier)
        out.write(f"    {key.type_id:<10} {key.identifier:<22} versions {versions}\n")
    jobs = db.show_jobs()
    kinds: dict[str, int] = {}
    for job in jobs:
        kinds[job.kind] = kinds.get(job.kind, 0) + 1
    out.write(f"    jobs       {', '.join(f'{k}: {n}' for k, n in sorted(kinds.items()))}\n")
    out.write(f"  artifact_store  {slots['artifact_store'].uri}\n")
    owners: dict[str, str] = {}
    for v in db.show("model", DEMO_MODEL):
        for name, ref in db.get_record("model", DEMO_MODEL, v).artifacts.items():
            owners.setdefault(ref.sha256, f"model {DEMO_MODEL} v{v} {name}")
    refs = sorted(db.artifact_store.iter_refs(), key=lambda r: r.sha256)
    for ref in refs:
        out.write(
            f"    sha256 {ref.sha256[:16]}...  {ref.size:>6} B  {owners.get(ref.sha256, '')}\n"
        )
    out.write(f"    {len(refs)} artifacts, {sum(r.size for r in refs)} B\n")


def _run_child(db: Datalayer, version: int | None) -> dict[str, Any]:
    """Load and predict in a new interpreter; in-process when the stores have no URI to share."""
    uris = {role: slot.reveal_uri() for role, slot in db.slots.items()}
    shareable = all(u is not None and not u.startswith("memory:") for u in uris.values())
    if not shareable:
        return _child_work(db, version)
    env = dict(os.environ)
    env["PINNACLEDB_DATABACKEND"] = str(uris["databackend"])
    env["PINNACLEDB_METADATA"] = str(uris["metadata"])
    env["PINNACLEDB_ARTIFACT_STORE"] = str(uris["artifact_store"])
    db.close()  # DuckDB allows one writing process: hand the files over to the child
    proc = subprocess.run(  # noqa: S603 - our own interpreter and module, no shell
        [sys.executable, "-m", "pinnacledb._demo", str(version)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        from pinnacle_protocols.errors import PinnacleError

        raise PinnacleError(f"the demo's child process failed:\n{proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _child_work(db: Datalayer, version: int | None) -> dict[str, Any]:
    from pinnacledb.components import LinearModel

    model = db.load("model", DEMO_MODEL, version)
    assert isinstance(model, LinearModel)
    result = db.predict(model, DEMO_TABLE, inputs=list(FEATURES))
    return {
        "pid": os.getpid(),
        "version": model.version,
        "rows": result.rows,
        "output_table": result.output_table,
        "job_id": result.job.job_id,
        "status": result.job.status.value,
        "seconds": result.seconds,
    }


def _child_main(argv: list[str]) -> int:
    from pinnacledb._wiring import pinnacle

    db = pinnacle()
    result = _child_work(db, int(argv[0]) if argv and argv[0] != "None" else None)
    db.close()
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
