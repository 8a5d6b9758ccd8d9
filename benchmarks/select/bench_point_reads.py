"""Point reads through pinnacle-ibis against the raw driver with a prepared statement.

Per engine (DuckDB file, SQLite file, PostgreSQL, MariaDB, and MongoDB on a throw-away
nx-27017 wire server; a fresh database each; ``sqlalchemy+sqlite``: pinnacle-sql's
SQLAlchemyDataBackend on a SQLite file, see :func:`bench_sqlalchemy`), on a table
of ``--rows`` rows ``(id int, x float, s str)`` with an index on ``id`` where the engine keeps
one, three sides in the same run, interleaved so load hits them alike:

* ``bound``: ``select(t, {"id": k})`` / ``count(t, {"id": {"$gte": k, "$lt": k + 10}})``, the
  statement cached by filter shape and the operands bound as driver parameters;
* ``ibis``: the same calls with ``_bind_filters`` off (the filter built as an ibis expression
  and compiled each call, as before);
* ``raw``: the DB-API connection the backend uses, ``execute(sql, params)`` of the same SQL
  text written by hand (psycopg: ``prepare=True``), ``fetchall()`` of tuples.

Warm figures are the median (p50) of ``--calls`` calls per side after ``--warmup`` calls.
``--cpu-calls N`` adds the CPU time (``time.process_time``) per select by id, ours against
raw, over 7 alternating rounds of N calls (less exposed to the machine's load). The
first call in a fresh process is measured in a subprocess per side: ``from_uri`` (or the
driver's ``connect``) and one select, imports included, median of ``--fresh`` processes.

Run: ``python benchmarks/select/bench_point_reads.py --write benchmarks/RESULTS_select.md``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from pinnacle_ibis import IbisDataBackend
from pinnacle_ibis.testing import MariaDBServer, PostgresServer
from pinnacle_protocols.records import Schema

SCHEMA = Schema.of(id="int", x="float", s="str")
SELECT = {
    "qmark": "SELECT {id}, {x}, {s} FROM bench WHERE {id} = ?",
    "format": "SELECT {id}, {x}, {s} FROM bench WHERE {id} = %s",
}
COUNT = {
    "qmark": "SELECT COUNT(*) FROM bench WHERE {id} >= ? AND {id} < ?",
    "format": "SELECT COUNT(*) FROM bench WHERE {id} >= %s AND {id} < %s",
}


def quoted(engine: str) -> dict[str, str]:
    q = "`" if engine == "mariadb" else '"'
    return {c: f"{q}{c}{q}" for c in ("id", "x", "s")}


def make_table(rows: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "x": pa.array([i * 0.5 for i in range(rows)], pa.float64()),
            "s": pa.array([f"row-{i % 1000}" for i in range(rows)], pa.string()),
        }
    )


def raw_runner(store: Any, engine: str, sql: str) -> Callable[[list[Any]], Any]:
    con = store._dbapi
    if engine == "duckdb":
        return lambda params: con.execute(sql, params).fetchall()
    if engine == "postgres":

        def pg(params: list[Any]) -> Any:
            with con.cursor() as cur:
                cur.execute(sql, params, prepare=True)
                return cur.fetchall()

        return pg

    return dbapi_runner(con, sql)


def dbapi_runner(con: Any, sql: str) -> Callable[[list[Any]], Any]:
    """``execute(sql, params)`` and ``fetchall()`` on a cursor of the DB-API connection."""

    def dbapi(params: list[Any]) -> Any:
        cur = con.cursor()
        try:
            cur.execute(sql, params)
            return cur.fetchall()
        finally:
            cur.close()

    return dbapi


def p50(fn: Callable[[int], Any], keys: list[int]) -> float:
    samples = []
    for k in keys:
        t0 = time.perf_counter()
        fn(k)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def interleaved(
    sides: dict[str, Callable[[int], Any]], rows: int, calls: int, warmup: int, rounds: int = 5
) -> dict[str, float]:
    keys = [(k * 7919) % (rows - 10) for k in range(calls)]
    for fn in sides.values():
        for k in keys[:warmup]:
            fn(k)
    per: dict[str, list[float]] = {name: [] for name in sides}
    chunk = max(1, calls // rounds)
    for r in range(rounds):
        part = keys[r * chunk : (r + 1) * chunk]
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            per[name].append(p50(sides[name], part))
    return {name: statistics.median(v) for name, v in per.items()}


def interleaved_cpu(
    sides: dict[str, Callable[[int], Any]], rows: int, calls: int, rounds: int = 7
) -> dict[str, float]:
    """CPU time (``time.process_time``) per call of each side, median over ``rounds`` rounds
    of ``calls`` calls, sides alternating: less exposed to the machine's load than wall time
    (for the in-process engines it is the whole cost; for servers only the client's)."""
    keys = [(k * 7919) % (rows - 10) for k in range(calls)]
    for fn in sides.values():
        for k in keys[: min(calls, 1000)]:
            fn(k)
    per: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            fn = sides[name]
            t0 = time.process_time()
            for k in keys:
                fn(k)
            per[name].append((time.process_time() - t0) / calls)
    return {name: statistics.median(v) for name, v in per.items()}


#: The first select in a fresh process (imports and connect included), for ``{cls}`` of
#: ``{module}``: format with both.
FRESH_OURS = """
import sys, time
t0 = time.perf_counter()
from {module} import {cls}
store = {cls}.from_uri(sys.argv[1])
rows = store.select("bench", {{"id": 12345 % int(sys.argv[2])}})
assert len(rows) == 1
print(time.perf_counter() - t0)
"""

FRESH_RAW = {
    "duckdb": "import duckdb\ncon = duckdb.connect(PATH)\nr = con.execute(SQL, [KEY]).fetchall()",
    "sqlite": "import sqlite3\ncon = sqlite3.connect(PATH)\nr = con.execute(SQL, [KEY]).fetchall()",
    "postgres": "import psycopg\ncon = psycopg.connect(URI)\n"
    "r = con.execute(SQL, [KEY], prepare=True).fetchall()",
    "mariadb": "import MySQLdb\ncon = MySQLdb.connect(**KW)\ncur = con.cursor()\n"
    "cur.execute(SQL, [KEY])\nr = cur.fetchall()",
}


def fresh(argv: list[str], times: int) -> float:
    out = []
    for _ in range(times):
        done = subprocess.run(argv, check=True, capture_output=True, text=True)
        out.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(out)


def fresh_raw(engine: str, uri: str, path: str, sql: str, rows: int, times: int) -> float:
    from pinnacle_protocols.uri import RedactedURI

    u = RedactedURI.parse(uri)
    kw = {"host": u.host, "port": u.port, "user": u.username, "database": u.database}
    pg_uri = f"host={u.host} port={u.port} user={u.username} dbname={u.database}"
    body = FRESH_RAW[engine]
    code = (
        f"import time\nt0 = time.perf_counter()\nPATH = {path!r}\nURI = {pg_uri!r}\n"
        f"KW = {kw!r}\nSQL = {sql!r}\nKEY = {12345 % rows}\n{body}\n"
        "assert len(r) == 1\nprint(time.perf_counter() - t0)\n"
    )
    return fresh([sys.executable, "-c", code], times)


def measure(
    store: Any,
    engine: str,
    flag: str,
    raw_select: Callable[[list[Any]], Any],
    raw_count: Callable[[list[Any]], Any],
    args: argparse.Namespace,
    *,
    generic_cpu: bool = False,
) -> list[tuple[str, float, float | None, float]]:
    """The warm rows of one engine: ``store``'s attribute ``flag`` on (``bound``) and off (the
    middle column) against the raw runners; with ``--cpu-calls`` the CPU time per select by
    id (and, with ``generic_cpu``, the flag-off side's, over a tenth of the calls)."""

    def ours(on: bool, fn: Callable[[int], Any]) -> Callable[[int], Any]:
        def run(k: int) -> Any:
            setattr(store, flag, on)
            return fn(k)

        return run

    def sel(k: int) -> Any:
        rows = store.select("bench", {"id": k})
        assert len(rows) == 1
        return rows

    def cnt(k: int) -> Any:
        return store.count("bench", {"id": {"$gte": k, "$lt": k + 10}})

    results: list[tuple[str, float, float | None, float]] = []
    for label, fn, raw in (
        ("select by id", sel, lambda k: raw_select([k])),
        ("count, id range of 10", cnt, lambda k: raw_count([k, k + 10])),
    ):
        got = interleaved(
            {"bound": ours(True, fn), "ibis": ours(False, fn), "raw": raw},
            args.rows,
            args.calls,
            args.warmup,
        )
        results.append((f"{label}, warm p50", got["bound"], got["ibis"], got["raw"]))
        print(engine, results[-1], flush=True)
    if args.cpu_calls:
        # one lambda around each side, nothing else (no toggle, no assert), so the harness
        # costs both sides alike
        cpu: dict[str, float] = {}
        for on, calls in ((True, args.cpu_calls), (False, args.cpu_calls // 10)):
            if on or generic_cpu:
                setattr(store, flag, on)
                got = interleaved_cpu(
                    {
                        "ours": lambda k: store.select("bench", {"id": k}),
                        "raw": lambda k: raw_select([k]),
                    },
                    args.rows,
                    max(1, calls),
                )
                cpu[f"ours{on}"], cpu[f"raw{on}"] = got["ours"], got["raw"]
        row = ("select by id, CPU time per call", cpu["oursTrue"], cpu.get("oursFalse"))
        results.append((*row, cpu["rawTrue"]))
        print(engine, results[-1], flush=True)
    setattr(store, flag, True)
    return results


def first_call(
    module: str, cls: str, engine: str, uri: str, path: str, sql: str, args: argparse.Namespace
) -> tuple[str, float, None, float]:
    """The first select in a fresh process, ours (``cls`` of ``module``) and the driver's."""
    code = FRESH_OURS.format(module=module, cls=cls)
    ours = fresh([sys.executable, "-c", code, uri, str(args.rows)], args.fresh)
    raw = fresh_raw(engine, uri, path, sql, args.rows, args.fresh)
    return ("select by id, first call in a fresh process", ours, None, raw)


def bench_engine(engine: str, uri: str, path: str, args: argparse.Namespace) -> list[Any]:
    store = IbisDataBackend.from_uri(uri)
    store.create_table("bench", SCHEMA)
    store.insert("bench", make_table(args.rows))
    store.create_index("bench", ["id"])
    style = type(store).paramstyle  # type: ignore[attr-defined]
    names = quoted(engine)
    select_sql = SELECT[style].format(**names)
    count_sql = COUNT[style].format(**names)
    raw_select = raw_runner(store, engine, select_sql)
    raw_count = raw_runner(store, engine, count_sql)
    results: list[Any] = measure(store, engine, "_bind_filters", raw_select, raw_count, args)
    store.close()
    results.append(
        first_call("pinnacle_ibis", "IbisDataBackend", engine, uri, path, select_sql, args)
    )
    print(engine, results[-1], flush=True)
    return results


def bench_sqlalchemy(path: str, args: argparse.Namespace) -> list[Any]:
    """pinnacle-sql's ``sqlalchemy+sqlite`` databackend against sqlite3 on the same file.

    ``bound``: ``select(t, {"id": k})`` by its point plan; the middle column is the generic
    path of the same backend (``_point_reads`` off: a SQLAlchemy Core statement built and run
    through a pooled connection, in a read transaction with the schema cookie check); ``raw``:
    a ``sqlite3`` connection of its own on the file, the same SQL on a cursor.
    """
    import sqlite3

    from pinnacle_sql import SQLAlchemyDataBackend

    engine = "sqlalchemy+sqlite"
    uri = f"{engine}://{path}"
    store = SQLAlchemyDataBackend.from_uri(uri)
    store.create_table("bench", SCHEMA)
    store.insert("bench", make_table(args.rows))
    store.create_index("bench", ["id"])
    select_sql = SELECT["qmark"].format(**quoted("sqlite"))
    count_sql = COUNT["qmark"].format(**quoted("sqlite"))
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    raw_select = dbapi_runner(con, select_sql)
    raw_count = dbapi_runner(con, count_sql)
    results: list[Any] = measure(
        store, engine, "_point_reads", raw_select, raw_count, args, generic_cpu=True
    )
    con.close()
    store.close()
    module, cls = "pinnacle_sql", "SQLAlchemyDataBackend"
    results.append(first_call(module, cls, "sqlite", uri, path, select_sql, args))
    print(engine, results[-1], flush=True)
    return results


def bench_mongo(uri: str, args: argparse.Namespace) -> list[Any]:
    """pinnacle-mongo's ``select``/``count`` against pymongo on the same collection."""
    from pinnacle_mongo import MongoDataBackend

    store = MongoDataBackend.from_uri(uri)
    store.create_table("bench", SCHEMA)
    rows = args.mongo_rows
    store.insert("bench", make_table(rows))
    store.create_index("bench", ["id"])
    coll = store._db()["bench"]
    schemas = store._schemas()

    def sel(k: int) -> Any:
        rows = store.select("bench", {"id": k})
        assert len(rows) == 1
        return rows

    def raw_find(k: int) -> Any:
        docs = list(coll.find({"id": k}))
        assert len(docs) == 1
        return docs

    results: list[tuple[str, float, float | None, float]] = []
    got = interleaved(
        {
            "bound": sel,
            "raw": raw_find,
            "find_one": lambda k: coll.find_one({"id": k}),
            "schema": lambda k: schemas.find_one({"_id": "bench"}),
        },
        rows,
        args.mongo_calls,
        min(args.warmup, args.mongo_calls // 4),
    )
    results.append(("select by id, warm p50", got["bound"], None, got["raw"]))
    results.append(("(raw `find_one`, warm p50)", got["find_one"], None, got["raw"]))
    results.append(("(the schema `find_one` every select makes)", got["schema"], None, got["raw"]))
    for r in results:
        print("mongo", r, flush=True)
    store.close()
    return results


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-4:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1000:.3f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--fresh", type=int, default=3)
    parser.add_argument(
        "--engines", default="duckdb,sqlite,sqlalchemy+sqlite,postgres,mariadb,mongo"
    )
    # 0: off; else the calls per round of the process_time comparison (7 rounds per side)
    parser.add_argument("--cpu-calls", type=int, default=0)
    # nx-27017 answers a find on an indexed field by scanning (~10 µs a document here)
    parser.add_argument("--mongo-rows", type=int, default=2000)
    parser.add_argument("--mongo-calls", type=int, default=200)
    parser.add_argument("--write", default=None)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="pinnacle_point_")
    pg, maria = PostgresServer(), MariaDBServer()
    report: dict[str, list[Any]] = {}
    try:
        for engine in args.engines.split(","):
            path = ""
            if engine == "duckdb":
                path = os.path.join(tmp, "bench.duckdb")
                uri = f"duckdb://{path}"
            elif engine == "sqlite":
                path = os.path.join(tmp, "bench.sqlite")
                uri = f"sqlite://{path}"
            elif engine == "sqlalchemy+sqlite":
                report[engine] = bench_sqlalchemy(os.path.join(tmp, "sa_bench.sqlite"), args)
                continue
            elif engine == "postgres":
                uri = pg.create_database()
            elif engine == "mongo":
                from pinnacle_mongo.testing import run_nx27017

                with run_nx27017() as server:
                    report[engine] = bench_mongo(server.uri("bench"), args)
                continue
            else:
                uri = maria.create_database()
            report[engine] = bench_engine(engine, uri, path, args)
    finally:
        if pg.created:
            pg.drop_all()
        if maria.created:
            maria.drop_all()
    load_after = os.getloadavg()[0]
    import ibis

    lines = [
        "## Point reads (filter shape cache) against the raw driver",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, ibis {ibis.__version__}. 1-minute load average "
        f"{load_before:.1f} before, {load_after:.1f} after.",
        f"Table: {args.rows:,} rows of (id int, x float, s str), index on id (not on DuckDB, "
        f"which keeps none). Warm: median of {args.calls} calls per side after {args.warmup} "
        f"warm-up calls, sides interleaved. Fresh process: median of {args.fresh} processes "
        "(imports, connect and one select).",
        "`bound`: operands as driver parameters, statement cached by filter shape (now); "
        "`ibis`: the filter built and compiled by ibis each call (before); `raw`: the same "
        "SQL on the same DB-API connection with parameters (psycopg `prepare=True`), "
        "`fetchall()` of tuples (no dicts, no decoding). MongoDB: pinnacle-mongo against "
        f"pymongo's `list(find({{'id': k}}))` on the same collection of {args.mongo_rows:,} "
        f"rows (index on id; {args.mongo_calls} calls per side), on an "
        "nx-27017 wire server started by the script (Python, SQLite underneath, sharing the "
        "cores); `find_one` shown for reference.",
        "Reproduce: `python benchmarks/select/bench_point_reads.py --write "
        "benchmarks/RESULTS_select.md` (this run: "
        f"`--rows {args.rows} --calls {args.calls} --fresh {args.fresh} "
        f"--mongo-rows {args.mongo_rows} --mongo-calls {args.mongo_calls}`).",
    ]
    for engine, rows in report.items():
        middle = "generic path" if engine == "sqlalchemy+sqlite" else "ibis (before)"
        lines += [
            "",
            f"### {engine}",
            "",
            f"| measurement | bound (now) | {middle} | raw driver | bound / raw | "
            f"{middle.split(maxsplit=1)[0]} / raw | target |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for label, bound, ib, raw in rows:
            ratio = bound / raw
            before = "-" if ib is None else f"{ib / raw:.2f}x"
            if label.startswith("("):
                target = "(info: / find)"
            elif label.startswith("select by id, warm"):
                target = "<= 1.5x: " + ("met" if ratio <= 1.5 else "**missed**")
            else:
                target = "(info)"
            lines.append(
                f"| {label} | {fmt(bound)} | {fmt(ib)} | {fmt(raw)} | {ratio:.2f}x | "
                f"{before} | {target} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        with open(args.write, "w", encoding="utf-8") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
