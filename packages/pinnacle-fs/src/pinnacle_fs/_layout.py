"""Where a blob lives: ``<root>/<sha256[:2]>/<sha256>``, temp files in ``<root>/.pinnacle-tmp/``.

Every key goes through :func:`pinnacle_protocols.validate_sha256` before a path is built from
it, so a key is always 64 lowercase hex characters: it cannot contain ``/``, ``..`` or a drive
and cannot escape the root.
"""

from __future__ import annotations

import re
import uuid

from pinnacle_protocols import ArtifactRef, RefLike, validate_sha256

__all__ = [
    "TEMP_DIR",
    "blob_relpath",
    "is_blob",
    "is_temp_name",
    "key_of",
    "new_temp_name",
]

#: Directory (under the root) of in-progress writes; never a valid shard name.
TEMP_DIR = ".pinnacle-tmp"

_SHARD_RE = re.compile(r"[0-9a-f]{2}")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_TEMP_RE = re.compile(r"[0-9a-f]{32}\.part")


def key_of(ref: RefLike) -> tuple[str, int | None]:
    """The validated sha256 of ``ref`` and the size it claims (``None`` for a bare digest).

    Raises:
        InvalidArtifactRef: ``ref`` is not an ArtifactRef nor a sha256 hex digest.
    """
    if isinstance(ref, ArtifactRef):
        return validate_sha256(ref.sha256), ref.size
    return validate_sha256(ref), None


def blob_relpath(sha256: str) -> tuple[str, str]:
    """``(shard, name)`` of a validated digest: the blob lives at ``<root>/<shard>/<name>``."""
    return sha256[:2], sha256


def is_blob(shard: str, name: str) -> bool:
    """Whether ``<shard>/<name>`` is a blob path of this layout (anything else is ignored)."""
    return (
        _SHARD_RE.fullmatch(shard) is not None
        and _SHA_RE.fullmatch(name) is not None
        and name.startswith(shard)
    )


def new_temp_name() -> str:
    """A unique temp file name (``<uuid4 hex>.part``) for a write in progress."""
    return f"{uuid.uuid4().hex}.part"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temp file name made by :func:`new_temp_name`."""
    return _TEMP_RE.fullmatch(name) is not None
