"""``import pinnacle_protocols`` loads only the standard library and attrs (cattrs on first use
of the shared converter).

Each check runs in a fresh interpreter (``python -I``), since this test process has pytest,
Hypothesis and whatever other tests imported already loaded.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

#: The runtime dependencies pinnacle-protocols declares (pyproject.toml).
DIRECT_DEPENDENCIES = ("attrs", "cattrs")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _allowed_distributions() -> set[str]:
    """attrs, cattrs and, transitively, what they declare for this interpreter (no extras)."""
    allowed: set[str] = set()
    todo = list(DIRECT_DEPENDENCIES)
    while todo:
        dist = _norm(todo.pop())
        if dist in allowed:
            continue
        allowed.add(dist)
        for spec in md.requires(dist) or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return allowed


def _allowed_top_level_modules() -> set[str]:
    dists = _allowed_distributions()
    modules = {
        module
        for module, owners in md.packages_distributions().items()
        if any(_norm(owner) in dists for owner in owners)
    }
    return modules | {"pinnacle_protocols", "__main__"}


def _modules_after(statement: str) -> list[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    modules: list[str] = json.loads(out.stdout)
    return modules


def test_allowed_distributions_are_what_cattrs_declares() -> None:
    dists = _allowed_distributions()
    assert {"attrs", "cattrs"} <= dists
    # nothing optional (extras such as cattrs[bson] -> pymongo) sneaks in
    assert "pymongo" not in dists
    assert "orjson" not in dists
    for dist in dists - set(DIRECT_DEPENDENCIES):
        assert any(
            _norm(Requirement(spec).name) == dist
            for parent in DIRECT_DEPENDENCIES
            for spec in md.requires(parent) or []
        ), dist


def _foreign(loaded: list[str]) -> list[str]:
    allowed = _allowed_top_level_modules()
    stdlib = set(sys.stdlib_module_names)
    return sorted(m for m in loaded if m.split(".")[0] not in stdlib | allowed)


@pytest.fixture(scope="module")
def after_import() -> list[str]:
    """sys.modules of a fresh interpreter after ``import pinnacle_protocols``.

    (Importing any submodule runs the package ``__init__`` first, so this covers them all.)
    """
    return _modules_after("import pinnacle_protocols")


def test_import_loads_only_stdlib_attrs_and_cattrs(after_import: list[str]) -> None:
    assert _foreign(after_import) == []
    # the package really was imported, with its submodules
    for module in ("pinnacle_protocols.uri", "pinnacle_protocols.serialization", "attrs"):
        assert module in after_import


def test_cattrs_is_imported_on_first_use_of_the_converter(after_import: list[str]) -> None:
    """The converter is built when a record is (un)structured, not on import (``pinnacle
    show`` reads no record); ``converter`` stays one shared object however it is reached."""
    assert "cattrs" not in after_import
    code = (
        "from pinnacle_protocols import serialization, utcnow, ComponentKey\n"
        "assert 'cattrs' not in sys.modules\n"
        "from pinnacle_protocols import converter\n"
        "assert 'cattrs' in sys.modules\n"
        "assert converter is serialization.converter is serialization._get_converter()\n"
        "k = ComponentKey(type_id='model', identifier='m', version=1)\n"
        "assert serialization.structure(serialization.unstructure(k), ComponentKey) == k\n"
    )
    assert "cattrs" in _modules_after(code)


def test_testing_subpackage_is_not_imported(after_import: list[str]) -> None:
    assert "pinnacle_protocols.testing" not in after_import
    assert not any(m.startswith("pinnacle_protocols.testing.") for m in after_import)
    for heavy in ("pytest", "_pytest", "hypothesis"):
        assert heavy not in after_import


def test_memory_stores_load_no_driver() -> None:
    """The in-memory reference stores are usable with no dependency beyond the package's."""
    assert _foreign(_modules_after("import pinnacle_protocols.memory")) == []


def test_vector_arrays_load_no_numpy() -> None:
    """The numpy helpers of the vector engines import numpy only when called."""
    assert _foreign(_modules_after("import pinnacle_protocols.vector_arrays")) == []


def test_the_check_can_fail() -> None:
    """The allowlist check sees a module outside it (here: pytest via the testing package)."""
    foreign = {
        m.split(".")[0] for m in _foreign(_modules_after("import pinnacle_protocols.testing"))
    }
    assert {"pytest", "hypothesis"} <= foreign
