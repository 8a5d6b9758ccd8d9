"""``db.select(t, {"id": k})`` through the pinnacledb facade against the raw driver.

Sides interleaved call by call on a 100,000-row file indexed on ``id`` (``--engine duckdb``,
the default, or ``sqlite``; the metadata store is a SQLite file next to it, as in a default
deployment): the facade's ``db.select`` (filter bound, statement cached by shape; the table's
codec kept while the metadata store's change token is unchanged), the same call reading the
table's Table record from the metadata store on every call (how it worked before the change
token), the same call with the databackend's ``_bind_filters`` off (the filter compiled by
ibis each call), and the connection's ``execute(sql, [k]).fetchall()``. Prints the medians of
``--calls`` calls (the first 100 left out as warm-up) and the ratio to raw, then the CPU time
per call (``time.process_time``, median of ``--cpu-rounds`` rounds of ``--calls`` calls,
sides alternating) and the 1-minute load average.

Run: ``python benchmarks/select/bench_facade_point_read.py [--engine sqlite]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from pinnacledb import pinnacle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--engine", choices=("duckdb", "sqlite"), default="duckdb")
    parser.add_argument("--cpu-rounds", type=int, default=7)
    args = parser.parse_args()
    n = args.rows
    root = tempfile.mkdtemp(prefix="pinnacle_point_")
    db = pinnacle(
        f"{args.engine}://{root}/data.{args.engine}",
        metadata_store=f"sqlite://{root}/metadata.db",
        artifact_store=f"filesystem://{root}/artifacts",
    )
    db.create_table("t", {"id": "int", "x": "float", "s": "str"})
    db.insert(
        "t",
        pa.table(
            {
                "id": pa.array(range(n), pa.int64()),
                "x": [i * 0.5 for i in range(n)],
                "s": ["a"] * n,
            }
        ),
    )
    backend: Any = db.databackend
    backend.create_index("t", ["id"])  # a point read, as in bench_point_reads.py
    con = backend._dbapi
    sql = 'SELECT "id", "x", "s" FROM "t" WHERE ("id" = ?)'

    def ibis_path(k: int) -> Any:
        backend._bind_filters = False
        try:
            return db.select("t", {"id": k})
        finally:
            backend._bind_filters = True

    def metadata_each_call(k: int) -> Any:
        # what table_codec did before the change token: read the Table record every call
        saved = getattr(db, "_token_source", None)  # absent before the change token
        db._token_source = (db.metadata, None)
        try:
            return db.select("t", {"id": k})
        finally:
            db._token_source = saved

    sides: dict[str, Callable[[int], Any]] = {
        "db.select": lambda k: db.select("t", {"id": k}),
        "db.select, metadata read each call": metadata_each_call,
        "db.select, ibis path": ibis_path,
        "raw execute + fetchall": lambda k: con.execute(sql, [k]).fetchall(),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(args.calls):
        key = (i * 7919) % n
        for name, fn in sides.items():
            t0 = time.perf_counter()
            fn(key)
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(v[100:]) for name, v in times.items()}
    raw = med["raw execute + fetchall"]
    for name, value in med.items():
        print(f"{name}: {value * 1e6:.1f} µs ({value / raw:.2f}x raw)")
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    keys = [(i * 7919) % n for i in range(args.calls)]
    for r in range(args.cpu_rounds):
        for name in list(sides) if r % 2 == 0 else list(reversed(sides)):
            fn = sides[name]
            t0 = time.process_time()
            for key in keys:
                fn(key)
            cpu[name].append((time.process_time() - t0) / len(keys))
    raw_cpu = statistics.median(cpu["raw execute + fetchall"])
    for name, values in cpu.items():
        value = statistics.median(values)
        print(f"CPU time per call, {name}: {value * 1e6:.1f} µs ({value / raw_cpu:.2f}x raw)")
    print(f"1-minute load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
