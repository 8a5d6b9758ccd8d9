"""The ``usearch`` engine: an HNSW graph from `USearch <https://github.com/unum-cloud/usearch>`_.

Install with ``pip install pinnacle-vectors[usearch]``. Vectors are stored as float32 (USearch's
own default is bf16); removal is USearch's ``remove``. Its Python API has no filter predicate, so
filtered search over-fetches (see :mod:`pinnacle_vectors._base`). Metrics: ``ip`` over unit
vectors for cosine, ``ip`` for dot, ``l2sq`` (turned into ``-distance``) for l2.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from usearch.index import Index as _Index

from pinnacle_vectors._base import F32, AnnEngine, Labels

__all__ = ["USearchEngine"]

_METRIC = {"cosine": "ip", "dot": "ip", "l2": "l2sq"}


def _set_expansion_search(index: _Index, value: int) -> None:
    # usearch defines the setter, but its property is declared read-only for type checkers
    index.expansion_search = value  # type: ignore[misc]


#: Vectors an index holds before USearch may insert on several threads (see ``_lib_add``).
SEQUENTIAL_UNTIL = 4096


class USearchEngine(AnnEngine):
    """HNSW via USearch. Options: ``M`` (connectivity, 16), ``ef_construction`` (128),
    ``ef_search`` (64)."""

    name: ClassVar[str] = "usearch"
    native_filter: ClassVar[bool] = False
    defaults: ClassVar[dict[str, int]] = {"M": 16, "ef_construction": 128, "ef_search": 64}

    def __init__(self, *, measure: Any, dim: int, options: dict[str, Any]) -> None:
        """An empty index."""
        super().__init__(measure=measure, dim=dim, options=options)
        self._index = self._new_index()

    def _new_index(self) -> _Index:
        return _Index(
            ndim=self._dim,
            metric=_METRIC[self._measure],
            dtype="f32",
            connectivity=self._options["M"],
            expansion_add=self._options["ef_construction"],
            expansion_search=self._options["ef_search"],
        )

    @property
    def index(self) -> Any:
        """The underlying ``usearch.index.Index`` (for inspection; mutate through the engine)."""
        return self._index

    def _lib_add(self, labels: Labels, matrix: F32) -> None:
        keys = labels.astype(np.uint64)
        # USearch inserts on every core at once. Into a small graph that race gives a
        # different, sometimes poor graph each time (recall@10 0.89-1.0 on the contract's
        # 2,000 vectors; always 1.0 inserted one at a time): the first SEQUENTIAL_UNTIL vectors
        # go in on one thread (milliseconds), the rest in parallel as before.
        alone = max(0, min(len(keys), SEQUENTIAL_UNTIL - len(self._index)))
        if alone:
            self._index.add(keys[:alone], matrix[:alone], threads=1)
        if alone < len(keys):
            self._index.add(keys[alone:], matrix[alone:])

    def _lib_remove(self, labels: Labels) -> None:
        self._index.remove(labels.astype(np.uint64))

    def _lib_size(self) -> int:
        return len(self._index)

    def _lib_search(
        self, q: F32, k: int, allowed: Labels | None
    ) -> tuple[Labels, npt.NDArray[np.float32]]:
        if k > self._options["ef_search"]:
            _set_expansion_search(self._index, k)
        try:
            matches = self._index.search(q, k)
        finally:
            if k > self._options["ef_search"]:
                _set_expansion_search(self._index, self._options["ef_search"])
        d = np.asarray(matches.distances, dtype=np.float32)
        scores = -np.sqrt(np.maximum(d, 0)) if self._measure == "l2" else 1.0 - d
        return np.asarray(matches.keys, dtype=np.int64), scores.astype(np.float32)

    def _lib_get(self, labels: Labels) -> F32:
        if labels.shape[0] == 0:
            return np.empty((0, self._dim), dtype=np.float32)
        got = self._index.get(labels.astype(np.uint64), dtype="f32")
        found = [got] if got is None or isinstance(got, np.ndarray) else list(got)
        rows = [row for row in found if row is not None]
        if len(rows) != len(found):
            raise AssertionError("usearch lost a live vector")
        return np.asarray(np.stack(rows), dtype=np.float32).reshape(len(labels), self._dim)

    def _lib_payload(self) -> bytes:
        data = self._index.save()
        if data is None:  # only when saving to a path
            raise AssertionError("usearch returned no bytes")
        return bytes(data)

    def _lib_restore(self, payload: bytes, meta: dict[str, Any]) -> None:
        index = _Index.restore(payload)
        if index is None:
            raise ValueError("usearch could not read the index bytes")
        _set_expansion_search(index, self._options["ef_search"])
        self._index = index
