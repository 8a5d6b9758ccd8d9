"""s3:// against a real S3 server (SeaweedFS on 127.0.0.1): publishing, errors, secrets."""

from __future__ import annotations

import hashlib
import io
import socket
import uuid
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, cast

import pytest

from pinnacle_fs import FsspecArtifactStore
from pinnacle_fs.testing import pattern_bytes, pattern_stream
from pinnacle_protocols import (
    ArtifactCorrupted,
    ArtifactError,
    ArtifactNotFound,
    ArtifactRef,
    BackendUnavailable,
)

if TYPE_CHECKING:
    from conftest import S3Target

pytestmark = pytest.mark.s3

Factory = Callable[..., FsspecArtifactStore]
MiB = 1024 * 1024
WRONG_SECRET = "Wr0ng-S3cret-Value-4711"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keys_under(s3: S3Target, store: FsspecArtifactStore) -> list[str]:
    fs = s3.s3fs()
    return sorted(k[len(store.root) + 1 :] for k in fs.find(store.root))


class Probe:
    """A ProgressCallback that runs ``check`` once, after ``at`` bytes went through."""

    def __init__(self, at: int, check: Callable[[], None]) -> None:
        self.at = at
        self.done = 0
        self.check = check
        self.ran = False

    def set_size(self, size: int) -> None:
        pass

    def relative_update(self, inc: int = 1) -> None:
        self.done += inc
        if not self.ran and self.done >= self.at:
            self.ran = True
            self.check()


def multipart_uploads(s3: S3Target) -> list[dict[str, Any]]:
    fs = s3.s3fs()
    out = fs.call_s3("list_multipart_uploads", Bucket=s3.bucket)
    return list(out.get("Uploads", []))


# --------------------------------------------------------------------------- publishing
def test_direct_multipart_put_is_invisible_until_complete(
    s3: S3Target, s3_store_factory: Factory
) -> None:
    """Bytes (hash known up front) go straight to the final key in 5 MiB parts; nothing is
    visible under that key (or anywhere) before the upload completes."""
    store = s3_store_factory(block_size=5 * MiB)
    data = pattern_bytes(12 * MiB, seed=21)
    final = f"{sha(data)[:2]}/{sha(data)}"
    seen: list[list[str]] = []
    probe = Probe(11 * MiB, lambda: seen.append(keys_under(s3, store)))  # 2 parts sent
    ref = store.put(data, callback=probe)
    assert probe.ran
    assert seen == [[]], f"visible during the upload: {seen}"
    assert keys_under(s3, store) == [final]
    assert ref == ArtifactRef(sha256=sha(data), size=len(data))
    assert store.get(ref) == data


def test_stream_put_goes_through_a_temp_key(s3: S3Target, s3_store_factory: Factory) -> None:
    """A non-seekable stream is uploaded to .pinnacle-tmp/, then copied; the temp is removed."""
    store = s3_store_factory(block_size=5 * MiB)
    size = 12 * MiB
    seen: list[list[str]] = []
    probe = Probe(11 * MiB, lambda: seen.append(keys_under(s3, store)))
    ref = store.put(pattern_stream(size, seed=22), callback=probe)
    assert seen == [[]]  # the temp object itself appears only when its upload completes
    assert ref.sha256 == sha(pattern_bytes(size, seed=22))
    assert keys_under(s3, store) == [f"{ref.sha256[:2]}/{ref.sha256}"]
    assert list(store.iter_refs()) == [ref]


def test_seekable_file_is_hashed_then_uploaded_directly(
    s3: S3Target, s3_store_factory: Factory, tmp_path: Any
) -> None:
    store = s3_store_factory()
    path = tmp_path / "blob.bin"
    data = pattern_bytes(3 * MiB + 5, seed=23)
    path.write_bytes(data)
    with open(path, "rb") as f:
        ref = store.put(f)
    assert ref.sha256 == sha(data)
    assert keys_under(s3, store) == [f"{ref.sha256[:2]}/{ref.sha256}"]
    with open(path, "rb") as f:  # stored already: not uploaded again
        probe = Probe(1, lambda: None)
        assert store.put(f, callback=probe) == ref
        assert probe.done == len(data)


class Shifty(io.RawIOBase):
    """Seekable, but gives other bytes after the first rewind (a file changing under us)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pos = 0
        self.rewinds = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = {0: pos, 1: self.pos + pos, 2: self.size + pos}[whence]
        self.rewinds += 1
        return self.pos

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.size - self.pos)
        memoryview(b)[:n] = bytes([self.rewinds % 256]) * n
        self.pos += n
        return n


def test_source_changing_between_passes_stores_nothing(
    s3: S3Target, s3_store_factory: Factory
) -> None:
    store = s3_store_factory(block_size=5 * MiB)
    with pytest.raises(ArtifactError, match="changed while"):
        store.put(cast(IO[bytes], Shifty(11 * MiB)))
    assert keys_under(s3, store) == []
    assert [u for u in multipart_uploads(s3) if u["Key"].startswith(store.root)] == []


class Failing(io.RawIOBase):
    """Seekable; the second pass (the upload) fails after ``fail_at`` bytes."""

    def __init__(self, size: int, fail_at: int) -> None:
        self.size, self.fail_at, self.pos, self.passes = size, fail_at, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = {0: pos, 1: self.pos + pos, 2: self.size + pos}[whence]
        self.passes += 1
        return self.pos

    def readinto(self, b: Any) -> int:
        if self.passes >= 2 and self.pos >= self.fail_at:
            raise OSError("disk went away")
        n = min(len(b), self.size - self.pos)
        memoryview(b)[:n] = b"f" * n
        self.pos += n
        return n


def test_failed_upload_is_aborted(s3: S3Target, s3_store_factory: Factory) -> None:
    """A source failing mid-upload aborts the multipart upload: no object, no pending upload."""
    store = s3_store_factory(block_size=5 * MiB)
    with pytest.raises(ArtifactError, match="reading the data to store failed: disk went away"):
        store.put(cast(IO[bytes], Failing(16 * MiB, fail_at=12 * MiB)))
    assert keys_under(s3, store) == []
    assert [u for u in multipart_uploads(s3) if u["Key"].startswith(store.root)] == []


def test_streaming_read_verifies_with_progress(s3: S3Target, s3_store_factory: Factory) -> None:
    """Ranged reads of 5 MiB blocks, fetched ahead, verified at the end; corruption caught."""
    store = s3_store_factory(block_size=5 * MiB)
    data = pattern_bytes(12 * MiB + 1, seed=24)
    ref = store.put(data)
    sizes: list[int] = []

    class SizeProbe(Probe):
        def set_size(self, size: int) -> None:
            sizes.append(size)

    probe = SizeProbe(10**12, lambda: None)
    with store.open(ref, callback=probe) as reader:
        got = b"".join(iter(lambda: reader.read(1_000_000), b""))
        assert getattr(reader, "verified") is True  # noqa: B009
    assert got == data
    assert sizes == [len(data)]
    assert probe.done == len(data)
    path = f"{store.root}/{ref.sha256[:2]}/{ref.sha256}"
    broken = bytearray(data)
    broken[7 * MiB] ^= 1  # in the second block
    s3.s3fs().pipe_file(path, bytes(broken))
    with store.open(ref) as reader:
        assert reader.read(10 * MiB) == bytes(broken[: 10 * MiB])
        with pytest.raises(ArtifactCorrupted, match=ref.sha256):
            reader.read()


def test_iter_refs_and_drop_read_every_page(s3: S3Target, s3_store_factory: Factory) -> None:
    """ListObjectsV2 answers in pages (at most 1000 keys; 7 here): every page is read."""
    store = s3_store_factory()
    store._backend._list_page_size = 7  # type: ignore[attr-defined]
    blobs = {f"blob {i}".encode(): sha(f"blob {i}".encode()) for i in range(30)}
    fs = s3.s3fs()
    fs.pipe({f"{store.root}/{h[:2]}/{h}": b for b, h in blobs.items()})
    refs = list(store.iter_refs())
    assert len(refs) == 30
    assert {r.sha256 for r in refs} == set(blobs.values())
    store.drop(force=True)
    assert list(store.iter_refs()) == []


def test_drop_and_cleanup_leave_foreign_objects(s3: S3Target, s3_store_factory: Factory) -> None:
    store = s3_store_factory()
    ref = store.put(b"mine")
    fs = s3.s3fs()
    fs.pipe(
        {
            f"{store.root}/README": b"keep",
            f"{store.root}/{ref.sha256[:2]}/notes.txt": b"keep",
            f"{store.root}/.pinnacle-tmp/other.txt": b"keep",
            f"{store.root}/.pinnacle-tmp/{'a' * 32}.part": b"a dead put",
        }
    )
    assert store.remove_stale_temp_files() == 0  # younger than an hour
    assert store.remove_stale_temp_files(older_than=0, dry_run=True) == 1
    assert store.remove_stale_temp_files(older_than=0) == 1
    store.put(b"again")
    fs.pipe_file(f"{store.root}/.pinnacle-tmp/{'b' * 32}.part", b"another dead put")
    store.drop(force=True)
    assert keys_under(s3, store) == sorted(
        [".pinnacle-tmp/other.txt", "README", f"{ref.sha256[:2]}/notes.txt"]
    )


# --------------------------------------------------------------------------- errors, secrets
def test_wrong_credentials_are_a_clear_error_without_the_secret(s3: S3Target) -> None:
    store = FsspecArtifactStore.from_uri(
        s3.uri(f"creds-{uuid.uuid4().hex[:8]}"), key=s3.key, secret=WRONG_SECRET
    )
    sha0 = sha(b"x")
    calls: list[tuple[str, Callable[[], object]]] = [
        ("put", lambda: store.put(b"x")),
        ("put stream", lambda: store.put(pattern_stream(100))),
        ("get", lambda: store.get(sha0)),
        ("open", lambda: store.open(sha0)),
        ("exists", lambda: store.exists(sha0)),
        ("size", lambda: store.size(sha0)),
        ("delete", lambda: store.delete(sha0)),
        ("iter_refs", lambda: list(store.iter_refs())),
        ("drop", lambda: store.drop(force=True)),
    ]
    for name, call in calls:
        with pytest.raises(BackendUnavailable) as info:
            call()
        message = str(info.value)
        assert str(store.uri) in message, name
        assert "credentials" in message, name
        assert WRONG_SECRET not in message, name
        assert WRONG_SECRET not in repr(info.value.__cause__), name
    assert WRONG_SECRET not in repr(store)
    assert WRONG_SECRET not in str(store.uri)


def test_secret_in_the_uri_is_used_but_never_shown(s3: S3Target) -> None:
    prefix = f"uri-creds-{uuid.uuid4().hex[:8]}"
    uri = f"s3://{s3.key}:{s3.secret}@{s3.bucket}/{prefix}?endpoint_url={s3.endpoint_url}"
    store = FsspecArtifactStore.from_uri(uri)
    ref = store.put(b"with creds from the URI")
    assert store.get(ref) == b"with creds from the URI"
    assert s3.secret not in str(store.uri)
    assert s3.secret not in repr(store)
    store.drop(force=True)

    query_uri = f"{s3.uri(prefix)}&key={s3.key}&secret={WRONG_SECRET}"
    bad = FsspecArtifactStore.from_uri(query_uri)
    assert WRONG_SECRET not in str(bad.uri)
    assert WRONG_SECRET not in repr(bad)
    with pytest.raises(BackendUnavailable) as info:
        bad.put(b"x")
    assert WRONG_SECRET not in str(info.value)


def test_unreachable_server_is_backend_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    store = FsspecArtifactStore.from_uri(
        f"s3://bucket/p?endpoint_url=http://127.0.0.1:{port}",
        key="k",
        secret=WRONG_SECRET,
        config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 2},
    )
    for call in (lambda: store.put(b"x"), lambda: store.exists(sha(b"x"))):
        with pytest.raises(BackendUnavailable, match="reachable") as info:
            call()
        assert f"127.0.0.1:{port}" in str(info.value)
        assert WRONG_SECRET not in str(info.value)


def test_absent_blob_on_s3(s3_store_factory: Factory) -> None:
    store = s3_store_factory()
    with pytest.raises(ArtifactNotFound, match="no blob"):
        store.open(sha(b"absent"))
    assert not store.exists(sha(b"absent"))


class _Unseekable(io.RawIOBase):
    """A stream that cannot be read twice: the put goes through a temp object."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        return self._inner.readinto(buf)


def test_put_over_a_damaged_object_replaces_it(s3: S3Target, s3_store_factory: Factory) -> None:
    """An object of the right name and size with wrong bytes is replaced by the next put."""
    store = s3_store_factory()
    data = pattern_bytes(MiB + 3, seed=31)
    ref = store.put(data)
    fs = s3.s3fs()
    path = f"{store.root}/{ref.sha256[:2]}/{ref.sha256}"
    for again in (lambda: data, lambda: _Unseekable(data)):  # direct, then via a temp object
        broken = bytearray(data)
        broken[1000] ^= 0xFF
        fs.pipe_file(path, bytes(broken))
        with pytest.raises(ArtifactCorrupted):
            store.get(ref)
        assert store.put(cast(Any, again())) == ref
        assert store.get(ref) == data
