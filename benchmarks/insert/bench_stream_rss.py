"""Peak RSS while ``db.insert`` streams a 10M-row generator into DuckDB (issue 16).

Each input kind runs in a fresh process: ``pinnacle(duckdb:///<tmp>/data.db)``, a table of 4
numbers and 1 string, one warm-up batch inserted and deleted, then ``db.insert(t, gen)`` of a
generator that makes its rows lazily, either dicts one by one (``dicts``) or
``pyarrow.RecordBatch``es of ``--batch`` rows made with NumPy and Arrow kernels (``arrow``;
the same values). ``raw`` is the engine's own share for reference: the same set-up (so the
same imports and allocator state), then the same generator of RecordBatches written through
the DuckDB connection alone (``register`` + ``INSERT ... SELECT`` + ``unregister`` per batch,
each batch let go before the next is made), not through ``db.insert``.

The baseline is the RSS after setup and the warm-up (garbage collected), and the peak is
reset there (``/proc/self/clear_refs``), so a warm-up bigger than the stream's own needs
cannot hide them. The generator reads ``VmHWM`` (peak RSS) and ``VmRSS`` from
``/proc/self/status``, DuckDB's buffer pool (``duckdb_memory()``, summed over tags, on a
cursor of the same database) and pyarrow's live bytes (``pa.total_allocated_bytes()``) when it
has made each checkpoint's rows (default 1M, 5M, 10M), so one run shows whether the peak grows
with the row count and how much of it DuckDB's pool holds.

The target of issue 16: peak < baseline + 2x one batch's Arrow size. DuckDB keeps the blocks
it writes to a file database in its buffer pool (by default up to 80% of RAM), which fills as
the table grows whatever the caller does; ``--duckdb-memory-limit`` (default 16MB, set with
``SET memory_limit``) caps it. That pool is the engine's cache, not the insert path's, so the
report gives it separately and checks: (1) the peak above the baseline less what DuckDB's pool
grew by (its largest ``duckdb_memory()`` sum at a checkpoint less the one at the baseline)
under 2x batch; (2) the peak above the baseline less the raw driver's (the engine, its
allocator and the source generator, measured in the same run) under 2x batch.
``--duckdb-memory-limit ''`` leaves DuckDB's default (the pool then grows to hundreds of MiB).

Run: ``python benchmarks/insert/bench_stream_rss.py --rows 10000000 --batch 100000``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

CHILD = r"""
import gc, json, sys, tempfile, time
import numpy as np
import pyarrow as pa

kind, total, batch, checkpoints, memory_limit = (
    sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
)


def status() -> tuple[int, int]:
    # (VmHWM, VmRSS) in bytes
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                found[key] = int(value.split()[0]) * 1024
    return found["VmHWM"], found["VmRSS"]


LABELS = pa.array([f"row-{k}" for k in range(1000)], pa.string())


def arrow_batch(start: int, n: int) -> pa.RecordBatch:
    # made vectorised, as an Arrow producer would: the source's own Python temporaries (lists
    # of 100,000 floats and strings, ~2x the batch) would otherwise be counted against the
    # insert; the values are those of the dicts (i * 0.5 and 1.0 / (i + 1) are the same IEEE
    # operations in NumPy)
    ids = np.arange(start, start + n, dtype=np.int64)
    return pa.RecordBatch.from_arrays(
        [pa.array(ids), pa.array(ids % 97), pa.array(ids * 0.5), pa.array(1.0 / (ids + 1)),
         LABELS.take(pa.array(ids % 1000))],
        names=["id", "n", "x", "y", "s"],
    )


samples = []
pending = list(checkpoints)
duck = None  # a cursor on the database, for duckdb_memory()


def pool() -> int:
    rows = duck.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()
    return int(rows[0][0] or 0)


def checkpoint(made: int) -> None:
    while pending and made >= pending[0]:
        hwm, rss = status()
        samples.append({"rows": pending.pop(0), "hwm": hwm, "rss": rss, "pool": pool(),
                        "arrow": pa.total_allocated_bytes(), "t": time.perf_counter()})


def dicts():
    for i in range(total):
        if i % batch == 0:
            checkpoint(i)
        yield {"id": i, "n": i % 97, "x": i * 0.5, "y": 1.0 / (i + 1), "s": f"row-{i % 1000}"}
    checkpoint(total)


def batches():
    for start in range(0, total, batch):
        checkpoint(start)
        yield arrow_batch(start, min(batch, total - start))
    checkpoint(total)


tmp = tempfile.mkdtemp()
one = arrow_batch(0, batch)
batch_bytes = one.nbytes
from pinnacledb import pinnacle

db = pinnacle(f"duckdb:///{tmp}/data.db", metadata_store=f"sqlite:///{tmp}/meta.db",
              artifact_store=f"filesystem://{tmp}/artifacts")
if memory_limit:
    db.databackend.raw_sql(f"SET memory_limit = '{memory_limit}'")
db.create_table("t", {"id": "int", "n": "int", "x": "float", "y": "float", "s": "str"})
con = db.databackend._dbapi  # the DuckDB connection: same process, settings and table
duck = con.cursor()
if kind == "raw":
    def insert(data) -> int:
        made = 0
        it = iter(data)
        while (b := next(it, None)) is not None:
            con.register("src", b)
            con.execute("INSERT INTO t SELECT * FROM src")
            con.unregister("src")
            made += b.num_rows
            del b
        return made

    insert([one])
    con.execute("DELETE FROM t")
else:
    def insert(data) -> int:
        return int(db.insert("t", data, batch_rows=batch))

    insert(one if kind == "arrow" else one.to_pylist())  # warm-up: one batch
    db.delete("t", None)
del one
gc.collect()
with open("/proc/self/clear_refs", "w") as f:  # the peak from here on
    f.write("5")
base_hwm, base_rss = status()
base_pool, base_arrow = pool(), pa.total_allocated_bytes()
t0 = time.perf_counter()
c0 = time.process_time()
n = insert(dicts() if kind == "dicts" else batches())
took, cpu = time.perf_counter() - t0, time.process_time() - c0
end_hwm, end_rss = status()
assert n == total, (n, total)
for s in samples:
    s["t"] -= t0
print(json.dumps({
    "kind": kind, "rows": int(n), "seconds": took, "cpu": cpu, "batch_bytes": batch_bytes,
    "base_hwm": base_hwm, "base_rss": base_rss, "base_pool": base_pool,
    "base_arrow": base_arrow, "end_hwm": end_hwm, "end_rss": end_rss, "end_pool": pool(),
    "samples": samples,
}))
"""


def run(kind: str, total: int, batch: int, checkpoints: list[int], limit: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(total), str(batch), json.dumps(checkpoints), limit],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{out.stderr[-3000:]}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _bytes(size: str) -> int:
    """``16MB`` / ``1GB`` / ``512KB`` (DuckDB's units, powers of 1000) in bytes; 0 if empty."""
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    text = size.strip().upper()
    for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text) if text else 0


def mib(n: object) -> str:
    return f"{int(str(n)) / 2**20:.0f}"


def _i(value: object) -> int:
    return int(str(value))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument(
        "--checkpoints", default="1000000,5000000,10000000", help="rows at which to sample"
    )
    parser.add_argument("--kinds", default="raw,dicts,arrow", help="raw: the driver alone")
    parser.add_argument("--duckdb-memory-limit", default="16MB")
    args = parser.parse_args()
    checkpoints = [int(c) for c in args.checkpoints.split(",") if int(c) <= args.rows]
    load_before = os.getloadavg()
    results = [
        run(kind, args.rows, args.batch, checkpoints, args.duckdb_memory_limit)
        for kind in args.kinds.split(",")
    ]
    load_after = os.getloadavg()
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.rows:,} rows in batches of {args.batch:,}, DuckDB "
        f"memory_limit {args.duckdb_memory_limit or 'default'}."
    )
    print(
        "Load average (1, 5, 15 min): "
        + ", ".join(f"{x:.2f}" for x in load_before)
        + " before, "
        + ", ".join(f"{x:.2f}" for x in load_after)
        + " after."
    )
    print()
    print(
        "| input | rows so far | seconds | RSS peak MiB | RSS now MiB | peak - baseline MiB "
        "| DuckDB pool MiB | pyarrow live MiB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        base = _i(r["base_hwm"])
        print(
            f"| {r['kind']} | baseline (setup + 1 batch, peak reset) | | {mib(base)} "
            f"| {mib(r['base_rss'])} | 0 | {_i(r['base_pool']) / 2**20:.1f} "
            f"| {_i(r['base_arrow']) / 2**20:.1f} |"
        )
        samples = r["samples"]
        assert isinstance(samples, list)
        for s in samples:
            print(
                f"| {r['kind']} | {_i(s['rows']):,} | {s['t']:.1f} | {mib(s['hwm'])} "
                f"| {mib(s['rss'])} | {(_i(s['hwm']) - base) / 2**20:.1f} "
                f"| {_i(s['pool']) / 2**20:.1f} | {_i(s['arrow']) / 2**20:.1f} |"
            )
        print(
            f"| {r['kind']} | end ({_i(r['rows']):,}; CPU {float(str(r['cpu'])):.1f} s) "
            f"| {float(str(r['seconds'])):.1f} | {mib(r['end_hwm'])} | {mib(r['end_rss'])} "
            f"| {(_i(r['end_hwm']) - base) / 2**20:.1f} | {_i(r['end_pool']) / 2**20:.1f} | |"
        )
    print()
    raw = next((r for r in results if r["kind"] == "raw"), None)
    raw_grew = _i(raw["end_hwm"]) - _i(raw["base_hwm"]) if raw is not None else None
    print(
        "| input | peak - baseline MiB | DuckDB pool growth MiB | (1) less the pool MiB "
        "| (2) less the raw driver's MiB | 2x batch MiB | growth 1st -> last checkpoint MiB "
        "| target (1) / (2) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    verdicts = []
    for r in results:
        base = _i(r["base_hwm"])
        batch2 = 2 * _i(r["batch_bytes"])
        grew = _i(r["end_hwm"]) - base
        samples = r["samples"]
        assert isinstance(samples, list)
        pool_grew = max([_i(s["pool"]) for s in samples] + [_i(r["end_pool"])]) - _i(r["base_pool"])
        less_pool = grew - pool_grew
        less_raw = grew - raw_grew if raw_grew is not None and r is not raw else None
        growth = _i(samples[-1]["hwm"]) - _i(samples[0]["hwm"]) if samples else 0
        ok1 = less_pool < batch2
        ok2 = less_raw is None or less_raw < batch2
        if r is not raw:
            verdicts.append((r["kind"], ok1, ok2, growth < batch2))
        print(
            f"| {r['kind']} | {grew / 2**20:.1f} | {pool_grew / 2**20:.1f} "
            f"| {less_pool / 2**20:.1f} "
            f"| {'' if less_raw is None else f'{less_raw / 2**20:.1f}'} | {batch2 / 2**20:.1f} "
            f"| {growth / 2**20:+.1f} "
            f"| {'' if r is raw else ('met' if ok1 else '**missed**') + ' / '}"
            f"{'' if r is raw else ('met' if ok2 else '**missed**')} |"
        )
    print()
    for kind, ok1, ok2, flat in verdicts:
        print(
            f"{kind}: peak flat in the row count: {'yes' if flat else 'NO'}; (1) under baseline "
            f"+ DuckDB's pool growth + 2x batch: {'yes' if ok1 else 'NO'}; (2) under baseline "
            f"+ the raw driver's peak growth + 2x batch: {'yes' if ok2 else 'NO'}"
        )


if __name__ == "__main__":
    main()
