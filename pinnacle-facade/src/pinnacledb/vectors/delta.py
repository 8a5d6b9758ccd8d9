"""Change files of a stored vector index: what one write added and removed.

A vector index is stored as a base build (the engine's own bytes) plus a chain of change files,
one per write that changed it (:mod:`pinnacledb.vector_search`). A change file is small: the ids
removed and the ids added (inserted or replaced), framed like an engine build and never
pickled. Two formats are read:

* **Format 2** (what every write stores): ids only. The vectors of the added ids are *not* in
  the file: they are the listener's outputs, which the listener stored durably in its outputs
  table before the index upkeep ran, so storing them again here would write every vector twice.
  A process that loads the chain reads the added ids' *current* outputs back from the outputs
  table (:meth:`pinnacledb.vector_search.VectorIndexEngine.engine_at`)::

      b"PNVD" | 2 (u16) | header length (u32) | JSON header | sha256 of the JSON header (32 bytes)

* **Format 1** (stored before): the same plus the added ids' float32 vectors::

      b"PNVD" | 1 (u16) | header length (u32) | JSON header | payload

  with ``payload_size`` and ``payload_sha256`` in the header (``len(added) * dim``
  little-endian float32). Still read, so an index stored by an older pinnacledb loads as it is.

The JSON header holds ``base`` (the sha256 of the base build this change follows, so a change
file is never applied to another build), ``seq`` (its position in the chain), ``dim``,
``removed`` and ``added``. :func:`unpack_delta` checks all of it (and the checksum) before
anything is applied.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from attrs import field, frozen

from pinnacle_protocols.errors import InvalidVector, SerializationError
from pinnacle_protocols.vectors import VectorId, check_ids

__all__ = [
    "DELTA_FORMAT_VERSION",
    "DELTA_MAGIC",
    "Delta",
    "delta_position",
    "pack_delta",
    "unpack_delta",
]

#: First bytes of every change file.
DELTA_MAGIC: Final = b"PNVD"
#: Version of the change file format :func:`pack_delta` writes for a change without vectors
#: (the newest; format 1, with the vectors, is still written for a :class:`Delta` that has them).
DELTA_FORMAT_VERSION: Final = 2
_WITH_VECTORS: Final = 1
_SHA = 32  # bytes of the sha256 after a format-2 header
_PREFIX = struct.Struct("<4sHI")  # magic, format version, header length
_F32 = np.dtype("<f4")


def _matrix(value: Any) -> npt.NDArray[np.float32] | None:
    if value is None:
        return None
    out: npt.NDArray[np.float32] = np.ascontiguousarray(value, dtype=_F32)
    return out


@frozen(kw_only=True)
class Delta:
    """One write's change to an index: remove ``removed``, then add ``added``.

    Attributes:
        base: sha256 of the base build the change follows.
        seq: Position in the chain of changes after that base (0 = first).
        dim: Dimension of the vectors.
        removed: Ids removed (unknown ids are ignored when applied).
        added: Ids inserted or replaced.
        vectors: ``(len(added), dim)`` float32, one row per added id (format 1); None when the
            vectors are the listener's outputs, not part of the change (format 2).
    """

    base: str
    seq: int
    dim: int
    removed: tuple[VectorId, ...]
    added: tuple[VectorId, ...]
    vectors: npt.NDArray[np.float32] | None = field(default=None, converter=_matrix, eq=False)

    def __attrs_post_init__(self) -> None:
        """Refuse a matrix that does not fit ``added`` and ``dim``."""
        if (
            self.vectors is not None
            and self.vectors.shape != (len(self.added), self.dim)
            and not (not self.added and self.vectors.size == 0)
        ):
            raise InvalidVector(
                f"a change of {len(self.added)} ids of dimension {self.dim} got vectors of "
                f"shape {self.vectors.shape}"
            )

    @property
    def rows(self) -> int:
        """How many ids the change touches (its weight toward compaction)."""
        return len(self.removed) + len(self.added)


def pack_delta(delta: Delta) -> bytes:
    """The change file of ``delta``: format 2 (ids only) when it has no vectors, else format 1
    (see the module docstring)."""
    header: dict[str, Any] = {
        "base": delta.base,
        "seq": delta.seq,
        "dim": delta.dim,
        "removed": list(delta.removed),
        "added": list(delta.added),
    }
    if delta.vectors is None:
        head = _json(header)
        digest = hashlib.sha256(head).digest()
        return b"".join((_PREFIX.pack(DELTA_MAGIC, DELTA_FORMAT_VERSION, len(head)), head, digest))
    payload = delta.vectors.tobytes() if delta.added else b""
    header["payload_size"] = len(payload)
    header["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    head = _json(header)
    return b"".join((_PREFIX.pack(DELTA_MAGIC, _WITH_VECTORS, len(head)), head, payload))


def _json(header: dict[str, Any]) -> bytes:
    return json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")


def unpack_delta(data: bytes, *, base: str, seq: int, dim: int) -> Delta:
    """Check and read a change file (format 1 or 2) that must follow ``base`` at position
    ``seq``; a format-2 file gives a :class:`Delta` without vectors.

    Raises:
        SerializationError: Not a change file, a newer format, truncated, corrupted (checksum),
            inconsistent, or written for another base build, position or dimension.
    """
    view = memoryview(data)
    if len(view) < _PREFIX.size:
        raise SerializationError(f"not a vector index change file: only {len(view)} bytes")
    magic, version, head_len = _PREFIX.unpack_from(view)
    if magic != DELTA_MAGIC:
        raise SerializationError(
            f"not a vector index change file (magic {bytes(magic)!r}, expected {DELTA_MAGIC!r})"
        )
    if version > DELTA_FORMAT_VERSION:
        raise SerializationError(
            f"vector index change file format {version} is newer than this pinnacledb "
            f"understands ({DELTA_FORMAT_VERSION}): upgrade pinnacledb"
        )
    if version < _WITH_VECTORS:
        raise SerializationError(f"vector index change file of unknown format {version}")
    start = _PREFIX.size + head_len
    if len(view) < start:
        raise SerializationError("vector index change file is truncated inside its header")
    ids_only = version >= 2
    if ids_only:
        digest = bytes(view[start:])
        if len(digest) != _SHA:
            raise SerializationError(
                f"vector index change file is truncated or padded: {len(digest)} bytes after "
                f"the header, expected its {_SHA}-byte sha256"
            )
        if hashlib.sha256(view[_PREFIX.size : start]).digest() != digest:
            raise SerializationError("vector index change file is corrupted (sha256 mismatch)")
    try:
        meta = json.loads(bytes(view[_PREFIX.size : start]).decode("utf-8"))
        if not isinstance(meta, dict):
            raise TypeError("the header is not a JSON object")
        got = (meta["base"], meta["seq"], meta["dim"])
        removed, added = meta["removed"], meta["added"]
        size, sha = (None, None) if ids_only else (meta["payload_size"], meta["payload_sha256"])
        if not isinstance(removed, list) or not isinstance(added, list):
            raise TypeError("removed and added must be lists")
        removed_ids = tuple(check_ids(removed))
        added_ids = tuple(check_ids(added))
    except (UnicodeDecodeError, ValueError, TypeError, KeyError, InvalidVector) as exc:
        raise SerializationError(f"vector index change file has a corrupt header: {exc}") from exc
    if got != (base, seq, dim):
        raise SerializationError(
            f"vector index change file is for base {str(got[0])[:12]}, position {got[1]}, "
            f"dimension {got[2]}; expected base {base[:12]}, position {seq}, dimension {dim}"
        )
    if ids_only:
        return Delta(base=base, seq=seq, dim=dim, removed=removed_ids, added=added_ids)
    payload = bytes(view[start:])
    if size != len(payload) or len(payload) != len(added_ids) * dim * _F32.itemsize:
        raise SerializationError(
            f"vector index change file is truncated or padded: payload of {len(payload)} bytes, "
            f"header says {size} for {len(added_ids)} vectors of dimension {dim}"
        )
    if hashlib.sha256(payload).hexdigest() != sha:
        raise SerializationError("vector index change file is corrupted (sha256 mismatch)")
    vectors = np.frombuffer(payload, dtype=_F32).reshape(len(added_ids), dim)
    return Delta(base=base, seq=seq, dim=dim, removed=removed_ids, added=added_ids, vectors=vectors)


def delta_position(data: bytes) -> tuple[str, int] | None:
    """``(base, seq)`` of a format-2 change file whose checksum holds; None for anything else
    (what gc asks of a small unreferenced artifact, :mod:`pinnacledb.vector_search`)."""
    view = memoryview(data)
    if len(view) < _PREFIX.size + _SHA:
        return None
    magic, version, head_len = _PREFIX.unpack_from(view)
    start = _PREFIX.size + head_len
    if magic != DELTA_MAGIC or version != 2 or len(view) != start + _SHA:
        return None
    if hashlib.sha256(view[_PREFIX.size : start]).digest() != bytes(view[start:]):
        return None
    try:
        meta = json.loads(bytes(view[_PREFIX.size : start]).decode("utf-8"))
        base, seq = meta["base"], meta["seq"]
    except (UnicodeDecodeError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(base, str) or type(seq) is not int:
        return None
    return base, seq
