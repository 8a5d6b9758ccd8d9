"""A model whose predict blocks until the test opens a gate (a file), for runner fault tests.

Importable by a Dask worker started with ``tests-integration`` on its ``PYTHONPATH``: the
model is pickled by reference to this module.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["Gate"]


class Gate:
    """``predict(x)`` writes ``<dir>/started``, waits for ``<dir>/open`` (at most a minute), and
    returns ``2 * x``."""

    def __init__(self, directory: str) -> None:
        """Gate files live in ``directory`` (shared with the test)."""
        self.directory = directory

    def predict(self, x: float) -> float:
        """Block until the gate is open, then double ``x``."""
        base = Path(self.directory)
        (base / "started").touch()
        deadline = time.monotonic() + 60
        while not (base / "open").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return 2.0 * x
