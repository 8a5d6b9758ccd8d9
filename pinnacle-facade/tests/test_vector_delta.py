"""The change file format of stored vector indexes: round trip and every refusal, for format 2
(ids only: what every write stores) and format 1 (with float32 vectors: still read)."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest

from pinnacle_protocols.errors import InvalidVector, SerializationError
from pinnacledb.vectors.delta import (
    DELTA_FORMAT_VERSION,
    DELTA_MAGIC,
    Delta,
    pack_delta,
    unpack_delta,
)

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


def _ids_only() -> Delta:
    return Delta(base=BASE, seq=2, dim=3, removed=(7, "gone"), added=(1, "two"))


def test_a_change_without_vectors_is_format_2_and_holds_only_ids() -> None:
    data = pack_delta(_ids_only())
    assert DELTA_FORMAT_VERSION == 2
    assert struct.unpack_from("<4sH", data) == (DELTA_MAGIC, 2)
    got = unpack_delta(data, base=BASE, seq=2, dim=3)
    assert got == _ids_only()
    assert got.vectors is None
    assert (got.removed, got.added, got.rows) == ((7, "gone"), (1, "two"), 4)
    # 1,000 added ids of dimension 384: a few KB, not the 1.5 MB of their float32 vectors
    big = Delta(base=BASE, seq=0, dim=384, removed=(), added=tuple(range(10**6, 10**6 + 1000)))
    assert len(pack_delta(big)) < 10_000


def test_a_format_1_file_written_before_format_2_still_reads() -> None:
    """Bytes framed by hand as pinnacledb wrote them before format 2 (not by pack_delta)."""
    vectors = np.array([[1, 2, 3], [-0.5, 0, 1e-3]], dtype="<f4")
    payload = vectors.tobytes()
    head = json.dumps(
        {
            "base": BASE,
            "seq": 2,
            "dim": 3,
            "removed": [7, "gone"],
            "added": [1, "two"],
            "payload_size": len(payload),
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
        },
        separators=(",", ":"),
    ).encode()
    data = struct.pack("<4sHI", b"PNVD", 1, len(head)) + head + payload
    got = unpack_delta(data, base=BASE, seq=2, dim=3)
    assert got == _delta()
    assert got.vectors is not None
    np.testing.assert_array_equal(got.vectors, vectors)
    assert pack_delta(_delta()) == data  # a Delta with vectors is still written as format 1


def test_round_trip_keeps_ids_types_and_float32_vectors() -> None:
    got = unpack_delta(pack_delta(_delta()), base=BASE, seq=2, dim=3)
    assert got == _delta()
    assert got.removed == (7, "gone")
    assert got.added == (1, "two")
    assert got.vectors is not None
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
    """The same change file with header fields replaced (payload checksum left as is; a
    format-2 header's checksum recomputed, so the header's own checks are reached)."""
    _, version, n = struct.unpack_from("<4sHI", data)
    head = json.loads(data[10 : 10 + n])
    head.update(changes)
    new = json.dumps(head).encode()
    tail = hashlib.sha256(new).digest() if version == 2 else data[10 + n :]
    return struct.pack("<4sHI", DELTA_MAGIC, version, len(new)) + new + tail


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


@pytest.mark.parametrize(
    ("mangle", "match"),
    [
        (lambda d: d[:4] + struct.pack("<H", 3) + d[6:], "format 3 is newer"),
        (lambda d: d[:4] + struct.pack("<H", 0) + d[6:], "unknown format 0"),
        (lambda d: d[:20], "truncated inside its header"),
        (lambda d: d[:-1], "truncated or padded: 31 bytes"),
        (lambda d: d + b"\0", "truncated or padded: 33 bytes"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "sha256 mismatch"),
        (lambda d: d[:30] + bytes([d[30] ^ 1]) + d[31:], "sha256 mismatch"),  # in the header
        (lambda d: _reframe(d, added=[1, 1]), "twice"),
        (lambda d: _reframe(d, removed=[1.5]), "str or int"),
        (lambda d: _reframe(d, added="12"), "must be lists"),
        (lambda d: _reframe(d, seq=3), "position 3"),
        (lambda d: _reframe(d, base="0" * 64), "base 000000000000"),
        (lambda d: _reframe(d, dim=4), "dimension 4"),
        (lambda d: _reframe(d, removed=None), "must be lists"),
    ],
)
def test_corrupt_or_foreign_format_2_files_are_refused(mangle: object, match: str) -> None:
    data = pack_delta(_ids_only())
    assert callable(mangle)
    with pytest.raises(SerializationError, match=match):
        unpack_delta(mangle(data), base=BASE, seq=2, dim=3)


def test_a_change_file_for_another_dimension_is_refused() -> None:
    with pytest.raises(SerializationError, match=r"dimension 3; expected .* dimension 4"):
        unpack_delta(pack_delta(_delta()), base=BASE, seq=2, dim=4)


def test_delta_position_reads_format_2_headers_only() -> None:
    """What gc asks of a small artifact: (base, seq) of a sound format-2 change file."""
    from pinnacledb.vectors.delta import delta_position

    data = pack_delta(_ids_only())
    assert delta_position(data) == (BASE, 2)
    assert delta_position(pack_delta(_delta())) is None  # format 1
    assert delta_position(data[:-1] + bytes([data[-1] ^ 1])) is None  # checksum
    assert delta_position(data + b"\0") is None
    assert delta_position(b"PNVD") is None
    assert delta_position(b"x" * 100) is None
    assert delta_position(_reframe(data, seq="2")) is None
