"""DataBackend.insert of pinnacle-sql (``sqlalchemy+sqlite``) and pinnacle-mongo against raw drivers

Rows: 4 numbers (2 int, 2 float) and 1 string, the rows of ``bench_insert.py``. Sides:

* ``sqlalchemy+sqlite``: ``SQLAlchemyDataBackend.insert`` of a list of dicts and of a
  ``pyarrow.Table`` (one batch of ``--batch`` rows, inserted ``rows / batch`` times into a
  fresh file database) against ``sqlite3``'s ``executemany`` fed the dicts themselves
  (``raw dicts``, validates nothing) and ``pa.Table.from_pylist`` + ``executemany`` of tuples
  zipped from its columns (``from_pylist + raw``, the issue's comparison), and
  ``executemany`` of tuples zipped from the Arrow table's own columns (``raw arrow``, the
  comparison for Arrow input).
* ``mongodb`` (an nx-27017 wire server started here, in memory, ``--mongo-rows`` rows): the
  client-side cost of ``MongoDataBackend.insert`` (validating and building the documents: what
  is left when the server's time is taken away) and the whole insert against
  ``insert_many`` of documents built beforehand.

Sides alternate over ``--repeat`` runs; medians shown. Run from the repository root:
``python benchmarks/insert/bench_insert_backends.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from pinnacle_protocols import Schema

SCHEMA = Schema.of(id="int", n="int", x="float", y="float", s="str")
#: The clock the SQL sides are timed with (``--clock``): wall time, or this process's CPU time.
CLOCK: list[Callable[[], float]] = [time.perf_counter]

DDL = "CREATE TABLE t (id BIGINT, n BIGINT, x DOUBLE, y DOUBLE, s TEXT)"


def make_batch(rows: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "n": i % 97, "x": i * 0.5, "y": 1.0 / (i + 1), "s": f"row-{i % 1000}"}
        for i in range(rows)
    ]


def in_tmp(fn: Callable[[Path], float]) -> float:
    tmp = Path(tempfile.mkdtemp(prefix="pinnacle-bench-backends-"))
    try:
        return fn(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sql_backend(batch: Any, n: int, tmp: Path) -> float:
    from pinnacle_sql import SQLAlchemyDataBackend

    backend = SQLAlchemyDataBackend.from_uri(f"sqlalchemy+sqlite:///{tmp}/data.db")
    backend.create_table("t", SCHEMA)
    backend.insert("t", batch)  # warm: engine, schema lookup
    backend.delete("t", None)
    t0 = CLOCK[0]()
    for _ in range(n):
        backend.insert("t", batch)
    took = CLOCK[0]() - t0
    assert backend.count("t") == n * len(batch)
    backend.close()
    return took


def sql_raw_arrow(table: pa.Table, n: int, tmp: Path) -> float:
    """sqlite3's executemany of tuples zipped from the Arrow table's columns (``raw arrow`` of
    ``bench_insert.py``)."""
    con = sqlite3.connect(str(tmp / "data.db"))
    con.execute(DDL)
    t0 = CLOCK[0]()
    for _ in range(n):
        cols = [c.to_pylist() for c in table.columns]
        con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", zip(*cols, strict=True))
        con.commit()
    took = CLOCK[0]() - t0
    con.close()
    return took


def sql_raw(batch: list[dict[str, Any]], n: int, from_pylist: bool, tmp: Path) -> float:
    con = sqlite3.connect(str(tmp / "data.db"))
    con.execute(DDL)
    t0 = CLOCK[0]()
    for _ in range(n):
        if from_pylist:
            cols = [c.to_pylist() for c in pa.Table.from_pylist(batch).columns]
            con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", zip(*cols, strict=True))
        else:
            con.executemany("INSERT INTO t VALUES (:id, :n, :x, :y, :s)", batch)
        con.commit()
    took = CLOCK[0]() - t0
    con.close()
    return took


def bench_sql(rows: int, batch_rows: int, repeat: int) -> dict[str, float]:
    batch = make_batch(batch_rows)
    arrow = pa.Table.from_pylist(batch)
    n = rows // batch_rows
    sides: dict[str, Callable[[Path], float]] = {
        "backend.insert(dicts)": lambda tmp: sql_backend(batch, n, tmp),
        "from_pylist + raw": lambda tmp: sql_raw(batch, n, True, tmp),
        "raw dicts": lambda tmp: sql_raw(batch, n, False, tmp),
        "backend.insert(arrow)": lambda tmp: sql_backend(arrow, n, tmp),
        "raw arrow": lambda tmp: sql_raw_arrow(arrow, n, tmp),
    }
    times: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(repeat):
        for label, fn in sides.items():
            times[label].append(in_tmp(fn))
            print("sqlalchemy+sqlite", label, f"{times[label][-1]:.2f}s", file=sys.stderr)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_mongo(rows: int, repeat: int) -> dict[str, float]:
    from pinnacle_mongo import MongoDataBackend
    from pinnacle_mongo.testing import fresh_database_name, start_nx27017

    server = start_nx27017()
    try:
        backend = MongoDataBackend.from_uri(server.uri(fresh_database_name("bench")))
        db = backend.native_database()
        batch = make_batch(rows)
        times: dict[str, list[float]] = {"client side": [], "backend.insert": [], "raw": []}
        real = type(db["x"]).insert_many
        for k in range(repeat):
            backend.create_table(f"c{k}", SCHEMA)
            # client side: the same insert with the collection's insert_many made a no-op
            type(db["x"]).insert_many = lambda self, docs, **kw: None  # type: ignore[method-assign,assignment]
            try:
                t0 = time.perf_counter()
                backend.insert(f"c{k}", batch)
                times["client side"].append(time.perf_counter() - t0)
            finally:
                type(db["x"]).insert_many = real  # type: ignore[method-assign]
            backend.create_table(f"o{k}", SCHEMA)
            docs = [dict(r) for r in batch]
            t0 = time.perf_counter()
            db[f"r{k}"].insert_many(docs, ordered=True)
            times["raw"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            backend.insert(f"o{k}", batch)
            times["backend.insert"].append(time.perf_counter() - t0)
            assert backend.count(f"o{k}") == rows
            for name in (f"c{k}", f"o{k}"):
                backend.drop_table(name)
            db.drop_collection(f"r{k}")
            print("mongodb", {k: f"{v[-1]:.2f}s" for k, v in times.items()}, file=sys.stderr)
        backend.close()
    finally:
        server.stop()
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--mongo-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["sql", "mongo"])
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="time the sqlalchemy+sqlite sides by wall clock or by this process's CPU time",
    )
    args = parser.parse_args()
    if args.clock == "cpu":
        CLOCK[0] = time.process_time
    before = os.getloadavg()
    out = [
        f"Reproduce: `python benchmarks/insert/bench_insert_backends.py --rows {args.rows} "
        f"--batch {args.batch} --mongo-rows {args.mongo_rows} --repeat {args.repeat}"
        + (f" --only {args.only}" if args.only else "")
        + (" --clock cpu" if args.clock == "cpu" else "")
        + "`",
        "",
        "| backend | side | seconds (median) | µs/row | ratio |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    if args.only != "mongo":
        r = bench_sql(args.rows, args.batch, args.repeat)
        total = (args.rows // args.batch) * args.batch
        for label, secs in r.items():
            ratio = ""
            if label.startswith("backend"):
                ratio = (
                    f"{secs / r['from_pylist + raw']:.2f}x from_pylist + raw, "
                    f"{secs / r['raw dicts']:.2f}x raw dicts"
                )
            if label == "backend.insert(arrow)":
                ratio += f", {secs / r['raw arrow']:.2f}x raw arrow"
            out.append(
                f"| sqlalchemy+sqlite | {label} | {secs:.2f} | {secs / total * 1e6:.2f} | {ratio} |"
            )
    if args.only != "sql":
        m = bench_mongo(args.mongo_rows, args.repeat)
        for label, secs in m.items():
            ratio = f"{secs / m['raw']:.2f}x raw" if label == "backend.insert" else ""
            out.append(
                f"| mongodb (nx-27017) | {label} | {secs:.2f} | "
                f"{secs / args.mongo_rows * 1e6:.2f} | {ratio} |"
            )
    after = os.getloadavg()
    out.insert(
        0,
        "Load average (1, 5, 15 min): "
        + ", ".join(f"{x:.2f}" for x in before)
        + " before, "
        + ", ".join(f"{x:.2f}" for x in after)
        + " after.",
    )
    print("\n".join(out))


if __name__ == "__main__":
    main()
