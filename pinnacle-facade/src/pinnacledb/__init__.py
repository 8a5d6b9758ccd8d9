"""pinnacledb: models, artifacts and lineage next to the database you already run.

``from pinnacledb import pinnacle, CFG``; ``db = pinnacle()`` wires a databackend, a metadata
store and an artifact store (see :func:`pinnacle`). Importing this package imports no database
driver and no store package: names are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pinnacledb._config import CFG, Config
    from pinnacledb._wiring import pinnacle
    from pinnacledb.base.datalayer import Datalayer
    from pinnacledb.components import (
        Component,
        DataType,
        HashingTextEncoder,
        LinearModel,
        Listener,
        Model,
        Schema,
        Table,
        VectorIndex,
        artifact,
    )

_EXPORTS = {
    "CFG": "pinnacledb._config",
    "Config": "pinnacledb._config",
    "pinnacle": "pinnacledb._wiring",
    "Datalayer": "pinnacledb.base.datalayer",
    "Component": "pinnacledb.components",
    "DataType": "pinnacledb.components",
    "HashingTextEncoder": "pinnacledb.components",
    "LinearModel": "pinnacledb.components",
    "Listener": "pinnacledb.components",
    "Model": "pinnacledb.components",
    "Schema": "pinnacledb.components",
    "Table": "pinnacledb.components",
    "VectorIndex": "pinnacledb.components",
    "artifact": "pinnacledb.components",
}

__all__ = [
    "CFG",
    "Component",
    "Config",
    "DataType",
    "Datalayer",
    "HashingTextEncoder",
    "LinearModel",
    "Listener",
    "Model",
    "Schema",
    "Table",
    "VectorIndex",
    "__version__",
    "artifact",
    "pinnacle",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pinnacledb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
