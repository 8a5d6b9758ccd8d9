"""The fixed cost of ``db.predict`` per row on ``local://``: a trivial model, so the rest is ours.

Fills a table ``t(id, x)`` on a fresh SQLite or DuckDB file, then times ``db.predict`` into a
new outputs table and a re-run over the same rows (which replaces every output), in batches of
1,000. Run it from two checkouts one after the other to compare before and after a change:

    python benchmarks/compute/bench_predict_rows.py --backend sqlite --rows 200000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from pinnacledb import Model, pinnacle


class Double:
    """``2 * x`` (pickled by value with cloudpickle)."""

    def predict(self, xs: list[float]) -> list[float]:
        return [2.0 * x for x in xs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("sqlite", "duckdb"), default="sqlite")
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()

    import cloudpickle

    cloudpickle.register_pickle_by_value(__import__(__name__))
    base = tempfile.mkdtemp(prefix="bench-predict-rows-")
    data = f"sqlite://{base}/data.db" if args.backend == "sqlite" else f"duckdb://{base}/d.duckdb"
    with pinnacle(
        data,
        metadata_store=f"sqlite://{base}/metadata.db",
        artifact_store=f"filesystem://{base}/artifacts/",
        trust_serializers={"cloudpickle"},
    ) as db:
        db.create_table("t", {"id": "int", "x": "float"})
        db.insert("t", [{"id": i, "x": float(i % 1000)} for i in range(args.rows)])
        db.apply(Model(identifier="double", object=Double(), serializer="cloudpickle"))
        db.predict("double", "t", inputs="x", where={"id": {"$lt": 2000}}, output="warm")
        for case in ("new outputs table", "re-run"):
            t0 = time.perf_counter()
            result = db.predict("double", "t", inputs="x", output="out", batch_size=1000)
            took = time.perf_counter() - t0
            assert result.rows == args.rows
            print(
                f"{args.backend} {args.rows} rows, {case}: {took:.2f} s, "
                f"{took / args.rows * 1e6:.1f} µs/row (load {os.getloadavg()[0]:.1f})"
            )


if __name__ == "__main__":
    main()
