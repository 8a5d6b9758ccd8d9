"""Incremental upkeep of vector indexes: inserting rows into an indexed table, per engine.

For each engine (``exact`` and the installed ANN engines), on a DuckDB file with SQLite metadata
and filesystem artifacts (the embedded stack):

* **indexed**: ``db.insert(table, 1000 rows)`` into a table of ``--base`` rows (default 10,000)
  with a listener embedding each row into a ``--dim`` (384) float32 vector and a cosine
  ``VectorIndex`` over it: the row insert, the listener's model call and outputs write, and the
  index upkeep (engine add, change file put, pointer; a compaction into a new base when due).
* **insert + vectors** (the target's literal baseline): ``db.insert`` of the same rows into a
  table without a listener, plus the model call computing their vectors.
* **insert + vectors + raw store** (the like-for-like baseline): the same, plus writing the
  vectors durably with the raw DuckDB driver into a separate DuckDB file in the same directory,
  as a table ``(id BIGINT, v DOUBLE[])`` (what the listener stores: float64 lists) from an Arrow
  ``FixedSizeList`` column, one committed transaction per batch. The literal baseline never stores
  the vectors, which the listener must; this side is the floor of any design that keeps them in
  the database. **raw store** is that write alone (for context).
* **listener only** (for context): the same insert into a table of the same size with the
  listener and no index.
* **upkeep** (for context): the time spent in the index upkeep itself within the indexed
  insert (engine add, change file put, pointer; compaction when due).
* **fold** (ANN engines): a write puts its vectors into the index's exact pending segment, not
  into the HNSW graph; the pending segment is folded into the graph (one batch add) when the
  change files touch more than ``max(10,000, 10% of the index)`` ids, at compaction, and by
  ``db.catch_up``. Reported: the folds inside the run, and the fold of what is still pending at
  the end of the run (timed alone, as ``db.catch_up(stale=False)`` does it), their rows and
  seconds, and the amortized cost per 1,000 rows folded: the graph-add work the writes did not
  pay, which is paid there.
* **load**: a new process's first search (base build read plus the change files, whose vectors
  go into the pending segment) before the final fold.
* **+ engine add** (for context): the baseline plus ``engine.add`` of the same 1,000 vectors to
  a separate engine of the same kind and size (the index's base build loaded from its
  stored bytes, outside the timing): the work no index
  can skip; indexed / this ratio is what the upkeep machinery (change file, pointer, journal)
  adds on top of the library.

``--batches`` batches (default 10) of 1,000 rows each, the sides alternating batch by batch
(order flipping each time). Reported: median and mean seconds per batch of each side and the
ratio indexed / (insert + vectors) (target <= 1.5), and beside it indexed / (insert + vectors
+ raw store) in wall time and in process CPU time (``time.process_time``, all threads: steadier
than wall time when other jobs share the machine). The mean includes the compactions that fell
in the run (with the defaults, one every ``max(10,000, 10% of the index)`` changed ids).

The model, ``--model key`` (the default): ``Embed``, a cheap deterministic numpy embedding of an
integer key (one of 1,000 cluster centres plus a per-key offset), so the model call is as cheap
as it gets and the ratio is the strictest; a real embedding model makes the baseline, and so the
ratio, move toward 1. It returns Python lists of floats, or with ``--array`` one 2-D float32
numpy array per batch (what embedding libraries return).

``--model text``: the demo's no-download text embedding
(:class:`~pinnacledb.components.HashingTextEncoder`, ``dim=--dim``: signed blake2b hashes of
words and character trigrams, Python lists of float64) on a table with a ``text`` column of
seeded texts of 8-20 words from a fixed vocabulary: a realistic cheap embedding in the baseline.
``--array`` does not apply to it (it returns lists, as in the demo).

Usage::

    python benchmarks/vectors/bench_upkeep.py [--base 10000] [--dim 384] [--batches 10]
        [--engines exact,faiss,usearch,hnswlib] [--array] [--model key|text] [--write FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import numpy as np
import pyarrow as pa
from attrs import define

from pinnacledb import HashingTextEncoder, Listener, Model, VectorIndex, pinnacle
from pinnacledb.vectors import engine_names, engine_type

try:  # absent before the two-tier engines: the script then measures the code it runs against
    from pinnacledb.vectors.tiered import TieredEngine
except ImportError:  # pragma: no cover - only when run against older code
    TieredEngine = None  # type: ignore[assignment,misc]

ROWS = 1000
_WORDS = """
    account address after again answer app archive attach backup balance bank battery billing
    browser bug cache calendar camera cancel card change charge chat check city cloud code
    connect contact copy country crash credit customer dark data date delete delivery device
    download draft email enable error export file filter folder forgot guest help history home
    import invoice issue keyboard label language laptop link list locked login message mobile
    month network note notification order package page password payment phone photo plan
    printer privacy profile receipt refund reset restore screen search security settings share
    shipping sign slow storage subscription support sync team theme ticket track transfer
    update upload user video wallet window wireless year yearly zone
"""
#: The ``--model text`` texts' words (fixed, so every run embeds the same texts).
VOCABULARY = tuple(_WORDS.split())


@define(kw_only=True)
class Embed(Model):
    """Key -> a ``dim``-float vector near one of 1,000 seeded centres (data only)."""

    component_name: ClassVar[str | None] = "bench_embed"
    dim: int = 384
    #: Return the batch as one 2-D float32 array (as embedding libraries do), not lists.
    as_array: bool = False
    serializer: str = "json"

    def predict(self, inputs: Any) -> Any:
        """One vector (list of floats, or a row of one 2-D array) per integer key."""
        keys = np.asarray(list(inputs), dtype=np.int64)
        centres = np.random.default_rng(1234).standard_normal((1000, self.dim), np.float32)
        phase = np.linspace(0.1, 3.0, self.dim, dtype=np.float32)
        out = centres[keys % 1000] + np.sin(keys[:, None].astype(np.float32) * phase)
        if self.as_array:
            return out
        rows: list[Any] = out.tolist()
        return rows


def _db(root: Path) -> Any:
    return pinnacle(
        f"duckdb://{root}/data.duckdb",
        metadata_store=f"sqlite:///{root}/metadata.db",
        artifact_store=f"filesystem://{root}/artifacts",
        components=[Embed],
    )


def _texts(start: int, n: int) -> list[str]:
    """``n`` seeded texts of 8-20 words from :data:`VOCABULARY` (the same for the same start)."""
    rng = np.random.default_rng(start)
    lengths = rng.integers(8, 21, n)
    words = rng.integers(0, len(VOCABULARY), int(lengths.sum()))
    out, at = [], 0
    for length in lengths.tolist():
        out.append(" ".join(VOCABULARY[w] for w in words[at : at + length].tolist()))
        at += length
    return out


def _rows(start: int, n: int, text: bool = False) -> pa.Table:
    ids = np.arange(start, start + n, dtype=np.int64)
    columns: dict[str, Any] = {"id": ids, "k": (ids * 7919) % 1_000_003}
    if text:
        columns["text"] = pa.array(_texts(start, n), pa.string())
    return pa.table(columns)


def _model(kind: str, dim: int, as_array: bool = False) -> Model:
    """The ``--model`` (``key``: :class:`Embed`; ``text``: the demo's text encoder)."""
    if kind == "text":
        return HashingTextEncoder(identifier="embed", dim=dim)
    return Embed(identifier="embed", dim=dim, as_array=as_array)


def _listener(table: str, dim: int, as_array: bool = False, kind: str = "key") -> Listener:
    return Listener(
        identifier=f"emb_{table}",
        model=_model(kind, dim, as_array),
        table=table,
        inputs="text" if kind == "text" else "k",
        output_type="vector",
    )


class RawStore:
    """The like-for-like baseline's vector write: the raw DuckDB driver on its own file."""

    def __init__(self, path: Path, dim: int) -> None:
        self.dim = dim
        self.con = duckdb.connect(str(path))
        self.con.execute("CREATE TABLE vecs (id BIGINT, v DOUBLE[])")

    def put(self, ids: pa.Array, vectors: Any) -> None:
        """Store ``vectors`` (one row per id) as float64 lists, one committed transaction."""
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float64).reshape(-1))
        batch = pa.table({"id": ids, "v": pa.FixedSizeListArray.from_arrays(flat, self.dim)})
        self.con.begin()
        self.con.register("batch", batch)
        self.con.execute("INSERT INTO vecs SELECT id, v FROM batch")
        self.con.unregister("batch")
        self.con.commit()

    def close(self) -> None:
        """Close the connection."""
        self.con.close()


def bench_engine(
    root: Path,
    engine: str,
    base: int,
    dim: int,
    batches: int,
    as_array: bool = False,
    kind: str = "key",
) -> dict[str, Any]:
    """Seconds per 1,000-row batch of the four sides, for one engine."""
    db = _db(root / engine)
    load0 = os.getloadavg()[0]
    text = kind == "text"
    schema = {"id": "int", "k": "int", **({"text": "str"} if text else {})}
    inputs = "text" if text else "k"
    for name in ("indexed", "plain", "listened", "stored"):  # the same size, so inserts compare
        db.create_table(name, schema)
        db.insert(name, _rows(0, base, text))
    raw = RawStore(root / engine / "raw.duckdb", dim)
    t = time.perf_counter()
    db.apply(
        VectorIndex(
            identifier="idx",
            listener=_listener("indexed", dim, as_array, kind),
            measure="cosine",
            engine=engine,
        )
    )
    setup = time.perf_counter() - t
    db.apply(_listener("listened", dim, as_array, kind))
    model = _model(kind, dim, as_array)
    # the raw store holds the base's vectors too, so its table is the same size
    for start in range(0, base, ROWS):
        rows = _rows(start, min(ROWS, base - start), text)
        raw.put(rows.column("id"), np.asarray(model.predict(rows.column(inputs).to_pylist())))
    # the "+ engine add" side's engine: the same build, loaded from the stored base (a second
    # build of 100,000 HNSW vectors would take minutes here and measure nothing new)
    built = db._vectors.pointer("idx")
    assert built is not None
    assert built.artifact is not None
    assert not built.deltas
    alone = engine_type(engine).from_bytes(db.artifact_store.get(built.artifact))
    sides: dict[str, list[float]] = {
        "indexed": [],
        "plain": [],
        "listened": [],
        "stored": [],
        "raw": [],
        "stored_cpu": [],
        "raw_cpu": [],
        "added": [],
        "upkeep": [],
        "plain_cpu": [],  # process CPU seconds (time.process_time) of these two sides
        "listened_cpu": [],
    }
    vectors_engine = db._vectors
    flush = vectors_engine.flush

    def timed_flush() -> None:  # the index's own share of an indexed insert
        t = time.perf_counter()
        flush()
        sides["upkeep"][-1] += time.perf_counter() - t

    vectors_engine.flush = timed_flush
    folds = {"rows": 0, "seconds": 0.0, "cpu": 0.0}
    fold = None if TieredEngine is None else TieredEngine.fold

    def timed_fold(self: TieredEngine) -> int:
        assert fold is not None
        t, c = time.perf_counter(), time.process_time()
        rows = fold(self)
        folds["seconds"] += time.perf_counter() - t
        folds["cpu"] += time.process_time() - c
        folds["rows"] += rows
        return rows

    if TieredEngine is not None:
        TieredEngine.fold = timed_fold  # type: ignore[method-assign]
    cpu: list[float] = []
    compactions = 0
    pc = time.perf_counter
    clock = time.process_time

    def indexed(rows: pa.Table) -> None:
        sides["upkeep"].append(0.0)
        t, c = pc(), time.process_time()
        db.insert("indexed", rows)
        sides["indexed"].append(pc() - t)
        cpu.append(time.process_time() - c)

    def plain(rows: pa.Table) -> None:
        t, c = pc(), clock()
        db.insert("plain", rows)
        vectors = np.asarray(model.predict(rows.column(inputs).to_pylist()), np.float32)
        sides["plain"].append(pc() - t)
        sides["plain_cpu"].append(clock() - c)
        t = pc()
        alone.add(rows.column("id").to_pylist(), vectors)
        sides["added"].append(sides["plain"][-1] + pc() - t)

    def listened(rows: pa.Table) -> None:
        t, c = pc(), clock()
        db.insert("listened", rows)
        sides["listened"].append(pc() - t)
        sides["listened_cpu"].append(clock() - c)

    def stored(rows: pa.Table) -> None:
        t, c = pc(), clock()
        db.insert("stored", rows)
        vectors = model.predict(rows.column(inputs).to_pylist())
        r, rc = pc(), clock()
        raw.put(rows.column("id"), vectors)
        end, ec = pc(), clock()
        sides["stored"].append(end - t)
        sides["raw"].append(end - r)
        sides["stored_cpu"].append(ec - c)
        sides["raw_cpu"].append(ec - rc)

    order = [indexed, plain, listened, stored]
    for b in range(batches):
        rows = _rows(base + b * ROWS, ROWS, text)
        before = db._vectors.pointer("idx")
        for side in order if b % 2 == 0 else order[::-1]:
            side(rows)
        after = db._vectors.pointer("idx")
        if before is not None and after is not None and before.artifact != after.artifact:
            compactions += 1
    ptr = db._vectors.pointer("idx")
    assert ptr is not None
    assert ptr.count == base + batches * ROWS, (ptr.count, base + batches * ROWS)
    run_folds = dict(folds)
    raw.close()
    query = np.asarray(model.predict([12345 if kind == "key" else "reset my password"]))[0]
    other = _db(root / engine)
    t, c = pc(), time.process_time()
    other.search("idx", like=query, n=10)  # loads base + change files
    load_s, load_cpu = pc() - t, time.process_time() - c
    other.close()
    info, active = db._vectors._resolve("idx")
    t, c = pc(), time.process_time()
    if TieredEngine is not None:
        db._vectors.fold(info, active)  # what db.catch_up(stale=False) does for the index
        TieredEngine.fold = fold  # type: ignore[method-assign,assignment]
    final_s, final_cpu = pc() - t, time.process_time() - c
    end_folds = {k: folds[k] - run_folds[k] for k in folds}
    db.close()
    return {
        "engine": engine,
        "model": kind,
        "setup": setup,
        "compactions": compactions,
        "deltas": len(ptr.deltas),
        "load": (load0, os.getloadavg()[0]),
        "indexed_cpu_p50": statistics.median(cpu),
        "folds_run": run_folds,
        "folds_end": end_folds,
        "final_fold_s": final_s,
        "final_fold_cpu": final_cpu,
        "load_s": load_s,
        "load_cpu": load_cpu,
        **{f"{k}_p50": statistics.median(v) for k, v in sides.items()},
        **{f"{k}_mean": statistics.fmean(v) for k, v in sides.items()},
    }


MODELS = {
    "key": "the trivial integer-key model",
    "text": "the demo's hashing text encoder on texts of 8-20 words",
}


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The markdown section."""
    lines = [
        "## Incremental upkeep: inserting 1,000 rows into an indexed table",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} "
        f"cores, Python {platform.python_version()}) with `nice -n {os.nice(0)} python "
        f"benchmarks/vectors/bench_upkeep.py --base {args.base} --dim {args.dim} --batches "
        f"{args.batches}{' --array' if args.array else ''} --model {args.model}`: DuckDB data, "
        "SQLite metadata, filesystem artifacts; a table of "
        f"{args.base:,} rows with a cosine index over {args.dim}-float vectors "
        f"({MODELS[args.model]}), then "
        f"{args.batches} inserts of 1,000 rows, the sides alternating batch by batch (see the "
        "script's docstring). The 1-minute load average at the start and end of each engine's "
        "run is shown (other jobs were running on the machine).",
        "",
        "| engine | indexed p50 / mean | insert + vectors p50 / mean | ratio p50 / mean "
        "(target <= 1.5) | listener only p50 | upkeep p50 / mean | + engine add p50 | "
        "indexed / that | compactions | build of the base | load | CPU p50: insert + vectors / "
        "listener only | insert + vectors + raw store p50 / mean | indexed / that p50 / mean | "
        "CPU p50: indexed / that | raw store alone p50 (CPU) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    tail = [
        "",
        "| engine | indexed CPU p50 | rows folded in the run / s | rows folded at the end / s "
        "(CPU) | amortized fold per 1,000 rows | new process load: first search (CPU) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        p50 = r["indexed_p50"] / r["plain_p50"]
        mean = r["indexed_mean"] / r["plain_mean"]
        mark = "" if max(p50, mean) <= 1.5 else " **missed**"
        lines.append(
            f"| {r['engine']} | {r['indexed_p50']:.3f} s / {r['indexed_mean']:.3f} s | "
            f"{r['plain_p50']:.3f} s / {r['plain_mean']:.3f} s | **{p50:.2f}x / "
            f"{mean:.2f}x**{mark} | {r['listened_p50']:.3f} s | {r['upkeep_p50']:.3f} s / "
            f"{r['upkeep_mean']:.3f} s | {r['added_p50']:.3f} s | "
            f"{r['indexed_p50'] / r['added_p50']:.2f}x | {r['compactions']} | "
            f"{r['setup']:.1f} s | {r['load'][0]:.1f} / {r['load'][1]:.1f} | "
            f"{r['plain_cpu_p50']:.3f} s / {r['listened_cpu_p50']:.3f} s | "
            f"{r['stored_p50']:.3f} s / {r['stored_mean']:.3f} s | "
            f"**{r['indexed_p50'] / r['stored_p50']:.2f}x / "
            f"{r['indexed_mean'] / r['stored_mean']:.2f}x** | "
            f"{r['indexed_cpu_p50'] / r['stored_cpu_p50']:.2f}x | {r['raw_p50']:.3f} s "
            f"({r['raw_cpu_p50']:.3f} s) |"
        )
        fr, fe = r["folds_run"], r["folds_end"]
        rows = fr["rows"] + fe["rows"]
        amort = f"{1000 * (fr['seconds'] + fe['seconds']) / rows:.3f} s" if rows else "-"
        tail.append(
            f"| {r['engine']} | {r['indexed_cpu_p50']:.3f} s | {fr['rows']:,} / "
            f"{fr['seconds']:.2f} s | {fe['rows']:,} / {r['final_fold_s']:.2f} s "
            f"({r['final_fold_cpu']:.2f} s) | {amort} | {r['load_s']:.3f} s "
            f"({r['load_cpu']:.3f} s) |"
        )
    return "\n".join(lines + tail) + "\n"


def main() -> None:
    """Run and print (or write) the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument(
        "--engines",
        default=",".join(
            e for e in ("exact", "faiss", "usearch", "hnswlib") if e in engine_names()
        ),
    )
    parser.add_argument(
        "--array", action="store_true", help="the model returns one 2-D float32 numpy array"
    )
    parser.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="key",
        help="key: the trivial integer-key model; text: the demo's hashing text encoder",
    )
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="pinnacle-upkeep-") as tmp:
        for engine in (e for e in args.engines.split(",") if e):
            r = bench_engine(
                Path(tmp), engine, args.base, args.dim, args.batches, args.array, args.model
            )
            print(r, flush=True)
            results.append(r)
    text = report(results, args)
    if args.write is not None:
        args.write.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
