"""Change files of a stored vector index: what one write added and removed.

A vector index is stored as a base build (the engine's own bytes) plus a chain of change files,
one per write that changed it (:mod:`pinnacledb.vector_search`). A change file is small: the ids
removed, the ids added (inserted or replaced) and their float32 vectors, framed like an engine
build and never pickled::

    b"PNVD" | format version (u16) | header length (u32) | JSON header | payload

The JSON header holds ``base`` (the sha256 of the base build this change follows, so a change
file is never applied to another build), ``seq`` (its position in the chain), ``dim``,
``removed``, ``added``, and the size and sha256 of the payload (``len(added) * dim``
little-endian float32). :func:`unpack_delta` checks all of it before anything is applied.
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

__all__ = ["DELTA_FORMAT_VERSION", "DELTA_MAGIC", "Delta", "pack_delta", "unpack_delta"]

#: First bytes of every change file.
DELTA_MAGIC: Final = b"PNVD"
#: Version of the change file format.
DELTA_FORMAT_VERSION: Final = 1
_PREFIX = struct.Struct("<4sHI")  # magic, format version, header length
_F32 = np.dtype("<f4")


def _matrix(value: Any) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = np.ascontiguousarray(value, dtype=_F32)
    return out


@frozen(kw_only=True)
class Delta:
    """One write's change to an index: remove ``removed``, then add ``added`` with ``vectors``.

    Attributes:
        base: sha256 of the base build the change follows.
        seq: Position in the chain of changes after that base (0 = first).
        dim: Dimension of the vectors.
        removed: Ids removed (unknown ids are ignored when applied).
        added: Ids inserted or replaced, one row of ``vectors`` each.
        vectors: ``(len(added), dim)`` float32.
    """

    base: str
    seq: int
    dim: int
    removed: tuple[VectorId, ...]
    added: tuple[VectorId, ...]
    vectors: npt.NDArray[np.float32] = field(converter=_matrix, eq=False)

    def __attrs_post_init__(self) -> None:
        """Refuse a matrix that does not fit ``added`` and ``dim``."""
        if self.vectors.shape != (len(self.added), self.dim) and not (
            not self.added and self.vectors.size == 0
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
    """The change file of ``delta`` (see the module docstring)."""
    payload = delta.vectors.tobytes() if delta.added else b""
    header = {
        "base": delta.base,
        "seq": delta.seq,
        "dim": delta.dim,
        "removed": list(delta.removed),
        "added": list(delta.added),
        "payload_size": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return b"".join((_PREFIX.pack(DELTA_MAGIC, DELTA_FORMAT_VERSION, len(head)), head, payload))


def unpack_delta(data: bytes, *, base: str, seq: int, dim: int) -> Delta:
    """Check and read a change file that must follow ``base`` at position ``seq``.

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
    start = _PREFIX.size + head_len
    if len(view) < start:
        raise SerializationError("vector index change file is truncated inside its header")
    try:
        meta = json.loads(bytes(view[_PREFIX.size : start]).decode("utf-8"))
        if not isinstance(meta, dict):
            raise TypeError("the header is not a JSON object")
        got = (meta["base"], meta["seq"], meta["dim"])
        removed, added = meta["removed"], meta["added"]
        size, sha = meta["payload_size"], meta["payload_sha256"]
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
