"""``db.select(t, {"id": k})`` through the pinnacledb facade on DuckDB against the raw driver.

Three sides interleaved call by call on a 100,000-row DuckDB file: the facade's ``db.select``
(filter bound, statement cached by shape), the same call with the databackend's
``_bind_filters`` off (the filter compiled by ibis each call, as before), and the DuckDB
connection's ``execute(sql, [k]).fetchall()``. Prints the medians of ``--calls`` calls (the
first 100 left out as warm-up) and the ratio to raw.

Run: ``python benchmarks/select/bench_facade_point_read.py``
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
    args = parser.parse_args()
    n = args.rows
    db = pinnacle(f"duckdb://{tempfile.mkdtemp(prefix='pinnacle_point_')}/data.duckdb")
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
    con = backend._dbapi
    sql = 'SELECT "id", "x", "s" FROM "t" WHERE ("id" = ?)'

    def ibis_path(k: int) -> Any:
        backend._bind_filters = False
        try:
            return db.select("t", {"id": k})
        finally:
            backend._bind_filters = True

    sides: dict[str, Callable[[int], Any]] = {
        "db.select": lambda k: db.select("t", {"id": k}),
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
        print(f"{name}: {value * 1000:.3f} ms ({value / raw:.2f}x raw)")
    print(f"1-minute load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
