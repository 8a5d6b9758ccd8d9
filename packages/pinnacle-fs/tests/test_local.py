"""Local-directory behaviour: layout, atomic writes, temp files, streaming, path safety."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tracemalloc
from pathlib import Path
from typing import IO, cast

import pytest

from pinnacle_fs import FsspecArtifactStore
from pinnacle_fs.testing import pattern_bytes, pattern_stream
from pinnacle_protocols import (
    ArtifactCorrupted,
    ArtifactError,
    ArtifactNotFound,
    ArtifactRef,
    BackendUnavailable,
    InvalidArtifactRef,
)

pytestmark = pytest.mark.file

MiB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> FsspecArtifactStore:
    return FsspecArtifactStore.from_uri(f"filesystem://{tmp_path}/store")


def chunky(size: int, *, step: int = 65_537, seed: int = 7) -> IO[bytes]:
    """A non-seekable stream of deterministic bytes, handed out ``step`` bytes at a time."""
    return pattern_stream(size, step=step, seed=seed)


def chunky_bytes(size: int, *, seed: int = 7) -> bytes:
    return pattern_bytes(size, seed=seed)


# --------------------------------------------------------------------------- layout
def test_layout_is_root_shard_sha(store: FsspecArtifactStore) -> None:
    ref = store.put(b"layout")
    path = Path(store.root) / ref.sha256[:2] / ref.sha256
    assert path.read_bytes() == b"layout"
    assert sorted(p.name for p in Path(store.root).iterdir()) == [".pinnacle-tmp", ref.sha256[:2]]
    assert list((Path(store.root) / ".pinnacle-tmp").iterdir()) == []  # renamed away


def test_relative_root_is_resolved_against_cwd_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = FsspecArtifactStore.from_uri("filesystem://./data")
    assert store.root == str(tmp_path / "data")
    assert str(store.uri) == "filesystem://./data"
    default = FsspecArtifactStore.from_uri("filesystem://.pinnacledb/artifacts/")
    assert default.root == str(tmp_path / ".pinnacledb" / "artifacts")
    ref = default.put(b"x")
    monkeypatch.chdir("/")
    assert default.get(ref) == b"x"  # still the directory it was made with
    assert (tmp_path / ".pinnacledb" / "artifacts" / ref.sha256[:2] / ref.sha256).is_file()


def test_absolute_roots(tmp_path: Path) -> None:
    for uri in (f"filesystem://{tmp_path}/a", f"file://{tmp_path}/a", f"local://{tmp_path}/a"):
        store = FsspecArtifactStore.from_uri(uri)
        assert store.root == str(tmp_path / "a")
        assert store.protocol == "file"
    assert FsspecArtifactStore.from_uri(f"file://localhost{tmp_path}/b").root == str(tmp_path / "b")


def test_nothing_is_created_before_first_write(tmp_path: Path) -> None:
    store = FsspecArtifactStore.from_uri(f"filesystem://{tmp_path}/lazy/deep")
    assert list(store.iter_refs()) == []
    assert not store.exists(sha(b""))
    assert not (tmp_path / "lazy").exists()
    store.put(b"now")
    assert (tmp_path / "lazy" / "deep").is_dir()


# --------------------------------------------------------------------------- path safety
TRAVERSAL = [
    "../../etc/passwd",
    "/etc/passwd",
    "..",
    "A" * 64,
    "ABCDEF" + "0" * 58,
    "0" * 63,
    "0" * 65,
    "../" + "0" * 61,
    "00/" + "0" * 61,
    "0" * 62 + "/.",
    "0" * 63 + "\x00",
    "0" * 63 + "\n",
]


@pytest.mark.parametrize("bad", TRAVERSAL, ids=[repr(b)[:20] for b in TRAVERSAL])
def test_path_traversal_is_impossible(tmp_path: Path, bad: str) -> None:
    """Bad keys raise InvalidArtifactRef before any path is built; nothing outside is touched."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    store = FsspecArtifactStore.from_uri(f"filesystem://{tmp_path}/store")
    store.put(b"something")
    for call in (store.get, store.open, store.exists, store.size, store.delete):
        with pytest.raises(InvalidArtifactRef):
            call(bad)
    assert victim.read_text() == "keep me"


def test_non_string_keys_are_invalid(store: FsspecArtifactStore) -> None:
    for bad in (None, 123, b"0" * 64, Path("0" * 64)):
        with pytest.raises(InvalidArtifactRef):
            store.get(bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- puts
def test_put_streams_with_bounded_memory(store: FsspecArtifactStore) -> None:
    """A 96 MiB put (or read) allocates a few chunks (4 of 4 MiB may wait for hashing), not the
    blob."""
    size = 96 * MiB
    assert store.chunk_size == 4 * MiB
    tracemalloc.start()
    try:
        ref = store.put(chunky(size))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref.size == size
    assert peak < 6 * store.chunk_size, f"peak {peak / MiB:.1f} MiB"
    tracemalloc.start()
    try:
        with store.open(ref) as reader:
            h = hashlib.sha256()
            while block := reader.read(MiB):
                h.update(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert h.hexdigest() == ref.sha256
    assert peak < 6 * store.chunk_size, f"peak {peak / MiB:.1f} MiB"


def test_put_many_chunk_sizes(tmp_path: Path) -> None:
    data = chunky_bytes(1_000_003)
    for chunk_size in (1, 7, 4096, 65_536, 999_999, 1_000_003, 8 * MiB):
        store = FsspecArtifactStore.from_uri(
            f"file://{tmp_path}/c{chunk_size}", chunk_size=chunk_size
        )
        small = data[:5000] if chunk_size < 100 else data
        for source in (small, io.BytesIO(small), chunky(len(small), step=333)):
            ref = store.put(source)
            assert ref == ArtifactRef(sha256=sha(small), size=len(small))
            assert store.get(ref) == small


def test_put_accepts_bytearray_memoryview_and_real_files(
    store: FsspecArtifactStore, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    assert store.put(bytearray(data)).sha256 == sha(data)
    assert store.put(memoryview(data)).sha256 == sha(data)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    with open(src, "rb") as f:
        f.seek(1000)  # from the current position to EOF
        assert store.put(f) == ArtifactRef(sha256=sha(data[1000:]), size=len(data) - 1000)
    with open(src, "rb", buffering=0) as f:
        assert store.put(f).sha256 == sha(data)


def test_put_rejects_text(store: FsspecArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not text"):
        store.put("a string")  # type: ignore[arg-type]
    (tmp_path / "t.txt").write_text("text")
    with open(tmp_path / "t.txt") as f, pytest.raises(TypeError):
        store.put(f)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.put(12345)  # type: ignore[arg-type]
    assert list(store.iter_refs()) == []
    assert not (Path(store.root) / ".pinnacle-tmp").exists()  # rejected before any write


def test_failed_put_leaves_nothing(store: FsspecArtifactStore) -> None:
    class Boom(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
            self.calls += 1
            if self.calls > 3:
                raise OSError("source died")
            memoryview(b)[:10] = b"0123456789"
            return 10

    with pytest.raises(ArtifactError, match="source died"):
        store.put(cast(IO[bytes], Boom()))
    assert list(store.iter_refs()) == []
    assert list((Path(store.root) / ".pinnacle-tmp").iterdir()) == []


def test_idempotent_put_keeps_one_file_and_repairs_a_damaged_one(
    store: FsspecArtifactStore,
) -> None:
    data = b"idempotent" * 1000
    ref = store.put(data)
    path = Path(store.root) / ref.sha256[:2] / ref.sha256
    assert store.put(io.BytesIO(data)) == ref
    assert [p.name for p in path.parent.iterdir()] == [ref.sha256]
    path.write_bytes(data[:100])  # truncated behind the store's back
    assert store.put(data) == ref
    assert path.read_bytes() == data  # replaced atomically
    flipped = bytearray(data)
    flipped[5000] ^= 0xFF
    path.write_bytes(bytes(flipped))  # same size, wrong bytes
    with pytest.raises(ArtifactCorrupted):
        store.get(ref)
    assert store.put(io.BytesIO(data)) == ref
    assert path.read_bytes() == data
    assert store.get(ref) == data
    assert list((Path(store.root) / ".pinnacle-tmp").iterdir()) == []


def test_fsync_can_be_switched_off(tmp_path: Path) -> None:
    for value in (False, "false"):
        store = FsspecArtifactStore(f"file://{tmp_path}/nofsync", fsync=value)  # type: ignore[arg-type]
        assert store.get(store.put(b"fast")) == b"fast"
    store = FsspecArtifactStore.from_uri(f"file://{tmp_path}/q?fsync=false&chunk_size=1024")
    assert store.chunk_size == 1024
    assert store.get(store.put(b"q" * 5000)) == b"q" * 5000


# --------------------------------------------------------------------------- reads
def test_reader_hands_out_copies_of_its_reused_buffers(tmp_path: Path) -> None:
    """Local reads reuse a small pool of buffers: bytes returned earlier must not change."""
    store = FsspecArtifactStore.from_uri(f"file://{tmp_path}/pool", chunk_size=64 * 1024)
    data = chunky_bytes(3 * MiB + 17)
    ref = store.put(data)
    pieces: list[bytes] = []
    with store.open(ref) as reader:
        while piece := reader.read(10_000):  # many blocks pass through the same buffers
            pieces.append(piece)
        assert getattr(reader, "verified") is True  # noqa: B009
    assert b"".join(pieces) == data
    with store.open(ref) as reader:
        views = [reader.read(64 * 1024) for _ in range(8)]  # whole blocks
        rest = reader.read()
    assert b"".join(views) + rest == data


def test_put_starts_disk_writeback_per_chunk_on_linux() -> None:
    """A durable put starts writeback chunk by chunk (overlapping the hashing) on Linux; other
    systems do without (the final fsync alone makes the blob durable there)."""
    from pinnacle_fs import _local

    assert (_local._sync_file_range is not None) == sys.platform.startswith("linux")


def test_reader_api(store: FsspecArtifactStore) -> None:
    data = chunky_bytes(10 * MiB + 3)
    ref = store.put(data)
    with store.open(ref) as opened:
        r = cast(io.BufferedIOBase, opened)
        assert r.readable()
        assert not r.seekable()
        assert not r.writable()
        buf = bytearray(1000)
        assert r.readinto(buf) == 1000
        assert bytes(buf) == data[:1000]
        one = r.read1(10 * MiB)
        assert 0 < len(one) <= store.chunk_size
        assert one == data[1000 : 1000 + len(one)]
        pos = 1000 + len(one)
        big = bytearray(5 * MiB)
        assert r.readinto(big) == 5 * MiB
        assert bytes(big) == data[pos : pos + 5 * MiB]
        rest = r.read()
        assert rest == data[pos + 5 * MiB :]
        assert r.read() == b""
        assert r.read(10) == b""
        assert getattr(r, "verified") is True  # noqa: B009
    with pytest.raises(ValueError, match="closed"):
        r.read()
    with store.open(ref) as again:
        assert b"".join(iter(lambda: again.read(777_777), b"")) == data


def test_corruption_is_detected(store: FsspecArtifactStore) -> None:
    data = chunky_bytes(9 * MiB)
    ref = store.put(data)
    path = Path(store.root) / ref.sha256[:2] / ref.sha256
    with open(path, "r+b") as f:  # flip one byte in the middle of the second chunk
        f.seek(6 * MiB)
        byte = f.read(1)
        f.seek(6 * MiB)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ArtifactCorrupted, match=ref.sha256):
        store.get(ref)
    with store.open(ref) as r:
        assert r.read(5 * MiB) == data[: 5 * MiB]  # the bad byte is read, the end is not
        with pytest.raises(ArtifactCorrupted):
            r.read()
        with pytest.raises(ArtifactCorrupted):  # and on every later read
            r.read(1)
    # reading only a prefix never reaches EOF: no verdict, no error
    with store.open(ref) as r:
        assert r.read(100) == data[:100]


def test_truncated_blob_is_corrupted(store: FsspecArtifactStore) -> None:
    ref = store.put(b"0123456789")
    (Path(store.root) / ref.sha256[:2] / ref.sha256).write_bytes(b"01234")
    with pytest.raises(ArtifactCorrupted):
        store.get(ref)
    assert store.size(ref) == 5  # size() reports what is there


def test_ref_with_wrong_size_is_corrupted(store: FsspecArtifactStore) -> None:
    ref = store.put(b"sized")
    lying = ArtifactRef(sha256=ref.sha256, size=999)
    with pytest.raises(ArtifactCorrupted, match="999"):
        store.get(lying)
    with pytest.raises(ArtifactCorrupted), store.open(lying) as r:
        r.read()
    assert store.get(ref.sha256) == b"sized"


def test_progress_with_fsspec_callback(store: FsspecArtifactStore) -> None:
    from fsspec.callbacks import Callback

    data = chunky_bytes(5 * MiB + 1)
    cb = Callback()
    ref = store.put(io.BytesIO(data), callback=cb)
    assert (cb.size, cb.value) == (len(data), len(data))
    cb = Callback()
    with store.open(ref, callback=cb) as r:
        r.read()
    assert (cb.size, cb.value) == (len(data), len(data))
    cb = Callback()
    store.put(chunky(1000), callback=cb)  # unknown size: no set_size, updates only
    assert (cb.size, cb.value) == (None, 1000)


# --------------------------------------------------------------------------- listing, drop
def test_iter_refs_ignores_temp_and_foreign_files(store: FsspecArtifactStore) -> None:
    ref = store.put(b"real")
    root = Path(store.root)
    (root / ".pinnacle-tmp" / ("a" * 32 + ".part")).write_bytes(b"partial")
    (root / "README.txt").write_text("not a blob")
    (root / "zz").mkdir()
    (root / "zz" / ("z" * 64)).write_text("not hex")
    (root / ref.sha256[:2] / ("0" * 64)).write_text("wrong shard")
    (root / ref.sha256[:2] / (ref.sha256 + ".bak")).write_text("suffix")
    (root / "ab").mkdir(exist_ok=True)
    (root / "ab" / ("ab" + "0" * 62)).mkdir()  # a directory with a blob's name
    assert list(store.iter_refs()) == [ref]


def test_drop_deletes_only_blobs_and_temp_files(store: FsspecArtifactStore) -> None:
    ref = store.put(b"blob")
    root = Path(store.root)
    (root / ".pinnacle-tmp" / ("b" * 32 + ".part")).write_bytes(b"partial")
    (root / ".pinnacle-tmp" / "someone-elses.txt").write_text("keep")
    (root / "README.txt").write_text("keep")
    (root / ref.sha256[:2] / "notes.txt").write_text("keep")
    store.drop(force=True)
    assert list(store.iter_refs()) == []
    assert (root / "README.txt").read_text() == "keep"
    assert (root / ref.sha256[:2] / "notes.txt").read_text() == "keep"
    assert sorted(p.name for p in (root / ".pinnacle-tmp").iterdir()) == ["someone-elses.txt"]
    assert root.is_dir()
    assert store.put(b"blob") == ref  # usable after a drop


def test_drop_never_leaves_its_root(tmp_path: Path) -> None:
    outside = tmp_path / ("c" * 2)
    outside.mkdir()
    (outside / ("c" * 64)).write_text("a blob-looking file of a neighbour")
    store = FsspecArtifactStore.from_uri(f"file://{tmp_path}/inner")
    store.put(b"mine")
    store.drop(force=True)
    assert (outside / ("c" * 64)).exists()


def test_stale_temp_files_are_removed(store: FsspecArtifactStore) -> None:
    store.put(b"x")
    tmp = Path(store.root) / ".pinnacle-tmp"
    old = tmp / ("d" * 32 + ".part")
    new = tmp / ("e" * 32 + ".part")
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    os.utime(old, (1_000_000_000, 1_000_000_000))
    assert store.remove_stale_temp_files(dry_run=True) == 1
    assert old.exists()
    assert store.remove_stale_temp_files() == 1
    assert not old.exists()
    assert new.exists()
    assert store.remove_stale_temp_files(older_than=0) == 1
    assert not new.exists()


def test_permission_problems_are_backend_unavailable(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores directory permissions; a regular file in the way of the root fails too
        (tmp_path / "file").write_text("in the way")
        store = FsspecArtifactStore.from_uri(f"file://{tmp_path}/file/store")
        with pytest.raises((BackendUnavailable, ArtifactError)) as info:
            store.put(b"x")
        assert str(tmp_path) in str(info.value) or "file" in str(info.value)
        return
    ro = tmp_path / "ro"  # pragma: no cover - CI runs as root
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(BackendUnavailable, match="writable"):
        FsspecArtifactStore.from_uri(f"file://{ro}/s").put(b"x")


def test_closed_store_refuses(store: FsspecArtifactStore) -> None:
    ref = store.put(b"x")
    with store:
        pass
    for call in (store.get, store.exists, store.size, store.delete, store.open):
        with pytest.raises(BackendUnavailable, match="closed"):
            call(ref)
    with pytest.raises(BackendUnavailable):
        store.put(b"y")
    with pytest.raises(BackendUnavailable):
        store.iter_refs()
    store.close()  # idempotent


def test_missing_blob_errors_name_the_store(store: FsspecArtifactStore) -> None:
    with pytest.raises(ArtifactNotFound, match=str(store.uri).replace("/", ".")):
        store.get(sha(b"nope"))


@pytest.mark.parametrize("uri", ["filesystem://rel/arts/", "file://rel/arts", "filesystem://~/x"])
def test_errors_of_a_relative_root_name_the_resolved_directory(
    uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative (or ``~``) root depends on the working directory: say which one it was."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    store = FsspecArtifactStore.from_uri(uri)
    with pytest.raises(ArtifactNotFound) as missing:
        store.get(sha(b"nope"))
    assert f"{store.uri} (= {store.root})" in str(missing.value)
    assert str(tmp_path) in str(missing.value)


def test_errors_of_an_absolute_root_name_it_once(tmp_path: Path) -> None:
    store = FsspecArtifactStore.from_uri(f"filesystem://{tmp_path}/arts/")
    with pytest.raises(ArtifactNotFound) as missing:
        store.get(sha(b"nope"))
    assert str(missing.value).endswith(f"in filesystem://{tmp_path}/arts/")


def test_large_chunks_are_written_in_small_calls_and_short_writes_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each write call carries at most 256 KiB (large writes stall on Linux with large folios),
    and a short write (the kernel took fewer bytes) continues where it stopped. The real
    ``os.write`` does the writing; the wrapper only records sizes and caps one call."""
    sizes: list[int] = []
    real_write = os.write

    def recording_write(fd: int, data: memoryview) -> int:
        sizes.append(len(data))
        return real_write(fd, data[:100_000] if len(sizes) == 3 else data)

    monkeypatch.setattr(os, "write", recording_write)
    payload = os.urandom(4 * (1 << 20) + 123)
    store = FsspecArtifactStore.from_uri(f"filesystem://{tmp_path}/s", chunk_size=4 << 20)
    ref = store.put(payload)
    assert max(sizes) == 256 << 10
    assert sum(sizes) - sizes[2] + 100_000 == len(payload)  # every byte handed over once
    assert ref.sha256 == hashlib.sha256(payload).hexdigest()
    assert store.get(ref.sha256) == payload


def test_get_many_reads_in_threads_and_raises_the_first_failure_in_order(
    store: FsspecArtifactStore,
) -> None:
    """Past the thread threshold the results keep their order and the first failing ref (by
    position, not by which thread saw it first) raises; a ref's size is checked as get does."""
    from pinnacle_protocols import SupportsGetMany

    assert isinstance(store, SupportsGetMany)
    blobs = [f"blob {i:04d}".encode() * (1 + i % 7) for i in range(300)]
    refs = [store.put(b) for b in blobs]
    assert store.get_many([*reversed(refs), refs[5]]) == [*reversed(blobs), blobs[5]]
    missing = sha(b"never stored")
    bad = refs[250].sha256
    (Path(store.root) / bad[:2] / bad).write_bytes(b"flipped")
    with pytest.raises(ArtifactNotFound, match=missing):
        store.get_many([*refs[:10], missing, *refs[10:]])
    with pytest.raises(ArtifactCorrupted, match=bad):
        store.get_many(refs)
    wrong_size = ArtifactRef(sha256=refs[3].sha256, size=refs[3].size + 1)
    with pytest.raises(ArtifactCorrupted, match="ref says"):
        store.get_many([*refs[:3], wrong_size])
