"""Fixed costs a user meets on every command, before and after a change, in fresh processes.

1. ``pinnacle show`` on the embedded default (SQLite metadata in ``.pinnacledb/``), in a
   directory whose store already exists (the first run, which creates it, is not timed).
2. The demo's child process (``python -m pinnacledb._demo 0``, what ``pinnacle demo`` runs for
   its step 4): process start to its ``db.predict`` result on stdout, on the stores a first
   ``pinnacle demo`` left behind.

"before" runs the sources of an older checkout (``--before DIR``, e.g. made with
``git archive BASE pinnacle-facade/src packages | tar -x -C DIR``) put first on ``PYTHONPATH``;
"after" runs the installed (editable) workspace. Runs alternate between the sides and medians
are taken. Two bytecode settings: compiled modules cached (``PYTHONPYCACHEPREFIX`` in a temp
directory, warmed once per side: what an installed package sees), and no bytecode
(``PYTHONDONTWRITEBYTECODE=1`` with an empty cache: every module compiled from source, as in a
sandbox that sets it). Each case reports wall seconds and the process's user+sys CPU seconds
(``getrusage`` of the child), which a loaded machine distorts less than wall time. Usage::

    python benchmarks/facade/bench_cold.py --before DIR [--runs N] [--write RESULTS_cold.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHOW = "import sys\nfrom pinnacledb.cli import main\nsys.exit(main(['show']))"
CHILD = ["-m", "pinnacledb._demo", "0"]
STORES = {
    "PINNACLEDB_DATABACKEND": "duckdb://.pinnacledb/data.duckdb",
    "PINNACLEDB_METADATA": "sqlite://.pinnacledb/metadata.db",
    "PINNACLEDB_ARTIFACT_STORE": "filesystem://.pinnacledb/artifacts/",
}


def _source_path(root: Path) -> str:
    dirs = [root / "pinnacle-facade" / "src", *sorted((root / "packages").glob("*/src"))]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing or len(dirs) < 2:
        raise SystemExit(f"--before {root}: not a source tree (missing {missing or 'packages'})")
    return os.pathsep.join(str(d) for d in dirs)


def _env(pythonpath: str | None, cache: Path, *, bytecode: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINNACLEDB_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, user+sys CPU seconds of the child, its stdout."""
    cpu0 = _cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    secs = time.perf_counter() - t0
    cpu = _cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed in {cwd}:\n{proc.stderr}")
    return secs, cpu, proc.stdout


def bench(before: str, runs: int, tmp: Path) -> dict[str, dict[str, float]]:
    """Medians per case and side: seconds, and the demo child's own predict seconds."""
    show_dir, demo_dir = tmp / "show", tmp / "demo"
    show_dir.mkdir()
    demo_dir.mkdir()
    setup = _env(None, tmp / "setup-cache", bytecode=True)
    _run(["-c", SHOW], show_dir, setup)
    _run(["-m", "pinnacledb.cli", "demo"], demo_dir, setup)
    times: dict[str, list[float]] = {}
    for mode in ("compiled", "no bytecode"):
        sides = {
            "before": _env(before, tmp / f"{mode}-before", bytecode=mode == "compiled"),
            "after": _env(None, tmp / f"{mode}-after", bytecode=mode == "compiled"),
        }
        if mode == "compiled":  # warm the caches
            for env in sides.values():
                _run(["-c", SHOW], show_dir, env)
                _run(CHILD, demo_dir, {**env, **STORES})
        for _ in range(runs):
            for side, env in sides.items():
                secs, cpu, _out = _run(["-c", SHOW], show_dir, env)
                times.setdefault(f"show|{mode}|{side}", []).append(secs)
                times.setdefault(f"show|{mode}|{side}-cpu", []).append(cpu)
                secs, cpu, out = _run(CHILD, demo_dir, {**env, **STORES})
                times.setdefault(f"child|{mode}|{side}", []).append(secs)
                times.setdefault(f"child|{mode}|{side}-cpu", []).append(cpu)
                predict = float(json.loads(out.strip().splitlines()[-1])["seconds"])
                times.setdefault(f"predict|{mode}|{side}", []).append(predict)
    result: dict[str, dict[str, float]] = {}
    for key, values in times.items():
        case, mode, side = key.split("|")
        result.setdefault(f"{case}|{mode}", {})[side] = statistics.median(values)
    return result


NOTES = """\
Where the time goes (profiled with `python -X importtime`, cProfile and `getrusage` CPU time in
fresh processes, compiled bytecode; CPU seconds are user+sys, load 4-11 on 2 cores while these
were taken, so wall seconds are inflated and noisy and the CPU columns are the ones to compare):

- `pinnacle show` (~0.3-0.4 s CPU; the bare interpreter is ~0.01 s): SQLAlchemy itself
  ~0.23 s (the SQLite metadata store is built on SQLAlchemy Core; the largest remaining
  cost), the entry-point scan that finds the store factories ~0.04 s (`importlib.metadata`
  and one pass over the installed distributions' entry points, done once per process),
  attrs ~0.03 s, pinnacle_protocols' own modules ~0.015 s, `pinnacledb.cli` ~0.025 s.
- Cut earlier (b7c047e): Alembic, Mako and SQLAlchemy's PostgreSQL dialect are imported only
  to migrate; opening an up-to-date store reads the one revision row with a plain `SELECT`.
- Cut earlier (#16, ~0.05 s CPU of `pinnacle show`): the cattrs record converter
  (`pinnacle_protocols.serialization.converter`, and the copy each Datalayer's ComponentIO
  made) is built when a record is first (un)structured, not on import, and `show` lists keys
  without structuring a record; SQLAlchemy's MySQL dialect package (all its driver modules) is
  imported only when a MySQL/MariaDB engine renders `JSONText`/`Timestamp` (same DDL on every
  dialect). Guarded by `pinnacle-facade/tests/test_import.py` (a fresh `pinnacle show` on a
  store with a component imports neither) and `pinnacle-protocols/tests/test_import_cost.py`.
- Cut now (#16, 0.3-0.45 s CPU of the demo child, 0.75x): pinnacle-ibis's DuckDB engine runs
  portable CRUD on DuckDB's own connection (`duckdb.connect`, set up as ibis's `_post_connect`
  does: TimeZone UTC, `python_enable_replacements` off; statements rendered with sqlglot's
  DuckDB dialect, the one ibis's DuckDB backend uses) and builds the ibis backend on that same
  connection (`ibis.duckdb.from_connection`) only when an ibis expression is needed (`native()`,
  `execute()`, a filter the bound statements cannot express). The child no longer imports ibis
  at all: ibis itself ~0.1 s, its dialects ~0.035-0.05 s and `backends.sql.compilers` (every
  dialect's compiler) ~0.035-0.08 s of import, plus `ibis.connect`'s work (the `ibis.backends`
  entry-point scan, the DuckDB version lookup, building the backend). Options other than
  `read_only`, and MotherDuck, still connect through `ibis.connect`. Guarded by
  `pinnacle-ibis/tests/test_backend.py` (`test_duckdb_crud_runs_without_ibis`) and
  `pinnacle-facade/tests/test_import.py`
  (`test_the_demo_child_predicts_on_duckdb_without_ibis`).
- Demo child after the cut (~1.0-1.3 s CPU; imports measured one after another in a fresh
  process, load 3.5): SQLAlchemy ~0.15-0.2 s (the SQLite metadata store), pandas ~0.13-0.2 s,
  sqlglot ~0.1 s with its DuckDB dialect (pinnacle-ibis renders its statements with it), NumPy
  ~0.06-0.08 s, pyarrow ~0.05 s, duckdb ~0.03 s, attrs and pinnacle_protocols ~0.05 s; the rest
  is the work itself and unmarshalling bytecode. Not cut: pandas. It is imported whenever pandas
  is installed (it is: `ibis-framework[duckdb]` requires it) by two libraries on every write and
  most reads, not by pinnacledb: DuckDB 1.5's Python parameter binding (`GetPythonObjectType`
  compares every non-None parameter with `pandas.NaT` through DuckDB's import cache, which
  imports pandas) and pyarrow 26's `pa.array()` of any Python sequence (its `_is_array_like`
  asks the pandas shim, which imports pandas). With pandas blocked the child runs the same
  (checked), so nothing of pinnacledb needs it; avoiding it would mean no bound parameters on
  DuckDB and no `pa.array()` from Python lists, i.e. rewriting the insert and filter paths
  around two libraries' internals.
- No bytecode: with `PYTHONDONTWRITEBYTECODE=1` (set in the sandbox these figures come from)
  every module is compiled from source on every command (~3x the CPU). An installed package
  has its bytecode: the "compiled" rows are what a user meets.
"""

CASES = {
    "show": "`pinnacle show` (embedded default, store exists)",
    "child": "demo child: start to `db.predict` result (150 rows)",
    "predict": "of which `db.predict` itself (as the child reports it)",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="older source tree")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--label", default="", help="what 'before' is (e.g. a commit)")
    parser.add_argument("--write", type=Path, default=None, help="write a markdown report")
    args = parser.parse_args()
    before = _source_path(args.before.resolve())
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pinnacle-cold-") as tmp:
        result = bench(before, args.runs, Path(tmp))
    load_after = os.getloadavg()[0]
    label = f" ({args.label})" if args.label else ""
    lines = [
        "# Fixed costs per command (fresh processes)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; medians of {args.runs} fresh processes per side and "
        "setting, sides alternating. 1-minute load average "
        f"{load_before:.1f} before, {load_after:.1f} after (other jobs ran at the same time).",
        "Reproduce: `git archive BASE pinnacle-facade/src packages | tar -x -C /tmp/base && "
        "python benchmarks/facade/bench_cold.py --before /tmp/base --label BASE "
        "--write benchmarks/RESULTS_cold.md`.",
        "",
        f"| case | bytecode | before{label} s | after s | after / before "
        "| CPU before s | CPU after s | CPU after / before |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode in ("compiled", "no bytecode"):
        for case, title in CASES.items():
            r = result[f"{case}|{mode}"]
            row = f"| {title} | {mode} | {r['before']:.3f} | {r['after']:.3f} | "
            row += f"{r['after'] / r['before']:.2f} |"
            if "before-cpu" in r:  # user+sys of the whole process (not reported by predict)
                row += f" {r['before-cpu']:.3f} | {r['after-cpu']:.3f} | "
                row += f"{r['after-cpu'] / r['before-cpu']:.2f} |"
            else:
                row += " | | |"
            lines.append(row)
    lines += ["", NOTES]
    report = "\n".join(lines)
    print(report)
    if args.write:
        args.write.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
