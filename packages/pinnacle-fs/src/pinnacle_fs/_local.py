"""The local-filesystem backend: plain ``os`` calls for fsync, atomic rename and dir fsync.

fsspec's ``LocalFileSystem`` neither fsyncs nor renames atomically into place, so local roots
(``filesystem://``, ``file://``) use this backend; every other protocol goes through fsspec.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, cast

from pinnacle_fs._hashing import ChunkHasher, pipeline_depth
from pinnacle_fs._layout import TEMP_DIR, blob_relpath, is_blob, is_temp_name, new_temp_name
from pinnacle_fs._reader import VerifyingReader
from pinnacle_fs._source import Data, iter_chunks, known_size
from pinnacle_fs._verify import verify_bytes
from pinnacle_protocols import (
    ArtifactError,
    ArtifactNotFound,
    ArtifactRef,
    BackendUnavailable,
    ProgressCallback,
)

__all__ = ["LocalBackend"]

_OPEN_TEMP = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_ACCESS_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux ``sync_file_range(2)`` through libc, or None where it is unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - every glibc/musl has it
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], fn)


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` to disk, not waiting.

    Only a hint (errors are ignored): the ``fsync`` at the end of a put is what makes the blob
    durable. Started chunk by chunk, the disk writes overlap the hashing and most of them are
    done when that ``fsync`` comes (otherwise the kernel starts them only then, for a blob
    smaller than its dirty-page thresholds). ctypes releases the GIL during the call.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


#: Bytes per ``write`` call. Measured on Linux 6.18 / ext4 (large folios in the page cache):
#: one ``write`` of 1 MiB or more now and then stalls for seconds per GiB (the kernel tries to
#: allocate a large folio for the whole range and compacts memory to get one), while 64-512 KiB
#: writes never did and 256 KiB was the fastest (0.18 s per GiB against 0.17-1.7 s with 4 MiB
#: writes). The hash chunk stays large; only the write calls are split.
_WRITE_PIECE = 256 << 10


def _write_all(fd: int, chunk: memoryview) -> None:
    while chunk:
        n = os.write(fd, chunk[:_WRITE_PIECE])
        chunk = chunk[n:]


#: Distinct blobs from which ``get_many`` reads with threads, and how many threads at most.
_PARALLEL_FROM = 64
_READ_WORKERS = 4


def _regular_size(path: Path) -> int | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


class LocalBackend:
    """Blobs as files under an absolute directory ``root``."""

    def __init__(self, root: Path, *, where: str, chunk_size: int, fsync: bool) -> None:
        self.root = root
        self._root_str = str(root)
        self._where = where
        self._chunk_size = chunk_size
        self._fsync = fsync
        self._root_ready = False

    # ------------------------------------------------------------------ paths
    def _blob_path(self, sha256: str) -> Path:
        shard, name = blob_relpath(sha256)
        return self.root / shard / name

    def _error(self, action: str, exc: OSError) -> Exception:
        if isinstance(exc, PermissionError) or exc.errno in _ACCESS_ERRNOS:
            return BackendUnavailable(
                f"{self._where}: cannot {action}: {exc.strerror or exc} "
                f"({exc.filename or self.root}); check the directory exists and is writable"
            )
        return ArtifactError(f"{self._where}: cannot {action}: {exc}")

    def _ensure_root(self) -> None:
        if self._root_ready:
            return
        if not self.root.is_dir():
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BackendUnavailable(
                    f"{self._where}: cannot create the directory {str(self.root)!r} "
                    f"({exc.strerror or exc}: {exc.filename or self.root}); choose a directory "
                    "you can write to, or create it first"
                ) from exc
            if self._fsync:
                _fsync_dir(self.root.parent)
        self._root_ready = True

    # ------------------------------------------------------------------ writing
    def _create_temp(self) -> tuple[Path, int]:
        self._ensure_root()
        tmp_dir = self.root / TEMP_DIR
        for _ in range(3):
            path = tmp_dir / new_temp_name()
            try:
                return path, os.open(path, _OPEN_TEMP, 0o666)
            except FileNotFoundError:
                tmp_dir.mkdir(parents=True, exist_ok=True)
        path = tmp_dir / new_temp_name()
        return path, os.open(path, _OPEN_TEMP, 0o666)

    def put(self, data: Data, callback: ProgressCallback | None) -> ArtifactRef:
        """Stream ``data`` to a temp file, fsync it and rename it into place."""
        total = known_size(data)
        if callback is not None and total is not None:
            callback.set_size(total)
        self._ensure_root()  # its own error names the directory
        try:
            tmp, fd = self._create_temp()
        except OSError as exc:
            raise self._error("create a temp file", exc) from exc
        hasher = ChunkHasher(depth=pipeline_depth(self._chunk_size))
        keep_tmp = False
        try:
            offset = started = 0
            for chunk in iter_chunks(data, self._chunk_size, total, hasher):
                if self._fsync and offset > started:  # the previous chunk (one-chunk put: no)
                    _start_writeback(fd, started, offset - started)
                    started = offset
                _write_all(fd, chunk)
                offset += len(chunk)
                if callback is not None:
                    callback.relative_update(len(chunk))
            if self._fsync:
                os.fsync(fd)  # while the hashing thread finishes the last chunks
            sha = hasher.hexdigest()
            os.close(fd)
            fd = -1
            ref = ArtifactRef(sha256=sha, size=hasher.count)
            final = self._blob_path(sha)
            # Always published, even over a stored blob of this name: the temp file holds
            # bytes just hashed to ``sha``, while the stored file may have been damaged (same
            # size, flipped bytes). The rename is atomic, so readers see either whole file.
            self._publish(tmp, final)
            keep_tmp = True  # renamed: nothing left to remove
            return ref
        except OSError as exc:
            raise self._error("store a blob", exc) from exc
        finally:
            hasher.close()
            if fd >= 0:
                os.close(fd)
            if not keep_tmp:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def _publish(self, tmp: Path, final: Path) -> None:
        shard_dir = final.parent
        for _ in range(5):
            created = False
            try:
                os.mkdir(shard_dir)
                created = True
            except FileExistsError:
                pass
            if created and self._fsync:
                _fsync_dir(self.root)
            try:
                os.replace(tmp, final)  # atomic: readers see the old state or the whole blob
                break
            except FileNotFoundError:
                if not tmp.exists():
                    raise ArtifactError(
                        f"{self._where}: the temp file of a put vanished (a concurrent drop() or "
                        "temp cleanup?); put the bytes again"
                    ) from None
                # the shard directory was removed by a concurrent drop(): make it again
        else:
            raise ArtifactError(f"{self._where}: could not create {shard_dir} for a new blob")
        if self._fsync:
            _fsync_dir(shard_dir)

    # ------------------------------------------------------------------ reading
    def open(
        self, sha256: str, expected_size: int | None, callback: ProgressCallback | None
    ) -> IO[bytes]:
        """A verifying reader over the blob file."""
        path = self._blob_path(sha256)
        try:
            f = open(path, "rb", buffering=0)  # noqa: SIM115 (the reader owns and closes it)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ArtifactNotFound(f"no blob {sha256} in {self._where}") from exc
        except OSError as exc:
            raise self._error("open a blob", exc) from exc
        try:
            size = os.fstat(f.fileno()).st_size
        except OSError as exc:
            f.close()
            raise self._error("open a blob", exc) from exc
        if size > self._chunk_size and hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):  # a hint: larger readahead from disk
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        reader = VerifyingReader(
            f,
            sha256=sha256,
            expected_size=expected_size,
            total_size=size,
            chunk_size=self._chunk_size,
            where=self._where,
            callback=callback,
            reuse_buffers=True,
        )
        return cast(IO[bytes], reader)

    def get(self, sha256: str, expected_size: int | None) -> bytes:
        """The whole blob, verified."""
        shard, name = blob_relpath(sha256)
        path = f"{self._root_str}{os.sep}{shard}{os.sep}{name}"  # str: cheaper than Path
        try:
            with open(path, "rb", buffering=0) as f:  # one allocation of the file's size
                data = f.readall()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ArtifactNotFound(f"no blob {sha256} in {self._where}") from exc
        except OSError as exc:
            raise self._error("read a blob", exc) from exc
        return verify_bytes(data, sha256=sha256, expected_size=expected_size, where=self._where)

    def get_many(self, keys: Sequence[tuple[str, int | None]]) -> list[bytes]:
        """Each blob of ``keys`` (sha256, expected size), verified as :meth:`get` does.

        Distinct keys are read once each; from ``_PARALLEL_FROM`` of them on, by up to
        ``_READ_WORKERS`` threads, each reading a contiguous slice (file reads and sha256 of
        buffers over 2 KiB release the GIL). The first failing key in order raises.
        """
        distinct = list(dict.fromkeys(keys))
        if len(distinct) < _PARALLEL_FROM:
            blobs = [self.get(sha, size) for sha, size in distinct]
        else:
            workers = min(_READ_WORKERS, len(distinct) // (_PARALLEL_FROM // 2))
            step = -(-len(distinct) // workers)
            slices = [distinct[i : i + step] for i in range(0, len(distinct), step)]
            with ThreadPoolExecutor(workers, thread_name_prefix="pinnacle-fs-read") as pool:
                parts = list(pool.map(self._get_slice, slices))  # raises the first failure
            blobs = [b for part in parts for b in part]
        by_key = dict(zip(distinct, blobs, strict=True))
        return [by_key[k] for k in keys]

    def _get_slice(self, keys: Sequence[tuple[str, int | None]]) -> list[bytes]:
        return [self.get(sha, size) for sha, size in keys]

    def size(self, sha256: str) -> int:
        """Size of the blob file."""
        size = _regular_size(self._blob_path(sha256))
        if size is None:
            raise ArtifactNotFound(f"no blob {sha256} in {self._where}")
        return size

    def exists(self, sha256: str) -> bool:
        """Whether the blob file exists."""
        return _regular_size(self._blob_path(sha256)) is not None

    def delete(self, sha256: str) -> None:
        """Unlink the blob file (no error if absent)."""
        try:
            os.unlink(self._blob_path(sha256))
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            raise self._error("delete a blob", exc) from exc

    def iter_refs(self) -> Iterator[ArtifactRef]:
        """Every file at ``<root>/<xx>/<sha>`` (temp files and foreign files are ignored)."""
        for _shard, entry in self._blob_entries():
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted meanwhile
            if stat.S_ISREG(st.st_mode):
                yield ArtifactRef(sha256=entry.name, size=st.st_size)

    def _blob_entries(self) -> Iterator[tuple[str, os.DirEntry[str]]]:
        try:
            shards = [e for e in os.scandir(self.root) if len(e.name) == 2]
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._error("list blobs", exc) from exc
        for shard in shards:
            if not shard.is_dir(follow_symlinks=False):
                continue
            try:
                entries = list(os.scandir(shard.path))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if is_blob(shard.name, entry.name):
                    yield shard.name, entry

    # ------------------------------------------------------------------ removal
    def drop(self) -> None:
        """Remove every blob file, our temp files and then-empty shard dirs (nothing else)."""
        shards: set[str] = set()
        try:
            for shard, entry in list(self._blob_entries()):
                shards.add(shard)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            for shard in shards:
                with contextlib.suppress(OSError):  # not empty: someone else's file is in it
                    os.rmdir(self.root / shard)
            self._remove_temps(older_than=None)
            with contextlib.suppress(OSError):
                os.rmdir(self.root / TEMP_DIR)
            if self._fsync and self.root.is_dir():
                _fsync_dir(self.root)
        except OSError as exc:
            raise self._error("drop the store", exc) from exc

    def remove_stale_temp_files(self, older_than: float, dry_run: bool = False) -> int:
        """Remove temp files of puts that died (not modified for ``older_than`` seconds)."""
        try:
            return self._remove_temps(older_than=older_than, dry_run=dry_run)
        except OSError as exc:
            raise self._error("remove stale temp files", exc) from exc

    def _remove_temps(self, *, older_than: float | None, dry_run: bool = False) -> int:
        tmp_dir = self.root / TEMP_DIR
        try:
            entries = list(os.scandir(tmp_dir))
        except (FileNotFoundError, NotADirectoryError):
            return 0
        cutoff = None if older_than is None else time.time() - older_than
        removed = 0
        for entry in entries:
            if not is_temp_name(entry.name):
                continue
            try:
                if cutoff is not None and entry.stat(follow_symlinks=False).st_mtime > cutoff:
                    continue
                if not dry_run:
                    os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                continue
        return removed

    def close(self) -> None:
        """Nothing to release."""
