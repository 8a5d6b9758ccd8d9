"""Ratio benchmarks of listeners against the raw work they wrap, on a DuckDB file.

1. Backfill: ``db.apply(Listener(...))`` on a table of N rows (default 1M) with a trivial numpy
   model (``LinearModel``, one weight), against a raw loop doing the same work with ibis: read a
   batch of ``(id, x)`` in id order (keyset, the listener's batch size), run the model, insert
   ``(source_id, output)`` (target <= 1.3x).
2. Single-row insert on a table with one listener: p50 of ``db.insert`` against p50 of
   (``db.insert`` into the same table without a listener + the model call) (target <= 2x).
3. ``db.catch_up()`` on the N backfilled rows with nothing to do, against the raw anti-join
   query alone (the source ids with no output of the current model version, first page, as
   ibis runs it) (target <= 1.5x). ``catch_up(stale=False)`` (missing outputs only) is reported
   too.

Both sides run in this process on the same DuckDB file, alternating where repeated. Usage::

    python benchmarks/listeners/bench_listeners.py [--rows N] [--inserts K] [--write FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

BATCH = 1000


def _db(root: Path) -> Any:
    from pinnacledb import pinnacle

    return pinnacle(
        f"duckdb://{root}/data.duckdb",
        metadata_store=f"sqlite:///{root}/metadata.db",
        artifact_store=f"filesystem://{root}/artifacts",
    )


def _model() -> Any:
    import numpy as np

    from pinnacledb import LinearModel

    return LinearModel(identifier="lin", weights=np.array([2.0]), bias=1.0)


def _fill(db: Any, table: str, rows: int) -> None:
    import numpy as np
    import pyarrow as pa

    db.create_table(table, {"id": "int", "x": "float"})
    rng = np.random.default_rng(0)
    step = 200_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        ids = np.arange(start, start + n, dtype=np.int64)
        db.insert(table, pa.table({"id": ids, "x": rng.normal(size=n)}))


def bench_backfill(db: Any, rows: int) -> dict[str, float]:
    """Seconds of the listener backfill and of the raw ibis loop."""
    from pinnacledb import Listener

    model = _model()
    con = db.databackend.native("src")._find_backend()
    con.create_table(
        "raw_out",
        schema={"source_id": "int64", "output": "float64"},
        overwrite=True,
    )
    t0 = time.perf_counter()
    src = con.table("src")
    last = None
    while True:
        expr = src if last is None else src.filter(src.id > last)
        batch = expr.order_by("id").limit(BATCH).select("id", "x").to_pyarrow()
        if batch.num_rows == 0:
            break
        ids = batch["id"].to_pylist()
        ys = model.predict(batch["x"].to_pylist())
        con.insert("raw_out", [{"source_id": i, "output": y} for i, y in zip(ids, ys, strict=True)])
        last = ids[-1]
        if batch.num_rows < BATCH:
            break
    raw = time.perf_counter() - t0
    assert con.table("raw_out").count().execute() == rows

    t0 = time.perf_counter()
    db.apply(Listener(identifier="lst", model=model, table="src", inputs="x"))
    facade = time.perf_counter() - t0
    assert db.count("outputs__lst") == rows
    return {"facade": facade, "raw": raw}


def bench_insert(db: Any, inserts: int) -> dict[str, float]:
    """p50 seconds of a single-row insert with a listener, and of insert + model call."""
    from pinnacledb import Listener

    model = _model()
    db.create_table("ins_l", {"id": "int", "x": "float"})
    db.create_table("ins_p", {"id": "int", "x": "float"})
    db.insert("ins_l", [{"id": -1, "x": 0.0}])
    db.apply(Listener(identifier="ins", model=_model(), table="ins_l", inputs="x"))
    loaded = db.load("model", "lin")
    listened: list[float] = []
    plain: list[float] = []
    for i in range(inserts + 10):
        row = {"id": i, "x": float(i)}
        t0 = time.perf_counter()
        result = db.insert("ins_l", [row])
        t1 = time.perf_counter()
        db.insert("ins_p", [row])
        loaded.predict([row["x"]])
        t2 = time.perf_counter()
        assert result.ok
        if i >= 10:  # warm-up
            listened.append(t1 - t0)
            plain.append(t2 - t1)
    assert db.count("outputs__ins") == inserts + 11
    del model
    return {"facade": statistics.median(listened), "raw": statistics.median(plain)}


def bench_catch_up(db: Any, runs: int) -> dict[str, float]:
    """Median seconds of a no-op catch_up (and stale=False) and of the raw anti-join query."""
    con = db.databackend.native("src")._find_backend()
    version = db._listeners.snapshot().by_id["lst"].model_version
    full: list[float] = []
    missing: list[float] = []
    raw: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        src = con.table("src")
        out = con.table("outputs__lst")
        right = out.filter(out.model_version == version).select(key=out.source_id)
        keys = src.filter(src.id.notnull()).select("id").distinct()
        page = keys.anti_join(right, keys.id == right.key).order_by("id").limit(BATCH)
        assert page.to_pyarrow().num_rows == 0
        raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        report = db.catch_up("lst")
        full.append(time.perf_counter() - t0)
        assert report.changed == 0
        t0 = time.perf_counter()
        report = db.catch_up("lst", stale=False)
        missing.append(time.perf_counter() - t0)
        assert report.changed == 0
    return {
        "facade": statistics.median(full),
        "missing": statistics.median(missing),
        "raw": statistics.median(raw),
    }


def _verdict(ratio: float, target: float) -> str:
    return "met" if ratio <= target else "**missed**"


def main() -> int:
    """Run the three benchmarks and print (or write) the markdown report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--inserts", type=int, default=300)
    parser.add_argument("--catch-up-runs", type=int, default=3)
    parser.add_argument("--write", type=Path, default=None, help="write a markdown report")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        root = Path(tmp)
        db = _db(root)
        try:
            _fill(db, "src", args.rows)
            backfill = bench_backfill(db, args.rows)
            catch_up = bench_catch_up(db, args.catch_up_runs)
            insert = bench_insert(db, args.inserts)
        finally:
            db.close()
    load_after = os.getloadavg()[0]
    r_backfill = backfill["facade"] / backfill["raw"]
    r_insert = insert["facade"] / insert["raw"]
    r_catch = catch_up["facade"] / catch_up["raw"]
    r_missing = catch_up["missing"] / catch_up["raw"]
    rows = f"{args.rows:,}"
    lines = [
        "# pinnacledb listener benchmarks",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; DuckDB file (data), SQLite (metadata), both sides in "
        "one process on the same file.",
        f"1-minute load average {load_before:.1f} before, {load_after:.1f} after (other jobs "
        "ran at the same time; absolute times move with it, ratios less).",
        "Reproduce: `python benchmarks/listeners/bench_listeners.py --write "
        "benchmarks/RESULTS_listeners.md`"
        + ("" if args.rows == 1_000_000 else f" (this run: `--rows {args.rows}`)")
        + ".",
        "",
        "| benchmark | pinnacledb | raw | ratio | target |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| backfill of {rows} rows (s) | {backfill['facade']:.2f} | {backfill['raw']:.2f} "
        f"| {r_backfill:.2f}x | <= 1.3x: {_verdict(r_backfill, 1.3)} |",
        f"| single-row insert, p50 of {args.inserts} (ms) | {insert['facade'] * 1e3:.2f} "
        f"| {insert['raw'] * 1e3:.2f} | {r_insert:.2f}x | <= 2x: {_verdict(r_insert, 2.0)} |",
        f"| catch_up, nothing to do, {rows} rows (s) | {catch_up['facade']:.3f} "
        f"| {catch_up['raw']:.3f} | {r_catch:.2f}x | <= 1.5x: {_verdict(r_catch, 1.5)} |",
        f"| catch_up(stale=False), same (s) | {catch_up['missing']:.3f} "
        f"| {catch_up['raw']:.3f} | {r_missing:.2f}x | (reported) |",
        "",
        "Raw sides: backfill = ibis keyset pages of 1000 `(id, x)`, the model, an ibis insert "
        "of `(source_id, output)`; insert = `db.insert` into an identical table without a "
        "listener plus `model.predict([x])`; catch_up = the anti-join query (source ids with no "
        "output of the current version, first page of 1000) alone. The listener hashes every "
        "row's inputs, writes the 8 columns of an outputs table (with a copy of the input) and "
        "records the job's progress per batch; a single-row insert writes the row and its "
        "output in one transaction (DuckDB); a no-op catch_up is decided in the database "
        "by one statement (two anti-join counts and two counts, `count_many`) and writes one "
        "job record.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write is not None:
        args.write.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
