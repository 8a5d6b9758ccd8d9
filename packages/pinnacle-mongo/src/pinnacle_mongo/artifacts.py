"""GridFSArtifactStore: content-addressed blobs in a GridFS bucket, published atomically.

Layout (bucket ``_pinnacle_artifacts`` by default): the standard GridFS collections
``_pinnacle_artifacts.files`` and ``_pinnacle_artifacts.chunks``; a blob is one GridFS file
whose ``filename`` is the sha256 hex digest of its bytes (unique index
``pinnacle_blob_sha256``), so any GridFS tool can read it by that name.

``put`` streams the bytes into GridFS chunks while hashing them and names the file by the digest
just before GridFS writes its files document. GridFS writes that document only after the last
chunk, so it is the commit point: a reader never sees an incomplete blob, and chunks of an
upload that crashed belong to no file (:meth:`GridFSArtifactStore.remove_orphans` removes
them). Bytes that are stored already are not stored again: ``put`` checks before committing,
and the unique index turns a concurrent put of the same bytes into a no-op (its chunks are
removed). ``delete`` removes the files document first, then the chunks. Reads fetch the
chunks in windows of ``_READ_WINDOW`` bytes (one query each, the next one in the background
while the current one is hashed) and verify every chunk's number and size, and the sha256 and
length of the whole. ``get_many`` reads a batch of blobs with one query on the files
collection and one on the chunks (more only past ``_IN_BATCH`` keys or when the driver splits a
large reply into batches), verifying each blob as ``get`` does.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any, Self

import attrs

from pinnacle_mongo._connection import Document, MongoConnection
from pinnacle_protocols.errors import (
    ArtifactCorrupted,
    ArtifactNotFound,
    ConfigError,
    DropRefused,
)
from pinnacle_protocols.protocols import ProgressCallback, RefLike
from pinnacle_protocols.records import ArtifactRef, validate_sha256
from pinnacle_protocols.serialization import utcnow
from pinnacle_protocols.uri import RedactedURI

if TYPE_CHECKING:
    from gridfs import GridFSBucket
    from pymongo.collection import Collection

__all__ = ["DEFAULT_BUCKET", "GridFSArtifactStore"]

#: The GridFS bucket name (collections ``<bucket>.files``, ``.chunks`` and ``.refs``).
DEFAULT_BUCKET = "_pinnacle_artifacts"
#: GridFS's own default chunk size (255 KiB).
DEFAULT_CHUNK_SIZE = 255 * 1024
#: Placeholder name of an upload; replaced by the sha256 before the files document is written.
_UPLOADING = "_uploading"
_UNIQUE_INDEX = "pinnacle_blob_sha256"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
#: Bytes of chunks read per query by get() and open() (whole chunks, at least one).
_READ_WINDOW = 8 * 1024 * 1024
#: At most this many keys (or files ids) in one ``$in`` of get_many (a few hundred KiB of BSON,
#: far below the 16 MiB document limit of a query).
_IN_BATCH = 10_000


def _ref_key(ref: RefLike) -> str:
    if isinstance(ref, ArtifactRef):
        return ref.sha256
    return validate_sha256(ref)


def _ref_size(ref: RefLike) -> int | None:
    """The size an ArtifactRef claims (None for a bare digest)."""
    return ref.size if isinstance(ref, ArtifactRef) else None


class _HashingReader(io.RawIOBase):
    """Reads a source file object, hashing and counting what passes through."""

    def __init__(self, source: IO[bytes], callback: ProgressCallback | None) -> None:
        super().__init__()
        self._source = source
        self._callback = callback
        self.hasher = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(size)
        if not isinstance(chunk, (bytes, bytearray)):
            raise TypeError(
                f"put() needs a binary file object; read() returned {type(chunk).__name__}"
            )
        if chunk:
            chunk = bytes(chunk)
            self.hasher.update(chunk)
            self.size += len(chunk)
            if self._callback is not None:
                self._callback.relative_update(len(chunk))
        return chunk

    def readinto(self, buffer: Any) -> int:  # pragma: no cover - GridIn calls read()
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


class _CountingReader(io.RawIOBase):
    """Reads bytes already hashed, reporting progress."""

    def __init__(self, data: bytes, callback: ProgressCallback | None) -> None:
        super().__init__()
        self._view = memoryview(data)
        self._pos = 0
        self._callback = callback

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else min(len(self._view), self._pos + size)
        chunk = bytes(self._view[self._pos : end])
        self._pos = end
        if chunk and self._callback is not None:
            self._callback.relative_update(len(chunk))
        return chunk

    def readinto(self, buffer: Any) -> int:  # pragma: no cover - GridIn calls read()
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


class _ChunkWindows:
    """A blob's chunks, fetched window by window with the next window fetched in the background.

    Each window is one query for a range of chunk numbers (``files_id`` and ``n`` from the
    files document, served by GridFS's ``files_id_1_n_1`` index) of at most ``_READ_WINDOW``
    bytes, so a reply never approaches the driver's 48 MB message limit whatever batching the
    server applies, and a reader holds at most two windows (the current one and the next).
    While the caller hashes and copies one window, a background thread waits for the next
    (socket reads and sha256 of large buffers release the GIL). Every chunk is checked for its
    number and size; a missing or truncated chunk raises ArtifactCorrupted.
    """

    def __init__(
        self,
        chunks: Collection[Document],
        doc: Document,
        *,
        sha256: str,
        where: str,
        translate: Callable[[Exception, str], Exception],
    ) -> None:
        self._chunks = chunks
        self._files_id = doc["_id"]
        self.length = int(doc["length"])
        self._chunk_size = int(doc.get("chunkSize") or DEFAULT_CHUNK_SIZE)
        self._count = -(-self.length // self._chunk_size)
        self._per_window = max(1, _READ_WINDOW // self._chunk_size)
        self._sha256 = sha256
        self._where = where
        self._translate = translate
        self._next = 0  # first chunk number of the next window to hand out
        self._pending: Future[list[bytes]] | None = None

    def _corrupt(self, problem: str) -> ArtifactCorrupted:
        return _corrupted(self._sha256, self._where, problem)

    def _fetch(self, start: int) -> list[bytes]:
        """Chunks ``start`` up to the window's end, checked for number and size."""
        end = min(start + self._per_window, self._count)
        try:
            docs = list(
                self._chunks.find(
                    {"files_id": self._files_id, "n": {"$gte": start, "$lt": end}},
                    {"_id": 0, "n": 1, "data": 1},
                    sort=[("n", 1)],
                )
            )
        except Exception as exc:
            raise self._translate(exc, f"read blob {self._sha256}") from exc
        return _checked_chunks(
            docs,
            range(start, end),
            length=self.length,
            chunk_size=self._chunk_size,
            corrupt=self._corrupt,
        )

    def next_window(self) -> list[bytes] | None:
        """The next window's chunks in order, or None after the last one."""
        if self._next >= self._count:
            return None
        pending, self._pending = self._pending, None
        window = self._fetch(self._next) if pending is None else pending.result()
        self._next += len(window)
        if self._next < self._count:
            self._pending = _in_background(self._fetch, self._next)
        return window

    def close(self) -> None:
        """Forget the window being fetched (its thread ends with its query)."""
        self._pending = None
        self._next = self._count


def _checked_chunks(
    docs: Sequence[Document],
    numbers: range,
    *,
    length: int,
    chunk_size: int,
    corrupt: Callable[[str], ArtifactCorrupted],
) -> list[bytes]:
    """The data of chunks ``numbers`` of a blob of ``length`` bytes, from ``docs`` sorted by
    ``n``: each chunk must be there, in order, binary and of its size (ArtifactCorrupted)."""
    count = -(-length // chunk_size)
    last_size = length - (count - 1) * chunk_size
    out: list[bytes] = []
    for expected, chunk in zip(numbers, docs, strict=False):
        if chunk.get("n") != expected:
            raise corrupt(f"chunk {expected} is missing")
        data = chunk.get("data")
        if not isinstance(data, bytes):
            raise corrupt(f"chunk {expected} holds no binary data")
        want = last_size if expected == count - 1 else chunk_size
        if len(data) != want:
            raise corrupt(f"chunk {expected} has {len(data)} bytes, expected {want}")
        out.append(data)
    if len(out) < len(numbers):
        raise corrupt(f"chunk {numbers.start + len(out)} is missing")
    return out


def _corrupted(sha256: str, where: str, problem: str) -> ArtifactCorrupted:
    return ArtifactCorrupted(
        f"blob {sha256} in {where} is corrupted: {problem}; delete it and put the original "
        "bytes again"
    )


def _check_claimed_size(sha256: str, where: str, size: int, claimed: int | None) -> None:
    """An ArtifactRef whose size differs from the stored blob's: ArtifactCorrupted (as the
    filesystem stores report it)."""
    if claimed is not None and size != claimed:
        raise _corrupted(sha256, where, f"it has {size} bytes but the ref says {claimed}")


def _in_background(fn: Callable[[int], list[bytes]], arg: int) -> Future[list[bytes]]:
    """``fn(arg)`` on a fresh daemon thread; its result or exception lands in the future."""
    future: Future[list[bytes]] = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(arg))
        except BaseException as exc:  # handed to the reader, which re-raises it
            future.set_exception(exc)

    threading.Thread(target=run, name="pinnacle-gridfs-read", daemon=True).start()
    return future


class _VerifyingReader(io.RawIOBase):
    """Streams a blob's chunks and checks their sha256 and total size at EOF."""

    def __init__(
        self,
        windows: _ChunkWindows,
        *,
        sha256: str,
        where: str,
        callback: ProgressCallback | None,
        claimed: int | None = None,
    ) -> None:
        super().__init__()
        self._windows = windows
        self._sha256 = sha256
        self._claimed = claimed
        self._size = windows.length
        self._where = where
        self._callback = callback
        self._hasher = hashlib.sha256()
        self._parts: list[bytes] = []  # the current window, hashed already
        self._index = 0  # next part to hand out
        self._offset = 0  # position inside that part
        self._pos = 0
        self._verified = False
        if callback is not None:
            callback.set_size(self._size)

    def readable(self) -> bool:
        return True

    def _current(self) -> memoryview | None:
        """The unread rest of the current chunk (fetching the next window), None at EOF."""
        while self._index >= len(self._parts):
            window = self._windows.next_window()
            if window is None:
                self._verify()
                return None
            for part in window:
                self._hasher.update(part)
            self._parts, self._index, self._offset = window, 0, 0
        return memoryview(self._parts[self._index])[self._offset :]

    def _advance(self, n: int) -> None:
        self._offset += n
        if self._offset >= len(self._parts[self._index]):
            self._parts[self._index] = b""  # release chunks already handed out
            self._index += 1
            self._offset = 0
        self._pos += n
        if self._callback is not None:
            self._callback.relative_update(n)

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target):
            rest = self._current()
            if rest is None:
                break
            n = min(len(rest), len(target) - filled)
            target[filled : filled + n] = rest[:n]
            self._advance(n)
            filled += n
        return filled

    def readall(self) -> bytes:
        pieces: list[memoryview] = []
        while (rest := self._current()) is not None:
            pieces.append(rest)
            self._advance(len(rest))
        return b"".join(pieces)

    def _verify(self) -> None:
        if self._verified:
            return
        digest = self._hasher.hexdigest()
        if digest != self._sha256 or self._pos != self._size:
            raise ArtifactCorrupted(
                f"blob {self._sha256} in {self._where} is corrupted: its {self._pos} bytes hash "
                f"to {digest}; delete it and put the original bytes again"
            )
        _check_claimed_size(self._sha256, self._where, self._pos, self._claimed)
        self._verified = True

    def close(self) -> None:
        if not self.closed:
            self._windows.close()
            self._parts = []
        super().close()


@attrs.define(kw_only=True, eq=False)
class GridFSArtifactStore:
    """Content-addressed blobs in MongoDB GridFS (see the module docstring for the layout).

    Attributes:
        bucket: GridFS bucket name.
        chunk_size: GridFS chunk size in bytes for new files; memory use of ``put`` and
            ``open`` is bounded by a few chunks.
    """

    _conn: MongoConnection = attrs.field(alias="connection")
    bucket: str = DEFAULT_BUCKET
    chunk_size: int = DEFAULT_CHUNK_SIZE
    _gridfs: GridFSBucket | None = attrs.field(default=None, init=False)
    _indexed: bool = attrs.field(default=False, init=False)

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> Self:
        """A store in the database of ``mongodb://host:port/database`` (connects on first use).

        Args:
            uri: ``mongodb://`` or ``mongodb+srv://`` URI naming the database.
            **options: ``bucket`` (default ``_pinnacle_artifacts``), ``chunk_size`` (bytes,
                default 255 KiB), and the connection options ``server_selection_timeout_ms``,
                ``client``, ``client_options``.

        Raises:
            InvalidURIError: the URI is not a MongoDB URI or names no database.
            ConfigError: an invalid or unknown option.
        """
        conn, rest = MongoConnection.from_options(uri, options, store="GridFSArtifactStore")
        bucket = rest.pop("bucket", DEFAULT_BUCKET)
        chunk_size = rest.pop("chunk_size", DEFAULT_CHUNK_SIZE)
        if rest:
            raise ConfigError(f"GridFSArtifactStore: unknown options {sorted(rest)}")
        if not isinstance(bucket, str) or not bucket.startswith("_pinnacle") or "$" in bucket:
            raise ConfigError(
                f"GridFSArtifactStore: bucket must be a name starting with '_pinnacle' (so it "
                f"never collides with user collections), got {bucket!r}"
            )
        if (
            isinstance(chunk_size, bool)
            or not isinstance(chunk_size, int)
            or not 0 < chunk_size <= 15 * 1024 * 1024
        ):
            raise ConfigError(f"chunk_size must be an int from 1 to 15 MiB, got {chunk_size!r}")
        return cls(connection=conn, bucket=bucket, chunk_size=chunk_size)

    @property
    def uri(self) -> RedactedURI:
        """Where the store lives (password redacted when shown)."""
        return self._conn.uri

    def __repr__(self) -> str:
        return f"GridFSArtifactStore({str(self._conn.uri)!r}, bucket={self.bucket!r})"

    @property
    def _where(self) -> str:
        return f"{self._conn.uri} (GridFS bucket {self.bucket})"

    # ------------------------------------------------------------------ collections
    def _bucket(self) -> GridFSBucket:
        db = self._conn.database()
        if self._gridfs is None:
            from gridfs import GridFSBucket

            self._gridfs = GridFSBucket(
                db, bucket_name=self.bucket, chunk_size_bytes=self.chunk_size
            )
        return self._gridfs

    def _files(self) -> Collection[Document]:
        return self._conn.database()[f"{self.bucket}.files"]

    def _chunks(self) -> Collection[Document]:
        return self._conn.database()[f"{self.bucket}.chunks"]

    def _ensure_unique_index(self) -> None:
        if not self._indexed:
            # One files document per sha256: concurrent puts of the same bytes store one copy.
            self._files().create_index([("filename", 1)], unique=True, name=_UNIQUE_INDEX)
            self._indexed = True

    def _find(self, sha: str) -> Document | None:
        return self._files().find_one({"filename": sha}, {"_id": 1, "length": 1})

    # ------------------------------------------------------------------ writing
    def put(
        self, data: bytes | IO[bytes], *, callback: ProgressCallback | None = None
    ) -> ArtifactRef:
        """Store ``data`` (bytes or a binary file object read to EOF) and return its ref.

        Bytes are hashed first, so bytes already stored are not uploaded again. A file object
        is streamed into GridFS chunk by chunk while it is hashed (memory stays bounded by the
        chunk size); if the same bytes turn out to be stored already, the chunks are removed.
        A stored blob of that name is read back and verified first: a damaged one (missing or
        altered chunks) is deleted and replaced by the bytes given.
        """
        if isinstance(data, (bytes, bytearray, memoryview)):
            whole = bytes(data)
            sha = hashlib.sha256(whole).hexdigest()
            if callback is not None:
                callback.set_size(len(whole))
            with self._conn.errors("put a blob"):
                if self._find(sha) is not None and self._intact_or_deleted(sha):
                    if callback is not None and whole:
                        callback.relative_update(len(whole))
                    return ArtifactRef(sha256=sha, size=len(whole))
                reader: _HashingReader | _CountingReader = _CountingReader(whole, callback)
                return self._upload(reader, lambda: (sha, len(whole)))
        if not hasattr(data, "read"):
            raise TypeError(f"put() needs bytes or a binary file object, got {type(data).__name__}")
        hashing = _HashingReader(data, callback)
        with self._conn.errors("put a blob"):
            return self._upload(hashing, lambda: (hashing.hasher.hexdigest(), hashing.size))

    def _upload(self, reader: io.RawIOBase, digest: Callable[[], tuple[str, int]]) -> ArtifactRef:
        """Write the chunks, then the files document named by the sha256 (the commit point)."""
        from gridfs.errors import FileExists

        self._ensure_unique_index()
        # GridFS writes the files document only in close(), after every chunk: until then the
        # blob is invisible, and the name given here is replaced before it is ever stored.
        grid_in = self._bucket().open_upload_stream(_UPLOADING, metadata={"pinnacle": "blob"})
        try:
            grid_in.write(reader)
            sha, size = digest()
            ref = ArtifactRef(sha256=sha, size=size)
            if self._find(sha) is not None and self._intact_or_deleted(sha):
                grid_in.abort()  # stored already: drop the chunks
                return ref
            grid_in.filename = sha
            try:
                grid_in.close()
            except FileExists:
                grid_in.abort()  # a concurrent put of the same bytes won the unique index
            return ref
        except BaseException:
            if not grid_in.closed:
                try:
                    grid_in.abort()
                except Exception as cleanup:  # pragma: no cover - the server went away
                    import sys

                    current = sys.exc_info()[1]
                    if current is not None:
                        current.add_note(f"could not remove the partial upload: {cleanup!r}")
            raise

    def _intact_or_deleted(self, sha: str) -> bool:
        """True if the stored blob ``sha`` verifies; else delete it (for a put to replace)."""
        try:
            with self.open(sha) as reader:
                while reader.read(_READ_WINDOW):
                    pass
        except ArtifactNotFound:
            return False
        except ArtifactCorrupted:
            self.delete(sha)
            return False
        return True

    # ------------------------------------------------------------------ reading
    def _lookup(self, ref: RefLike) -> tuple[str, Document]:
        """The key and the whole files document of a blob (ArtifactNotFound if absent)."""
        key = _ref_key(ref)
        with self._conn.errors(f"look up blob {key}"):
            doc = self._files().find_one({"filename": key})
        if doc is None:
            raise ArtifactNotFound(f"no blob {key} in {self._where}")
        return key, doc

    def _windows(self, key: str, doc: Document) -> _ChunkWindows:
        return _ChunkWindows(
            self._chunks(), doc, sha256=key, where=self._where, translate=self._conn.translate
        )

    def open(self, ref: RefLike, *, callback: ProgressCallback | None = None) -> IO[bytes]:
        """A streaming reader that raises ArtifactCorrupted at EOF on a mismatch.

        The mismatch is of the sha256, the total length, or the size an ArtifactRef claims
        (checked like :meth:`get`).

        Memory stays bounded whatever the blob's size: the reader holds at most two windows
        of chunks (8 MiB each).

        Raises:
            ArtifactNotFound: no such blob.
            InvalidArtifactRef: ``ref`` is not a sha256 hex digest.
        """
        key, doc = self._lookup(ref)
        raw = _VerifyingReader(
            self._windows(key, doc),
            sha256=key,
            where=self._where,
            callback=callback,
            claimed=_ref_size(ref),
        )
        return io.BufferedReader(raw, buffer_size=max(self.chunk_size, io.DEFAULT_BUFFER_SIZE))

    def get(self, ref: RefLike) -> bytes:
        """The verified bytes (ArtifactCorrupted on mismatch, ArtifactNotFound if absent).

        The sha256 and length of the whole are checked, and the size of an ArtifactRef.
        """
        key, doc = self._lookup(ref)
        windows = self._windows(key, doc)
        hasher = hashlib.sha256()
        parts: list[bytes] = []
        try:
            # one window is hashed while the next one is on its way
            while (window := windows.next_window()) is not None:
                for chunk in window:
                    hasher.update(chunk)
                parts.extend(window)
        finally:
            windows.close()
        data = b"".join(parts)
        self._check_whole(key, data, windows.length, hasher.hexdigest(), _ref_size(ref))
        return data

    def _check_whole(
        self, key: str, data: bytes, length: int, digest: str, claimed: int | None
    ) -> None:
        if len(data) != length or digest != key:
            raise _corrupted(key, self._where, f"its {len(data)} bytes do not hash to its name")
        _check_claimed_size(key, self._where, len(data), claimed)

    def get_many(self, refs: Sequence[RefLike]) -> list[bytes]:
        """The verified bytes of each ref, in order (``SupportsGetMany``).

        Every ref is validated before anything is read. The files documents of the distinct
        keys come from one ``find`` (``filename $in``), their chunks from one more
        (``files_id $in``, sorted by ``files_id, n`` along GridFS's ``files_id_1_n_1`` index);
        the driver adds a ``getMore`` only when a reply would pass 16 MiB, and keys past
        ``_IN_BATCH`` take further queries. Each blob is verified as :meth:`get` verifies it
        (chunk numbers and sizes, the sha256 and length of the whole, an ArtifactRef's size).
        A blob the batch did not bring, or brought damaged, is read again by :meth:`get`, so
        every error is the one ``get`` raises (a blob absent from the batch is looked up once
        more first, and when it is absent indeed nothing after it in order is read). The result
        holds every blob at once: for one blob too large for memory use :meth:`open`.

        Raises:
            InvalidArtifactRef: a ref is not a sha256 hex digest (nothing is read).
            ArtifactNotFound: a blob is absent.
            ArtifactCorrupted: a blob does not verify.
            When several refs fail, the error is the one of the first failing ref in order.
        """
        keys = [(_ref_key(r), _ref_size(r)) for r in refs]
        if not keys:
            return []
        names = list(dict.fromkeys(key for key, _ in keys))
        with self._conn.errors(f"read {len(names)} blobs"):
            docs = self._files_named(names)
            end = len(keys)
            absent = next((i for i, (key, _) in enumerate(keys) if key not in docs), end)
            if absent < end and self._find(keys[absent][0]) is None:
                end = absent  # its error comes after those of the refs before it, if any
            wanted = dict.fromkeys(key for key, _ in keys[:end] if key in docs)
            chunks = self._chunks_of([docs[key]["_id"] for key in wanted])
        blobs: dict[str, bytes] = {}
        for key, claimed in keys[:end]:
            data = blobs.get(key)
            if data is None:
                try:
                    data = self._assemble(key, docs[key], chunks) if key in docs else None
                except ArtifactCorrupted:
                    data = None
                if data is None:
                    # The batch is an optimisation; a blob it did not bring, or brought damaged,
                    # is read again by get(), whose answer (bytes or error) is authoritative.
                    # A concurrent put, or a server that answers $in wrongly, ends up here.
                    data = self.get(key)
                blobs[key] = data
            _check_claimed_size(key, self._where, len(data), claimed)
        if end < len(keys):
            raise ArtifactNotFound(f"no blob {keys[end][0]} in {self._where}")
        return [blobs[key] for key, _ in keys]

    def _files_named(self, names: Sequence[str]) -> dict[str, Document]:
        """The files document of each name that is stored (the first one, as ``find_one``)."""
        found: dict[str, Document] = {}
        for i in range(0, len(names), _IN_BATCH):
            part = names[i : i + _IN_BATCH]
            cursor = self._files().find(
                {"filename": {"$in": part}},
                {"_id": 1, "filename": 1, "length": 1, "chunkSize": 1},
                batch_size=len(part),  # one reply, not the server's first batch of 101
            )
            for doc in cursor:
                name = doc.get("filename")
                if isinstance(name, str):
                    found.setdefault(name, doc)
        return found

    def _chunks_of(self, files_ids: Sequence[Any]) -> dict[Any, list[Document]]:
        """The chunks of each file, in chunk order (files with no chunk are absent)."""
        by_file: dict[Any, list[Document]] = {}
        for i in range(0, len(files_ids), _IN_BATCH):
            part = files_ids[i : i + _IN_BATCH]
            cursor = self._chunks().find(
                {"files_id": {"$in": part}},
                {"_id": 0, "files_id": 1, "n": 1, "data": 1},
                sort=[("files_id", 1), ("n", 1)],
                # replies up to the server's 16 MiB limit, not a first batch of 101 chunks
                batch_size=2**31 - 1,
            )
            for chunk in cursor:
                by_file.setdefault(chunk.get("files_id"), []).append(chunk)
        return by_file

    def _assemble(self, key: str, doc: Document, chunks: dict[Any, list[Document]]) -> bytes:
        """The verified bytes of blob ``key`` from its chunks (which are released)."""
        length = int(doc["length"])
        chunk_size = int(doc.get("chunkSize") or DEFAULT_CHUNK_SIZE)
        parts = _checked_chunks(
            chunks.pop(doc["_id"], []),
            range(-(-length // chunk_size)),
            length=length,
            chunk_size=chunk_size,
            corrupt=lambda problem: _corrupted(key, self._where, problem),
        )
        data = b"".join(parts)
        self._check_whole(key, data, length, hashlib.sha256(data).hexdigest(), None)
        return data

    def exists(self, ref: RefLike) -> bool:
        """Whether a complete blob with this key is stored."""
        key = _ref_key(ref)
        with self._conn.errors(f"look up blob {key}"):
            return self._find(key) is not None

    def size(self, ref: RefLike) -> int:
        """The blob's size in bytes (ArtifactNotFound if absent)."""
        return int(self._lookup(ref)[1]["length"])

    def iter_refs(self) -> Iterator[ArtifactRef]:
        """Every complete blob (chunks of unfinished uploads have no files document)."""
        refs: dict[str, ArtifactRef] = {}
        with self._conn.errors("list blobs"):
            for doc in self._files().find({}, {"filename": 1, "length": 1}):
                name = doc.get("filename")
                if isinstance(name, str) and _SHA256_RE.fullmatch(name):
                    refs[name] = ArtifactRef(sha256=name, size=int(doc["length"]))
        return iter(list(refs.values()))

    # ------------------------------------------------------------------ removal
    def delete(self, ref: RefLike) -> None:
        """Remove the blob (files document first, then chunks); absent blobs are no error."""
        from gridfs.errors import NoFile

        key = _ref_key(ref)
        with self._conn.errors(f"delete blob {key}"):
            for doc in list(self._files().find({"filename": key}, {"_id": 1})):
                with contextlib.suppress(NoFile):
                    self._bucket().delete(doc["_id"])

    def remove_orphans(
        self, *, older_than: timedelta = timedelta(hours=1), dry_run: bool = False
    ) -> int:
        """Delete chunks that belong to no files document (uploads that crashed).

        Only uploads started more than ``older_than`` ago (by their ObjectId's time) are
        touched, so uploads in progress are left alone. Returns how many uploads were removed.
        """
        cutoff = utcnow() - older_than
        removed = 0
        with self._conn.errors("remove orphaned chunks"):
            stored = {d["_id"] for d in self._files().find({}, {"_id": 1})}
            for files_id in self._chunks().distinct("files_id"):
                if files_id in stored:
                    continue
                created = getattr(files_id, "generation_time", None)
                if created is not None and created >= cutoff:
                    continue
                if not dry_run:
                    self._chunks().delete_many({"files_id": files_id})
                removed += 1
        return removed

    def remove_stale_temp_files(self, older_than: float = 3600.0, *, dry_run: bool = False) -> int:
        """Delete the chunks of uploads that died, older than ``older_than`` seconds (gc hook).

        GridFS stages an upload as chunks without a files document: those are its temp files.
        Returns how many uploads were (or, with ``dry_run``, would be) removed.
        """
        return self.remove_orphans(older_than=timedelta(seconds=older_than), dry_run=dry_run)

    def drop(self, *, force: bool = False) -> None:
        """Delete every blob of this bucket (DropRefused unless ``force=True``)."""
        if force is not True:
            raise DropRefused(
                f"refusing to delete every blob of {self._where}; call drop(force=True) to confirm"
            )
        with self._conn.errors("drop the artifact bucket"):
            db = self._conn.database()
            for suffix in ("files", "chunks"):
                db.drop_collection(f"{self.bucket}.{suffix}")
        self._gridfs = None
        self._indexed = False

    def close(self) -> None:
        """Close the client (if this store created it); later calls raise BackendUnavailable."""
        self._gridfs = None
        self._conn.close()
