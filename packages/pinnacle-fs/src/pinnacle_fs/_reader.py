"""The streaming reader ``open`` returns: verifies sha256 and size when the end is reached."""

from __future__ import annotations

import functools
import io
import queue
from collections.abc import Callable
from typing import Any, Protocol

from pinnacle_fs._hashing import ChunkHasher, pipeline_depth
from pinnacle_protocols import ArtifactCorrupted, ProgressCallback

__all__ = ["RawSource", "VerifyingReader"]


class RawSource(Protocol):
    """The underlying byte stream of a blob (a local file, an fsspec file)."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all that is left if negative); ``b""`` at the end."""
        ...

    def close(self) -> None:
        """Release it."""
        ...


#: Turns a driver exception into the pinnacle error to raise instead (or None: re-raise as is).
Translate = Callable[[Exception], BaseException | None]


class VerifyingReader(io.BufferedIOBase):
    """A read-only, forward-only stream of one blob that checks it at the end.

    The blob is read from storage in blocks of ``chunk_size`` bytes and hashed as it goes (on a
    helper thread from the second block on). When the end is reached the sha256 and the byte
    count are compared with the key (and the size the caller's ref claims, if any); a mismatch
    raises :class:`~pinnacle_protocols.ArtifactCorrupted` from the read that hit the end, and
    from every read after it. A reader closed before the end verifies nothing.

    With ``reuse_buffers`` (local files) blocks are read with ``readinto`` into a small pool of
    buffers, each reused once the hashing thread is done with it, so reading a large blob
    allocates (and page-faults) no new memory per block; the bytes handed out are copies.
    """

    def __init__(
        self,
        raw: RawSource,
        *,
        sha256: str,
        expected_size: int | None,
        total_size: int | None,
        chunk_size: int,
        where: str,
        callback: ProgressCallback | None = None,
        translate: Translate | None = None,
        reuse_buffers: bool = False,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._sha256 = sha256
        self._expected_size = expected_size
        self._chunk_size = chunk_size
        self._where = where
        self._callback = callback
        self._translate = translate
        # Up to IN_FLIGHT_BYTES of blocks may wait for the hashing thread.
        self._hasher = ChunkHasher(depth=pipeline_depth(chunk_size))
        self._readinto: Callable[[Any], int | None] | None = (
            getattr(raw, "readinto", None) if reuse_buffers else None
        )
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._made = 0
        self._block: bytes | memoryview = b""
        self._pos = 0
        self._eof = False
        self._error: ArtifactCorrupted | None = None
        self._verified = False
        if callback is not None and total_size is not None:
            callback.set_size(total_size)

    # ----------------------------------------------------------------- io.BufferedIOBase API
    def readable(self) -> bool:
        """Always True while open."""
        self._check_not_closed()
        return True

    def seekable(self) -> bool:
        """Always False: a verifying reader only goes forward."""
        return False

    def writable(self) -> bool:
        """Always False."""
        return False

    @property
    def verified(self) -> bool:
        """Whether the end was reached and the blob matched its key."""
        return self._verified

    def read(self, size: int | None = -1, /) -> bytes:
        """Up to ``size`` bytes (everything left if ``size`` is negative or None).

        Raises:
            ArtifactCorrupted: the end was reached and the bytes do not match the key.
        """
        self._check_not_closed()
        if size is None or size < 0:
            return self._read_all()
        if size == 0:
            return b""
        parts: list[bytes] = []
        need = size
        while need > 0:
            if self._pos >= len(self._block) and not self._fill():
                break
            piece = self._take(need)
            parts.append(piece)
            need -= len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read1(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes with at most one read from storage."""
        self._check_not_closed()
        if self._pos >= len(self._block) and not self._fill():
            return b""
        return self._take(len(self._block) - self._pos if size < 0 else size)

    def readinto(self, buffer: Any, /) -> int:
        """Fill ``buffer`` as far as the blob goes; return the number of bytes."""
        self._check_not_closed()
        target = memoryview(buffer).cast("B")
        done = 0
        while done < len(target):
            if self._pos >= len(self._block) and not self._fill():
                break
            n = min(len(target) - done, len(self._block) - self._pos)
            target[done : done + n] = self._block[self._pos : self._pos + n]
            self._pos += n
            done += n
        return done

    def readinto1(self, buffer: Any, /) -> int:
        """Like :meth:`readinto` with at most one read from storage."""
        self._check_not_closed()
        target = memoryview(buffer).cast("B")
        if not len(target) or (self._pos >= len(self._block) and not self._fill()):
            return 0
        n = min(len(target), len(self._block) - self._pos)
        target[:n] = self._block[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        """Release the underlying stream (no verification unless the end was reached)."""
        if self.closed:
            return
        try:
            self._hasher.close()
            self._raw.close()
        finally:
            self._block = b""
            self._readinto = None
            super().close()

    def __repr__(self) -> str:
        return f"<VerifyingReader {self._sha256} of {self._where}>"

    # ----------------------------------------------------------------- internals
    def _check_not_closed(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on a closed artifact reader")

    def _take(self, n: int) -> bytes:
        start = self._pos
        end = min(len(self._block), start + n)
        self._pos = end
        block = self._block
        if isinstance(block, memoryview):
            return bytes(block[start:end])  # a pooled buffer: hand out a copy
        if start == 0 and end == len(block):
            return block  # the whole (immutable) block: no copy
        return block[start:end]

    def _raw_read(self, size: int) -> bytes:
        try:
            data = self._raw.read(size)
        except Exception as exc:
            mapped = self._translate(exc) if self._translate is not None else None
            if mapped is None:
                raise
            raise mapped from exc
        return bytes(data) if not isinstance(data, bytes) else data

    def _fill(self) -> bool:
        """Load the next block; at the end verify and return False."""
        if self._error is not None:
            raise self._error
        if self._eof:
            return False
        if self._readinto is not None:
            return self._fill_pooled(self._readinto)
        block = self._raw_read(self._chunk_size)
        return self._accept(block)

    def _fill_pooled(self, readinto: Callable[[Any], int | None]) -> bool:
        """Read the next block into a free pool buffer (the current block was consumed)."""
        try:
            buf = self._free.get_nowait()
        except queue.Empty:
            if self._made < self._hasher.depth:
                buf, self._made = bytearray(self._chunk_size), self._made + 1
            else:
                buf = self._free.get()  # wait for the hashing thread to finish one
        try:
            n = readinto(buf)
        except Exception as exc:
            self._free.put(buf)
            mapped = self._translate(exc) if self._translate is not None else None
            if mapped is None:
                raise
            raise mapped from exc
        if not n:  # 0 at the end (None, "no data yet", cannot happen on a blocking file)
            self._free.put(buf)
            return self._accept(b"")
        return self._accept(memoryview(buf)[:n], functools.partial(self._free.put, buf))

    def _accept(self, block: bytes | memoryview, release: Callable[[], None] | None = None) -> bool:
        if not block:
            self._eof = True
            self._block = b""
            self._pos = 0
            self._verify()
            return False
        self._hasher.update(block, release)
        self._block = block
        self._pos = 0
        if self._callback is not None:
            self._callback.relative_update(len(block))
        return True

    def _read_all(self) -> bytes:
        parts = [self._take(len(self._block) - self._pos)] if self._pos < len(self._block) else []
        if self._error is not None:
            raise self._error
        if not self._eof:
            rest = self._raw_read(-1)  # one request / one read for everything left
            if self._accept(rest):
                parts.append(self._take(len(rest)))
                while self._fill():  # confirm the end (and verify there)
                    parts.append(self._take(len(self._block)))
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _verify(self) -> None:
        digest = self._hasher.hexdigest()
        count = self._hasher.count
        problem = None
        if digest != self._sha256:
            problem = f"its {count} bytes hash to {digest}"
        elif self._expected_size is not None and count != self._expected_size:
            problem = f"it has {count} bytes but the ref says {self._expected_size}"
        if problem is not None:
            self._error = ArtifactCorrupted(
                f"blob {self._sha256} in {self._where} is corrupted: {problem}; delete it and "
                "put the original bytes again"
            )
            raise self._error
        self._verified = True
