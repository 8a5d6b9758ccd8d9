"""The change file format of stored vector indexes: round trip and every refusal."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest

from pinnacle_protocols.errors import InvalidVector, SerializationError
from pinnacledb.vectors.delta import DELTA_MAGIC, Delta, pack_delta, unpack_delta

BASE = hashlib.sha256(b"base").hexdigest()


def _delta() -> Delta:
    return Delta(
        base=BASE,
        seq=2,
        dim=3,
        removed=(7, "gone"),
        added=(1, "two"),
        vectors=np.array([[1, 2, 3], [-0.5, 0, 1e-3]]),
    )


def test_round_trip_keeps_ids_types_and_float32_vectors() -> None:
    got = unpack_delta(pack_delta(_delta()), base=BASE, seq=2, dim=3)
    assert got == _delta()
    assert got.removed == (7, "gone")
    assert got.added == (1, "two")
    assert got.vectors.dtype == np.float32
    np.testing.assert_array_equal(
        got.vectors, np.array([[1, 2, 3], [-0.5, 0, 1e-3]], dtype=np.float32)
    )
    assert got.rows == 4
    only = Delta(base=BASE, seq=0, dim=3, removed=(1,), added=(), vectors=np.empty((0, 3)))
    assert unpack_delta(pack_delta(only), base=BASE, seq=0, dim=3).added == ()


def test_vectors_must_fit_the_ids() -> None:
    with pytest.raises(InvalidVector, match=r"shape \(1, 3\)"):
        Delta(base=BASE, seq=0, dim=3, removed=(), added=(1, 2), vectors=np.ones((1, 3)))


def _reframe(data: bytes, **changes: object) -> bytes:
    """The same change file with header fields replaced (payload checksum left as is)."""
    _, version, n = struct.unpack_from("<4sHI", data)
    head = json.loads(data[10 : 10 + n])
    head.update(changes)
    new = json.dumps(head).encode()
    return struct.pack("<4sHI", DELTA_MAGIC, version, len(new)) + new + data[10 + n :]


@pytest.mark.parametrize(
    ("mangle", "match"),
    [
        (lambda d: d[:5], "only 5 bytes"),
        (lambda d: b"PNVE" + d[4:], "magic"),
        (lambda d: d[:4] + struct.pack("<H", 9) + d[6:], "newer"),
        (lambda d: d[:20], "truncated inside its header"),
        (lambda d: d[:-1], "truncated or padded"),
        (lambda d: d + b"\0", "truncated or padded"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "sha256 mismatch"),
        (lambda d: _reframe(d, added=[1, 1]), "twice"),
        (lambda d: _reframe(d, removed=[1.5]), "str or int"),
        (lambda d: _reframe(d, added="12"), "must be lists"),
        (lambda d: _reframe(d, seq=3), "position 3"),
        (lambda d: _reframe(d, base="0" * 64), "base 000000000000"),
        (lambda d: d[:10] + b"\xff" + d[11:], "corrupt header"),
    ],
)
def test_corrupt_or_foreign_change_files_are_refused(mangle: object, match: str) -> None:
    data = pack_delta(_delta())
    assert callable(mangle)
    with pytest.raises(SerializationError, match=match):
        unpack_delta(mangle(data), base=BASE, seq=2, dim=3)


def test_a_change_file_for_another_dimension_is_refused() -> None:
    with pytest.raises(SerializationError, match=r"dimension 3; expected .* dimension 4"):
        unpack_delta(pack_delta(_delta()), base=BASE, seq=2, dim=4)
