"""Reading what ``put`` was given (bytes or a binary file object) in bounded chunks."""

from __future__ import annotations

import functools
import io
import os
import queue
import stat
from collections.abc import Iterator
from typing import IO, Any, TypeAlias

from pinnacle_fs._hashing import ChunkHasher
from pinnacle_protocols import ArtifactError

__all__ = ["Data", "iter_chunks", "known_size", "rewind_point"]

#: What ``put`` accepts.
Data: TypeAlias = bytes | bytearray | memoryview | IO[bytes]


def _check_data(data: object) -> None:
    if isinstance(data, (str, io.TextIOBase)):
        raise TypeError(
            "put() takes bytes or a binary file object, not text: encode the string or open "
            "the file in 'rb' mode"
        )
    if not isinstance(data, (bytes, bytearray, memoryview)) and not hasattr(data, "read"):
        raise TypeError(f"put() takes bytes or a binary file object, not {type(data).__name__}")


def _source_error(exc: OSError) -> ArtifactError:
    return ArtifactError(f"reading the data to store failed: {exc}; nothing was stored")


def known_size(data: Data) -> int | None:
    """Bytes left to read from ``data`` if cheap to know (bytes, regular files), else ``None``."""
    _check_data(data)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return memoryview(data).nbytes
    if isinstance(data, io.BytesIO):
        with data.getbuffer() as view:
            return max(0, view.nbytes - data.tell())
    try:
        fd = data.fileno()
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return max(0, st.st_size - data.tell())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    try:  # another seekable stream: measure by seeking to the end and back
        if not data.seekable():
            return None
        pos = data.tell()
        end = data.seek(0, io.SEEK_END)
        data.seek(pos)
        return max(0, end - pos)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def rewind_point(data: Data) -> int | None:
    """The current position of a seekable file object (to read it twice), else ``None``."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return None
    try:
        if not data.seekable():
            return None
        return data.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def iter_chunks(
    data: Data,
    chunk_size: int,
    size_hint: int | None = None,
    hasher: ChunkHasher | None = None,
) -> Iterator[memoryview]:
    """Yield ``data`` in chunks of at most ``chunk_size`` bytes, fed to ``hasher`` if given.

    Bytes are sliced without copying. A file object is read with ``readinto`` into a small
    pool of buffers when it can (memory stays at ``hasher.depth`` chunks, or one chunk without
    a hasher, whatever the blob size). A yielded chunk stays valid until the next one is
    requested; a buffer is reused only once ``hasher`` has hashed it.

    Raises:
        TypeError: ``data`` is text or not a file object, or ``read`` returned non-bytes.
        ArtifactError: reading ``data`` failed (the OSError is chained).
    """
    _check_data(data)
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
        for start in range(0, len(view), chunk_size):
            piece = view[start : start + chunk_size]
            if hasher is not None:
                hasher.update(piece)
            yield piece
        return
    readinto = getattr(data, "readinto", None)
    if readinto is None:
        yield from _read_chunks(data, chunk_size, hasher)
        return
    buf_size = chunk_size if size_hint is None else max(1, min(chunk_size, size_hint + 1))
    depth = 1 if hasher is None else hasher.depth
    free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    made = 0
    while True:
        try:
            buf = free.get_nowait()
        except queue.Empty:
            if made < depth:
                buf, made = bytearray(buf_size), made + 1
            else:
                buf = free.get()  # wait for the hasher to finish with one
        if len(buf) != buf_size:  # the size hint was short: buffers grew meanwhile
            buf = bytearray(buf_size)
        try:
            n = readinto(buf)
        except OSError as exc:
            raise _source_error(exc) from exc
        if n is None:
            raise BlockingIOError("put() got a non-blocking file object with no data ready")
        if n == 0:
            return
        chunk = memoryview(buf)[:n]
        if hasher is None:
            free.put(buf)  # reused once the caller asks for the next chunk
        else:
            hasher.update(chunk, functools.partial(free.put, buf))
        yield chunk
        if n == buf_size < chunk_size:  # more data than the size hint said: grow
            buf_size = chunk_size


def _read_chunks(data: Any, chunk_size: int, hasher: ChunkHasher | None) -> Iterator[memoryview]:
    while True:
        try:
            chunk: Any = data.read(chunk_size)
        except OSError as exc:
            raise _source_error(exc) from exc
        if chunk is None:
            raise BlockingIOError("put() got a non-blocking file object with no data ready")
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"put() needs a binary file object; read() returned {type(chunk).__name__}"
            )
        if not chunk:
            return
        view = memoryview(chunk)
        if hasher is not None:
            hasher.update(view)
        yield view
