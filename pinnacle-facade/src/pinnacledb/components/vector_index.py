"""``VectorIndex``: nearest-neighbour search over the vector outputs of a listener.

The component is only the description (listener, measure, engine, engine options); building,
persisting, upkeep and search live in :mod:`pinnacledb.vector_search`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from attrs import define, field

from pinnacle_protocols.errors import InvalidRecord
from pinnacle_protocols.vectors import MEASURES
from pinnacledb.components._base import Component
from pinnacledb.components.listener import Listener

__all__ = ["VectorIndex"]


def _check_measure(_inst: object, _attr: object, value: Any) -> None:
    if value not in MEASURES:
        raise InvalidRecord(
            f"VectorIndex measure must be one of {', '.join(MEASURES)}, got {value!r}"
        )


def _check_engine(_inst: object, _attr: object, value: Any) -> None:
    if not isinstance(value, str) or not value.isidentifier():
        raise InvalidRecord(
            f"VectorIndex engine must be an engine name such as 'exact' or 'faiss', got {value!r}"
        )


def _check_options(_inst: object, _attr: object, value: Any) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidRecord(f"VectorIndex options must be a dict of engine options, got {value!r}")


@define(kw_only=True)
class VectorIndex(Component):
    """Index the vectors a listener computes, so ``db.search`` finds the nearest rows.

    ``db.apply(index)`` checks that the listener's outputs are vectors (outputs of dtype
    ``vector``, or ``json`` arrays of one length), builds the engine over the outputs of the
    listener's current model version, and stores it in the artifact store (the engine's own
    bytes, no pickle) with a pointer in the metadata store, so any process searches without
    rebuilding. The listener's insert, update and delete work keeps it current; ``db.catch_up``
    and ``pinnacle index rebuild ID`` repair it.

    Attributes:
        identifier: The index name (``db.search(identifier, ...)``).
        listener: The listener whose outputs are indexed (a component reference: lineage). The
            index follows the listener identifier's latest version.
        measure: ``"cosine"``, ``"l2"`` or ``"dot"`` (scores are higher-is-better for each).
        engine: A ``pinnacle.vector_engines`` entry point: ``"exact"`` (numpy, always there),
            ``"faiss"``, ``"usearch"``, ``"hnswlib"`` (``pinnacle-vectors`` extras).
        options: Engine tuning options (``{"M": 32}``, ...), JSON data.
    """

    type_id: ClassVar[str] = "vector_index"

    listener: Listener
    measure: str = field(default="cosine", validator=_check_measure)
    engine: str = field(default="exact", validator=_check_engine)
    options: dict[str, Any] = field(factory=dict, validator=_check_options)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.listener, Listener):
            raise InvalidRecord(
                f"VectorIndex listener must be a Listener, got {type(self.listener).__name__}"
            )
