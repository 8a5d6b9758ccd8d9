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
removed). ``delete`` removes the files document first, then the chunks. Reads verify the
sha256 and size.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
from collections.abc import Callable, Iterator
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


def _ref_key(ref: RefLike) -> str:
    if isinstance(ref, ArtifactRef):
        return ref.sha256
    return validate_sha256(ref)


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


class _VerifyingReader(io.RawIOBase):
    """Streams a GridFS file and checks its sha256 and size at EOF."""

    def __init__(
        self,
        grid_out: Any,
        *,
        sha256: str,
        size: int,
        where: str,
        callback: ProgressCallback | None,
        translate: Callable[[Exception, str], Exception],
    ) -> None:
        super().__init__()
        self._grid_out = grid_out
        self._sha256 = sha256
        self._size = size
        self._where = where
        self._callback = callback
        self._translate = translate
        self._hasher = hashlib.sha256()
        self._pos = 0
        self._verified = False
        if callback is not None:
            callback.set_size(size)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if len(target) == 0:
            return 0
        data = _read_grid(self._grid_out, len(target), self._sha256, self._where, self._translate)
        n = len(data)
        if n == 0:
            self._verify()
            return 0
        target[:n] = data
        self._pos += n
        self._hasher.update(data)
        if self._callback is not None:
            self._callback.relative_update(n)
        return n

    def _verify(self) -> None:
        if self._verified:
            return
        digest = self._hasher.hexdigest()
        if digest != self._sha256 or self._pos != self._size:
            raise ArtifactCorrupted(
                f"blob {self._sha256} in {self._where} is corrupted: its {self._pos} bytes hash "
                f"to {digest}; delete it and put the original bytes again"
            )
        self._verified = True

    def close(self) -> None:
        if not self.closed:
            self._grid_out.close()
        super().close()


def _read_grid(
    grid_out: Any, size: int, sha: str, where: str, translate: Callable[[Exception, str], Exception]
) -> bytes:
    from gridfs.errors import CorruptGridFile

    try:
        data: bytes = grid_out.read(size)
    except CorruptGridFile as exc:
        raise ArtifactCorrupted(
            f"blob {sha} in {where} is corrupted: {exc}; delete it and put the original again"
        ) from exc
    except Exception as exc:
        raise translate(exc, f"read blob {sha}") from exc
    return data


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
        """
        if isinstance(data, (bytes, bytearray, memoryview)):
            whole = bytes(data)
            sha = hashlib.sha256(whole).hexdigest()
            if callback is not None:
                callback.set_size(len(whole))
            with self._conn.errors("put a blob"):
                if self._find(sha) is not None:
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
            if self._find(sha) is not None:
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

    # ------------------------------------------------------------------ reading
    def _lookup(self, ref: RefLike) -> tuple[str, Document]:
        """The key and the whole files document of a blob (ArtifactNotFound if absent)."""
        key = _ref_key(ref)
        with self._conn.errors(f"look up blob {key}"):
            doc = self._files().find_one({"filename": key})
        if doc is None:
            raise ArtifactNotFound(f"no blob {key} in {self._where}")
        return key, doc

    def _open_grid(self, doc: Document) -> Any:
        """A GridOut on an already fetched files document (no second lookup)."""
        from gridfs import GridOut

        return GridOut(self._conn.database()[self.bucket], file_document=doc)

    def open(self, ref: RefLike, *, callback: ProgressCallback | None = None) -> IO[bytes]:
        """A streaming reader that raises ArtifactCorrupted at EOF on a mismatch.

        Raises:
            ArtifactNotFound: no such blob.
            InvalidArtifactRef: ``ref`` is not a sha256 hex digest.
        """
        key, doc = self._lookup(ref)
        grid_out = self._open_grid(doc)
        raw = _VerifyingReader(
            grid_out,
            sha256=key,
            size=int(doc["length"]),
            where=self._where,
            callback=callback,
            translate=self._conn.translate,
        )
        return io.BufferedReader(raw, buffer_size=max(self.chunk_size, io.DEFAULT_BUFFER_SIZE))

    def get(self, ref: RefLike) -> bytes:
        """The verified bytes (ArtifactCorrupted on mismatch, ArtifactNotFound if absent)."""
        from gridfs.errors import CorruptGridFile

        key, doc = self._lookup(ref)
        length = int(doc["length"])
        grid_out = self._open_grid(doc)
        hasher = hashlib.sha256()
        parts: list[bytes] = []
        try:
            while grid_out.tell() < length:
                chunk = grid_out.readchunk()  # hashed while it is still in the cache
                hasher.update(chunk)
                parts.append(chunk)
        except CorruptGridFile as exc:
            raise ArtifactCorrupted(
                f"blob {key} in {self._where} is corrupted: {exc}; delete it and put the "
                "original bytes again"
            ) from exc
        except Exception as exc:
            raise self._conn.translate(exc, f"read blob {key}") from exc
        finally:
            grid_out.close()
        data = b"".join(parts)
        if len(data) != length or hasher.hexdigest() != key:
            raise ArtifactCorrupted(
                f"blob {key} in {self._where} is corrupted: its {len(data)} bytes do not hash to "
                "its name; delete it and put the original bytes again"
            )
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

    def remove_orphans(self, *, older_than: timedelta = timedelta(hours=1)) -> int:
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
                self._chunks().delete_many({"files_id": files_id})
                removed += 1
        return removed

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
