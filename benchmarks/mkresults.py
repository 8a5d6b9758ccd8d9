"""Rebuild benchmarks/RESULTS.md from the per-package RESULTS_*.md files.

Each benchmark script writes its own ``RESULTS_<name>.md``; this joins them under one heading,
demoting their headings by one level. Run from the repository root:
``python benchmarks/mkresults.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = (
    "facade",
    "cold",
    "fs",
    "sql",
    "ibis",
    "select",
    "insert",
    "datatypes",
    "mongo",
    "copy",
    "vectors",
    "listeners",
    "compute",
)
HEADER = """# Benchmark results

Latest figures of every benchmark, each section with the command that produced it. Every
benchmark runs pinnacledb and the raw driver doing the same work in the same run and reports
the ratio. Each section states the machine load it was measured under (the build machine has
2 cores and often runs other jobs): absolute numbers move with the load, ratios much less.
Targets missed are marked **missed** with the reason. Regenerate this file with
`python benchmarks/mkresults.py` after running a benchmark.
"""


def main() -> None:
    """Write RESULTS.md."""
    parts = [HEADER]
    for name in ORDER:
        text = (HERE / f"RESULTS_{name}.md").read_text(encoding="utf-8").strip()
        parts.append(re.sub(r"^(#+) ", r"#\1 ", text, flags=re.MULTILINE))
    (HERE / "RESULTS.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
