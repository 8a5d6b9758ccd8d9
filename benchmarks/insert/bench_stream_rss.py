"""Peak RSS while ``db.insert`` streams a 10M-row generator into DuckDB (issue 16).

Each input kind runs in a fresh process: ``pinnacle(duckdb:///<tmp>/data.db)``, a table of 4
numbers and 1 string, one warm-up batch inserted and deleted, then ``db.insert(t, gen)`` of a
generator that makes its rows lazily, either dicts one by one (``dicts``) or
``pyarrow.RecordBatch``es of ``--batch`` rows made with Arrow kernels (``arrow``; the same
values; each let go before the next is made). ``arrow4096`` hands the same batches over as
tables of 4,096-row slices (the shape the dict path gives DuckDB). ``raw`` is the engine's own
share for reference: the same set-up (so the same imports and allocator state), then the same
generator of RecordBatches written through the DuckDB connection alone (``register`` +
``INSERT ... SELECT`` + ``unregister`` per batch), not through ``db.insert``. ``source`` is
the generator of RecordBatches alone (set up as ``arrow``, nothing inserted): what making the
batches costs.

The baseline is the RSS after setup and the warm-up (garbage collected), and the peak is
reset there (``/proc/self/clear_refs``), so a warm-up bigger than the stream's own needs
cannot hide them. The generator reads ``VmHWM`` (peak RSS) and ``VmRSS`` from
``/proc/self/status``, DuckDB's buffer pool (``duckdb_memory()``, summed over tags, on a
cursor of the same database) and pyarrow's live bytes (``pa.total_allocated_bytes()``) when it
has made each checkpoint's rows (default 1M, 5M, 10M), so one run shows whether the peak grows
with the row count. Between statements DuckDB's pool is below its peak (inside an INSERT it
fills to its cap and lets go at the end), so a thread polls ``duckdb_memory()`` on a cursor of
its own every ``--sample-ms`` (default 2) during the stream and keeps the largest sum.

The target of issue 16: peak < baseline + 2x one batch's Arrow size. DuckDB keeps the blocks
it writes to a file database in its buffer pool (by default up to 80% of RAM), which fills as
the table grows whatever the caller does; ``--duckdb-memory-limit`` (default 16MB, set with
``SET memory_limit``) caps it. That pool is the engine's cache, not the insert path's, so the
report gives it separately and checks: (1) the peak above the baseline less what DuckDB's pool
grew by (its polled peak less its sum at the baseline) under 2x batch; (2) the peak above the
baseline less the raw driver's (the engine, its allocator and the source generator, measured
in the same run; the median of the ``raw`` runs) under 2x batch. ``--repeat`` runs every kind
that many times, alternating, and reports medians: single runs of one kind differ by up to
~15 MiB (allocator state; see benchmarks/RESULTS.md).
``--duckdb-memory-limit ''`` leaves DuckDB's default (the pool then grows to hundreds of MiB).

Run: ``python benchmarks/insert/bench_stream_rss.py --rows 10000000 --batch 100000``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

CHILD = r"""
import gc, json, sys, tempfile, threading, time
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

kind, total, batch, checkpoints, memory_limit, sample_ms = (
    sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5],
    float(sys.argv[6]),
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


#: the ids of a batch less its first: each batch's columns are made from it with Arrow kernels
STEPS = pa.array(np.arange(batch, dtype=np.int64))


def arrow_batch(start: int, n: int) -> pa.RecordBatch:
    # made vectorised, as an Arrow producer would, with Arrow kernels: their buffers and
    # temporaries come from pyarrow's pool, which reuses the pages of the batch before (NumPy
    # temporaries went through glibc's heap: the source alone grew by 9.3 MiB, 2.3x a batch,
    # against 3.5 MiB now; a source of Python lists costs ~2x a batch of temporaries). The
    # values are those of the dicts: ids % k by integer division (the ids are >= 0), i * 0.5
    # and 1.0 / (i + 1) the same IEEE operations on float64
    ids = pc.add(STEPS.slice(0, n), start)
    real = pc.cast(ids, pa.float64())
    return pa.RecordBatch.from_arrays(
        [ids, pc.subtract(ids, pc.multiply(pc.divide(ids, 97), 97)), pc.multiply(real, 0.5),
         pc.divide(1.0, pc.add(real, 1.0)),
         LABELS.take(pc.subtract(ids, pc.multiply(pc.divide(ids, 1000), 1000)))],
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
        made = arrow_batch(start, min(batch, total - start))
        if kind == "arrow4096":  # the same batch as 4,096-row slices (the dict path's shape)
            made = pa.Table.from_batches([made]).combine_chunks().to_batches(max_chunksize=4096)
            made = pa.Table.from_batches(made)
        yield made
        del made  # not alive while the next is made (the insert let it go already)
    checkpoint(total)


class Sampler(threading.Thread):
    # DuckDB's pool between statements (the checkpoints) is not its peak: inside an INSERT it
    # fills to its cap and lets go at the end; this polls duckdb_memory() on a cursor of its
    # own every ``sample_ms`` while the stream runs and keeps the largest sum
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.cursor, self.most, self.count = con.cursor(), 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(sample_ms / 1000):
            rows = self.cursor.execute(
                "SELECT sum(memory_usage_bytes) FROM duckdb_memory()"
            ).fetchall()
            self.most, self.count = max(self.most, int(rows[0][0] or 0)), self.count + 1


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

    insert(one if kind != "dicts" else one.to_pylist())  # warm-up: one batch
    db.delete("t", None)
    if kind == "source":  # the generator alone (set up as for arrow): what making batches costs
        def insert(data) -> int:
            made = 0
            for b in data:
                made += b.num_rows
                del b
            return made
del one
gc.collect()
with open("/proc/self/clear_refs", "w") as f:  # the peak from here on
    f.write("5")
base_hwm, base_rss = status()
base_pool, base_arrow = pool(), pa.total_allocated_bytes()
sampler = Sampler() if sample_ms > 0 else None
if sampler is not None:
    sampler.start()
t0 = time.perf_counter()
c0 = time.process_time()
n = insert(dicts() if kind == "dicts" else batches())
took, cpu = time.perf_counter() - t0, time.process_time() - c0
end_hwm, end_rss = status()
if sampler is not None:
    sampler.done.set()
    sampler.join()
assert n == total, (n, total)
for s in samples:
    s["t"] -= t0
print(json.dumps({
    "kind": kind, "rows": int(n), "seconds": took, "cpu": cpu, "batch_bytes": batch_bytes,
    "base_hwm": base_hwm, "base_rss": base_rss, "base_pool": base_pool,
    "base_arrow": base_arrow, "end_hwm": end_hwm, "end_rss": end_rss, "end_pool": pool(),
    "pool_peak": 0 if sampler is None else sampler.most,
    "pool_polls": 0 if sampler is None else sampler.count,
    "samples": samples,
}))
"""


def run(
    kind: str, total: int, batch: int, checkpoints: list[int], limit: str, sample_ms: float
) -> dict[str, object]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            kind,
            str(total),
            str(batch),
            json.dumps(checkpoints),
            limit,
            str(sample_ms),
        ],
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
    parser.add_argument(
        "--kinds",
        default="raw,dicts,arrow",
        help="raw: the driver alone; arrow4096: the RecordBatches cut into 4,096-row slices",
    )
    parser.add_argument("--duckdb-memory-limit", default="16MB")
    parser.add_argument(
        "--sample-ms", type=float, default=2.0, help="poll DuckDB's pool this often (0: never)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each kind, alternating")
    args = parser.parse_args()
    checkpoints = [int(c) for c in args.checkpoints.split(",") if int(c) <= args.rows]
    load_before = os.getloadavg()
    results = [
        run(kind, args.rows, args.batch, checkpoints, args.duckdb_memory_limit, args.sample_ms)
        for _ in range(args.repeat)
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
    raws = [_i(r["end_hwm"]) - _i(r["base_hwm"]) for r in results if r["kind"] == "raw"]
    raw_grew = statistics.median(raws) if raws else None
    print(
        "| input | peak - baseline MiB | DuckDB pool growth at checkpoints / polled peak MiB "
        "| (1) less the pool's peak MiB | (2) less the raw driver's (median) MiB | 2x batch MiB "
        "| growth 1st -> last checkpoint MiB | CPU s | target (1) / (2) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    per_kind: dict[str, list[tuple[float, float, float | None, float]]] = {}
    batch2 = 0
    for r in results:
        base = _i(r["base_hwm"])
        batch2 = 2 * _i(r["batch_bytes"])
        grew = _i(r["end_hwm"]) - base
        samples = r["samples"]
        assert isinstance(samples, list)
        at_checkpoints = max([_i(s["pool"]) for s in samples] + [_i(r["end_pool"])])
        pool_grew = max(at_checkpoints, _i(r["pool_peak"])) - _i(r["base_pool"])
        less_pool = grew - pool_grew
        insert = r["kind"] not in ("raw", "source")
        less_raw = grew - raw_grew if raw_grew is not None and insert else None
        growth = _i(samples[-1]["hwm"]) - _i(samples[0]["hwm"]) if samples else 0
        per_kind.setdefault(str(r["kind"]), []).append((grew, less_pool, less_raw, growth))
        verdict = ""
        if insert:
            verdict = ("met" if less_pool < batch2 else "**missed**") + " / "
            verdict += "met" if less_raw is None or less_raw < batch2 else "**missed**"
        print(
            f"| {r['kind']} | {grew / 2**20:.1f} "
            f"| {(at_checkpoints - _i(r['base_pool'])) / 2**20:.1f} / {pool_grew / 2**20:.1f} "
            f"| {less_pool / 2**20:.1f} "
            f"| {'' if less_raw is None else f'{less_raw / 2**20:.1f}'} | {batch2 / 2**20:.1f} "
            f"| {growth / 2**20:+.1f} | {float(str(r['cpu'])):.2f} | {verdict} |"
        )
    print()
    for kind, runs in per_kind.items():
        mid_grew = statistics.median(g for g, _, _, _ in runs)
        mid_pool = statistics.median(p for _, p, _, _ in runs)
        flat = max(abs(x) for _, _, _, x in runs) < batch2
        text = (
            f"{kind} (median of {len(runs)}): peak - baseline {mid_grew / 2**20:.1f} MiB; "
            f"peak flat in the row count: {'yes' if flat else 'NO'}; (1) less DuckDB's pool peak "
            f"{mid_pool / 2**20:.1f} MiB, under 2x batch: {'yes' if mid_pool < batch2 else 'NO'}"
        )
        if kind not in ("raw", "source") and raw_grew is not None:
            less_raw = mid_grew - raw_grew
            text += (
                f"; (2) less the raw driver's {less_raw / 2**20:.1f} MiB, under 2x batch: "
                f"{'yes' if less_raw < batch2 else 'NO'}"
            )
        print(text)


if __name__ == "__main__":
    main()
