"""The VectorEngine contract: nearest-neighbour search over (id, vector) pairs.

An engine holds vectors of one dimension under caller-given ids (``str`` or ``int``) and answers
"the ``n`` ids nearest to this query", best first, optionally restricted to a set of allowed ids.
Engines are found by name through the ``pinnacle.vector_engines`` entry point group; each entry
point loads a :class:`VectorEngineType` (usually the engine class itself, whose ``build`` and
``from_bytes`` are classmethods).

Scores are "higher is better" for every measure, so results sort the same way everywhere:

* ``cosine``: the cosine similarity in [-1, 1] (vectors are compared by direction; a zero vector
  is refused),
* ``dot``: the inner product,
* ``l2``: minus the Euclidean distance (``-||q - v||``), so 0 is an exact match.

Filtered search (``allowed=...``) is exact about the filter: every id returned is allowed, and
when at least ``n`` allowed ids are in the engine, ``n`` results come back (engines pre-filter,
use their library's own filter, or over-fetch with a growing ``k`` and fall back to an exact scan
of the allowed ids; never silently fewer).

Serialization (``to_bytes`` / ``from_bytes``) never uses pickle: :func:`pack_engine_bytes` writes
a versioned header (magic, format version, a JSON header naming the engine, its measure,
dimension and ids, and the sha256 of the payload) followed by the payload the engine's library
writes itself (``faiss.serialize_index``, ``usearch.Index.save``, hnswlib's index file, raw
float32 for the exact engine). :func:`unpack_engine_bytes` checks all of it before any library
sees the bytes.

Native delegation: a databackend with its own vector search (MongoDB Atlas ``$vectorSearch``,
PostgreSQL with ``pgvector``'s ``<=>`` / ``<->`` / ``<#>`` operators and HNSW / IVFFlat indexes)
could answer searches itself instead of an engine holding a copy of the vectors. The hook is
:class:`NativeVectorSearch`, a capability Protocol a :class:`~pinnacle_protocols.DataBackend` may
implement; an engine that only forwards to it sets ``delegates_to_backend = True``. No backend in
this repository implements it yet (neither Atlas nor a pgvector server can run where this is
tested), so nothing is claimed.

This module imports only the standard library: vectors are typed as :data:`VectorsLike`
(anything with ``__array__`` such as a numpy array, or nested sequences of floats).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal, Protocol, TypeAlias, runtime_checkable

from attrs import frozen

from pinnacle_protocols.errors import InvalidVector, SerializationError

__all__ = [
    "ENGINE_FORMAT_VERSION",
    "ENGINE_MAGIC",
    "ENTRY_POINT_GROUP",
    "MEASURES",
    "ArrayLike",
    "Measure",
    "MemoryVectorEngine",
    "NativeVectorSearch",
    "QueryLike",
    "SearchResult",
    "VectorEngine",
    "VectorEngineType",
    "VectorId",
    "VectorsLike",
    "brute_force",
    "check_ids",
    "check_measure",
    "engine_name_of",
    "pack_engine_bytes",
    "score",
    "unpack_engine_bytes",
]

#: The entry point group engines register under (name -> :class:`VectorEngineType`).
ENTRY_POINT_GROUP = "pinnacle.vector_engines"
#: The similarity measures every engine supports.
Measure: TypeAlias = Literal["cosine", "l2", "dot"]
MEASURES: tuple[Measure, ...] = ("cosine", "l2", "dot")
#: An id under which a vector is stored: the indexed row's primary key.
VectorId: TypeAlias = str | int

#: First bytes of every serialized engine.
ENGINE_MAGIC = b"PNVE"
#: Version of the envelope written by :func:`pack_engine_bytes`.
ENGINE_FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sHI")  # magic, format version, header length


@runtime_checkable
class ArrayLike(Protocol):
    """Anything numpy can turn into an array without copying through Python objects."""

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        """The array (numpy's array protocol)."""
        ...


#: A batch of vectors: an ``(n, dim)`` array or a sequence of ``dim``-long float sequences.
VectorsLike: TypeAlias = ArrayLike | Sequence[Sequence[float]]
#: One query vector: a ``(dim,)`` array or a sequence of floats.
QueryLike: TypeAlias = ArrayLike | Sequence[float]


@frozen(kw_only=True)
class SearchResult:
    """The answer to one search: ids and their scores, best (highest score) first.

    Attributes:
        ids: The ids found, best first, without duplicates.
        scores: One score per id (higher is better, see the module docstring).
    """

    ids: tuple[VectorId, ...]
    scores: tuple[float, ...]

    def __attrs_post_init__(self) -> None:
        """Refuse mismatched lengths."""
        if len(self.ids) != len(self.scores):
            raise ValueError(f"{len(self.ids)} ids but {len(self.scores)} scores")

    def __len__(self) -> int:
        """Number of results."""
        return len(self.ids)

    def __iter__(self) -> Iterator[tuple[VectorId, float]]:
        """``(id, score)`` pairs, best first."""
        return iter(zip(self.ids, self.scores, strict=True))


class VectorEngine(Protocol):
    """A mutable nearest-neighbour index over ``(id, vector)`` pairs of one dimension.

    Capability flags (class attributes on implementations):

    * ``exact``: results equal a brute-force scan (up to ties and float rounding); otherwise
      the engine is approximate and only promises live ids and a recall level.
    * ``native_filter``: the library filters during the search itself (no over-fetching).
    * ``delegates_to_backend``: searches are answered by a databackend implementing
      :class:`NativeVectorSearch` (none does yet).
    """

    @property
    def name(self) -> str:
        """The engine's entry point name (``"exact"``, ``"faiss"``, ...)."""
        ...

    @property
    def exact(self) -> bool:
        """Whether results equal a brute-force scan."""
        ...

    @property
    def native_filter(self) -> bool:
        """Whether ``allowed=`` is applied by the library during the search."""
        ...

    @property
    def delegates_to_backend(self) -> bool:
        """Whether searches are forwarded to a databackend's native vector search."""
        ...

    @property
    def measure(self) -> Measure:
        """The similarity measure, fixed at build time."""
        ...

    @property
    def dim(self) -> int:
        """The dimension of every vector, fixed at build time."""
        ...

    def __len__(self) -> int:
        """The number of live (not removed) ids."""
        ...

    def __contains__(self, id_: object) -> bool:
        """Whether ``id_`` is live in the engine."""
        ...

    def ids(self) -> list[VectorId]:
        """Every live id (in no particular order)."""
        ...

    def add(self, ids: Sequence[VectorId], vectors: VectorsLike) -> None:
        """Insert or replace: each id maps to its vector afterwards.

        Raises:
            InvalidVector: A vector has the wrong dimension, is not finite, is zero under
                ``cosine``, or an id is repeated within the batch or is not ``str``/``int``.
                Nothing is added then.
        """
        ...

    def remove(self, ids: Iterable[VectorId]) -> int:
        """Remove these ids (unknown ids are ignored); return how many were live."""
        ...

    def search(
        self, query: QueryLike, n: int, *, allowed: Collection[VectorId] | None = None
    ) -> SearchResult:
        """The ``n`` live ids nearest to ``query``, best first.

        Args:
            query: One vector of dimension ``dim``.
            n: How many results at most (``min(n, number of candidates)`` come back from an exact
                engine; an approximate one may return fewer only without ``allowed``).
            allowed: When given, only these ids may be returned, and if at least ``n`` of them
                are live, exactly ``n`` results come back. Ids not in the engine are ignored.

        Raises:
            InvalidVector: The query has the wrong dimension, is not finite, or is zero under
                ``cosine``.
            ValueError: ``n`` is negative.
        """
        ...

    def to_bytes(self) -> bytes:
        """The whole engine, as :func:`pack_engine_bytes` frames it (no pickle)."""
        ...


class VectorEngineType(Protocol):
    """What a ``pinnacle.vector_engines`` entry point loads: builds or restores engines."""

    def build(
        self,
        ids: Sequence[VectorId],
        vectors: VectorsLike,
        *,
        measure: Measure,
        dim: int | None = None,
        **options: Any,
    ) -> VectorEngine:
        """A new engine holding these vectors (``dim`` is required when ``ids`` is empty).

        ``options`` are engine-specific tuning knobs (``M``, ``ef_search``, ...); unknown
        options raise ``TypeError``.
        """
        ...

    def from_bytes(self, data: bytes) -> VectorEngine:
        """Restore an engine from :meth:`VectorEngine.to_bytes` output.

        Raises:
            SerializationError: The bytes are not a serialized engine of this type, are truncated
                or corrupted (checksum mismatch), or use a newer format version.
        """
        ...


@runtime_checkable
class NativeVectorSearch(Protocol):
    """Optional capability of a DataBackend that searches vectors itself (the delegation hook).

    Candidates: MongoDB Atlas (``$vectorSearch`` aggregation stage over an Atlas Vector Search
    index) and PostgreSQL with pgvector (``ORDER BY embedding <=> :q LIMIT n`` over an HNSW or
    IVFFlat index). A vector index whose backend implements this and answers
    ``supports_vector_search(...)`` with True may skip keeping its own engine. Not implemented
    by any backend in this repository yet.
    """

    def supports_vector_search(self, table: str, column: str, measure: Measure) -> bool:
        """Whether ``table.column`` has a native vector index usable with ``measure``."""
        ...

    def vector_search(
        self,
        table: str,
        column: str,
        query: QueryLike,
        n: int,
        *,
        measure: Measure,
        where: dict[str, Any] | None = None,
    ) -> SearchResult:
        """The ``n`` rows nearest to ``query`` matching ``where``, as ids and scores."""
        ...


def check_ids(ids: Iterable[VectorId]) -> list[VectorId]:
    """The ids as a list; refuse ids that are not ``str``/``int`` (bools too) and repeats.

    Raises:
        InvalidVector: Naming the first bad or repeated id.
    """
    out = list(ids)
    seen: set[VectorId] = set()
    for id_ in out:
        if isinstance(id_, bool) or not isinstance(id_, str | int):
            raise InvalidVector(f"vector ids must be str or int, not {type(id_).__name__}")
        if id_ in seen:
            raise InvalidVector(f"id {id_!r} appears twice in one batch: give it one vector")
        seen.add(id_)
    return out


def check_measure(measure: object) -> Measure:
    """Return ``measure`` if it is one of :data:`MEASURES`, else raise ``InvalidVector``."""
    if measure == "cosine":
        return "cosine"
    if measure == "l2":
        return "l2"
    if measure == "dot":
        return "dot"
    raise InvalidVector(f"unknown measure {measure!r}: use one of {', '.join(MEASURES)}")


def pack_engine_bytes(engine: str, header: dict[str, Any], payload: bytes) -> bytes:
    """Frame an engine's own serialization: magic, version, JSON header, then ``payload``.

    Args:
        engine: The engine's entry point name, checked on load.
        header: JSON-safe facts the engine needs to restore itself (measure, dim, ids, ...).
        payload: What the engine's library wrote.
    """
    meta = dict(header)
    meta["engine"] = engine
    meta["payload_size"] = len(payload)
    meta["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    try:
        head = json.dumps(meta, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"{engine} engine header is not JSON-safe: {exc}") from exc
    return b"".join((_PREFIX.pack(ENGINE_MAGIC, ENGINE_FORMAT_VERSION, len(head)), head, payload))


def engine_name_of(data: bytes | bytearray | memoryview) -> str:
    """The engine name in bytes written by :func:`pack_engine_bytes` (header checks only).

    Raises:
        SerializationError: The bytes do not start with a readable engine header.
    """
    view = memoryview(data)
    if len(view) < _PREFIX.size or _PREFIX.unpack_from(view)[0] != ENGINE_MAGIC:
        raise SerializationError("not a serialized vector engine (bad magic or too short)")
    head_len = _PREFIX.unpack_from(view)[2]
    try:
        meta = json.loads(bytes(view[_PREFIX.size : _PREFIX.size + head_len]).decode("utf-8"))
        name = meta["engine"]
    except (UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
        raise SerializationError(f"serialized vector engine has a corrupt header: {exc}") from exc
    if not isinstance(name, str):
        raise SerializationError("serialized vector engine header names no engine")
    return name


def unpack_engine_bytes(
    data: bytes | bytearray | memoryview, engine: str
) -> tuple[dict[str, Any], bytes]:
    """Check and split bytes written by :func:`pack_engine_bytes` for ``engine``.

    Returns:
        The header dict and the payload.

    Raises:
        SerializationError: Wrong magic, newer version, other engine, truncation or checksum
            mismatch; the message says which.
    """
    view = memoryview(data)
    if len(view) < _PREFIX.size:
        raise SerializationError(
            f"not a serialized vector engine: {len(view)} bytes is shorter than the header"
        )
    magic, version, head_len = _PREFIX.unpack_from(view)
    if magic != ENGINE_MAGIC:
        raise SerializationError(
            f"not a serialized vector engine (magic {bytes(magic)!r}, expected {ENGINE_MAGIC!r})"
        )
    if version > ENGINE_FORMAT_VERSION:
        raise SerializationError(
            f"vector engine format version {version} is newer than this pinnacle-protocols "
            f"understands ({ENGINE_FORMAT_VERSION}): upgrade pinnacle-protocols"
        )
    start = _PREFIX.size + head_len
    if len(view) < start:
        raise SerializationError("serialized vector engine is truncated inside its header")
    try:
        meta = json.loads(bytes(view[_PREFIX.size : start]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SerializationError(f"serialized vector engine has a corrupt header: {exc}") from exc
    if not isinstance(meta, dict):
        raise SerializationError("serialized vector engine header is not a JSON object")
    if meta.get("engine") != engine:
        raise SerializationError(
            f"these bytes hold a {meta.get('engine')!r} vector engine, not {engine!r}: load them "
            f"with the {meta.get('engine')!r} engine"
        )
    payload = bytes(view[start:])
    if len(payload) != meta.get("payload_size"):
        raise SerializationError(
            f"serialized {engine} engine is truncated or padded: payload has {len(payload)} "
            f"bytes, header says {meta.get('payload_size')}"
        )
    if hashlib.sha256(payload).hexdigest() != meta.get("payload_sha256"):
        raise SerializationError(f"serialized {engine} engine is corrupted (sha256 mismatch)")
    return meta, payload


# --------------------------------------------------------------------------- pure-Python reference
def score(measure: Measure, q: Sequence[float], v: Sequence[float]) -> float:
    """The score of ``v`` for query ``q`` (higher is better), computed exactly in float64."""
    dot = math.fsum(a * b for a, b in zip(q, v, strict=True))
    if measure == "dot":
        return dot
    if measure == "l2":
        return -math.sqrt(math.fsum((a - b) ** 2 for a, b in zip(q, v, strict=True)))
    return dot / (math.sqrt(math.fsum(a * a for a in q)) * math.sqrt(math.fsum(b * b for b in v)))


def brute_force(
    measure: Measure,
    vectors: Mapping[VectorId, Sequence[float]],
    q: Sequence[float],
    n: int,
    allowed: Collection[VectorId] | None = None,
) -> list[tuple[VectorId, float]]:
    """The ``n`` best ``(id, score)`` pairs of ``vectors`` for ``q``, best first."""
    if allowed is None:
        ids: Iterable[VectorId] = vectors
    else:
        keep = set(allowed)
        ids = [i for i in vectors if i in keep]
    scored = sorted(((i, score(measure, q, vectors[i])) for i in ids), key=lambda p: -p[1])
    return scored[:n]


def _as_floats(vector: Any, dim: int | None, measure: Measure, what: str) -> tuple[float, ...]:
    try:
        out = tuple(float(x) for x in vector)
    except (TypeError, ValueError) as exc:
        raise InvalidVector(f"{what} is not a sequence of numbers: {exc}") from exc
    if not out or (dim is not None and len(out) != dim):
        raise InvalidVector(f"{what} has dimension {len(out)}, the index has {dim}")
    if not all(math.isfinite(x) for x in out):
        raise InvalidVector(f"{what} contains NaN or infinity")
    if measure == "cosine" and not any(out):
        raise InvalidVector(f"{what} is a zero vector, which has no direction under cosine")
    return out


def _rows(vectors: Any) -> list[Any]:
    tolist = getattr(vectors, "tolist", None)  # numpy arrays, without importing numpy
    return list(tolist() if callable(tolist) else vectors)


class MemoryVectorEngine:
    """The in-memory reference engine: brute force in pure Python (name ``memory``).

    Exact (float64 arithmetic), slow (every search scores every vector), dependency-free: the
    executable definition of the :class:`VectorEngine` semantics, and the engine the contract
    suite is checked against. Serialized as a JSON header plus little-endian float64 rows.
    """

    name: ClassVar[str] = "memory"
    exact: ClassVar[bool] = True
    native_filter: ClassVar[bool] = True
    delegates_to_backend: ClassVar[bool] = False

    def __init__(self, *, measure: Measure, dim: int) -> None:
        """An empty engine; prefer :meth:`build`."""
        self._measure = check_measure(measure)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise InvalidVector(f"dim must be a positive int, not {dim!r}")
        self._dim = dim
        self._vectors: dict[VectorId, tuple[float, ...]] = {}

    @classmethod
    def build(
        cls,
        ids: Sequence[VectorId],
        vectors: VectorsLike,
        *,
        measure: Measure,
        dim: int | None = None,
        **options: Any,
    ) -> MemoryVectorEngine:
        """An engine holding these vectors (``dim`` is needed only when ``ids`` is empty)."""
        if options:
            raise TypeError(f"the memory engine takes no options, got {sorted(options)}")
        measure = check_measure(measure)
        rows = _rows(vectors)
        if dim is None:
            if not rows:
                raise InvalidVector("building an empty index needs dim=")
            dim = len(_as_floats(rows[0], None, measure, "vector"))
        engine = cls(measure=measure, dim=dim)
        engine.add(ids, rows)
        return engine

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
        return len(self._vectors)

    def __contains__(self, id_: object) -> bool:
        """Whether ``id_`` is live."""
        return id_ in self._vectors

    def ids(self) -> list[VectorId]:
        """Every live id."""
        return list(self._vectors)

    def add(self, ids: Sequence[VectorId], vectors: VectorsLike) -> None:
        """Insert or replace (the whole batch is validated first)."""
        ids = check_ids(ids)
        rows = _rows(vectors)
        if len(rows) != len(ids):
            raise InvalidVector(f"{len(ids)} ids but {len(rows)} vectors")
        checked = [_as_floats(r, self._dim, self._measure, "vector") for r in rows]
        self._vectors.update(zip(ids, checked, strict=True))

    def remove(self, ids: Iterable[VectorId]) -> int:
        """Remove ids (unknown ones ignored); return how many were live."""
        return sum(self._vectors.pop(i, None) is not None for i in list(ids))

    def search(
        self, query: QueryLike, n: int, *, allowed: Collection[VectorId] | None = None
    ) -> SearchResult:
        """The ``n`` best live ids (only allowed ones when ``allowed`` is given)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        q = _as_floats(_rows(query), self._dim, self._measure, "query")
        found = brute_force(self._measure, self._vectors, q, n, allowed)
        return SearchResult(ids=tuple(i for i, _ in found), scores=tuple(s for _, s in found))

    def to_bytes(self) -> bytes:
        """Header (measure, dim, ids) plus the rows as little-endian float64."""
        row = struct.Struct(f"<{self._dim}d")
        payload = b"".join(row.pack(*v) for v in self._vectors.values())
        header = {"measure": self._measure, "dim": self._dim, "ids": list(self._vectors)}
        return pack_engine_bytes(self.name, header, payload)

    @classmethod
    def from_bytes(cls, data: bytes) -> MemoryVectorEngine:
        """Restore an engine written by :meth:`to_bytes`."""
        meta, payload = unpack_engine_bytes(data, cls.name)
        try:
            engine = cls(measure=meta["measure"], dim=int(meta["dim"]))
            ids = check_ids(meta["ids"])
            row = struct.Struct(f"<{engine.dim}d")
            rows = [row.unpack_from(payload, k * row.size) for k in range(len(ids))]
            if len(payload) != len(ids) * row.size:
                raise ValueError(f"payload has {len(payload)} bytes for {len(ids)} rows")
            engine._vectors = dict(zip(ids, rows, strict=True))
        except (KeyError, TypeError, ValueError, struct.error) as exc:
            raise SerializationError(f"serialized memory engine is inconsistent: {exc}") from exc
        return engine
