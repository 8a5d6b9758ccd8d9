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
sandbox that sets it). Usage::

    python benchmarks/facade/bench_cold.py --before DIR [--runs N] [--write RESULTS_cold.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed in {cwd}:\n{proc.stderr}")
    return secs, proc.stdout


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
                secs, _out = _run(["-c", SHOW], show_dir, env)
                times.setdefault(f"show|{mode}|{side}", []).append(secs)
                secs, out = _run(CHILD, demo_dir, {**env, **STORES})
                times.setdefault(f"child|{mode}|{side}", []).append(secs)
                predict = float(json.loads(out.strip().splitlines()[-1])["seconds"])
                times.setdefault(f"predict|{mode}|{side}", []).append(predict)
    result: dict[str, dict[str, float]] = {}
    for key, values in times.items():
        case, mode, side = key.split("|")
        result.setdefault(f"{case}|{mode}", {})[side] = statistics.median(values)
    return result


NOTES = """\
Where the time goes (profiled with `python -X importtime` and cProfile in fresh processes,
compiled bytecode, load ~3-4):

- `pinnacle show`: before, opening the up-to-date SQLite store imported Alembic to read the
  revision (Alembic's script directory, Mako, and through `alembic.ddl` SQLAlchemy's PostgreSQL
  and asyncpg dialects): ~0.2 s. Now the one revision row is read with a plain `SELECT` (after
  `has_table`) and compared with `HEAD_REVISION` (a test checks the constants against the
  scripts; several rows are still left to Alembic's own error); Alembic is imported only to
  migrate. What remains: SQLAlchemy itself (~0.13 s; the SQLite store is built on SQLAlchemy
  Core), `pinnacle_protocols` with its cattrs converter (~0.04 s), the interpreter (~0.03 s).
- No bytecode: with `PYTHONDONTWRITEBYTECODE=1` (set in the sandbox these figures come from)
  nothing is cached and every module is compiled from source on every command: `compile()` was
  0.47 s of `pinnacle show`'s 0.79 s profile (after this change), and `db.predict` prints ~3 s
  for 150 rows. An installed package has its bytecode: the "compiled" rows are what a user
  meets.
- Demo child: `db.predict`'s own ~0.65 s (unloaded) is mostly first use of the DuckDB data
  backend: `ibis.connect` loads ibis's DuckDB backend through its entry point and builds
  sqlglot's dialect tokenizers (~0.45 s), and DuckDB imports pandas when it binds a query
  parameter (~0.1 s). Not cut here: that is how pinnacle-ibis connects (a change of its DuckDB
  engine, not a fixed-cost trim).
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
        f"| case | bytecode | before{label} s | after s | after / before |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for mode in ("compiled", "no bytecode"):
        for case, title in CASES.items():
            r = result[f"{case}|{mode}"]
            lines.append(
                f"| {title} | {mode} | {r['before']:.3f} | {r['after']:.3f} | "
                f"{r['after'] / r['before']:.2f} |"
            )
    lines += ["", NOTES]
    report = "\n".join(lines)
    print(report)
    if args.write:
        args.write.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
