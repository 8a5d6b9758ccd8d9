"""Checking whole blobs against their key."""

from __future__ import annotations

import hashlib

from pinnacle_protocols import ArtifactCorrupted

__all__ = ["verify_bytes"]


def verify_bytes(data: bytes, *, sha256: str, expected_size: int | None, where: str) -> bytes:
    """Return ``data`` if it hashes to ``sha256`` (and has ``expected_size`` bytes, if given).

    Raises:
        ArtifactCorrupted: it does not.
    """
    digest = hashlib.sha256(data).hexdigest()
    problem = None
    if digest != sha256:
        problem = f"its {len(data)} bytes hash to {digest}"
    elif expected_size is not None and len(data) != expected_size:
        problem = f"it has {len(data)} bytes but the ref says {expected_size}"
    if problem is not None:
        raise ArtifactCorrupted(
            f"blob {sha256} in {where} is corrupted: {problem}; delete it and put the original "
            "bytes again"
        )
    return data
