"""The ``hnswlib`` engine: an HNSW graph from `hnswlib <https://github.com/nmslib/hnswlib>`_.

Install with ``pip install pinnacle-vectors[hnswlib]``. Removal uses hnswlib's ``mark_deleted``;
the slots of removed vectors are reused by later inserts (``replace_deleted``). Filtered search
passes hnswlib's own ``filter`` callback (``native_filter``). Spaces: ``ip`` over unit vectors for
cosine, ``ip`` for dot, ``l2`` (squared distances, turned into ``-distance``) for l2.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, ClassVar

import hnswlib as _hnswlib
import numpy as np
import numpy.typing as npt

from pinnacle_vectors._base import F32, AnnEngine, Labels

__all__ = ["HnswlibEngine"]

_SPACE = {"cosine": "ip", "dot": "ip", "l2": "l2"}


class HnswlibEngine(AnnEngine):
    """HNSW via hnswlib. Options: ``M`` (16), ``ef_construction`` (128), ``ef_search`` (64)."""

    name: ClassVar[str] = "hnswlib"
    native_filter: ClassVar[bool] = True
    defaults: ClassVar[dict[str, int]] = {"M": 16, "ef_construction": 128, "ef_search": 64}

    def __init__(self, *, measure: Any, dim: int, options: dict[str, Any]) -> None:
        """An empty index with room for 1,024 vectors (it grows by doubling)."""
        super().__init__(measure=measure, dim=dim, options=options)
        self._index = _hnswlib.Index(space=_SPACE[self._measure], dim=dim)
        self._index.init_index(
            max_elements=1024,
            M=self._options["M"],
            ef_construction=self._options["ef_construction"],
            random_seed=100,
            allow_replace_deleted=True,
        )
        self._index.set_ef(self._options["ef_search"])
        self._deleted = 0

    @property
    def index(self) -> Any:
        """The underlying ``hnswlib.Index`` (for inspection; mutate through the engine)."""
        return self._index

    def _lib_add(self, labels: Labels, matrix: F32) -> None:
        reuse = min(self._deleted, len(labels))
        need = self._index.get_current_count() - self._deleted + len(labels)
        if need > self._index.get_max_elements():
            self._index.resize_index(max(need, 2 * self._index.get_max_elements()))
        self._index.add_items(matrix, labels, replace_deleted=reuse > 0)
        self._deleted -= reuse

    def _lib_remove(self, labels: Labels) -> None:
        for label in labels.tolist():
            self._index.mark_deleted(label)
        self._deleted += len(labels)

    def _lib_size(self) -> int:
        return int(self._index.get_current_count()) - self._deleted

    def _lib_search(
        self, q: F32, k: int, allowed: Labels | None
    ) -> tuple[Labels, npt.NDArray[np.float32]]:
        if k > self._options["ef_search"]:
            self._index.set_ef(k)
        try:
            if allowed is None:
                labels, dist = self._index.knn_query(q, k=k)
            else:
                keep = set(allowed.tolist())
                labels, dist = self._index.knn_query(q, k=k, filter=keep.__contains__)
        except RuntimeError:  # hnswlib raises instead of returning fewer than k
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        finally:
            if k > self._options["ef_search"]:
                self._index.set_ef(self._options["ef_search"])
        d = dist[0]
        scores = -np.sqrt(np.maximum(d, 0)) if self._measure == "l2" else 1.0 - d
        return labels[0].astype(np.int64), scores.astype(np.float32)

    def _lib_get(self, labels: Labels) -> F32:
        if labels.shape[0] == 0:
            return np.empty((0, self._dim), dtype=np.float32)
        got = self._index.get_items(labels, return_type="numpy")
        return np.asarray(got, dtype=np.float32).reshape(len(labels), self._dim)

    def _lib_payload(self) -> bytes:
        fd, path = tempfile.mkstemp(suffix=".hnsw")
        os.close(fd)
        try:
            self._index.save_index(path)
            with open(path, "rb") as f:
                return f.read()
        finally:
            os.unlink(path)

    def _lib_restore(self, payload: bytes, meta: dict[str, Any]) -> None:
        fd, path = tempfile.mkstemp(suffix=".hnsw")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            index = _hnswlib.Index(space=_SPACE[self._measure], dim=self._dim)
            index.load_index(path, allow_replace_deleted=True)
        finally:
            os.unlink(path)
        index.set_ef(self._options["ef_search"])
        self._index = index
        self._deleted = int(index.get_current_count()) - len(self._label_of)
