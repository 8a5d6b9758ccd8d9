"""The ``faiss`` engine: ``IndexHNSWFlat`` from `Faiss <https://github.com/facebookresearch/faiss>`_.

Install with ``pip install pinnacle-vectors[faiss]``. Faiss's HNSW cannot remove vectors, so a
removed or replaced vector is tombstoned (never returned) and the index is rebuilt from the live
vectors once tombstones outnumber them. Filtered search passes Faiss's own ``IDSelectorBatch``
(``native_filter``). Metrics: inner product over unit vectors for cosine, inner product for dot,
L2 (squared distances, turned into ``-distance``) for l2. Serialized with
``faiss.serialize_index``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import faiss as _faiss
import numpy as np
import numpy.typing as npt

from pinnacle_vectors._base import F32, AnnEngine, Labels

__all__ = ["FaissEngine"]


class FaissEngine(AnnEngine):
    """HNSW via Faiss. Options: ``M`` (16), ``ef_construction`` (128), ``ef_search`` (64)."""

    name: ClassVar[str] = "faiss"
    native_filter: ClassVar[bool] = True
    defaults: ClassVar[dict[str, int]] = {"M": 16, "ef_construction": 128, "ef_search": 64}

    def __init__(self, *, measure: Any, dim: int, options: dict[str, Any]) -> None:
        """An empty index."""
        super().__init__(measure=measure, dim=dim, options=options)
        self._index = self._new_index()

    def _new_index(self) -> Any:
        metric = _faiss.METRIC_L2 if self._measure == "l2" else _faiss.METRIC_INNER_PRODUCT
        index = _faiss.IndexHNSWFlat(self._dim, self._options["M"], metric)
        index.hnsw.efConstruction = self._options["ef_construction"]
        index.hnsw.efSearch = self._options["ef_search"]
        return index

    @property
    def index(self) -> Any:
        """The underlying ``faiss.IndexHNSWFlat`` (labels are positions; tombstones included)."""
        return self._index

    def _lib_add(self, labels: Labels, matrix: F32) -> None:
        # Faiss numbers vectors by position: keep labels equal to positions.
        if labels.shape[0] and int(labels[0]) != self._index.ntotal:
            raise AssertionError("faiss labels out of step with positions")
        self._index.add(matrix)

    def _lib_remove(self, labels: Labels) -> None:
        if self._index.ntotal > 2 * len(self._label_of) + 1024:
            self._compact()

    def _compact(self) -> None:
        """Rebuild from the live vectors; labels become positions 0..live-1 again."""
        items = list(self._label_of.items())
        old = np.fromiter((label for _, label in items), dtype=np.int64, count=len(items))
        matrix = self._lib_get(old)
        self._index = self._new_index()
        self._label_of, self._id_of, self._next_label = {}, {}, 0
        self._insert([id_ for id_, _ in items], matrix)

    def _lib_size(self) -> int:
        return int(self._index.ntotal)

    def _lib_search(
        self, q: F32, k: int, allowed: Labels | None
    ) -> tuple[Labels, npt.NDArray[np.float32]]:
        ef = max(self._options["ef_search"], k)
        if allowed is None and ef == self._options["ef_search"]:  # the plain call, no params
            dist, labels = self._index.search(q.reshape(1, -1), k)
            return self._converted(dist, labels)
        # SearchParametersHNSW exists at run time but is missing from faiss's type stub
        params_type: Any = getattr(_faiss, "SearchParametersHNSW")  # noqa: B009
        if allowed is None:
            params = params_type(efSearch=ef)
        else:
            params = params_type(sel=_faiss.IDSelectorBatch(allowed), efSearch=ef)
        dist, labels = self._index.search(q.reshape(1, -1), k, params=params)
        return self._converted(dist, labels)

    def _converted(
        self, dist: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]
    ) -> tuple[Labels, npt.NDArray[np.float32]]:
        lab, d = labels[0], dist[0]
        if lab.shape[0] and lab[-1] < 0:  # faiss pads missing results with -1 at the end
            keep = lab >= 0
            lab, d = lab[keep], d[keep]
        if self._measure == "l2":
            d = -np.sqrt(np.maximum(d, 0))
        return lab, d

    def _lib_get(self, labels: Labels) -> F32:
        if labels.shape[0] == 0:
            return np.empty((0, self._dim), dtype=np.float32)
        got: F32 = self._index.reconstruct_batch(labels).astype(np.float32, copy=False)
        return got

    def _lib_payload(self) -> bytes:
        return bytes(_faiss.serialize_index(self._index).tobytes())

    def _lib_restore(self, payload: bytes, meta: dict[str, Any]) -> None:
        index = _faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        if index.d != self._dim or index.ntotal < self._next_label:
            raise ValueError(f"faiss index has d={index.d}, ntotal={index.ntotal}")
        self._index = index
