"""The ``exact`` vector engine: a brute-force numpy scan, the reference every ANN engine is
measured against. Always available (numpy is a dependency of pinnacledb).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from pinnacle_protocols.errors import InvalidVector, SerializationError
from pinnacle_protocols.vector_arrays import as_matrix, as_query, top_n
from pinnacle_protocols.vectors import (
    Measure,
    QueryLike,
    SearchResult,
    VectorId,
    VectorsLike,
    check_ids,
    check_measure,
    pack_engine_bytes,
    unpack_engine_bytes,
)

__all__ = ["ExactEngine", "as_matrix", "as_query", "top_n"]

F32 = npt.NDArray[np.float32]


class ExactEngine:
    """Brute-force search over a float32 matrix (see :class:`~pinnacle_protocols.VectorEngine`).

    Vectors live in one growing matrix (capacity doubles); removal moves the last row into the
    hole. Scores: cosine similarity (rows stored normalized), inner product, or minus the
    Euclidean distance computed as ``sqrt(|q|^2 - 2 q.v + |v|^2)`` with cached row norms.
    Filtered search scores only the allowed rows, so it is exact about the filter.
    """

    name: ClassVar[str] = "exact"
    exact: ClassVar[bool] = True
    native_filter: ClassVar[bool] = True
    delegates_to_backend: ClassVar[bool] = False

    def __init__(self, *, measure: Measure, dim: int) -> None:
        """An empty engine; prefer :meth:`build`."""
        self._measure = check_measure(measure)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise InvalidVector(f"dim must be a positive int, not {dim!r}")
        self._dim = dim
        self._ids: list[VectorId] = []
        self._pos: dict[VectorId, int] = {}
        self._data: F32 = np.empty((0, dim), dtype=np.float32)
        self._sq: F32 = np.empty(0, dtype=np.float32)  # squared norms (l2 only)

    @classmethod
    def build(
        cls,
        ids: Sequence[VectorId],
        vectors: VectorsLike,
        *,
        measure: Measure,
        dim: int | None = None,
        **options: Any,
    ) -> ExactEngine:
        """An engine holding these vectors (``dim`` inferred from them unless ``ids`` is empty)."""
        if options:
            raise TypeError(f"the exact engine takes no options, got {sorted(options)}")
        ids = check_ids(ids)
        measure = check_measure(measure)
        matrix = as_matrix(vectors, len(ids), dim, measure)
        if not ids and dim is None:
            raise InvalidVector("building an empty index needs dim=")
        engine = cls(measure=measure, dim=int(matrix.shape[1]) if ids else int(dim or 0))
        engine._append(ids, matrix)
        return engine

    # ------------------------------------------------------------------ properties
    @property
    def measure(self) -> Measure:
        """The similarity measure."""
        return self._measure

    @property
    def dim(self) -> int:
        """The vector dimension."""
        return self._dim

    def __len__(self) -> int:
        """Number of live ids."""
        return len(self._ids)

    def __contains__(self, id_: object) -> bool:
        """Whether ``id_`` is live."""
        return id_ in self._pos

    def __repr__(self) -> str:
        """Engine, measure, dimension and size."""
        return f"ExactEngine(measure={self._measure!r}, dim={self._dim}, len={len(self)})"

    def ids(self) -> list[VectorId]:
        """Every live id."""
        return list(self._ids)

    def vectors(self) -> tuple[list[VectorId], F32]:
        """Every live id and its stored vector (a copy; normalized under ``cosine``)."""
        return list(self._ids), self._data[: len(self._ids)].copy()

    # ------------------------------------------------------------------ mutation
    def _reserve(self, extra: int) -> None:
        need = len(self._ids) + extra
        if need <= self._data.shape[0]:
            return
        cap = max(need, 2 * self._data.shape[0], 16)
        data = np.empty((cap, self._dim), dtype=np.float32)
        data[: len(self._ids)] = self._data[: len(self._ids)]
        sq = np.empty(cap, dtype=np.float32)
        sq[: len(self._ids)] = self._sq[: len(self._ids)]
        self._data, self._sq = data, sq

    def _append(self, ids: list[VectorId], matrix: F32) -> None:
        self._reserve(len(ids))
        start = len(self._ids)
        self._data[start : start + len(ids)] = matrix
        self._sq[start : start + len(ids)] = np.einsum("ij,ij->i", matrix, matrix)
        for i, id_ in enumerate(ids, start):
            self._pos[id_] = i
        self._ids.extend(ids)

    def add(self, ids: Sequence[VectorId], vectors: VectorsLike) -> None:
        """Insert or replace vectors (validated as a whole batch first)."""
        ids = check_ids(ids)
        matrix = as_matrix(vectors, len(ids), self._dim, self._measure)
        new: list[int] = []
        for row, id_ in enumerate(ids):
            pos = self._pos.get(id_)
            if pos is None:
                new.append(row)
            else:
                self._data[pos] = matrix[row]
                self._sq[pos] = float(matrix[row] @ matrix[row])
        if new:
            self._append([ids[r] for r in new], matrix[new])

    def remove(self, ids: Iterable[VectorId]) -> int:
        """Remove ids (unknown ones ignored); return how many were live."""
        removed = 0
        for id_ in ids:
            pos = self._pos.pop(id_, None)
            if pos is None:
                continue
            removed += 1
            last = len(self._ids) - 1
            if pos != last:
                moved = self._ids[last]
                self._ids[pos] = moved
                self._pos[moved] = pos
                self._data[pos] = self._data[last]
                self._sq[pos] = self._sq[last]
            self._ids.pop()
        return removed

    # ------------------------------------------------------------------ search
    def search(
        self, query: QueryLike, n: int, *, allowed: Collection[VectorId] | None = None
    ) -> SearchResult:
        """The ``n`` best live ids (only allowed ones when ``allowed`` is given)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        q = as_query(query, self._dim, self._measure)
        if allowed is None:
            rows: npt.NDArray[np.intp] | None = None
            data, sq = self._data[: len(self._ids)], self._sq[: len(self._ids)]
        else:
            pos = self._pos
            rows = np.fromiter((pos[i] for i in allowed if i in pos), dtype=np.intp)
            data, sq = self._data[rows], self._sq[rows]
        if n == 0 or data.shape[0] == 0:
            return SearchResult(ids=(), scores=())
        scores = self.scores(q, data, sq)
        if self._measure == "l2":
            # The expanded form |x|^2 - 2x.q + |q|^2 cancels catastrophically near the query (a
            # stored copy of q scored -0.0014, not 0): rank by it, then score a margin of the
            # best candidates exactly from their differences and rank those again.
            cand = top_n(scores, min(scores.shape[0], 2 * n + 16))
            diff = data[cand] - q
            exact = -np.sqrt(np.einsum("ij,ij->i", diff, diff), dtype=np.float32)
            keep = top_n(exact, n)
            best, best_scores = cand[keep], exact[keep]
        else:
            best = top_n(scores, n)
            best_scores = scores[best]
        found = best if rows is None else rows[best]
        ids = self._ids
        return SearchResult(
            ids=tuple([ids[i] for i in found.tolist()]), scores=tuple(best_scores.tolist())
        )

    def scores(self, q: F32, data: F32, sq: F32) -> npt.NDArray[np.float32]:
        """Scores (higher is better) of prepared query ``q`` against rows ``data``."""
        dots: npt.NDArray[np.float32] = data @ q
        if self._measure != "l2":
            return dots
        dist2 = np.maximum(sq - 2.0 * dots + float(q @ q), 0.0)
        return -np.sqrt(dist2, dtype=np.float32)

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        """Header (measure, dim, ids) plus the rows as little-endian float32 (no pickle)."""
        payload = self._data[: len(self._ids)].astype("<f4", copy=False).tobytes()
        header = {"measure": self._measure, "dim": self._dim, "ids": self._ids}
        return pack_engine_bytes(self.name, header, payload)

    @classmethod
    def from_bytes(cls, data: bytes) -> ExactEngine:
        """Restore an engine written by :meth:`to_bytes`."""
        meta, payload = unpack_engine_bytes(data, cls.name)
        try:
            ids, dim, measure = meta["ids"], int(meta["dim"]), check_measure(meta["measure"])
            matrix = np.frombuffer(payload, dtype="<f4").reshape(len(ids), dim)
            engine = cls(measure=measure, dim=dim)
            engine._append(check_ids(ids), matrix.astype(np.float32))
        except (KeyError, TypeError, ValueError) as exc:
            raise SerializationError(f"serialized exact engine is inconsistent: {exc}") from exc
        return engine


if TYPE_CHECKING:  # the class satisfies both Protocols (checked by mypy, costs nothing at runtime)
    from pinnacle_protocols.vectors import VectorEngine, VectorEngineType

    _TYPE: VectorEngineType = ExactEngine
    _ENGINE: VectorEngine = ExactEngine(measure="l2", dim=1)
