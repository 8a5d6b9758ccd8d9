"""What the ANN engines share: validation, id <-> label mapping, filtered search, bytes.

Each engine subclasses :class:`AnnEngine` and implements a handful of ``_lib_*`` hooks that talk
to its library in integer labels; everything the Protocol promises beyond "ask the library" lives
here once:

* ids (``str`` or ``int``) map to integer labels the library understands; a replaced vector gets a
  new label (the old one is removed or tombstoned), so a stale label never resurfaces;
* filtered search (``allowed=``) is exact about the filter. A small candidate set (at most
  ``prefilter_max`` ids, or at most ``n`` times ``prefilter_ratio``) is scanned exactly with the
  vectors read back from the library. Otherwise the library searches for ``k`` candidates (with
  its own filter when it has one), the live allowed ones are kept, and ``k`` grows 4x until ``n``
  are found; when ``k`` reaches the index size the candidates are scanned exactly. So ``n`` results
  come back whenever ``n`` allowed ids are live, never silently fewer. Unfiltered searches use the
  same loop, which covers libraries that return fewer than ``k`` (hnswlib raises instead).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any, ClassVar, TypeVar

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

__all__ = ["AnnEngine", "Labels", "as_matrix", "as_query", "exact_scores", "top_n"]

F32 = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]
A = TypeVar("A", bound="AnnEngine")


def exact_scores(measure: Measure, q: F32, matrix: F32) -> npt.NDArray[np.float32]:
    """Scores (higher is better) of prepared ``q`` against prepared rows ``matrix``."""
    if measure == "l2":
        diff = matrix - q
        dist: npt.NDArray[np.float32] = -np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return dist
    dots: npt.NDArray[np.float32] = matrix @ q
    return dots


class AnnEngine:
    """Base of the approximate engines; see the module docstring for what it adds.

    Subclasses set ``name`` and ``native_filter`` and implement the ``_lib_*`` hooks; ``options``
    (validated by ``_check_options``) are kept and written to the header so ``from_bytes``
    restores the same tuning.
    """

    name: ClassVar[str] = ""
    exact: ClassVar[bool] = False
    native_filter: ClassVar[bool] = False
    delegates_to_backend: ClassVar[bool] = False
    #: Default tuning, overridable per engine (unknown options raise TypeError).
    defaults: ClassVar[dict[str, int]] = {}
    #: Candidate sets this small are scanned exactly instead of searched.
    prefilter_max: ClassVar[int] = 2048
    prefilter_ratio: ClassVar[int] = 8

    def __init__(self, *, measure: Measure, dim: int, options: dict[str, Any]) -> None:
        """An empty engine; use :meth:`build` or :meth:`from_bytes`."""
        self._measure = check_measure(measure)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise InvalidVector(f"dim must be a positive int, not {dim!r}")
        self._dim = dim
        self._options = self._check_options(options)
        self._label_of: dict[VectorId, int] = {}
        self._id_of: dict[int, VectorId] = {}
        self._next_label = 0

    @classmethod
    def _check_options(cls, options: dict[str, Any]) -> dict[str, int]:
        unknown = sorted(set(options) - set(cls.defaults))
        if unknown:
            raise TypeError(
                f"unknown {cls.name} engine options {unknown}; known: {sorted(cls.defaults)}"
            )
        merged = {**cls.defaults, **options}
        for key, value in merged.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TypeError(f"{cls.name} option {key} must be a positive int, not {value!r}")
        return merged

    # ------------------------------------------------------------------ library hooks
    def _lib_add(self, labels: Labels, matrix: F32) -> None:
        raise NotImplementedError

    def _lib_remove(self, labels: Labels) -> None:
        raise NotImplementedError

    def _lib_search(
        self, q: F32, k: int, allowed: Labels | None
    ) -> tuple[Labels, npt.NDArray[np.float32]]:
        """Up to ``k`` (label, score) best first; may include removed labels or return fewer."""
        raise NotImplementedError

    def _lib_size(self) -> int:
        """Vectors the library holds, tombstoned ones included."""
        raise NotImplementedError

    def _lib_get(self, labels: Labels) -> F32:
        """The stored (prepared) vectors of live ``labels``."""
        raise NotImplementedError

    def _lib_payload(self) -> bytes:
        raise NotImplementedError

    def _lib_restore(self, payload: bytes, meta: dict[str, Any]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls: type[A],
        ids: Sequence[VectorId],
        vectors: VectorsLike,
        *,
        measure: Measure,
        dim: int | None = None,
        **options: Any,
    ) -> A:
        """An engine holding these vectors (``dim`` is needed only when ``ids`` is empty)."""
        ids = check_ids(ids)
        measure = check_measure(measure)
        matrix = as_matrix(vectors, len(ids), dim, measure)
        if not ids and dim is None:
            raise InvalidVector("building an empty index needs dim=")
        engine = cls(
            measure=measure, dim=int(matrix.shape[1]) if ids else int(dim or 0), options=options
        )
        engine._insert(ids, matrix)
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

    @property
    def options(self) -> dict[str, int]:
        """The tuning options in effect."""
        return dict(self._options)

    def __len__(self) -> int:
        """Number of live ids."""
        return len(self._label_of)

    def __contains__(self, id_: object) -> bool:
        """Whether ``id_`` is live."""
        return id_ in self._label_of

    def __repr__(self) -> str:
        """Engine, measure, dimension and size."""
        return f"{type(self).__name__}(measure={self._measure!r}, dim={self._dim}, len={len(self)})"

    def ids(self) -> list[VectorId]:
        """Every live id."""
        return list(self._label_of)

    # ------------------------------------------------------------------ mutation
    def _insert(self, ids: list[VectorId], matrix: F32) -> None:
        if not ids:
            return
        labels = np.arange(self._next_label, self._next_label + len(ids), dtype=np.int64)
        self._lib_add(labels, matrix)
        self._next_label += len(ids)
        for id_, label in zip(ids, labels.tolist(), strict=True):
            self._label_of[id_] = label
            self._id_of[label] = id_

    def add(self, ids: Sequence[VectorId], vectors: VectorsLike) -> None:
        """Insert or replace vectors (the batch is validated before anything changes)."""
        ids = check_ids(ids)
        matrix = as_matrix(vectors, len(ids), self._dim, self._measure)
        self.remove([i for i in ids if i in self._label_of])
        self._insert(ids, matrix)

    def remove(self, ids: Iterable[VectorId]) -> int:
        """Remove ids (unknown ones ignored); return how many were live."""
        labels = []
        for id_ in ids:
            label = self._label_of.pop(id_, None)
            if label is not None:
                del self._id_of[label]
                labels.append(label)
        if labels:
            self._lib_remove(np.asarray(labels, dtype=np.int64))
        return len(labels)

    # ------------------------------------------------------------------ search
    def search(
        self, query: QueryLike, n: int, *, allowed: Collection[VectorId] | None = None
    ) -> SearchResult:
        """The ``n`` best live ids, only allowed ones when ``allowed`` is given."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        q = as_query(query, self._dim, self._measure)
        live = len(self._label_of)
        if allowed is None:
            cand: Labels | None = None
            count = live
        else:
            label_of = self._label_of
            cand = np.fromiter((label_of[i] for i in allowed if i in label_of), dtype=np.int64)
            count = int(cand.shape[0])
        want = min(n, count)
        if want == 0:
            return SearchResult(ids=(), scores=())
        if cand is not None and (
            count <= self.prefilter_max or count <= want * self.prefilter_ratio
        ):
            return self._scan(q, want, cand)
        id_of = self._id_of
        if cand is None:  # fast path: the library found `want` live results
            labels, scores = self._lib_search(q, want, None)
            if labels.shape[0] == want:
                try:
                    return SearchResult(
                        ids=tuple([id_of[label] for label in labels.tolist()]),
                        scores=tuple(scores.tolist()),
                    )
                except KeyError:  # a removed label (tombstone): take the general path
                    pass
        allowed_set = None if cand is None else set(cand.tolist())
        total = self._lib_size()
        # expected k to see `want` candidates among the library's vectors, with slack
        k = want if cand is None else min(total, -(-want * total // count) * 2)
        while True:
            labels, scores = self._lib_search(q, k, cand if self.native_filter else None)
            found_ids: list[VectorId] = []
            found_scores: list[float] = []
            for label, s in zip(labels.tolist(), scores.tolist(), strict=True):
                if label in id_of and (allowed_set is None or label in allowed_set):
                    found_ids.append(id_of[label])
                    found_scores.append(s)
                    if len(found_ids) == want:
                        return SearchResult(ids=tuple(found_ids), scores=tuple(found_scores))
            if k >= total:
                break
            k = min(total, k * 4)
        # the library ran out (its graph did not reach enough candidates): scan them exactly
        if cand is None:
            cand = np.fromiter(self._id_of, dtype=np.int64, count=live)
        return self._scan(q, want, cand)

    def _scan(self, q: F32, want: int, labels: Labels) -> SearchResult:
        scores = exact_scores(self._measure, q, self._lib_get(labels))
        best = top_n(scores, want)
        id_of = self._id_of
        return SearchResult(
            ids=tuple([id_of[label] for label in labels[best].tolist()]),
            scores=tuple(scores[best].tolist()),
        )

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        """Header (measure, dim, options, ids and labels) plus the library's own index bytes."""
        header = {
            "measure": self._measure,
            "dim": self._dim,
            "options": self._options,
            "ids": list(self._label_of),
            "labels": list(self._label_of.values()),
            "next_label": self._next_label,
        }
        return pack_engine_bytes(self.name, header, self._lib_payload())

    @classmethod
    def from_bytes(cls: type[A], data: bytes) -> A:
        """Restore an engine written by :meth:`to_bytes` (checksum verified first)."""
        meta, payload = unpack_engine_bytes(data, cls.name)
        try:
            engine = cls(measure=meta["measure"], dim=int(meta["dim"]), options=meta["options"])
            ids, labels = check_ids(meta["ids"]), [int(x) for x in meta["labels"]]
            if len(ids) != len(labels):
                raise ValueError(f"{len(ids)} ids but {len(labels)} labels")
            engine._label_of = dict(zip(ids, labels, strict=True))
            engine._id_of = dict(zip(labels, ids, strict=True))
            engine._next_label = int(meta["next_label"])
            engine._lib_restore(payload, meta)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise SerializationError(
                f"serialized {cls.name} engine is inconsistent: {exc}"
            ) from exc
        return engine
