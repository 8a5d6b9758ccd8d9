"""numpy helpers every vector engine validates its input with (one definition for all engines).

The exact engine of the facade and the ANN engines of pinnacle-vectors call these, so every
engine refuses the same input with the same :class:`~pinnacle_protocols.errors.InvalidVector`.
pinnacle-protocols does not depend on numpy: it is imported inside the functions, and only
packages that have numpy (the facade, pinnacle-vectors) call them. Importing this module loads
no numpy.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeAlias

from pinnacle_protocols.errors import InvalidVector
from pinnacle_protocols.vectors import Measure, QueryLike, VectorsLike

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    F32: TypeAlias = npt.NDArray[np.float32]

__all__ = ["as_matrix", "as_query", "normalize_rows", "top_n"]


def normalize_rows(matrix: F32, what: str) -> F32:
    """``matrix`` with unit rows (the cosine measure).

    Raises:
        InvalidVector: a row is zero (it has no direction).
    """
    import numpy as np

    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise InvalidVector(
            f"{what} has a zero vector, which has no direction under the cosine measure: "
            "drop it or use measure='l2' or 'dot'"
        )
    unit: F32 = (matrix / norms).astype(np.float32, copy=False)
    return unit


def as_matrix(vectors: VectorsLike, count: int, dim: int | None, measure: Measure) -> F32:
    """``vectors`` as a C-contiguous ``(count, dim)`` float32 matrix, unit rows under cosine.

    Raises:
        InvalidVector: Wrong shape or dimension, non-finite values, zero rows under cosine.
    """
    import numpy as np

    try:
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidVector(f"vectors are not a numeric (n, dim) array: {exc}") from exc
    if count == 0 and matrix.size == 0:
        return np.empty((0, dim or 0), dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != count:
        raise InvalidVector(
            f"expected {count} vectors as an ({count}, dim) array, got shape {matrix.shape}"
        )
    if dim is not None and matrix.shape[1] != dim:
        raise InvalidVector(f"vectors have dimension {matrix.shape[1]}, the index has {dim}")
    if matrix.shape[1] == 0:
        raise InvalidVector("vectors must have at least one dimension")
    if not np.isfinite(matrix).all():
        raise InvalidVector("vectors contain NaN or infinity (as float32)")
    if measure == "cosine":
        matrix = normalize_rows(matrix, "vectors")
    return matrix


def as_query(query: QueryLike, dim: int, measure: Measure) -> F32:
    """One query as a ``(dim,)`` float32 vector, unit length under cosine.

    Raises:
        InvalidVector: Wrong shape, non-finite values, a zero query under cosine.
    """
    import numpy as np

    try:
        q = np.asarray(query, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidVector(f"query is not a numeric vector: {exc}") from exc
    if q.shape != (dim,):
        raise InvalidVector(f"query has shape {q.shape}, the index needs ({dim},)")
    # one dot product checks finiteness (NaN/inf propagate) and gives the norm; only a
    # non-finite result (or float32 overflow of huge values) needs the elementwise check
    norm2 = float(np.dot(q, q))
    if not math.isfinite(norm2):
        if not np.isfinite(q).all():
            raise InvalidVector("query contains NaN or infinity (as float32)")
        norm2 = float(np.dot(q.astype(np.float64), q.astype(np.float64)))
    if measure == "cosine":
        if norm2 == 0.0:
            raise InvalidVector(
                "query is a zero vector, which has no direction under the cosine measure"
            )
        q = (q * np.float32(1.0 / math.sqrt(norm2))).astype(np.float32, copy=False)
    return q


def top_n(scores: npt.NDArray[Any], n: int) -> npt.NDArray[np.intp]:
    """Positions of the ``n`` highest scores, highest first (ties keep their order)."""
    import numpy as np

    if n >= scores.shape[0]:
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, n - 1)[:n]
    return part[np.argsort(-scores[part], kind="stable")]
