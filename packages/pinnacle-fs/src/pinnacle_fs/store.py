"""FsspecArtifactStore: a content-addressed blob store on a local directory or any fsspec FS."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, Self

from pinnacle_fs._layout import key_of
from pinnacle_fs._local import LocalBackend
from pinnacle_fs._remote import FsspecBackend
from pinnacle_fs._source import Data
from pinnacle_protocols import (
    ArtifactRef,
    BackendUnavailable,
    ConfigError,
    DropRefused,
    InvalidURIError,
    ProgressCallback,
    RedactedURI,
    RefLike,
)
from pinnacle_protocols.uri import is_secret_key

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_REMOTE_CHUNK_SIZE",
    "DEFAULT_S3_BLOCK_SIZE",
    "FsspecArtifactStore",
]

#: Bytes read, hashed and written at a time. A local put or open holds up to about 4 chunks
#: of 4 MiB (16 MiB, see ``pinnacle_fs._hashing.IN_FLIGHT_BYTES``) while they wait for hashing.
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
#: Chunk size of the other fsspec protocols (their transfers go in ``block_size`` parts).
DEFAULT_REMOTE_CHUNK_SIZE = 1024 * 1024
#: S3 multipart part size (s3fs buffers one part; S3 needs at least 5 MiB).
DEFAULT_S3_BLOCK_SIZE = 8 * 1024 * 1024

_LOCAL_SCHEMES = frozenset({"filesystem", "file", "local"})
_S3_SCHEMES = frozenset({"s3", "s3a"})
_SECRET_WORDS = ("key", "secret", "token", "password", "credential", "sas")
_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class _Backend(Protocol):
    def put(self, data: Data, callback: ProgressCallback | None) -> ArtifactRef: ...
    def open(
        self, sha256: str, expected_size: int | None, callback: ProgressCallback | None
    ) -> IO[bytes]: ...
    def get(self, sha256: str, expected_size: int | None) -> bytes: ...
    def get_many(self, keys: Sequence[tuple[str, int | None]]) -> list[bytes]: ...
    def size(self, sha256: str) -> int: ...
    def exists(self, sha256: str) -> bool: ...
    def delete(self, sha256: str) -> None: ...
    def iter_refs(self) -> Iterator[ArtifactRef]: ...
    def drop(self) -> None: ...
    def remove_stale_temp_files(self, older_than: float, dry_run: bool = False) -> int: ...
    def close(self) -> None: ...


def _is_secret_key(key: str) -> bool:
    """RedactedURI's rule, plus any option name containing one of ``_SECRET_WORDS``."""
    k = key.lower()
    return is_secret_key(key) or (any(word in k for word in _SECRET_WORDS) and k != "endpoint_url")


def _secret_values(options: Mapping[str, Any]) -> list[str]:
    """Every string stored under a secret-looking key, however deep (for scrubbing messages)."""
    found: list[str] = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            found.extend(_secret_values(value))
        elif isinstance(value, str) and _is_secret_key(str(key)) and len(value) >= 3:
            found.append(value)
    return found


def _coerce(key: str, value: str) -> Any:
    """A URI query value for fsspec: ``true``/``false`` become booleans (never for secrets)."""
    if not _is_secret_key(key) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _positive_int(name: str, value: Any, where: RedactedURI) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}: {name} must be a positive int (bytes), got {value!r}")
    return value


def _flag(name: str, value: Any, where: RedactedURI) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.lower()]
    raise ConfigError(f"{where}: {name} must be true or false, got {value!r}")


@dataclass(frozen=True)
class _Storage:
    """What a store is built from: where it lives, how it is shown, and its backend."""

    uri: RedactedURI
    root: str
    protocol: str
    chunk_size: int
    backend: _Backend


def _open_storage(
    uri: str | RedactedURI,
    *,
    chunk_size: int | None,
    fsync: bool | None,
    block_size: int | None,
    concurrency: int | None,
    storage_options: Mapping[str, Any],
) -> _Storage:
    """Parse the URI and options of :class:`FsspecArtifactStore` and choose its backend.

    Keyword arguments win over the query string; the four store options are removed from the
    query either way, and what is left are fsspec storage options.
    """
    parsed = RedactedURI.parse(uri)
    query = dict(parsed.query)
    chunk_value = chunk_size if chunk_size is not None else query.pop("chunk_size", None)
    fsync_value = fsync if fsync is not None else query.pop("fsync", None)
    block_value = block_size if block_size is not None else query.pop("block_size", None)
    conc_value = concurrency if concurrency is not None else query.pop("concurrency", None)
    for name in ("chunk_size", "fsync", "block_size", "concurrency"):
        query.pop(name, None)
    local = parsed.scheme in _LOCAL_SCHEMES
    chunk = (
        (DEFAULT_CHUNK_SIZE if local else DEFAULT_REMOTE_CHUNK_SIZE)
        if chunk_value is None
        else _positive_int("chunk_size", chunk_value, parsed)
    )
    if local:
        return _local_storage(
            parsed, query, storage_options=storage_options, chunk=chunk, fsync_value=fsync_value
        )
    return _remote_storage(
        parsed,
        query,
        storage_options=storage_options,
        chunk=chunk,
        block_value=block_value,
        conc_value=conc_value,
    )


def _local_storage(
    parsed: RedactedURI,
    query: Mapping[str, str],
    *,
    storage_options: Mapping[str, Any],
    chunk: int,
    fsync_value: Any,
) -> _Storage:
    """A local directory, written with plain ``os`` calls."""
    if query or storage_options:
        names = sorted([*query, *storage_options])
        raise ConfigError(
            f"{parsed}: a local directory takes no storage options, got {names}; "
            "only chunk_size and fsync apply"
        )
    path = parsed.path
    if parsed.scheme == "file" and path.startswith("localhost/"):
        path = path[len("localhost") :]
    root = Path(os.path.abspath(os.path.expanduser(path or ".")))
    # a relative root depends on the working directory: messages name the directory
    where = str(parsed) if path.rstrip("/") == str(root) else f"{parsed} (= {root})"
    backend = LocalBackend(
        root,
        where=where,
        chunk_size=chunk,
        fsync=True if fsync_value is None else _flag("fsync", fsync_value, parsed),
    )
    return _Storage(parsed, str(root), "file", chunk, backend)


def _remote_storage(
    parsed: RedactedURI,
    query: Mapping[str, str],
    *,
    storage_options: Mapping[str, Any],
    chunk: int,
    block_value: Any,
    conc_value: Any,
) -> _Storage:
    """Any other fsspec protocol (S3 with its own URL rules and part size)."""
    scheme = parsed.scheme
    options: dict[str, Any] = {k: _coerce(k, v) for k, v in query.items()}
    if scheme in _S3_SCHEMES:
        url = _s3_url(parsed, options)
    elif parsed.is_path_scheme:
        url = f"{scheme}://{parsed.path}"
    else:
        url = parsed.without_query().reveal()
    options.update(storage_options)
    block = (
        DEFAULT_S3_BLOCK_SIZE
        if block_value is None
        else _positive_int("block_size", block_value, parsed)
    )
    if scheme in _S3_SCHEMES and block < 5 * 1024 * 1024:
        raise ConfigError(f"{parsed}: block_size must be at least 5 MiB for S3, got {block}")
    secrets = _secret_values(options)
    if parsed.password:
        secrets.append(parsed.password)
    backend = FsspecBackend(
        protocol=scheme,
        url=url,
        storage_options=options,
        where=str(parsed),
        chunk_size=chunk,
        block_size=block,
        concurrency=4 if conc_value is None else _positive_int("concurrency", conc_value, parsed),
        secrets=secrets,
    )
    return _Storage(parsed, _display_root(parsed), scheme, chunk, backend)


def _s3_url(parsed: RedactedURI, options: dict[str, Any]) -> str:
    bucket = parsed.host
    if not bucket:
        raise InvalidURIError(
            f"{parsed} has no bucket: use s3://BUCKET/PREFIX?endpoint_url=... "
            "(credentials as key=/secret= keyword arguments or AWS_* variables)"
        )
    if parsed.port is not None:
        raise InvalidURIError(
            f"{parsed}: an s3:// URI names a bucket, not host:port; give the server as "
            "?endpoint_url=http://host:port"
        )
    if parsed.username is not None:
        options.setdefault("key", parsed.username)
    if parsed.password is not None:
        options.setdefault("secret", parsed.password)
    region = options.pop("region_name", None) or options.pop("region", None)
    if region is not None:
        client_kwargs = dict(options.get("client_kwargs") or {})
        client_kwargs.setdefault("region_name", region)
        options["client_kwargs"] = client_kwargs
    # No listing cache: exists()/size() must see other processes' writes and deletes.
    # (s3fs still shares one client between stores with the same options.)
    options.setdefault("use_listings_cache", False)
    return f"{parsed.scheme}://{bucket}{parsed.path}"


def _display_root(parsed: RedactedURI) -> str:
    if parsed.is_path_scheme:
        return parsed.path
    return f"{parsed.host or ''}{parsed.path}".rstrip("/")


class FsspecArtifactStore:
    """A content-addressed, streaming, crash-safe blob store.

    Blobs live at ``<root>/<sha256[:2]>/<sha256>``; writes in progress live in
    ``<root>/.pinnacle-tmp/`` and are never listed. Keys are validated as sha256 hex digests
    before any path is built from them.

    Local directories (``filesystem://``, ``file://``) are written with plain ``os`` calls:
    temp file, ``fsync``, atomic ``os.replace``, ``fsync`` of the directory. Every other
    protocol goes through fsspec (see :mod:`pinnacle_fs._remote` and :mod:`pinnacle_fs._s3` for
    how S3 publishes objects atomically). Construction is cheap: nothing is touched (and no
    driver is imported) before the first operation.

    Use :meth:`from_uri` (the entry point of the ``pinnacle.artifact_stores`` group) or the
    constructor, which takes the same arguments.
    """

    def __init__(
        self,
        uri: str | RedactedURI,
        *,
        chunk_size: int | None = None,
        fsync: bool | None = None,
        block_size: int | None = None,
        concurrency: int | None = None,
        **storage_options: Any,
    ) -> None:
        """Open (lazily) the store at ``uri``.

        Args:
            uri: ``filesystem://./rel``, ``filesystem:///abs``, ``file:///abs``,
                ``memory://name``, ``s3://bucket/prefix?endpoint_url=...``, ``gs://bucket/p``
                or any URL of an installed fsspec protocol. Query parameters other than
                ``chunk_size``, ``fsync``, ``block_size`` and ``concurrency`` are fsspec
                storage options
                (``true``/``false`` become booleans).
            chunk_size: Bytes read, hashed and written at a time (default 4 MiB for local
                roots, 1 MiB for other protocols).
            fsync: Local roots only: fsync files and directories (default True). False trades
                durability on power loss for speed; atomicity is kept.
            block_size: S3 multipart part size and ranged-read size in bytes (default 8 MiB,
                at least 5 MiB).
            concurrency: S3 parts uploaded at once (default 4); memory of a put is about
                ``(concurrency + 1) * block_size``.
            **storage_options: More fsspec storage options (``key``, ``secret``, ``token``,
                ``endpoint_url``, ``client_kwargs``...); they win over the query string and
                are never shown.

        Raises:
            InvalidURIError: the URI is malformed or lacks a bucket.
            ConfigError: an option has a wrong value.
        """
        self._closed = False
        self._adopt(
            _open_storage(
                uri,
                chunk_size=chunk_size,
                fsync=fsync,
                block_size=block_size,
                concurrency=concurrency,
                storage_options=storage_options,
            )
        )

    def _adopt(self, storage: _Storage) -> None:
        self._uri = storage.uri
        self._root = storage.root
        self._protocol = storage.protocol
        self._chunk_size = storage.chunk_size
        self._backend: _Backend = storage.backend

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> Self:
        """Build a store from a URI (see the constructor for URIs and options)."""
        return cls(uri, **options)

    @classmethod
    def from_filesystem(
        cls,
        fs: Any,
        root: str,
        *,
        chunk_size: int | None = None,
        block_size: int | None = None,
    ) -> Self:
        """A store under ``root`` of an fsspec filesystem object you configured yourself.

        Args:
            fs: An ``fsspec.AbstractFileSystem`` instance.
            root: Directory (or ``bucket/prefix``) inside ``fs``.
            chunk_size: Bytes per read/hash/write step (default 1 MiB).
            block_size: S3 multipart part size (default 8 MiB).
        """
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        parsed = RedactedURI.parse(fs.unstrip_protocol(root))
        store = cls.__new__(cls)
        store._closed = False
        chunk = (
            DEFAULT_REMOTE_CHUNK_SIZE
            if chunk_size is None
            else _positive_int("chunk_size", chunk_size, parsed)
        )
        backend = FsspecBackend(
            protocol=protocol,
            url=None,
            storage_options={},
            where=str(parsed),
            chunk_size=chunk,
            block_size=DEFAULT_S3_BLOCK_SIZE
            if block_size is None
            else _positive_int("block_size", block_size, parsed),
            fs=fs,
            root=fs._strip_protocol(root),
        )
        store._adopt(_Storage(parsed, root, protocol, chunk, backend))
        return store

    # ------------------------------------------------------------------ properties
    @property
    def uri(self) -> RedactedURI:
        """Where the store lives (secrets masked when shown)."""
        return self._uri

    @property
    def root(self) -> str:
        """The root directory (absolute for local roots) or ``bucket/prefix``."""
        return self._root

    @property
    def protocol(self) -> str:
        """``"file"`` for local roots, else the fsspec protocol (``"s3"``, ``"memory"``...)."""
        return self._protocol

    @property
    def chunk_size(self) -> int:
        """Bytes read, hashed and written at a time."""
        return self._chunk_size

    def __repr__(self) -> str:
        return f"FsspecArtifactStore({str(self._uri)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailable(
                f"{self._uri} is closed; create a new store with from_uri({str(self._uri)!r})"
            )

    # ------------------------------------------------------------------ ArtifactStore
    def put(
        self,
        data: bytes | bytearray | memoryview | IO[bytes],
        *,
        callback: ProgressCallback | None = None,
    ) -> ArtifactRef:
        """Store ``data`` (bytes or a binary file object read to EOF) and return its ref.

        Streams in chunks, hashing while writing; memory is bounded by the chunk size. Storing
        bytes that are already stored returns the same ref and stores nothing new.

        Args:
            data: The bytes (``bytes``, ``bytearray``, ``memoryview``), or a binary file object
                read from its current position to EOF.
            callback: Progress: ``set_size(total)`` when the size is known up front, then
                ``relative_update(n)`` per chunk (an ``fsspec.callbacks.Callback`` works).

        Raises:
            TypeError: ``data`` is text or not a binary file object.
            BackendUnavailable: the storage cannot be reached or refuses access.
        """
        self._check_open()
        return self._backend.put(data, callback)

    def open(self, ref: RefLike, *, callback: ProgressCallback | None = None) -> IO[bytes]:
        """A streaming reader that raises ArtifactCorrupted at EOF on a mismatch.

        Args:
            ref: An ArtifactRef (its size is checked too) or a sha256 hex digest.
            callback: Progress: ``set_size(size)`` then ``relative_update(n)`` per block read.

        Raises:
            ArtifactNotFound: no such blob.
            InvalidArtifactRef: ``ref`` is not a sha256 hex digest.
        """
        sha, size = key_of(ref)
        self._check_open()
        return self._backend.open(sha, size, callback)

    def get(self, ref: RefLike) -> bytes:
        """The verified bytes (ArtifactCorrupted on mismatch, ArtifactNotFound if absent)."""
        sha, size = key_of(ref)
        self._check_open()
        return self._backend.get(sha, size)

    def get_many(self, refs: Sequence[RefLike]) -> list[bytes]:
        """The verified bytes of each ref, in order (``SupportsGetMany``).

        Every key is validated before anything is read; each distinct blob is read once and
        verified exactly as :meth:`get` verifies it. Local roots read with a few threads,
        other protocols with one ``fs.cat`` call (concurrent requests on S3).

        Raises:
            InvalidArtifactRef: a ref is not a sha256 hex digest.
            ArtifactNotFound: a blob is absent (the first in order that fails).
            ArtifactCorrupted: a blob does not verify (the first in order that fails).
        """
        keys = [key_of(r) for r in refs]
        self._check_open()
        return self._backend.get_many(keys) if keys else []

    def exists(self, ref: RefLike) -> bool:
        """Whether a complete blob with this key is stored."""
        sha, _ = key_of(ref)
        self._check_open()
        return self._backend.exists(sha)

    def size(self, ref: RefLike) -> int:
        """The blob's size in bytes (ArtifactNotFound if absent)."""
        sha, _ = key_of(ref)
        self._check_open()
        return self._backend.size(sha)

    def delete(self, ref: RefLike) -> None:
        """Remove the blob; deleting an absent blob is not an error."""
        sha, _ = key_of(ref)
        self._check_open()
        self._backend.delete(sha)

    def iter_refs(self) -> Iterator[ArtifactRef]:
        """Every complete blob, in no particular order (never a partial one)."""
        self._check_open()
        return self._backend.iter_refs()

    def drop(self, *, force: bool = False) -> None:
        """Delete every blob of this store (and nothing outside it).

        Only ``<root>/<xx>/<sha256>`` blobs and this package's temp files are removed (plus
        shard directories left empty); any other file under the root is left alone, and so is
        the root itself.

        Raises:
            DropRefused: ``force`` is not True; nothing was deleted.
        """
        if force is not True:
            raise DropRefused(
                f"refusing to delete every blob of {self._uri}; call drop(force=True) to confirm"
            )
        self._check_open()
        self._backend.drop()

    def remove_stale_temp_files(self, older_than: float = 3600.0, *, dry_run: bool = False) -> int:
        """Delete temp files left by puts that died (crash, kill) and return how many.

        Args:
            older_than: Only temp files not modified for this many seconds (default one hour,
                so puts in progress are left alone).
            dry_run: Only count them; delete nothing.
        """
        self._check_open()
        return self._backend.remove_stale_temp_files(older_than, dry_run)

    def close(self) -> None:
        """Release the filesystem; the store may not be used afterwards."""
        if not self._closed:
            self._closed = True
            self._backend.close()
