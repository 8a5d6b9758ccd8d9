"""Benchmarks of ``pinnacle copy`` (pinnacledb.copy) against the raw transfer it performs.

1. Artifacts: ``--components`` component records whose artifacts total ``--total-bytes``, in a
   local deployment (SQLite metadata, filesystem artifacts), copied to SeaweedFS S3 (SQLite
   metadata) with :func:`pinnacledb.copy.copy_deployment`, against a raw ``s3fs`` upload of the
   same files (one ``fs.put_file`` each, sequential). Target: throughput
   >= 0.8x raw; RSS growth during the copy < 128 MiB (sampled every 10 ms from /proc).
2. Rows: a ``--rows``-row DuckDB table copied to PostgreSQL with ``copy_deployment(tables=...)``
   against a direct ibis ``to_pyarrow_batches`` + ``insert`` of the same data (target <= 1.2x).

The default sizes (200 components / 256 MiB, 200,000 rows) run in a few minutes; ``--full``
uses the issue's (1,000 components / 2 GiB, 1,000,000 rows). Raw uploads and copies alternate
``--repeat`` times (fresh buckets) and the medians are compared, so both see the same load.

Usage::

    python benchmarks/facade/bench_copy.py [--full] [--components N] [--total-bytes 256MiB]
        [--rows N] [--batch-size 100000] [--repeat 3] [--write benchmarks/RESULTS_copy.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def _size(text: str) -> int:
    units = {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "b": 1}
    low = text.strip().lower()
    for unit, mult in units.items():
        if low.endswith(unit):
            return int(float(low[: -len(unit)]) * mult)
    return int(low)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples the process RSS every 10 ms in a thread; ``growth`` is peak minus start."""

    def __init__(self) -> None:
        self.start = _rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.01)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def growth(self) -> int:
        """Peak RSS growth in bytes."""
        return self.peak - self.start


@contextmanager
def _pg_database() -> Iterator[str]:
    import psycopg

    name = f"bench_copy_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------- artifacts
def bench_artifacts(
    components: int, total: int, work: Path, workers: int, repeat: int
) -> dict[str, Any]:
    """Copy file -> S3 against raw s3fs uploads of the same files."""
    import s3fs

    from pinnacle_fs.testing import run_seaweedfs
    from pinnacle_protocols.records import ComponentRecord
    from pinnacledb import pinnacle
    from pinnacledb.copy import copy_deployment

    per = total // components
    files = work / "files"
    files.mkdir()
    src = pinnacle(
        "memory://",
        metadata_store=f"sqlite://{work}/src.db",
        artifact_store=f"filesystem://{work}/src-art/",
    )
    chunk = os.urandom(1 << 20)
    paths = []
    for i in range(components):
        path = files / f"f{i:05d}"
        with open(path, "wb") as f:
            f.write(i.to_bytes(8, "big"))  # every file distinct
            left = per - 8
            while left > 0:
                f.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
        with open(path, "rb") as f:
            ref = src.artifact_store.put(f)
        src.metadata.create_component(
            ComponentRecord(type_id="blob", identifier=f"b{i}", data={"i": i}, artifacts={"x": ref})
        )
        paths.append(path)
    total_bytes = sum(p.stat().st_size for p in paths)
    raws: list[float] = []
    batches: list[float] = []
    copies: list[float] = []
    growth: list[int] = []
    loads: list[float] = []
    with run_seaweedfs(work / "weed", secret_key="bench-secret") as weed:
        fs = s3fs.S3FileSystem(
            key=weed.access_key,
            secret="bench-secret",
            client_kwargs={"endpoint_url": weed.endpoint_url},
            default_block_size=8 << 20,
        )
        # Alternate raw uploads and copies, each into a fresh bucket, so that both see the
        # same machine load; report the median of each.
        for run in range(repeat):
            loads.append(os.getloadavg()[0])
            weed.create_bucket(f"raw{run}")
            t0 = time.perf_counter()
            for p in paths:
                fs.put_file(str(p), f"raw{run}/{p.name}")
            raws.append(time.perf_counter() - t0)
            if run == 0:  # s3fs's own concurrency (one call, many files), once
                t0 = time.perf_counter()
                fs.put([str(p) for p in paths], [f"raw{run}/c/{p.name}" for p in paths])
                batches.append(time.perf_counter() - t0)
            weed.create_bucket(f"copy{run}")
            dst = pinnacle(
                "memory://",
                metadata_store=f"sqlite://{work}/dst{run}.db",
                artifact_store=(
                    f"s3://{weed.access_key}:bench-secret@copy{run}/art?"
                    f"endpoint_url={weed.endpoint_url}"
                ),
            )
            dst.metadata.migrate()
            dst.artifact_store.exists("0" * 64)  # connect before timing (s3fs import, session)
            with PeakRSS() as rss:
                t0 = time.perf_counter()
                report = copy_deployment(src, dst, workers=workers)
                copies.append(time.perf_counter() - t0)
            growth.append(rss.growth)
            assert report.artifacts_copied == components, report
            if run == repeat - 1:
                t0 = time.perf_counter()
                again = copy_deployment(src, dst, workers=workers)
                rerun = time.perf_counter() - t0
                assert again.artifacts_copied == 0
            dst.close()
    src.close()
    raw, copy = statistics.median(raws), statistics.median(copies)
    return {
        "components": components,
        "workers": workers,
        "repeat": repeat,
        "bytes": total_bytes,
        "raw_s": raw,
        "raw_all": raws,
        "copy_all": copies,
        "raw_batch_s": batches[0],
        "ratio_batch": batches[0] / copy,
        "copy_s": copy,
        "rerun_s": rerun,
        "raw_mib_s": total_bytes / raw / (1 << 20),
        "copy_mib_s": total_bytes / copy / (1 << 20),
        "ratio": raw / copy,
        "ratios": [r / c for r, c in zip(raws, copies, strict=True)],
        "rss_growth_mib": max(growth) / (1 << 20),
        "load": loads,
    }


# ---------------------------------------------------------------------- rows
def bench_rows(rows: int, batch: int, work: Path) -> dict[str, Any]:
    """duckdb -> PostgreSQL: copy_deployment(tables=[...]) against ibis batches + insert."""
    import ibis
    import pyarrow as pa

    from pinnacledb import pinnacle
    from pinnacledb.copy import copy_deployment

    src = pinnacle(
        f"duckdb://{work}/data.duckdb",
        metadata_store=f"sqlite://{work}/rows-md.db",
        artifact_store=f"filesystem://{work}/rows-art/",
    )
    src.create_table("t", {"id": "int", "x": "float", "name": "str"})
    step = 100_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        ids = pa.array(range(start, start + n), pa.int64())
        src.insert(
            "t",
            pa.table(
                {
                    "id": ids,
                    "x": pa.array([i * 0.5 for i in range(start, start + n)], pa.float64()),
                    "name": pa.array([f"row {i}" for i in range(start, start + n)]),
                }
            ),
        )
    src.close()
    out: dict[str, Any] = {"rows": rows, "batch": batch}
    with _pg_database() as pg:
        # direct: ibis to_pyarrow_batches from duckdb, insert into a pre-created PG table
        duck = ibis.duckdb.connect(str(work / "data.duckdb"))
        target = ibis.postgres.connect(
            host="127.0.0.1", port=5432, user="postgres", database=pg.rsplit("/", 1)[1]
        )
        t = duck.table("t")
        target.create_table("direct", schema=t.schema())
        t0 = time.perf_counter()
        for b in t.to_pyarrow_batches(chunk_size=batch):
            target.insert("direct", pa.Table.from_batches([b]))
        out["direct_s"] = time.perf_counter() - t0
        assert target.table("direct").count().execute() == rows
        duck.disconnect()
        target.disconnect()

        src = pinnacle(
            f"duckdb://{work}/data.duckdb",
            metadata_store=f"sqlite://{work}/rows-md.db",
            artifact_store=f"filesystem://{work}/rows-art/",
        )
        dst = pinnacle(pg, artifact_store=f"filesystem://{work}/rows-dst-art/")
        dst.metadata.migrate()
        src.count("t")
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            report = copy_deployment(src, dst, tables=["t"], batch_size=batch)
            out["copy_s"] = time.perf_counter() - t0
        assert report.rows_copied == {"t": rows}, report
        assert dst.count("t") == rows
        out["rss_growth_mib"] = rss.growth / (1 << 20)
        src.close()
        dst.close()
    out["ratio"] = out["copy_s"] / out["direct_s"]
    return out


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def main() -> None:
    """Run both benchmarks and print (optionally write) a Markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full",
        action="store_true",
        help="the issue's sizes: 1,000 components / 2 GiB and 1,000,000 rows",
    )
    parser.add_argument("--components", type=int, default=None, help="default 200 (full: 1000)")
    parser.add_argument("--total-bytes", type=_size, default=None, help="default 256MiB (2GiB)")
    parser.add_argument("--rows", type=int, default=None, help="default 200000 (1000000)")
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="alternating raw/copy runs")
    parser.add_argument("--skip-artifacts", action="store_true")
    parser.add_argument("--skip-rows", action="store_true")
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    if args.components is None:
        args.components = 1000 if args.full else 200
    if args.total_bytes is None:
        args.total_bytes = (2 << 30) if args.full else (256 << 20)
    if args.rows is None:
        args.rows = 1_000_000 if args.full else 200_000
    command = (
        "python benchmarks/facade/bench_copy.py"
        + (" --full" if args.full else "")
        + f" --components {args.components} --total-bytes {args.total_bytes}"
        + f" --rows {args.rows} --batch-size {args.batch_size} --workers {args.workers}"
        + f" --repeat {args.repeat}"
    )
    lines = [
        "# pinnacle copy benchmarks",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}. Command: `{command}`.",
        "",
        f"`uptime` before: {_uptime()}",
        "",
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_artifacts:
            work = Path(tmp) / "art"
            work.mkdir()
            a = bench_artifacts(args.components, args.total_bytes, work, args.workers, args.repeat)
            start = len(lines)
            runs = ", ".join(
                f"{r:.2f}/{c:.2f}" for r, c in zip(a["raw_all"], a["copy_all"], strict=True)
            )
            lines += [
                "## Artifacts: filesystem -> S3 (SeaweedFS)",
                "",
                "| what | value |",
                "| --- | --- |",
                f"| components / bytes | {a['components']} / {a['bytes']} "
                f"({a['bytes'] / (1 << 20):.0f} MiB) |",
                f"| raw s3fs put_file (sequential), median of {a['repeat']} | {a['raw_s']:.2f} s "
                f"({a['raw_mib_s']:.1f} MiB/s) |",
                f"| raw s3fs put(list) (s3fs's concurrency), once | {a['raw_batch_s']:.2f} s |",
                f"| copy_deployment ({a['workers']} upload threads), median of {a['repeat']} | "
                f"{a['copy_s']:.2f} s ({a['copy_mib_s']:.1f} MiB/s) |",
                f"| each run raw/copy (s), alternating | {runs} |",
                "| 1-min load average at the start of each run | "
                + ", ".join(f"{x:.2f}" for x in a["load"])
                + " |",
                f"| throughput ratio copy / sequential raw, medians (target >= 0.8) | "
                f"{a['ratio']:.2f} |",
                "| ratio per run | " + ", ".join(f"{x:.2f}" for x in a["ratios"]) + " |",
                f"| throughput ratio copy / raw put(list) | {a['ratio_batch']:.2f} |",
                f"| RSS growth during copy, max of runs (target < 128 MiB) | "
                f"{a['rss_growth_mib']:.1f} MiB |",
                f"| idempotent re-run (everything present) | {a['rerun_s']:.2f} s |",
                "",
            ]
            print("\n".join(lines[start:]), flush=True)
        if not args.skip_rows:
            work = Path(tmp) / "rows"
            work.mkdir()
            r = bench_rows(args.rows, args.batch_size, work)
            start = len(lines)
            lines += [
                "## Rows: DuckDB -> PostgreSQL",
                "",
                "| what | value |",
                "| --- | --- |",
                f"| rows / batch | {r['rows']} / {r['batch']} |",
                f"| direct ibis to_pyarrow_batches + insert | {r['direct_s']:.2f} s |",
                f"| copy_deployment(tables=['t']) | {r['copy_s']:.2f} s |",
                f"| ratio copy/direct (target <= 1.2) | {r['ratio']:.2f} |",
                f"| RSS growth during copy | {r['rss_growth_mib']:.1f} MiB |",
                "",
            ]
            print("\n".join(lines[start:]), flush=True)
    lines += [f"`uptime` after: {_uptime()}", ""]
    print(lines[-2], flush=True)
    if args.write:
        args.write.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
