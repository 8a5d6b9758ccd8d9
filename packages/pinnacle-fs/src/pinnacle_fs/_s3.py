"""S3 transfers with s3fs's low-level calls: concurrent multipart uploads that are completed
only after the caller's check passed, and ranged reads fetched ahead of the consumer.

An S3 object appears only when its ``PutObject`` or its ``CompleteMultipartUpload``
succeeds, so an upload that fails, is aborted, or whose process is killed never exposes a
partial object under its key (an unfinished multipart upload stays invisible; a bucket
lifecycle rule ``AbortIncompleteMultipartUpload`` reclaims its space).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["RangeSource", "upload"]

#: S3 allows at most 10,000 parts; part sizes grow so that unknown-size streams never run out.
_MAX_PARTS = 10_000
_MIN_PART = 5 * 1024 * 1024


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.partition("/")
    return bucket, key


class _Multipart:
    """One multipart upload: parts sent on a thread pool, at most ``concurrency`` in flight."""

    def __init__(self, fs: Any, bucket: str, key: str, concurrency: int) -> None:
        self._fs, self._bucket, self._key = fs, bucket, key
        self._concurrency = concurrency
        self._upload_id: str = fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)[
            "UploadId"
        ]
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="pinnacle-s3")
        self._parts: dict[int, Future[Any]] = {}
        self._in_flight: deque[Future[Any]] = deque()
        self._done = False

    @property
    def count(self) -> int:
        return len(self._parts)

    def send(self, body: bytes | bytearray) -> None:
        number = len(self._parts) + 1
        future = self._pool.submit(
            self._fs.call_s3,
            "upload_part",
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        self._parts[number] = future
        self._in_flight.append(future)
        while len(self._in_flight) >= self._concurrency:
            self._in_flight.popleft().result()

    def complete(self) -> None:
        parts = [
            {"PartNumber": n, "ETag": f.result()["ETag"]} for n, f in sorted(self._parts.items())
        ]
        self._fs.call_s3(
            "complete_multipart_upload",
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": parts},
        )
        self._done = True

    def close(self) -> None:
        """Stop the threads; abort the upload unless it was completed."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        if not self._done:
            with contextlib.suppress(Exception):
                self._fs.call_s3(
                    "abort_multipart_upload",
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                )


def upload(
    fs: Any,
    path: str,
    chunks: Iterable[memoryview],
    *,
    part_size: int,
    concurrency: int,
    size_hint: int | None,
    before_complete: Callable[[], None],
) -> None:
    """Upload ``chunks`` to ``path``; publish only if ``before_complete()`` does not raise.

    Data smaller than ``part_size`` goes in one ``PutObject``; larger data in a multipart
    upload with up to ``concurrency`` parts in flight (memory: about ``concurrency + 1`` parts).
    On any error, or if ``before_complete`` raises, the multipart upload is aborted.
    """
    bucket, key = _split(path)
    part_size = max(part_size, _MIN_PART)
    if size_hint is not None and size_hint > part_size * (_MAX_PARTS - 1):
        part_size = -(-size_hint // (_MAX_PARTS - 1))
    # Each part is filled in a buffer of its own (chunk buffers are reused by the reader), which
    # is handed to botocore as it is: one copy of the data, and no part buffer is reused.
    first = part_size if size_hint is None else min(part_size, size_hint)
    part = bytearray(first)
    held = 0
    multipart: _Multipart | None = None
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                if held == len(part):
                    part.extend(bytes(min(len(view), part_size - held)))  # hint was short
                n = min(len(view), len(part) - held)
                part[held : held + n] = view[:n]
                held += n
                view = view[n:]
                if held == part_size:
                    if multipart is None:
                        multipart = _Multipart(fs, bucket, key, concurrency)
                    multipart.send(part)
                    if multipart.count % 1000 == 0:  # unknown size: grow parts, < 10,000
                        part_size *= 2
                    part, held = bytearray(part_size), 0
        before_complete()
        del part[held:]
        if multipart is None:
            fs.call_s3("put_object", Bucket=bucket, Key=key, Body=part)
            return
        if held:
            multipart.send(part)
        multipart.complete()
    finally:
        if multipart is not None:
            multipart.close()
        with contextlib.suppress(Exception):
            fs.invalidate_cache(path)


class RangeSource:
    """Reads an object of known size with ranged GETs of ``block`` bytes, ``ahead`` in flight."""

    def __init__(self, fs: Any, path: str, *, size: int, block: int, ahead: int = 2) -> None:
        """Start fetching the first ``ahead`` blocks of ``path``."""
        self._fs = fs
        self._path = path
        self._size = size
        self._block = block
        self._next = 0  # next offset to request
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = b""
        self._pool = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="pinnacle-s3")
        self._ahead = ahead
        self._top_up()

    def _top_up(self) -> None:
        while len(self._pending) < self._ahead and self._next < self._size:
            start = self._next
            end = min(self._size, start + self._block)
            self._pending.append(
                self._pool.submit(self._fs.cat_file, self._path, start=start, end=end)
            )
            self._next = end

    def read(self, size: int = -1, /) -> bytes:
        """The next bytes: one fetched block (or what is left of it), ``b""`` at the end."""
        if not self._buffer:
            if not self._pending:
                return b""
            self._buffer = bytes(self._pending.popleft().result())
            self._top_up()
        if size < 0:
            rest = [self._buffer]
            self._buffer = b""
            while self._pending:
                rest.append(bytes(self._pending.popleft().result()))
                self._top_up()
            return b"".join(rest)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def close(self) -> None:
        """Stop fetching."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
