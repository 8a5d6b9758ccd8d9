"""Pytest plugin for Pants runs only: finish the "editable install" of the workspace.

``uv sync`` installs every workspace package in editable mode: absolute source paths in a
``.pth`` file (seen by every Python process, subprocesses included), a ``.dist-info`` with the
entry points, and console scripts next to the interpreter. Under Pants the sources and the
generated ``.dist-info`` (this directory) are in the test sandbox, on ``sys.path`` through
relative ``PEX_EXTRA_SYS_PATH`` entries. This plugin, loaded first through ``-p`` in
``pants.toml`` (before any other plugin or conftest imports workspace code), does the rest:

1. makes those ``sys.path`` entries absolute, so tests that change directory (every facade and
   integration test runs in its own tmp dir) still import the workspace and find its entry
   points;
2. exports them in ``PYTHONPATH``, so subprocesses (``python -c "import pinnacledb"``, crash
   tests, the CLI) see the workspace as they do under uv;
3. writes the workspace's console scripts (``pinnacle``) next to ``sys.executable`` when they
   are missing there, as an install does.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import distributions
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _absolute_sys_path() -> list[str]:
    """Make relative sys.path entries absolute; return them (the sandbox's source roots)."""
    roots: list[str] = []
    for i, entry in enumerate(sys.path):
        if entry and not os.path.isabs(entry):
            sys.path[i] = os.path.abspath(entry)
            if sys.path[i] not in roots:
                roots.append(sys.path[i])
    return roots


def _export_pythonpath(roots: list[str]) -> None:
    current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([*roots, *(p for p in current if p not in roots)])


def _write_console_scripts() -> None:
    bin_dir = Path(sys.executable).parent
    for dist in distributions(path=[str(_HERE)]):
        for ep in dist.entry_points.select(group="console_scripts"):
            target = bin_dir / ep.name
            if target.exists():
                continue
            module, _, attr = ep.value.partition(":")
            call = attr.strip() or "main"
            script = (
                f"#!{sys.executable}\n"
                "# Written by pinnacle_pants_plugin (Pants test runs): the console script an\n"
                "# install of the workspace package would write.\n"
                "import sys\n"
                f"from {module.strip()} import {call.split('.')[0]}\n"
                f"sys.exit({call}())\n"
            )
            tmp = target.with_name(f".{ep.name}.{os.getpid()}.tmp")
            tmp.write_text(script)
            tmp.chmod(0o755)
            os.replace(tmp, target)  # atomic: parallel test processes may race here


_roots = _absolute_sys_path()
if _roots:  # under Pants; a no-op anywhere the paths are already absolute
    _export_pythonpath(_roots)
    _write_console_scripts()
