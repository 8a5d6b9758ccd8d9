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
from pinnacledb.components.listener import Listener
from pinnacledb.components.model import LinearModel, Model
from pinnacledb.components.table import DataType, Schema, Table
from pinnacledb.components.text import HashingTextEncoder
from pinnacledb.components.vector_index import VectorIndex

__all__ = [
    "ArtifactSpec",
    "Component",
    "ComponentRegistry",
    "DataType",
    "HashingTextEncoder",
    "LinearModel",
    "Listener",
    "Model",
    "Schema",
    "Table",
    "UnknownComponentClass",
    "VectorIndex",
    "artifact",
    "artifact_fields",
    "builtin_components",
    "data_fields",
    "registry_key",
]


def builtin_components() -> list[type[Component]]:
    """The component classes every Datalayer knows."""
    return [Model, LinearModel, HashingTextEncoder, DataType, Schema, Table, Listener, VectorIndex]
