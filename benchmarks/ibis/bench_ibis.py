"""pinnacle-ibis against ibis used directly, in the same process and run.

Three measurements per engine (DuckDB in memory and PostgreSQL, a fresh database):

1. insert 1,000,000 rows given as a ``pyarrow.Table`` (targets: at most 1.1x ibis);
2. a filtered select returning 100,000 of the 1,000,000 rows (target: at most 1.1x), both
   sides producing Python rows (``select()`` vs ``expr.to_pyarrow().to_pylist()``), plus the
   Arrow-only variant (``execute(native expr)`` vs ``expr.to_pyarrow()``) for information;
3. a one-row select, per call (target: at most 1.2x): ``select(t, {"id": k})`` vs
   ``t.filter(t.id == k).to_pyarrow().to_pylist()`` with the table expression made once.

Sides alternate and each figure is the median of ``--repeat`` runs (the one-row select: of
``--calls`` calls per run), so background load hits both sides alike.

Run: ``python benchmarks/ibis/bench_ibis.py --write benchmarks/RESULTS_ibis.md``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import ibis
import pyarrow as pa

from pinnacle_ibis import IbisDataBackend
from pinnacle_ibis.testing import PostgresServer
from pinnacle_protocols.records import Schema

SCHEMA = Schema.of(id="int", x="float", s="str")


def make_table(rows: int) -> pa.Table:
    ids = pa.array(range(rows), pa.int64())
    return pa.table(
        {
            "id": ids,
            "x": pa.array([i * 0.5 for i in range(rows)], pa.float64()),
            "s": pa.array([f"row-{i % 1000}" for i in range(rows)], pa.string()),
        }
    )


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def alternate(
    ours: Callable[[int], float], theirs: Callable[[int], float], repeat: int
) -> tuple[float, float]:
    a, b = [], []
    for i in range(repeat):
        if i % 2 == 0:
            a.append(ours(i))
            b.append(theirs(i))
        else:
            b.append(theirs(i))
            a.append(ours(i))
    return statistics.median(a), statistics.median(b)


def bench_engine(name: str, uri: str, args: argparse.Namespace) -> list[tuple[str, float, float]]:
    data = make_table(args.rows)
    store = IbisDataBackend.from_uri(uri)
    con = store.connection  # the same ibis connection for both sides
    ibis_schema = ibis.schema({"id": "int64", "x": "float64", "s": "string"})
    results: list[tuple[str, float, float]] = []

    # 1. insert -------------------------------------------------------------------------
    def ours_insert(i: int) -> float:
        table = f"p_ins_{i}"
        store.create_table(table, SCHEMA)
        seconds = timed(lambda: store.insert(table, data))
        store.drop_table(table)
        return seconds

    def ibis_insert(i: int) -> float:
        table = f"i_ins_{i}"
        con.create_table(table, schema=ibis_schema)
        seconds = timed(lambda: con.insert(table, data))
        con.drop_table(table)
        return seconds

    mine, theirs = alternate(ours_insert, ibis_insert, args.insert_repeat)
    results.append((f"insert {args.rows:,} rows (pyarrow)", mine, theirs))
    print(name, results[-1], flush=True)

    # one table with the data for the reads (same rows for both sides)
    store.create_table("bench", SCHEMA)
    store.insert("bench", data)
    t = con.table("bench")
    cut = args.rows // 10

    def ours_filter(_: int) -> float:
        return timed(lambda: store.select("bench", {"id": {"$lt": cut}}))

    def ibis_filter(_: int) -> float:
        return timed(lambda: t.filter(t.id < cut).to_pyarrow().to_pylist())

    mine, theirs = alternate(ours_filter, ibis_filter, args.repeat)
    results.append((f"select {cut:,} of {args.rows:,} rows -> Python rows", mine, theirs))
    print(name, results[-1], flush=True)

    native = store.native("bench")

    def ours_arrow(_: int) -> float:
        return timed(lambda: store.execute(native.filter(native.id < cut)))

    def ibis_arrow(_: int) -> float:
        return timed(lambda: t.filter(t.id < cut).to_pyarrow())

    mine, theirs = alternate(ours_arrow, ibis_arrow, args.repeat)
    results.append((f"select {cut:,} of {args.rows:,} rows -> Arrow (execute)", mine, theirs))
    print(name, results[-1], flush=True)

    def per_call(fn: Callable[[int], Any]) -> Callable[[int], float]:
        def run(_: int) -> float:
            samples = []
            for k in range(args.calls):
                key = (k * 7919) % args.rows
                t0 = time.perf_counter()
                fn(key)
                samples.append(time.perf_counter() - t0)
            return statistics.median(samples)

        return run

    mine, theirs = alternate(
        per_call(lambda k: store.select("bench", {"id": k})),
        per_call(lambda k: t.filter(t.id == k).to_pyarrow().to_pylist()),
        args.repeat,
    )
    results.append(("one-row select, per call", mine, theirs))
    print(name, results[-1], flush=True)
    store.drop_table("bench")
    store.close()
    return results


NOTES = """## Notes

* Both sides use the same ibis connection in the same process; the table expression for
  ibis is made once, outside the timing (as a user would).
* PostgreSQL insert: pinnacle-ibis writes with `COPY ... FROM STDIN` (psycopg) in one
  transaction; ibis 12's `insert` of a pyarrow Table creates a temporary table filled by
  `executemany` and then copies it, hence the large gap.
* Filtered select: pinnacle-ibis compiles the filter with ibis and runs the statement on the
  driver; a plain comparison is not wrapped in `COALESCE` (only negated comparisons are), so
  it stays as sargable as ibis's own. Rows come back as dicts on both sides (`to_pylist()`).
* Absolute times move with the machine's load; the ratios come from alternating runs.
"""


def target_for(label: str) -> float | None:
    if label.startswith("insert"):
        return 1.1
    if label.startswith("one-row"):
        return 1.2
    if "Python rows" in label:
        return 1.1
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--insert-repeat", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--engines", default="duckdb,postgres")
    parser.add_argument("--write", help="write the Markdown report to this file")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    sections: dict[str, list[tuple[str, float, float]]] = {}
    server = None
    try:
        for engine in args.engines.split(","):
            if engine == "duckdb":
                uri = "duckdb://"
            elif engine == "postgres":
                server = server or PostgresServer()
                uri = server.create_database()
            elif engine == "sqlite":
                uri = "sqlite://"
            else:
                raise SystemExit(f"unknown engine {engine}")
            sections[engine] = bench_engine(engine, uri, args)
    finally:
        if server is not None:
            server.drop_all()
    load_after = os.getloadavg()[0]

    lines = [
        "# pinnacle-ibis benchmarks (against ibis used directly)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, ibis {ibis.__version__}, pyarrow {pa.__version__}. "
        f"1-minute load average {load_before:.1f} before, {load_after:.1f} after (other jobs "
        "shared the machine; sides alternate, so load hits both).",
        f"Medians of {args.repeat} runs ({args.insert_repeat} for inserts); the one-row select is "
        f"the median of {args.calls} calls per run. Table: {args.rows:,} rows of "
        "(id int, x float, s str).",
        f"Reproduce: `python benchmarks/ibis/bench_ibis.py --write benchmarks/RESULTS_ibis.md`"
        f" (this run: `{' '.join(sys.argv[1:])}`).",
        "",
    ]
    for engine, rows in sections.items():
        lines += [
            f"## {engine}",
            "",
            "| measurement | pinnacle-ibis | ibis directly | ratio | target |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for label, mine, theirs in rows:
            ratio = mine / theirs
            target = target_for(label)
            if target is None:
                verdict = "(info)"
            else:
                verdict = f"<= {target}x: {'met' if ratio <= target else '**missed**'}"
            unit = "ms" if label.startswith("one-row") else "s"
            scale = 1000.0 if unit == "ms" else 1.0
            lines.append(
                f"| {label} | {mine * scale:.3f} {unit} | {theirs * scale:.3f} {unit} | "
                f"{ratio:.2f}x | {verdict} |"
            )
        lines.append("")
    report = "\n".join(lines) + NOTES
    print(report)
    if args.write:
        with open(args.write, "w", encoding="utf-8") as fh:
            fh.write(report)


if __name__ == "__main__":
    main()
