"""``db.select`` of rows with a by-reference DataType column against reading the blobs directly.

A table of ``--rows`` rows (id, a by-reference numpy column of ``--dim`` float32, every array
distinct so nothing is deduplicated) on SQLite, its blobs in a filesystem artifact store and,
with ``--s3``, in an S3 store on a SeaweedFS server started here (``--s3-rows`` rows: each blob
is a request). Sides, alternated run by run, medians of ``--runs``:

* ``select (batched, now)``: ``db.select(t)``: one ``get_many`` per batch of 1024 rows;
* ``select, old code``: one ``get`` and one ``np.load`` per cell (as before this change);
* ``select, per-cell get (new decode)``: one ``get`` per cell, the new numpy decoding;
* ``select decode=False``: the rows alone (the database's share);
* ``raw get loop``: ``store.get(sha)`` for every blob (the target's reference);
* ``raw get_many``: ``store.get_many(shas)`` in one call;
* ``raw get loop + np decode``: the reference plus ``DataType.decode`` of every blob.

Run: ``python benchmarks/datatypes/bench_decode.py --write benchmarks/RESULTS_datatypes.md``
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import attrs
import numpy as np

from pinnacle_fs import FsspecArtifactStore
from pinnacledb import DataType, Table, pinnacle
from pinnacledb.base import datalayer as datalayer_module


@contextmanager
def _per_cell_path() -> Iterator[None]:
    """The old decoding: one ``get`` per by-reference cell."""
    module: Any = datalayer_module
    saved = module.get_many
    module.get_many = lambda store, refs: [store.get(r) for r in refs]
    try:
        yield
    finally:
        module.get_many = saved


def _per_cell_select(db: Any) -> Any:
    with _per_cell_path():
        return db.select("items")


def _old_select(db: Any) -> Any:
    """The code before this change: one ``get`` and one ``np.load`` per cell."""
    registry = db.serializers._by_name
    saved = registry["numpy"]
    registry["numpy"] = attrs.evolve(
        saved, load=lambda data: np.load(io.BytesIO(data), allow_pickle=False)
    )
    try:
        return _per_cell_select(db)
    finally:
        registry["numpy"] = saved


def _measure(
    label: str, store: FsspecArtifactStore, rows: int, dim: int, runs: int, tmp: str
) -> list[tuple[str, float]]:
    db = pinnacle(
        f"sqlite://{tmp}/{label}-data.db",
        metadata_store=f"sqlite://{tmp}/{label}-meta.db",
        artifact_store=store,
    )
    vec = DataType(identifier="vec", encoder="numpy", by_reference=True)
    db.apply(Table.of("items", id="int", vec=vec))
    for start in range(0, rows, 1000):
        db.insert(
            "items",
            [
                {"id": i, "vec": np.full(dim, i, dtype=np.float32)}
                for i in range(start, min(rows, start + 1000))
            ],
        )
    shas = [r["vec"] for r in db.select("items", decode=False)]
    assert len(set(shas)) == rows
    serializers = db.serializers
    sides: dict[str, Callable[[], Any]] = {
        "select (batched, now)": lambda: db.select("items"),
        "select, old code (per-cell get, np.load)": lambda: _old_select(db),
        "select, per-cell get (new decode)": lambda: _per_cell_select(db),
        "select decode=False": lambda: db.select("items", decode=False),
        "raw get loop": lambda: [store.get(s) for s in shas],
        "raw get_many": lambda: store.get_many(shas),
        "raw get loop + np decode": lambda: [vec.decode(store.get(s), serializers) for s in shas],
    }
    got = db.select("items")
    assert all(np.array_equal(r["vec"], np.full(dim, r["id"], dtype=np.float32)) for r in got)
    times: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(runs):
        for name, fn in sides.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    db.close()
    return [(name, statistics.median(ts) / rows * 1e6) for name, ts in times.items()]


def _table(label: str, rows: int, results: list[tuple[str, float]]) -> list[str]:
    raw = dict(results)["raw get loop"]
    out = [
        f"### {label}, {rows:,} rows",
        "",
        "| side | µs per row | x raw get loop |",
        "| --- | ---: | ---: |",
    ]
    out += [f"| {name} | {us:.1f} | {us / raw:.2f}x |" for name, us in results]
    now = dict(results)["select (batched, now)"]
    before = dict(results)["select, old code (per-cell get, np.load)"]
    verdict = "met" if now / raw <= 1.5 else "**missed**"
    out += [
        "",
        f"Target select <= 1.5x of the raw get loop: **{now / raw:.2f}x** ({verdict}); "
        f"old code: {before / raw:.2f}x; now {before / now:.2f}x faster than the old code.",
        "",
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--s3-rows", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--s3", action="store_true", help="also on SeaweedFS (started here)")
    parser.add_argument("--write", help="write the markdown section to this file")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    lines: list[str] = []
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="pinnacle_decode_"))
        local = FsspecArtifactStore(f"filesystem://{tmp}/artifacts", fsync=False)
        lines += _table(
            "Local filesystem store",
            args.rows,
            _measure("local", local, args.rows, args.dim, args.runs, tmp),
        )
        print("\n".join(lines), flush=True)
        if args.s3:
            from pinnacle_fs.testing import run_seaweedfs

            server = stack.enter_context(run_seaweedfs(stop_timeout=3.0))
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            server.create_bucket(bucket)
            s3 = FsspecArtifactStore(
                f"s3://{bucket}/decode?endpoint_url={server.endpoint_url}",
                key=server.access_key,
                secret=server.secret_key,
            )
            s3_lines = _table(
                "S3 store (SeaweedFS on 127.0.0.1)",
                args.s3_rows,
                _measure("s3", s3, args.s3_rows, args.dim, args.runs, tmp),
            )
            print("\n".join(s3_lines), flush=True)
            lines += s3_lines
    load_after = os.getloadavg()[0]
    cmd = " ".join(["python", "benchmarks/datatypes/bench_decode.py", *sys.argv[1:]])
    head = [
        "## Select with a by-reference DataType column (issue 16: batched decoding)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; data on SQLite, one {args.dim}-float32 numpy array per "
        f"row (all distinct), medians of {args.runs} runs, sides alternating. 1-minute load "
        f"average {load_before:.1f} before, {load_after:.1f} after.",
        f"Reproduce: `{cmd}`.",
        "",
    ]
    text = "\n".join(head + lines).rstrip() + "\n"
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
