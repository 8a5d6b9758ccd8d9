"""sha256 over a stream of chunks, on a helper thread that may lag a few chunks behind.

``hashlib`` and file I/O both release the GIL, so hashing on a helper thread while the caller
reads and writes the next chunks hides the hashing cost when a core is free. The caller never
waits for one particular chunk to be hashed: chunks queue up (at most ``depth`` of them) and
the helper drains the queue whenever it runs. On a busy machine, where the helper thread gets
the CPU only now and then, this matters: waiting for each chunk's hash in turn would cost a
scheduler round trip per chunk.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable

__all__ = ["IN_FLIGHT_BYTES", "ChunkHasher", "pipeline_depth"]

Chunk = bytes | bytearray | memoryview
Release = Callable[[], None]

#: Bytes that may wait for the hashing thread (local puts and reads): 4 chunks of 4 MiB.
IN_FLIGHT_BYTES = 16 << 20


def pipeline_depth(chunk_size: int, budget: int = IN_FLIGHT_BYTES) -> int:
    """How many chunks of ``chunk_size`` may wait for hashing: ``budget`` bytes, 2 to 8 chunks.

    Two is the least that overlaps hashing with I/O (hash chunk N while chunk N+1 is read or
    written); more absorbs scheduling hiccups of the hashing thread on a busy machine.
    """
    return max(2, min(8, budget // max(1, chunk_size)))


class ChunkHasher:
    """Incremental sha256 and byte count of chunks fed in order.

    ``update(chunk, release)``: the chunk's memory must stay unchanged until it is hashed;
    ``release`` (if given) is called from the helper thread once it is, so the caller can reuse
    the buffer. At most ``depth`` chunks are queued; ``update`` blocks while the queue is full.
    A single-chunk stream is hashed on the caller's thread (no helper thread is started).
    """

    def __init__(self, *, depth: int = 8) -> None:
        self._hash = hashlib.sha256()
        self._count = 0
        self.depth = max(2, depth)
        self._slots = threading.BoundedSemaphore(self.depth)
        self._work: queue.SimpleQueue[tuple[Chunk, Release | None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._held: tuple[Chunk, Release | None] | None = None
        self._error: BaseException | None = None

    @property
    def count(self) -> int:
        """Bytes fed so far."""
        return self._count

    def update(self, chunk: Chunk, release: Release | None = None) -> None:
        """Feed the next chunk (see the class docstring for its lifetime)."""
        self._count += len(chunk)
        if self._thread is None:
            if self._held is None:
                self._held = (chunk, release)  # maybe the only chunk: no thread yet
                return
            self._thread = threading.Thread(target=self._run, name="pinnacle-fs-hash", daemon=True)
            self._thread.start()
            held, self._held = self._held, None
            self._enqueue(*held)
        self._enqueue(chunk, release)

    def _enqueue(self, chunk: Chunk, release: Release | None) -> None:
        self._slots.acquire()
        self._work.put((chunk, release))

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            chunk, release = item
            try:
                if self._error is None:
                    self._hash.update(chunk)
            except BaseException as exc:  # pragma: no cover - hashlib does not fail
                self._error = exc
            finally:
                if release is not None:
                    release()
                self._slots.release()

    def hexdigest(self) -> str:
        """The digest of every chunk fed (waits for the helper thread)."""
        self.close()
        if self._error is not None:
            raise self._error
        return self._hash.hexdigest()

    def close(self) -> None:
        """Hash what is left and stop the helper thread (idempotent)."""
        if self._held is not None:
            (chunk, release), self._held = self._held, None
            try:
                self._hash.update(chunk)
            finally:
                if release is not None:
                    release()
        if self._thread is not None:
            self._work.put(None)
            self._thread.join()
            self._thread = None
