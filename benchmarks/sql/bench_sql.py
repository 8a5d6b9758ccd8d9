"""SQLAlchemyMetadataStore against raw SQLAlchemy Core, on SQLite and PostgreSQL (and MariaDB).

Measures, in one run per backend, on a fresh database:

* ``create_component`` x N (default 10,000 distinct components) against raw Core ``INSERT`` s of
  equivalent rows into a table with the same columns, constraint and indexes. Like with like:
  both sides run on the store's own engine (same pragmas, same durability), one transaction
  per record, and the raw side also serializes the record to JSON and hashes it. The two sides
  alternate in blocks so that load from other processes hits both equally.
* ``get_component`` (latest version) latency, p50 and p99, with N components stored.
* ``show_components`` over N components.

Run from the repository root::

    .venv/bin/python benchmarks/sql/bench_sql.py                 # sqlite + postgres, N=10000
    .venv/bin/python benchmarks/sql/bench_sql.py --backends sqlite,postgres,mariadb --n 2000

Servers: ``PINNACLE_TEST_POSTGRES_URI`` / ``PINNACLE_TEST_MARIADB_URI`` (defaults as in the
tests); a ``pinnacle_b_<random>`` database is created with default durability and dropped after.
Results go to ``benchmarks/RESULTS_sql.md`` (``--out``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pinnacle_protocols import ComponentRecord, translate_uri, utcnow
from pinnacle_sql import DRIVERS, SQLAlchemyMetadataStore
from pinnacle_sql._tables import components
from pinnacle_sql.testing import DatabaseServer

TYPES = ("model", "listener", "vector_index", "dataset")


def make_records(n: int) -> list[ComponentRecord]:
    """N distinct components with a realistic small payload (~300 bytes of JSON)."""
    return [
        ComponentRecord(
            type_id=TYPES[i % len(TYPES)],
            identifier=f"component-{i:06d}",
            data={
                "i": i,
                "params": {"lr": 0.001, "layers": [64, 32, 16], "activation": "relu"},
                "description": f"benchmark component number {i}",
                "tags": ["bench", "sql"],
            },
        )
        for i in range(n)
    ]


def raw_table(engine: sa.Engine) -> sa.Table:
    """A copy of _pinnacle_components (same columns, unique key, index) for the raw inserts."""
    md = sa.MetaData()
    table = sa.Table(
        "bench_raw_components",
        md,
        *(c._copy() for c in components.columns),
        sa.UniqueConstraint("type_id", "identifier", "version", name="bench_raw_key_uq"),
        sa.Index("bench_raw_hash_ix", "type_id", "identifier", "content_hash"),
    )
    md.drop_all(engine)
    md.create_all(engine)
    return table


def raw_row(record: ComponentRecord) -> dict[str, Any]:
    """What a hand-written app would insert for the record: JSON text, hash, timestamp."""
    created = utcnow()
    body = {
        "type_id": record.type_id,
        "identifier": record.identifier,
        "version": 0,
        "data": record.data,
        "artifacts": {},
        "created_at": created.isoformat(),
    }
    text = json.dumps(body, separators=(",", ":"))
    return {
        "type_id": record.type_id,
        "identifier": record.identifier,
        "version": 0,
        "record": text,
        "created_at": created,
        "content_hash": hashlib.sha256(text.encode()).hexdigest(),
    }


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_backend(name: str, uri: str, n: int, blocks: int) -> dict[str, Any]:
    store = SQLAlchemyMetadataStore.from_uri(uri)
    store.show_components()  # create the tables at head before timing anything
    engine = store._get_engine()
    table = raw_table(engine)
    insert = sa.insert(table)
    records = make_records(n)
    size = n // blocks
    store_s, raw_s = 0.0, 0.0
    load_before = os.getloadavg()

    def store_block(chunk: list[ComponentRecord]) -> None:
        for r in chunk:
            store.create_component(r)

    def raw_block(chunk: list[ComponentRecord]) -> None:
        for r in chunk:
            row = raw_row(r)
            with engine.begin() as conn:  # one transaction per row, like the store
                conn.execute(insert, row)

    for b in range(blocks):
        chunk = records[b * size : (b + 1) * size]
        if b % 2 == 0:
            raw_s += timed(lambda c=chunk: raw_block(c))  # type: ignore[misc]
            store_s += timed(lambda c=chunk: store_block(c))  # type: ignore[misc]
        else:
            store_s += timed(lambda c=chunk: store_block(c))  # type: ignore[misc]
            raw_s += timed(lambda c=chunk: raw_block(c))  # type: ignore[misc]
    done = blocks * size

    rng = random.Random(7)
    picks = [rng.choice(records[:done]) for _ in range(min(3000, done))]
    for r in picks[:200]:  # warm up
        store.get_component(r.type_id, r.identifier)
    get_lat = []
    for r in picks:
        t0 = time.perf_counter_ns()
        store.get_component(r.type_id, r.identifier)
        get_lat.append((time.perf_counter_ns() - t0) / 1e6)
    raw_get = (
        sa.select(table.c.record)
        .where(table.c.type_id == sa.bindparam("t"), table.c.identifier == sa.bindparam("i"))
        .order_by(table.c.version.desc())
        .limit(1)
    )
    raw_lat = []
    for r in picks:
        t0 = time.perf_counter_ns()
        with engine.connect() as conn:
            json.loads(conn.execute(raw_get, {"t": r.type_id, "i": r.identifier}).scalar_one())
        raw_lat.append((time.perf_counter_ns() - t0) / 1e6)

    shows, show_cpu = [], []
    for _ in range(15):
        s0, c0 = time.perf_counter(), time.process_time()
        keys = store.show_components()
        shows.append((time.perf_counter() - s0) * 1000)
        show_cpu.append((time.process_time() - c0) * 1000)
    assert len(keys) == done, (len(keys), done)
    load_after = os.getloadavg()
    with engine.begin() as conn:
        table.drop(conn)
    store.drop(force=True)
    store.close()
    return {
        "backend": name,
        "n": done,
        "store_s": store_s,
        "raw_s": raw_s,
        "ratio": store_s / raw_s,
        "store_per_op_ms": store_s / done * 1000,
        "raw_per_op_ms": raw_s / done * 1000,
        "get_p50": statistics.median(get_lat),
        "get_p99": pct(get_lat, 0.99),
        "raw_get_p50": statistics.median(raw_lat),
        "raw_get_p99": pct(raw_lat, 0.99),
        "show_median_ms": statistics.median(shows),
        "show_min_ms": min(shows),
        "show_cpu_median_ms": statistics.median(show_cpu),
        "load": (load_before[0], load_after[0]),
    }


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    server = DatabaseServer.postgres() if backend == "postgres" else DatabaseServer.mariadb()
    try:
        yield server.create_database(prefix="pinnacle_b_", durable=True)
    finally:
        server.drop_all()


def server_settings(backend: str, uri: str) -> str:
    if backend == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=FULL (the store's default)"
    engine = sa.create_engine(translate_uri(uri, "sqlalchemy", drivers=DRIVERS))
    try:
        with engine.connect() as conn:
            if backend == "postgres":
                version = conn.exec_driver_sql("SHOW server_version").scalar()
                sync = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
                return f"PostgreSQL {version}, synchronous_commit={sync}, psycopg 3, 127.0.0.1"
            version = conn.exec_driver_sql("SELECT VERSION()").scalar()
            flush = conn.exec_driver_sql("SELECT @@innodb_flush_log_at_trx_commit").scalar()
            return f"MariaDB {version}, innodb_flush_log_at_trx_commit={flush}, PyMySQL"
    finally:
        engine.dispose()


def cpu_share() -> float:
    """Wall time / CPU time of a pure-Python loop: 1.0 on an idle machine."""
    t0, c0 = time.perf_counter(), time.process_time()
    total = 0
    for i in range(2_000_000):
        total += i
    return (time.perf_counter() - t0) / max(time.process_time() - c0, 1e-9)


def write_report(
    results: list[dict[str, Any]], settings: dict[str, str], out: Path, share: float
) -> None:
    lines = [
        "# pinnacle-sql benchmarks",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}, "
        f"SQLAlchemy {sa.__version__}) with `benchmarks/sql/bench_sql.py`.",
        "Other processes were running on the machine: the 1-minute load average at the start "
        "and end of each backend's run is shown; the store and the raw inserts alternate in "
        "blocks, so load hits both sides alike, but absolute numbers are pessimistic: a "
        f"pure-Python loop took {share:.1f}x its CPU time in wall time at the start of the "
        "run (1.0 on an idle machine). For in-process work (SQLite) the CPU time column is "
        "the better estimate of the idle-machine latency.",
        "",
        "## create_component vs raw SQLAlchemy Core inserts (one transaction per record)",
        "",
        "| backend | records | store total | raw total | store/op | raw/op "
        "| ratio (target <= 1.5) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['n']:,} | {r['store_s']:.2f} s | {r['raw_s']:.2f} s | "
            f"{r['store_per_op_ms']:.3f} ms | {r['raw_per_op_ms']:.3f} ms | "
            f"**{r['ratio']:.2f}x** |"
        )
    lines += [
        "",
        "## get_component (latest) and show_components with all records stored",
        "",
        "| backend | components | get p50 | get p99 | raw SELECT p50 | raw SELECT p99 "
        "| show_components median (min) | its CPU time (median) | load avg start/end |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['n']:,} | {r['get_p50']:.3f} ms | {r['get_p99']:.3f} ms | "
            f"{r['raw_get_p50']:.3f} ms | {r['raw_get_p99']:.3f} ms | "
            f"{r['show_median_ms']:.1f} ms ({r['show_min_ms']:.1f} ms) | "
            f"{r['show_cpu_median_ms']:.1f} ms | "
            f"{r['load'][0]:.1f} / {r['load'][1]:.1f} |"
        )
    lines += ["", "Settings:", ""]
    lines += [f"- {name}: {text}" for name, text in settings.items()]
    lines += [
        "",
        "What each side does per record:",
        "",
        "- store: `create_component(record)`: validate, cattrs-unstructure, JSON-encode, "
        "content hash, then: SQLite `BEGIN IMMEDIATE`, counter upsert `RETURNING`, component "
        "INSERT, COMMIT (the store's Core statements, compiled once and run on the `sqlite3` "
        "cursor); PostgreSQL one statement in autocommit (counter upsert, component and "
        "artifact-ref INSERTs in one data-modifying CTE); MariaDB `START TRANSACTION`, counter "
        "upsert with `LAST_INSERT_ID(expr)`, component INSERT, COMMIT. Then build the "
        "returned record.",
        "- raw: JSON-encode an equivalent dict and hash it; `with engine.begin(): "
        "conn.execute(insert, row)` with the version given (no counter) into a table with the "
        "same columns, unique key and index, on the store's own engine (same pragmas and "
        "durability; on SQLite that engine issues no BEGIN for it, so the INSERT is its own "
        "durable transaction). On MariaDB the store's engine is in autocommit mode, so the "
        "raw side is a single autocommitted INSERT (1 round trip against the store's 4): "
        "the MariaDB ratio is informational, the targets are SQLite and PostgreSQL.",
        "",
    ]
    out.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/RESULTS_sql.md"))
    args = parser.parse_args()
    share = cpu_share()
    print(f"wall/cpu of a pure-Python loop: {share:.2f}", flush=True)
    results, settings = [], {}
    for backend in args.backends.split(","):
        with database(backend) as uri:
            settings[backend] = server_settings(backend, uri)
            print(f"{backend}: {settings[backend]}", flush=True)
            result = bench_backend(backend, uri, args.n, args.blocks)
            results.append(result)
            print(json.dumps(result, default=str), flush=True)
    write_report(results, settings, args.out, share)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
