"""pinnacle-fs: a content-addressed, streaming, crash-safe artifact store on any fsspec FS.

``FsspecArtifactStore.from_uri("filesystem://./artifacts")`` (or ``file://``, ``memory://``,
``s3://bucket/prefix``, ``gs://...``) returns a store implementing
:class:`pinnacle_protocols.ArtifactStore`. Importing this package imports neither fsspec nor
any cloud driver; they are imported on first use of a store that needs them.
"""

from __future__ import annotations

from pinnacle_fs.store import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_REMOTE_CHUNK_SIZE,
    DEFAULT_S3_BLOCK_SIZE,
    FsspecArtifactStore,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_REMOTE_CHUNK_SIZE",
    "DEFAULT_S3_BLOCK_SIZE",
    "FsspecArtifactStore",
    "__version__",
]
