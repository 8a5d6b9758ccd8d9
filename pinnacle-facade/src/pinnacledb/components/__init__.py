"""Components: versioned objects stored by ``db.apply`` and read back by ``db.load``."""

from __future__ import annotations

from pinnacledb.components._base import (
    ArtifactSpec,
    Component,
    ComponentRegistry,
    UnknownComponentClass,
    artifact,
    artifact_fields,
    data_fields,
    registry_key,
)
from pinnacledb.components.model import LinearModel, Model
from pinnacledb.components.table import DataType, Schema, Table

__all__ = [
    "ArtifactSpec",
    "Component",
    "ComponentRegistry",
    "DataType",
    "LinearModel",
    "Model",
    "Schema",
    "Table",
    "UnknownComponentClass",
    "artifact",
    "artifact_fields",
    "builtin_components",
    "data_fields",
    "registry_key",
]


def builtin_components() -> list[type[Component]]:
    """The component classes every Datalayer knows."""
    return [Model, LinearModel, DataType, Schema, Table]
