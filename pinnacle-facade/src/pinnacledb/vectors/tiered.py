"""Two tiers for an approximate (graph) engine: the graph plus an exact "pending" segment.

Adding vectors to an HNSW graph is the expensive part of keeping an index current (0.5-6 s per
1,000 vectors of 384 floats at 10,000-100,000 vectors on 2 cores), and a write should not pay
it. So, as the "growing segment" of Milvus or LanceDB, a :class:`TieredEngine` wraps the
library's engine (the *graph*) and an :class:`~pinnacledb.vectors.exact.ExactEngine` (the
*pending* segment):

* :meth:`~TieredEngine.add` puts the vectors into the pending segment and removes their ids from
  the graph (a replaced vector must not be found at its old place); :meth:`~TieredEngine.remove`
  removes from both. An id lives in at most one tier.
* :meth:`~TieredEngine.search` asks the graph and brute-forces the pending segment, each for
  ``n`` (with the same ``allowed``), and merges the two lists by score: each tier keeps its
  promise (``n`` results when ``n`` allowed ids are live in it), so the merge keeps it too.
* :meth:`~TieredEngine.fold` adds the pending vectors to the graph in one batch and empties the
  segment. :meth:`~TieredEngine.to_bytes` folds first: a stored base build is always the graph
  alone (the same bytes as the library engine's), and what is pending is exactly what the
  change files after the base added, which is how another process restores it (the base into
  the graph, the vectors of the ids the change files added into the pending segment, no graph
  add at load).

When a fold happens is the caller's business (:mod:`pinnacledb.vector_search`: at compaction,
``db.catch_up`` and rebuilds). The pending vectors are never only in memory: they are the
listener's outputs (stored in its outputs table), and the change file naming their ids is stored
before the write returns.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

from pinnacle_protocols.vectors import (
    Measure,
    QueryLike,
    SearchResult,
    VectorEngine,
    VectorId,
    VectorsLike,
    check_ids,
)
from pinnacledb.vectors.exact import ExactEngine

__all__ = ["TieredEngine", "tiered"]


def tiered(engine: VectorEngine) -> VectorEngine:
    """``engine`` wrapped in a :class:`TieredEngine` when it is an approximate in-process engine
    (``exact`` and backend-delegating engines are returned as they are)."""
    if engine.exact or engine.delegates_to_backend or isinstance(engine, TieredEngine):
        return engine
    return TieredEngine(engine)


class TieredEngine:
    """An approximate engine's graph plus an exact pending segment (module docstring)."""

    exact: ClassVar[bool] = False
    delegates_to_backend: ClassVar[bool] = False

    def __init__(self, graph: VectorEngine) -> None:
        """Wrap ``graph`` (its vectors stay where they are); the pending segment is empty."""
        self._graph = graph
        self._pending = ExactEngine(measure=graph.measure, dim=graph.dim)

    # ------------------------------------------------------------------ properties
    @property
    def name(self) -> str:
        """The graph engine's name."""
        return self._graph.name

    @property
    def native_filter(self) -> bool:
        """Whether the graph engine filters natively."""
        return self._graph.native_filter

    @property
    def measure(self) -> Measure:
        """The similarity measure."""
        return self._graph.measure

    @property
    def dim(self) -> int:
        """The vector dimension."""
        return self._graph.dim

    @property
    def graph(self) -> VectorEngine:
        """The library engine (for inspection; mutate through this object)."""
        return self._graph

    @property
    def pending(self) -> int:
        """How many live vectors are in the pending segment (not yet in the graph)."""
        return len(self._pending)

    def __len__(self) -> int:
        """Number of live ids in both tiers."""
        return len(self._graph) + len(self._pending)

    def __contains__(self, id_: object) -> bool:
        """Whether ``id_`` is live in either tier."""
        return id_ in self._pending or id_ in self._graph

    def __repr__(self) -> str:
        """The graph and the size of the pending segment."""
        return f"TieredEngine({self._graph!r}, pending={len(self._pending)})"

    def ids(self) -> list[VectorId]:
        """Every live id (graph first)."""
        return self._graph.ids() + self._pending.ids()

    # ------------------------------------------------------------------ mutation
    def add(self, ids: Sequence[VectorId], vectors: VectorsLike) -> None:
        """Insert or replace vectors: into the pending segment; replaced ids leave the graph.

        The pending segment validates the batch before anything changes in either tier.
        """
        ids = check_ids(ids)
        self._pending.add(ids, vectors)
        self._graph.remove([i for i in ids if i in self._graph])

    def remove(self, ids: Iterable[VectorId]) -> int:
        """Remove ids from both tiers (unknown ones ignored); return how many were live."""
        ids = list(ids)
        return self._pending.remove(ids) + self._graph.remove(ids)

    def fold(self) -> int:
        """Add the pending vectors to the graph in one batch; return how many were folded."""
        ids, matrix = self._pending.vectors()
        if ids:
            self._graph.add(ids, matrix)
            self._pending = ExactEngine(measure=self._graph.measure, dim=self._graph.dim)
        return len(ids)

    # ------------------------------------------------------------------ search
    def search(
        self, query: QueryLike, n: int, *, allowed: Collection[VectorId] | None = None
    ) -> SearchResult:
        """The ``n`` best live ids of both tiers (only allowed ones when ``allowed`` is given)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        near = self._pending.search(query, n, allowed=allowed) if len(self._pending) else None
        if len(self._graph) == 0:
            return near if near is not None else self._pending.search(query, n, allowed=allowed)
        far = self._graph.search(query, n, allowed=allowed)
        if near is None or not near.ids:
            return far
        merged = sorted(
            zip(far.ids + near.ids, far.scores + near.scores, strict=True),
            key=lambda pair: -pair[1],
        )[:n]
        return SearchResult(
            ids=tuple(i for i, _ in merged), scores=tuple(float(s) for _, s in merged)
        )

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        """Fold, then the graph engine's own bytes (restore with its type's ``from_bytes``)."""
        self.fold()
        return self._graph.to_bytes()


if TYPE_CHECKING:  # the wrapper is an engine too (checked by mypy, costs nothing at runtime)
    _ENGINE: VectorEngine = TieredEngine(ExactEngine(measure="l2", dim=1))
