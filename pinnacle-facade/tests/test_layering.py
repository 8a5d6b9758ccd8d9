"""The Datalayer's helpers depend on the Protocols of ``pinnacledb.base._host``, not on it.

``Datalayer`` imports copy, gc, predict and listeners (lazily) and hands itself over; they see it
only through :class:`~pinnacledb.base._host.StoreHost` and its narrower-to-wider siblings, so
the dependency runs one way. mypy checks the members they use; this checks the imports.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest

import pinnacledb
from pinnacledb.base.datalayer import Datalayer

SRC = Path(pinnacledb.__file__).parent
HELPERS = ("copy", "gc", "predict", "listeners")
DATALAYER = "pinnacledb.base.datalayer"


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (``TYPE_CHECKING`` blocks and functions
    included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("helper", HELPERS)
def test_helper_does_not_import_the_datalayer(helper: str) -> None:
    imported = _imported_modules(SRC / f"{helper}.py")
    assert not {m for m in imported if m == DATALAYER or m.startswith(DATALAYER + ".")}, (
        f"pinnacledb/{helper}.py imports {DATALAYER}; type the Datalayer it is given with a "
        "Protocol of pinnacledb.base._host instead"
    )


def test_host_protocols_do_not_import_the_datalayer() -> None:
    assert DATALAYER not in _imported_modules(SRC / "base" / "_host.py")


def test_importing_the_helpers_does_not_import_the_datalayer() -> None:
    """In a fresh interpreter (this one has imported everything already)."""
    code = (
        "import sys\n"
        + "".join(f"import pinnacledb.{h}\n" for h in HELPERS)
        + f"print({DATALAYER!r} in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("hook", ["_component_io", "_table_codec", "_codec"])
def test_private_hooks_are_gone(hook: str) -> None:
    """The helpers use the documented members of the Protocols, not private hooks."""
    assert not hasattr(Datalayer, hook)


def test_in_process_job_hands_the_worker_side_the_callers_datalayer() -> None:
    """predict/listeners register their JobHost; the worker side gets the Datalayer back, and
    anything else is refused with a clear error rather than failing later on a missing member."""
    from pinnacledb import pinnacle
    from pinnacledb.base._host import JobHost
    from pinnacledb.jobs._worker import InProcessJob

    with pinnacle("memory://") as db:
        assert InProcessJob(db, None, None).db is db
    stranger = cast(JobHost, object())
    with pytest.raises(TypeError, match="needs the caller's Datalayer"):
        _ = InProcessJob(stranger, None, None).db
