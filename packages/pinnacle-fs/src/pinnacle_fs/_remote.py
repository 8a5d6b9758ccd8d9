"""The fsspec backend: object stores (s3://, gs://), memory:// and any other fsspec protocol.

Publishing without ever exposing a partial object under its final key:

* S3 (``s3://``, ``s3a://``): an object appears only when its single ``PutObject`` or its
  ``CompleteMultipartUpload`` succeeds (see :mod:`pinnacle_fs._s3`). When the sha256 is known
  before uploading (``bytes``, or a seekable file hashed in a first pass) the bytes go straight
  to the final key, are hashed again on the way, and the upload is completed only if they still
  match (otherwise it is aborted). Other sources are uploaded to a temp key and copied
  server-side.
* Every other protocol: write a temp file ``<root>/.pinnacle-tmp/<uuid>.part``, then ``mv`` it to
  ``<root>/<xx>/<sha256>`` (for memory:// a dict assignment; for object stores copy + delete).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, cast

from pinnacle_fs._hashing import ChunkHasher
from pinnacle_fs._layout import TEMP_DIR, blob_relpath, is_blob, is_temp_name, new_temp_name
from pinnacle_fs._reader import VerifyingReader
from pinnacle_fs._s3 import RangeSource
from pinnacle_fs._s3 import upload as s3_upload
from pinnacle_fs._source import Data, iter_chunks, known_size, rewind_point
from pinnacle_fs._verify import verify_bytes
from pinnacle_protocols import (
    ArtifactError,
    ArtifactNotFound,
    ArtifactRef,
    BackendUnavailable,
    ConfigError,
    PinnacleError,
    ProgressCallback,
    redact,
)

__all__ = ["FsspecBackend"]

#: Protocols whose writes publish atomically on close() and can be aborted with discard().
_ATOMIC_CLOSE = frozenset({"s3", "s3a"})
#: Modules whose exceptions mean "the storage service failed", mapped to BackendUnavailable.
_DRIVER_MODULES = frozenset(
    {
        "botocore",
        "aiobotocore",
        "aiohttp",
        "s3fs",
        "gcsfs",
        "google",
        "requests",
        "urllib3",
        "fsspec",
        "adlfs",
        "azure",
        "paramiko",
    }
)
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


def _is_driver_error(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, TimeoutError, ConnectionError)):
        return True
    return type(exc).__module__.split(".", 1)[0] in _DRIVER_MODULES


def _mtime(info: dict[str, Any]) -> float | None:
    for key in ("LastModified", "mtime", "updated", "created", "last_modified"):
        value = info.get(key)
        if isinstance(value, _dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=_dt.UTC)
            return value.timestamp()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                if parsed.tzinfo is None:
                    parsed = parsed.replace(tzinfo=_dt.UTC)
                return parsed.timestamp()
    return None


def _discard(f: Any) -> None:
    """Abandon an unfinished write so nothing is published, not even by ``__del__``."""
    try:
        f.discard()
    finally:
        with contextlib.suppress(Exception):
            f.closed = True  # AbstractBufferedFile.__del__ would otherwise close() = publish


class FsspecBackend:
    """Blobs under ``root`` of an fsspec filesystem, created on first use."""

    def __init__(
        self,
        *,
        protocol: str,
        url: str | None,
        storage_options: dict[str, Any],
        where: str,
        chunk_size: int,
        block_size: int,
        concurrency: int = 4,
        secrets: Sequence[str] = (),
        fs: Any = None,
        root: str | None = None,
    ) -> None:
        self.protocol = protocol
        self._url = url
        self._options = storage_options
        self._where = where
        self._chunk_size = chunk_size
        self._block_size = block_size
        self._concurrency = concurrency
        self._secrets = tuple(s for s in secrets if s)
        self._fs = fs
        self._root = None if root is None else root.rstrip("/")
        self._atomic_close = protocol in _ATOMIC_CLOSE
        self._list_page_size = 1000  # ListObjectsV2 MaxKeys (tests lower it to check paging)

    # ------------------------------------------------------------------ plumbing
    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact(text)

    def _map(self, exc: Exception, action: str, sha256: str | None) -> BaseException | None:
        if isinstance(exc, PinnacleError):
            return None
        msg = self._scrub(str(exc)) or type(exc).__name__
        if isinstance(exc, FileNotFoundError):
            if sha256 is not None:
                return ArtifactNotFound(f"no blob {sha256} in {self._where}")
            return BackendUnavailable(
                f"{self._where}: not found while trying to {action} ({msg}); check that the "
                "bucket or directory exists"
            )
        if isinstance(exc, PermissionError):
            return BackendUnavailable(
                f"{self._where}: access denied while trying to {action} ({msg}); check the "
                "credentials (key/secret storage options or AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY) and the bucket's permissions"
            )
        if isinstance(exc, ImportError):
            extra = _EXTRAS.get(self.protocol)
            hint = (
                f"pip install 'pinnacle-fs[{extra}]'"
                if extra
                else f"install the fsspec implementation of {self.protocol}://"
            )
            return ConfigError(f"{self._where}: {self.protocol}:// needs a driver ({msg}): {hint}")
        if _is_driver_error(exc):
            return BackendUnavailable(
                f"{self._where}: could not {action}: {type(exc).__name__}: {msg}; check that the "
                "server is running and reachable (endpoint_url) and the credentials are right"
            )
        return None

    @contextlib.contextmanager
    def _errors(self, action: str, sha256: str | None = None) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            mapped = self._map(exc, action, sha256)
            if mapped is None:
                raise
            raise mapped from exc

    def _translate_read(self, sha256: str) -> Any:
        def translate(exc: Exception) -> BaseException | None:
            return self._map(exc, "read a blob", sha256)

        return translate

    def _fs_root(self) -> tuple[Any, str]:
        if self._fs is None or self._root is None:
            with self._errors("connect"):
                try:
                    import fsspec.core
                except ImportError as exc:  # pragma: no cover - fsspec is a dependency
                    raise ConfigError("pinnacle-fs needs fsspec: pip install fsspec") from exc
                try:
                    fs, root = fsspec.core.url_to_fs(self._url, **self._options)
                except ValueError as exc:
                    raise ConfigError(
                        f"{self._where}: fsspec does not know {self.protocol}:// "
                        f"({self._scrub(str(exc))}); install its implementation"
                    ) from exc
            self._fs, self._root = fs, str(root).rstrip("/")
        return self._fs, self._root

    def _blob_path(self, sha256: str) -> str:
        _, root = self._fs_root()
        shard, name = blob_relpath(sha256)
        return f"{root}/{shard}/{name}" if root else f"{shard}/{name}"

    def _info(self, path: str) -> dict[str, Any] | None:
        """``{"size": ...}`` of a file, or None if there is none."""
        fs, _ = self._fs_root()
        if self._atomic_close:
            # One HEAD (s3fs's info() adds a LIST to tell "absent" from "directory").
            bucket, _, key = path.partition("/")
            try:
                head = fs.call_s3("head_object", Bucket=bucket, Key=key)
            except FileNotFoundError:
                return None
            return {"size": int(head["ContentLength"]), "type": "file"}
        with contextlib.suppress(Exception):
            fs.invalidate_cache(path)
        try:
            info = fs.info(path)
        except FileNotFoundError:
            return None
        if info.get("type", "file") != "file":
            return None
        return cast(dict[str, Any], info)

    def _open_write(self, path: str) -> Any:
        fs, _ = self._fs_root()
        try:
            return fs.open(path, "wb")
        except FileNotFoundError:
            fs.makedirs(fs._parent(path), exist_ok=True)
            return fs.open(path, "wb")

    # ------------------------------------------------------------------ writing
    def put(self, data: Data, callback: ProgressCallback | None) -> ArtifactRef:
        """Store ``data`` (see the module docstring for how it is published)."""
        with self._errors("store a blob"):
            if self._atomic_close:
                known = self._prehash(data)
                if known is not None:
                    return self._put_direct(data, known, callback)
            return self._put_via_temp(data, callback)

    def _prehash(self, data: Data) -> ArtifactRef | None:
        """The ref of ``data`` when it can be read twice (bytes, seekable files), else None."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            view = memoryview(data).cast("B")
            return ArtifactRef(sha256=hashlib.sha256(view).hexdigest(), size=view.nbytes)
        start = rewind_point(data)
        if start is None:
            return None
        hasher = ChunkHasher()
        try:
            for _ in iter_chunks(data, self._chunk_size, known_size(data), hasher):
                pass
        finally:
            hasher.close()
        data.seek(start)
        return ArtifactRef(sha256=hasher.hexdigest(), size=hasher.count)

    @staticmethod
    def _reported(
        chunks: Iterator[memoryview], callback: ProgressCallback | None
    ) -> Iterator[memoryview]:
        for chunk in chunks:
            if callback is not None:
                callback.relative_update(len(chunk))
            yield chunk

    def _write(
        self,
        path: str,
        chunks: Iterator[memoryview],
        size_hint: int | None,
        before_publish: Callable[[], None],
    ) -> None:
        """Write ``chunks`` to ``path``; nothing appears there unless ``before_publish()``
        returned (S3: the upload is completed only then; elsewhere ``path`` is a temp path)."""
        fs, _ = self._fs_root()
        if self._atomic_close:
            s3_upload(
                fs,
                path,
                chunks,
                part_size=self._block_size,
                concurrency=self._concurrency,
                size_hint=size_hint,
                before_complete=before_publish,
            )
            return
        f = self._open_write(path)
        written = False
        try:
            for chunk in chunks:
                f.write(chunk)
            before_publish()
            f.close()
            written = True
        finally:
            if not written:
                _discard(f)

    def _put_direct(
        self, data: Data, ref: ArtifactRef, callback: ProgressCallback | None
    ) -> ArtifactRef:
        if callback is not None:
            callback.set_size(ref.size)
        final = self._blob_path(ref.sha256)
        # Uploaded even when an object of this name and size exists: its bytes may have been
        # damaged, and only a download could tell; rewriting the same bytes changes nothing
        # visible, and a damaged object is replaced.
        hasher = ChunkHasher()

        def still_the_same() -> None:
            if hasher.hexdigest() != ref.sha256 or hasher.count != ref.size:
                raise ArtifactError(
                    f"{self._where}: the data changed while it was being stored (it was read "
                    "twice: once to hash it, once to upload it); nothing was stored"
                )

        # ``bytes`` cannot change between the two reads; anything else is hashed again.
        verify = not isinstance(data, bytes)
        try:
            chunks = self._reported(
                iter_chunks(data, self._chunk_size, ref.size, hasher if verify else None), callback
            )
            self._write(final, chunks, ref.size, still_the_same if verify else lambda: None)
        finally:
            hasher.close()
        return ref

    def _put_via_temp(self, data: Data, callback: ProgressCallback | None) -> ArtifactRef:
        fs, root = self._fs_root()
        total = known_size(data)
        if callback is not None and total is not None:
            callback.set_size(total)
        tmp = f"{root}/{TEMP_DIR}/{new_temp_name()}"
        hasher = ChunkHasher()
        moved = False
        try:
            chunks = self._reported(iter_chunks(data, self._chunk_size, total, hasher), callback)
            self._write(tmp, chunks, total, lambda: None)
            ref = ArtifactRef(sha256=hasher.hexdigest(), size=hasher.count)
            # Moved over a stored object of this name too (it may be damaged; see _put_direct).
            self._move(tmp, self._blob_path(ref.sha256))
            moved = True
            return ref
        finally:
            hasher.close()
            if not moved:
                with contextlib.suppress(Exception):
                    fs.rm_file(tmp)

    def _move(self, tmp: str, final: str) -> None:
        fs, _ = self._fs_root()
        if self._atomic_close or self.protocol == "memory":
            # One server-side CopyObject (or dict assignment), then the temp is deleted.
            fs.cp_file(tmp, final)
            fs.rm_file(tmp)
            return
        try:
            fs.mv(tmp, final)
        except FileNotFoundError:
            if not fs.exists(tmp):
                raise
            fs.makedirs(fs._parent(final), exist_ok=True)
            fs.mv(tmp, final)

    # ------------------------------------------------------------------ reading
    def open(
        self, sha256: str, expected_size: int | None, callback: ProgressCallback | None
    ) -> IO[bytes]:
        """A verifying reader; memory:// reads a private copy (its files are shared objects)."""
        fs, _ = self._fs_root()
        path = self._blob_path(sha256)
        raw: Any
        size: int | None
        with self._errors("open a blob", sha256):
            if self.protocol == "memory":
                data = fs.cat_file(path)
                raw, size = io.BytesIO(data), len(data)
            else:
                info = self._info(path)
                if info is None:
                    raise ArtifactNotFound(f"no blob {sha256} in {self._where}")
                size = int(info["size"])
                raw = RangeSource(fs, path, size=size, block=self._block_size, ahead=2)
        reader = VerifyingReader(
            raw,
            sha256=sha256,
            expected_size=expected_size,
            total_size=size,
            chunk_size=self._chunk_size if self.protocol == "memory" else self._block_size,
            where=self._where,
            callback=callback,
            translate=self._translate_read(sha256),
        )
        return cast(IO[bytes], reader)

    def get(self, sha256: str, expected_size: int | None) -> bytes:
        """The whole blob in one request, verified."""
        fs, _ = self._fs_root()
        with self._errors("read a blob", sha256):
            data = bytes(fs.cat_file(self._blob_path(sha256)))
        return verify_bytes(data, sha256=sha256, expected_size=expected_size, where=self._where)

    def get_many(self, keys: Sequence[tuple[str, int | None]]) -> list[bytes]:
        """Each blob of ``keys`` (sha256, expected size), verified, from one ``fs.cat`` call.

        An async filesystem (S3, GCS...) fetches the objects concurrently in that one call;
        a sync one reads them one after the other. The first failing key in order raises.
        """
        if not keys:
            return []
        fs, _ = self._fs_root()
        paths = {sha: self._blob_path(sha) for sha, _ in keys}
        with self._errors("read blobs"):
            found = fs.cat(list(dict.fromkeys(paths.values())), on_error="return")
        out: list[bytes] = []
        verified: dict[tuple[str, int | None], bytes] = {}
        for sha, size in keys:
            data = verified.get((sha, size))
            if data is None:
                path = paths[sha]
                got = found.get(path, found.get(fs._strip_protocol(path)))
                if got is None:  # pragma: no cover - fs.cat answers every path it is given
                    raise ArtifactNotFound(f"no blob {sha} in {self._where}")
                if isinstance(got, Exception):
                    mapped = self._map(got, "read a blob", sha)
                    if mapped is None:
                        raise got
                    raise mapped from got
                data = verify_bytes(bytes(got), sha256=sha, expected_size=size, where=self._where)
                verified[sha, size] = data
            out.append(data)
        return out

    def size(self, sha256: str) -> int:
        """Size from the object's metadata."""
        with self._errors("read a blob's size", sha256):
            info = self._info(self._blob_path(sha256))
        if info is None:
            raise ArtifactNotFound(f"no blob {sha256} in {self._where}")
        return int(info["size"])

    def exists(self, sha256: str) -> bool:
        """Whether the object exists."""
        with self._errors("check a blob"):
            return self._info(self._blob_path(sha256)) is not None

    def delete(self, sha256: str) -> None:
        """Delete the object (no error if absent)."""
        fs, _ = self._fs_root()
        with self._errors("delete a blob"), contextlib.suppress(FileNotFoundError):
            fs.rm_file(self._blob_path(sha256))

    def _listing(self, sub: str = "") -> dict[str, dict[str, Any]]:
        """Every file under the root (or under ``<root>/<sub>``), by full path."""
        fs, root = self._fs_root()
        top = f"{root}/{sub}" if sub else root
        if self._atomic_close:
            return self._s3_listing(fs, top)
        with contextlib.suppress(Exception):
            fs.invalidate_cache(top)
        try:
            found = fs.find(top, detail=True)
        except FileNotFoundError:
            return {}
        return cast(dict[str, dict[str, Any]], found)

    def _s3_listing(self, fs: Any, root: str) -> dict[str, dict[str, Any]]:
        """Flat ``ListObjectsV2`` pages under the root (s3fs's find() adds a HEAD if empty)."""
        bucket, _, prefix = root.partition("/")
        prefix = f"{prefix}/" if prefix else ""
        listing: dict[str, dict[str, Any]] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "Bucket": bucket,
                "Prefix": prefix,
                "MaxKeys": self._list_page_size,
            }
            if token:
                kwargs["ContinuationToken"] = token
            page = fs.call_s3("list_objects_v2", **kwargs)
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                if key.endswith("/"):
                    continue  # a directory marker (SeaweedFS keeps some after deletes)
                listing[f"{bucket}/{key}"] = {
                    "name": f"{bucket}/{key}",
                    "size": int(obj["Size"]),
                    "type": "file",
                    "LastModified": obj.get("LastModified"),
                }
            token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            if not token:
                return listing

    def _relative(self, name: str) -> list[str]:
        _, root = self._fs_root()
        rel = name[len(root) :] if root and name.startswith(root) else name
        return rel.strip("/").split("/")

    def iter_refs(self) -> Iterator[ArtifactRef]:
        """Every object at ``<root>/<xx>/<sha>`` (temp and foreign objects are ignored)."""
        with self._errors("list blobs"):
            listing = self._listing()
        for name, info in listing.items():
            parts = self._relative(name)
            if len(parts) == 2 and is_blob(*parts) and info.get("type", "file") == "file":
                yield ArtifactRef(sha256=parts[1], size=int(info["size"]))

    # ------------------------------------------------------------------ removal
    def drop(self) -> None:
        """Delete every blob object and our temp objects (nothing else under the root)."""
        fs, _ = self._fs_root()
        with self._errors("drop the store"):
            targets = []
            for name, info in self._listing().items():
                parts = self._relative(name)
                if info.get("type", "file") != "file" or len(parts) != 2:
                    continue
                if is_blob(*parts) or (parts[0] == TEMP_DIR and is_temp_name(parts[1])):
                    targets.append(name)
            if targets:
                fs.rm(targets)

    def remove_stale_temp_files(self, older_than: float, dry_run: bool = False) -> int:
        """Delete temp objects of puts that died, older than ``older_than`` seconds."""
        fs, _ = self._fs_root()
        cutoff = _dt.datetime.now(_dt.UTC).timestamp() - older_than
        with self._errors("remove stale temp files"):
            stale = []
            for name, info in self._listing(TEMP_DIR).items():
                parts = self._relative(name)
                if len(parts) != 2 or parts[0] != TEMP_DIR or not is_temp_name(parts[1]):
                    continue
                mtime = _mtime(info)
                if mtime is not None and mtime <= cutoff:
                    stale.append(name)
            if stale and not dry_run:
                fs.rm(stale)
            return len(stale)

    def close(self) -> None:
        """Forget the filesystem object (s3fs closes its session when it is collected)."""
        self._fs = None
