"""Ratio benchmarks of the vector engines against their libraries called directly.

Data: ``--count`` (default 100,000) seeded float32 vectors of ``--dim`` (default 384), drawn
around 1,000 cluster centres with unit noise (text embeddings are clustered, not uniform), plus
``--queries`` held-out queries from the same distribution. Measure: cosine. Every engine uses
its defaults (M=16, ef_construction=128, ef_search=64), and the raw side uses the same settings.

1. Build, per ANN engine: ``Engine.build(ids, X, measure="cosine")`` vs the library's own build
   the way its documentation does cosine: faiss ``normalize_L2`` + ``IndexHNSWFlat`` (inner
   product) + ``add``; usearch ``Index(metric="cos", dtype="f32")`` + ``add(keys, X)``; hnswlib
   ``Index(space="cosine")`` + ``init_index`` + ``add_items``. One build each side (they take
   long), raw first for every other engine. Target: ratio <= 1.2.
2. Search latency, per engine, on the SAME index: ``engine.search(q, 10)`` vs the library's own
   call on the index the engine holds (``index.search`` / ``knn_query``), the two sides
   alternating query by query; p50 of each and their ratio. Target <= 1.2.
3. Exact: ``ExactEngine.search(q, 10)`` vs raw numpy on the same unit-row matrix
   (``X @ q``, ``argpartition``, ``argsort`` of the 10), alternating. Target <= 1.2.
4. Recall@10 of every engine against the exact top 10, over the first 200 queries.

Usage::

    python benchmarks/vectors/bench_vectors.py [--count 100000] [--dim 384] [--queries 3000]
        [--engines faiss,usearch,hnswlib] [--write benchmarks/RESULTS_vectors.md]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pinnacledb.vectors import engine_type
from pinnacledb.vectors.exact import ExactEngine

F32 = npt.NDArray[np.float32]
K = 10


def clustered(count: int, dim: int, seed: int) -> F32:
    """Seeded vectors around 1,000 shared centres with unit Gaussian noise."""
    centres = np.random.default_rng(1234).standard_normal((1000, dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, 1000, count)
    out: F32 = centres[picks] + rng.standard_normal((count, dim), dtype=np.float32)
    return out


def unit(x: F32) -> F32:
    """Rows scaled to unit length."""
    out: F32 = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds (all threads of this process) and the result of ``fn()``."""
    gc.collect()
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


# --------------------------------------------------------------------------- raw library sides
def raw_build(name: str, x: F32, opts: dict[str, int]) -> Any:
    """The library's own cosine index over ``x`` with the engine's default settings."""
    n, dim = x.shape
    if name == "faiss":
        import faiss

        xn = x.copy()
        faiss.normalize_L2(xn)
        index = faiss.IndexHNSWFlat(dim, opts["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = opts["ef_construction"]
        index.hnsw.efSearch = opts["ef_search"]
        index.add(xn)
        return index
    if name == "usearch":
        from usearch.index import Index

        uindex = Index(
            ndim=dim,
            metric="cos",
            dtype="f32",
            connectivity=opts["M"],
            expansion_add=opts["ef_construction"],
            expansion_search=opts["ef_search"],
        )
        uindex.add(np.arange(n, dtype=np.uint64), x)
        return uindex
    if name == "hnswlib":
        import hnswlib

        hindex = hnswlib.Index(space="cosine", dim=dim)
        hindex.init_index(
            max_elements=n, M=opts["M"], ef_construction=opts["ef_construction"], random_seed=100
        )
        hindex.set_ef(opts["ef_search"])
        hindex.add_items(x, np.arange(n))
        return hindex
    raise ValueError(name)


def raw_search(name: str, index: Any) -> Callable[[F32], Any]:
    """The library's own single-query search on ``index`` (the index the engine holds)."""
    if name == "faiss":
        return lambda q: index.search(q.reshape(1, -1), K)
    if name == "usearch":
        return lambda q: index.search(q, K)
    if name == "hnswlib":
        return lambda q: index.knn_query(q, k=K)
    raise ValueError(name)


# --------------------------------------------------------------------------- benchmarks
def latency(
    ours: Callable[[F32], Any], raw: Callable[[F32], Any], queries: list[F32]
) -> tuple[float, float]:
    """p50 seconds of each side, the two alternating query by query (order flips each time)."""
    for q in queries[:50]:
        ours(q)
        raw(q)
    a: list[float] = []
    b: list[float] = []
    pc = time.perf_counter
    for i, q in enumerate(queries):
        if i % 2:
            t = pc()
            ours(q)
            a.append(pc() - t)
            t = pc()
            raw(q)
            b.append(pc() - t)
        else:
            t = pc()
            raw(q)
            b.append(pc() - t)
            t = pc()
            ours(q)
            a.append(pc() - t)
    return statistics.median(a), statistics.median(b)


def bench_engine(
    name: str, x: F32, ids: list[int], queries: list[F32], truth: list[set[int]], first: str
) -> dict[str, Any]:
    """Build both sides, then search latency on the engine's index and recall."""
    cls = engine_type(name)
    load0 = os.getloadavg()[0]
    opts = {"M": 16, "ef_construction": 128, "ef_search": 64}
    sides: dict[str, tuple[float, float]] = {}
    engine: Any = None
    for side in (first, "ours" if first == "raw" else "raw"):
        if side == "raw":
            w, c, raw_index = timed(lambda: raw_build(name, x, opts))
            del raw_index
        else:
            w, c, engine = timed(lambda: cls.build(ids, x, measure="cosine"))
        sides[side] = (w, c)
        print(f"  {name} build {side}: {w:.1f} s wall, {c:.1f} s CPU", flush=True)
    assert engine is not None
    p50, raw_p50 = latency(lambda q: engine.search(q, K), raw_search(name, engine.index), queries)
    hits = sum(len(set(engine.search(q, K).ids) & t) for q, t in zip(queries, truth, strict=False))
    recall = hits / (K * len(truth))
    return {
        "engine": name,
        "build": sides["ours"][0],
        "build_cpu": sides["ours"][1],
        "raw_build": sides["raw"][0],
        "raw_build_cpu": sides["raw"][1],
        "build_first": first,
        "p50": p50,
        "raw_p50": raw_p50,
        "recall": recall,
        "load": (load0, os.getloadavg()[0]),
    }


def bench_exact(x: F32, ids: list[int], queries: list[F32]) -> tuple[dict[str, Any], Any]:
    """ExactEngine vs raw numpy on the same unit-row matrix."""
    load0 = os.getloadavg()[0]
    w, _, engine = timed(lambda: ExactEngine.build(ids, x, measure="cosine"))
    xu = unit(x)

    def numpy_top(q: F32) -> npt.NDArray[np.intp]:
        qn = q / np.linalg.norm(q)
        s = xu @ qn
        part = np.argpartition(-s, K - 1)[:K]
        return part[np.argsort(-s[part])]

    p50, raw_p50 = latency(lambda q: engine.search(q, K), numpy_top, queries)
    return {
        "engine": "exact",
        "build": w,
        "p50": p50,
        "raw_p50": raw_p50,
        "recall": 1.0,
        "load": (load0, os.getloadavg()[0]),
    }, engine


def write_report(results: list[dict[str, Any]], args: argparse.Namespace, out: Path) -> None:
    """Write the markdown report."""
    import faiss
    import hnswlib  # noqa: F401  (no __version__)
    import usearch

    lines = [
        "# Vector engine benchmarks",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
        f"faiss-cpu {faiss.__version__}, usearch {usearch.__version__}, hnswlib 0.8.0) with "
        f"`python benchmarks/vectors/bench_vectors.py --count {args.count} --dim {args.dim} "
        f"--queries {args.queries}`.",
        "",
        f"{args.count:,} seeded float32 vectors of dimension {args.dim} around 1,000 cluster "
        "centres (unit noise), cosine, default options (M=16, ef_construction=128, "
        "ef_search=64) on both sides. Other jobs were running on the machine: the 1-minute "
        "load average at the start and end of each engine's run is shown. Searches alternate "
        "query by query between the two sides, so load hits both alike; each build runs once "
        "per side, so build ratios are more exposed to load changes (CPU time shown too).",
        "",
        "## Search latency (k=10) on the same index, and recall@10 against exact",
        "",
        "| engine | p50 engine | p50 library direct | ratio (target <= 1.2) | recall@10 "
        "| load start/end |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = r["p50"] / r["raw_p50"]
        mark = "" if ratio <= 1.2 else " **missed**"
        lines.append(
            f"| {r['engine']} | {r['p50'] * 1e3:.3f} ms | {r['raw_p50'] * 1e3:.3f} ms | "
            f"**{ratio:.2f}x**{mark} | {r['recall']:.4f} | "
            f"{r['load'][0]:.1f} / {r['load'][1]:.1f} |"
        )
    lines += [
        "",
        "The exact row's library is raw numpy (`X @ q`, `argpartition`, `argsort`) over the "
        "same unit-row matrix.",
        "",
        "## Build (cosine) vs the library's own build",
        "",
        "| engine | engine build | library build | ratio (target <= 1.2) | CPU engine / library "
        "| first |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        if "raw_build" not in r:
            continue
        ratio = r["build"] / r["raw_build"]
        mark = "" if ratio <= 1.2 else " **missed**"
        lines.append(
            f"| {r['engine']} | {r['build']:.1f} s | {r['raw_build']:.1f} s | "
            f"**{ratio:.2f}x**{mark} | {r['build_cpu']:.1f} s / {r['raw_build_cpu']:.1f} s | "
            f"{r['build_first']} |"
        )
    lines += [
        "",
        "What each side does: the engine validates the batch (shape, finite values), "
        "normalizes rows for cosine in numpy and maps ids to labels; the library side "
        "normalizes the way its documentation does (faiss `normalize_L2`; usearch and hnswlib "
        "normalize inside their cosine metric, the engine gives them unit vectors under inner "
        "product instead). The engine's search validates and normalizes the query, asks the "
        "library for k results, maps labels to ids and builds a `SearchResult`.",
        "",
    ]
    out.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    """Run the benchmarks and print (or write) the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--engines", default="faiss,usearch,hnswlib")
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()

    print(f"data: {args.count} x {args.dim}, load {os.getloadavg()}", flush=True)
    x = clustered(args.count, args.dim, seed=1)
    qs = clustered(args.queries, args.dim, seed=2)
    queries = [q for q in qs]  # noqa: C416 - one contiguous row per query
    ids = list(range(args.count))

    exact_result, exact = bench_exact(x, ids, queries)
    print(f"  exact: {exact_result}", flush=True)
    truth = [set(exact.search(q, K).ids) for q in queries[:200]]
    del exact
    results = [exact_result]
    for i, name in enumerate(n for n in args.engines.split(",") if n):
        r = bench_engine(name, x, ids, queries, truth, first="raw" if i % 2 == 0 else "ours")
        print(f"  {r}", flush=True)
        results.append(r)
        gc.collect()

    out = args.write or Path("/dev/stdout")
    write_report(results, args, out)


if __name__ == "__main__":
    main()
