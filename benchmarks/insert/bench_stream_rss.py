"""Peak RSS while ``db.insert`` streams a 10M-row generator into DuckDB (issue 16).

Each input kind runs in a fresh process: ``pinnacle(duckdb:///<tmp>/data.db)``, a table of 4
numbers and 1 string, one warm-up batch inserted and deleted, then ``db.insert(t, gen)`` of a
generator that makes its rows lazily, either dicts one by one (``dicts``: ``insert_chunks``
gathers ``--batch`` of them) or ``pyarrow.RecordBatch``es of ``--batch`` rows (``arrow``). The
generator reads ``VmHWM`` (peak RSS) and ``VmRSS`` from ``/proc/self/status`` when it has made
each checkpoint's rows (default 1M, 5M, 10M), so one run shows whether the peak grows with
the row count. The target of issue 16: peak < baseline + 2x one batch's Arrow size, where the
baseline is the peak after setup and the warm-up batch.

DuckDB keeps the blocks it writes to a file database in its buffer pool (by default up to 80%
of RAM), which fills as the table grows whatever the caller does; ``--duckdb-memory-limit``
(default 16MB, set with ``SET memory_limit`` on the backend's connection) caps that pool, and
the check allows for it: flat means the peak grows by less than 2x one batch's Arrow size from
the first checkpoint to the last, and stays under baseline + 2x batch + DuckDB's cap.
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
import json, sys, tempfile, time
import pyarrow as pa
from pinnacledb import pinnacle

kind, total, batch, checkpoints, memory_limit = (
    sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
)
MiB = 2**20


def status() -> tuple[int, int]:
    # (VmHWM, VmRSS) in bytes
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                found[key] = int(value.split()[0]) * 1024
    return found["VmHWM"], found["VmRSS"]


def arrow_batch(start: int, n: int) -> pa.RecordBatch:
    ids = pa.array(range(start, start + n), pa.int64())
    return pa.RecordBatch.from_pydict({
        "id": ids,
        "n": pa.array([i % 97 for i in range(start, start + n)], pa.int64()),
        "x": pa.array([i * 0.5 for i in range(start, start + n)], pa.float64()),
        "y": pa.array([1.0 / (i + 1) for i in range(start, start + n)], pa.float64()),
        "s": pa.array([f"row-{i % 1000}" for i in range(start, start + n)], pa.string()),
    })


samples = []
pending = list(checkpoints)


def checkpoint(made: int) -> None:
    while pending and made >= pending[0]:
        hwm, rss = status()
        samples.append({"rows": pending.pop(0), "hwm": hwm, "rss": rss, "t": time.perf_counter()})


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
db = pinnacle(f"duckdb:///{tmp}/data.db", metadata_store=f"sqlite:///{tmp}/meta.db",
              artifact_store=f"filesystem://{tmp}/artifacts")
if memory_limit:
    db.databackend.raw_sql(f"SET memory_limit = '{memory_limit}'")
db.create_table("t", {"id": "int", "n": "int", "x": "float", "y": "float", "s": "str"})
one = arrow_batch(0, batch)
db.insert("t", one if kind == "arrow" else one.to_pylist())  # warm-up: one batch
db.delete("t", None)
batch_bytes = one.nbytes
del one
base_hwm, base_rss = status()
t0 = time.perf_counter()
n = db.insert("t", dicts() if kind == "dicts" else batches(), batch_rows=batch)
took = time.perf_counter() - t0
end_hwm, end_rss = status()
assert n == total, (n, total)
for s in samples:
    s["t"] -= t0
print(json.dumps({
    "kind": kind, "rows": int(n), "seconds": took, "batch_bytes": batch_bytes,
    "base_hwm": base_hwm, "base_rss": base_rss, "end_hwm": end_hwm, "end_rss": end_rss,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument(
        "--checkpoints", default="1000000,5000000,10000000", help="rows at which to sample"
    )
    parser.add_argument("--kinds", default="dicts,arrow")
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
        "| input | rows so far | seconds | peak RSS MiB | RSS now MiB | "
        "peak - baseline MiB | 2x batch Arrow + DuckDB cap MiB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    flat = within = True
    cap = _bytes(args.duckdb_memory_limit)
    for r in results:
        base = int(str(r["base_hwm"]))
        batch2 = 2 * int(str(r["batch_bytes"]))
        budget = batch2 + cap
        print(
            f"| {r['kind']} | baseline (setup + 1 batch) | | {mib(base)} | {mib(r['base_rss'])} "
            f"| 0 | {mib(budget)} |"
        )
        samples = r["samples"]
        assert isinstance(samples, list)
        for s in samples:
            grew = int(s["hwm"]) - base
            print(
                f"| {r['kind']} | {int(s['rows']):,} | {s['t']:.1f} | {mib(s['hwm'])} "
                f"| {mib(s['rss'])} | {mib(grew)} | {'met' if grew < budget else '**missed**'} |"
            )
        first, last = int(samples[0]["hwm"]), int(samples[-1]["hwm"])
        grows = last - first
        flat = flat and grows < batch2
        within = within and last - base < budget
        print(
            f"| {r['kind']} | end ({int(str(r['rows'])):,}) | {float(str(r['seconds'])):.1f} | "
            f"{mib(r['end_hwm'])} | {mib(r['end_rss'])} | {mib(int(str(r['end_hwm'])) - base)} "
            f"| peak {mib(first)} -> {mib(last)} from the first checkpoint to the last: "
            f"+{grows / 2**20:.1f} MiB (2x batch {batch2 / 2**20:.1f}) |"
        )
    print()
    print(
        "peak RSS flat in the row count (growth from the first checkpoint to the last under "
        f"2x one batch's Arrow size): {'yes' if flat else 'NO'}; peak under baseline + 2x "
        f"batch + DuckDB's cap: {'yes' if within else 'NO'}"
    )


if __name__ == "__main__":
    main()
