"""The ArtifactStore contract: example tests and a rule-based state machine."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import IO, Any, ClassVar, Generic, TypeVar

import pytest
from hypothesis import assume, note
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from pinnacle_protocols.errors import (
    ArtifactCorrupted,
    ArtifactNotFound,
    DropRefused,
    InvalidArtifactRef,
)
from pinnacle_protocols.protocols import ArtifactStore, get_many
from pinnacle_protocols.records import ArtifactRef
from pinnacle_protocols.testing._base import ContractBase, StoreStateMachine
from pinnacle_protocols.testing.strategies import blobs, sha256_hex
from pinnacle_protocols.uri import RedactedURI

__all__ = [
    "INVALID_REFS",
    "INVALID_REF_IDS",
    "ArtifactCorruptionContract",
    "ArtifactStoreContract",
    "ArtifactStoreStateMachine",
    "Recorder",
    "drop_without_force",
]

AS = TypeVar("AS", bound=ArtifactStore)

#: Keys every method must reject with InvalidArtifactRef before touching storage.
INVALID_REFS: tuple[str, ...] = (
    "../../etc/passwd",
    "/etc/passwd",
    "",
    "x",
    "A" * 64,
    "g" * 64,
    "0" * 63,
    "0" * 65,
    "0" * 62 + "/.",
    "../" + "0" * 61,
    "0" * 63 + "\x00",
    " " + "0" * 63,
    "0" * 64 + "\n",
)
#: Readable test ids for INVALID_REFS (for ``known_gaps`` keys).
INVALID_REF_IDS: tuple[str, ...] = (
    "traversal",
    "absolute-path",
    "empty",
    "short",
    "uppercase",
    "non-hex",
    "63-chars",
    "65-chars",
    "slash-dot",
    "dotdot-prefix",
    "nul",
    "leading-space",
    "trailing-newline",
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _same(a: bytes, b: bytes) -> bool:
    # A function call keeps pytest's assertion rewriting from diffing multi-MiB values.
    return a == b


def _describe(data: bytes) -> str:
    return f"{len(data)} bytes, sha256 {_sha(data)[:12]}..."


class Recorder:
    """A ProgressCallback that records what it was told."""

    def __init__(self) -> None:
        """Start with nothing recorded."""
        self.sizes: list[int] = []
        self.total = 0

    def set_size(self, size: int) -> None:
        """Record an announced size."""
        self.sizes.append(size)

    def relative_update(self, inc: int = 1) -> None:
        """Add transferred bytes."""
        self.total += inc

    def check(self, size: int, what: str) -> None:
        """The callback saw exactly ``size`` bytes, and at most one matching announcement."""
        assert self.total == size, f"{what}: callback saw {self.total} bytes, expected {size}"
        assert len(self.sizes) <= 1, f"{what}: set_size called {len(self.sizes)} times"
        assert all(s == size for s in self.sizes), f"{what}: set_size({self.sizes}) != {size}"


def _read_chunked(reader: IO[bytes], sizes: list[int]) -> bytes:
    parts = [reader.read(n) for n in sizes]
    parts.append(reader.read())
    return b"".join(parts)


def drop_without_force(store: Any, force: bool | None) -> None:
    """Call ``drop()`` (``force=None``) or ``drop(force=False)``; must raise DropRefused."""
    if force is None:
        store.drop()
    else:
        store.drop(force=force)


#: A blob of at most the running machine's ``max_blob_size``.
_BLOB = st.runner().flatmap(lambda machine: blobs(max_size=machine.max_blob_size))


class ArtifactStoreStateMachine(StoreStateMachine[AS], Generic[AS]):
    """The artifact contract's state machine. Model: sha256 -> bytes.

    Subclass it, define :meth:`make_store`, and run it (see :class:`StoreStateMachine`).

    Attributes:
        max_blob_size: Largest blob drawn (default 4 MiB).
    """

    max_blob_size: ClassVar[int] = 4 * 2**20

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[str, bytes] = {}

    def _pick(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.model)), label="sha")

    @rule(blob=_BLOB, as_file=st.booleans())
    def put(self, blob: bytes, as_file: bool) -> None:
        recorder = Recorder()
        source = io.BytesIO(blob) if as_file else blob
        ref = self.store.put(source, callback=recorder)
        expected = ArtifactRef(sha256=_sha(blob), size=len(blob))
        assert ref == expected, f"put({_describe(blob)}) returned {ref}"
        recorder.check(len(blob), "put")
        self.model[ref.sha256] = blob

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), as_file=st.booleans())
    def put_again(self, data: st.DataObject, as_file: bool) -> None:
        sha = self._pick(data)
        blob = self.model[sha]
        ref = self.store.put(io.BytesIO(blob) if as_file else blob)
        assert ref == ArtifactRef(sha256=sha, size=len(blob))

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), by_ref=st.booleans())
    def get(self, data: st.DataObject, by_ref: bool) -> None:
        sha = self._pick(data)
        blob = self.model[sha]
        key = ArtifactRef(sha256=sha, size=len(blob)) if by_ref else sha
        got = self.store.get(key)
        assert _same(got, blob), f"get() returned {_describe(got)}, stored {_describe(blob)}"

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), sizes=st.lists(st.integers(0, 2**17), max_size=3))
    def open_and_read(self, data: st.DataObject, sizes: list[int]) -> None:
        sha = self._pick(data)
        blob = self.model[sha]
        recorder = Recorder()
        with self.store.open(sha, callback=recorder) as reader:
            got = _read_chunked(reader, sizes)
        assert _same(got, blob), f"open() read {_describe(got)}, stored {_describe(blob)}"
        recorder.check(len(blob), "open")

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def exists_and_size(self, data: st.DataObject) -> None:
        sha = self._pick(data)
        assert self.store.exists(sha)
        assert self.store.size(sha) == len(self.model[sha])

    @rule(sha=sha256_hex())
    def absent(self, sha: str) -> None:
        assume(sha not in self.model)
        assert not self.store.exists(sha)
        with pytest.raises(ArtifactNotFound):
            self.store.get(sha)
        with pytest.raises(ArtifactNotFound):
            self.store.size(sha)
        with pytest.raises(ArtifactNotFound):
            self.store.open(sha).read()
        self.store.delete(sha)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), twice=st.booleans())
    def delete(self, data: st.DataObject, twice: bool) -> None:
        sha = self._pick(data)
        self.store.delete(sha)
        if twice:
            self.store.delete(sha)
        del self.model[sha]
        assert not self.store.exists(sha)

    @rule(bad=st.sampled_from(INVALID_REFS))
    def invalid_ref(self, bad: str) -> None:
        for method in (
            self.store.get,
            self.store.open,
            self.store.exists,
            self.store.size,
            self.store.delete,
        ):
            with pytest.raises(InvalidArtifactRef):
                method(bad)

    @rule(force=st.sampled_from([None, False]))
    def drop_refused(self, force: bool | None) -> None:
        with pytest.raises(DropRefused):
            drop_without_force(self.store, force)

    @rule()
    def drop_everything(self) -> None:
        self.store.drop(force=True)
        self.model.clear()

    @invariant()
    def same_blobs(self) -> None:
        listed = sorted((r.sha256, r.size) for r in self.store.iter_refs())
        expected = sorted((sha, len(b)) for sha, b in self.model.items())
        note(f"model has {len(expected)} blobs")
        assert listed == expected, f"iter_refs() = {listed}, model = {expected}"


class ArtifactStoreContract(ContractBase[AS], Generic[AS]):
    """Contract tests for an :class:`~pinnacle_protocols.protocols.ArtifactStore`.

    Subclass as ``class TestMyStore(ArtifactStoreContract[MyStore])`` and define the
    ``make_store`` fixture. Knobs (class attributes): ``max_blob_size`` (largest blob the state
    machine draws, default 4 MiB), ``large_blob_size`` (size used by the multi-chunk example
    tests, default 3 MiB + 1), plus those of the base (``max_examples``,
    ``stateful_step_count``, ``known_gaps``).
    """

    machine = ArtifactStoreStateMachine
    machine_knobs = ("max_blob_size",)
    max_blob_size: ClassVar[int] = ArtifactStoreStateMachine.max_blob_size
    large_blob_size: ClassVar[int] = 3 * 2**20 + 1

    # ------------------------------------------------------------------ basics
    def test_is_an_artifact_store(self, store: AS) -> None:
        """The store satisfies the runtime-checkable protocol and has a RedactedURI."""
        assert isinstance(store, ArtifactStore)
        assert isinstance(store.uri, RedactedURI)

    def test_starts_empty(self, store: AS) -> None:
        """A fresh store has no blobs."""
        assert list(store.iter_refs()) == []

    def test_put_get_bytes(self, store: AS) -> None:
        """put returns the sha256 and size of the bytes; get returns them."""
        data = b"hello, pinnacledb\x00\xff"
        ref = store.put(data)
        assert ref == ArtifactRef(sha256=_sha(data), size=len(data))
        assert store.get(ref) == data
        assert store.get(ref.sha256) == data
        assert store.exists(ref)
        assert store.exists(ref.sha256)
        assert store.size(ref) == len(data)

    def test_put_empty_blob(self, store: AS) -> None:
        """The empty blob is a blob like any other."""
        ref = store.put(b"")
        assert ref == ArtifactRef(sha256=_sha(b""), size=0)
        assert store.get(ref) == b""
        assert store.size(ref) == 0
        assert list(store.iter_refs()) == [ref]

    def test_put_is_idempotent(self, store: AS) -> None:
        """The same bytes give the same ref and are stored once."""
        first = store.put(b"same")
        second = store.put(io.BytesIO(b"same"))
        assert first == second
        assert list(store.iter_refs()) == [first]

    def test_put_file_object_multi_chunk(self, store: AS) -> None:
        """A file object is read to EOF, across chunk boundaries, with progress reported."""
        data = bytes(range(256)) * (self.large_blob_size // 256) + b"tail"
        recorder = Recorder()
        ref = store.put(io.BytesIO(data), callback=recorder)
        assert ref == ArtifactRef(sha256=_sha(data), size=len(data))
        recorder.check(len(data), "put(file object)")
        assert _same(store.get(ref), data), "get() after a multi-chunk put differs"

    def test_put_bytes_callback(self, store: AS) -> None:
        """Progress for bytes sums to the size (set_size, if called, gets the size)."""
        data = b"x" * 1000
        recorder = Recorder()
        store.put(data, callback=recorder)
        recorder.check(len(data), "put(bytes)")

    def test_open_streams_and_verifies(self, store: AS) -> None:
        """open() gives the bytes in pieces and reports progress."""
        data = bytes(range(256)) * (self.large_blob_size // 256)
        ref = store.put(data)
        recorder = Recorder()
        with store.open(ref, callback=recorder) as reader:
            got = _read_chunked(reader, [0, 1, 1000, 2**16, 2**20 + 7])
        assert _same(got, data), f"open() read {_describe(got)}, stored {_describe(data)}"
        recorder.check(len(data), "open()")

    def test_open_accepts_hex_digest(self, store: AS) -> None:
        """open() takes a ref or its hex digest."""
        ref = store.put(b"abc")
        with store.open(ref.sha256) as reader:
            assert reader.read() == b"abc"

    def test_missing_blob(self, store: AS) -> None:
        """A valid but absent key: exists is False, the readers raise ArtifactNotFound."""
        sha = _sha(b"never stored")
        assert not store.exists(sha)
        with pytest.raises(ArtifactNotFound):
            store.get(sha)
        with pytest.raises(ArtifactNotFound):
            store.size(sha)
        with pytest.raises(ArtifactNotFound):
            store.open(sha).read()

    def test_get_many(self, store: AS) -> None:
        """get_many (the store's own or the fallback) equals one get per ref, in order."""
        blobs = [f"blob {i}".encode() * (i + 1) for i in range(5)] + [b""]
        refs = [store.put(b) for b in blobs]
        asked: list[ArtifactRef | str] = [refs[3], refs[0].sha256, refs[3], *refs]
        assert get_many(store, asked) == [blobs[3], blobs[0], blobs[3], *blobs]
        assert get_many(store, []) == []

    def test_get_many_missing_and_invalid(self, store: AS) -> None:
        """A missing blob among stored ones raises ArtifactNotFound naming it; a bad key
        raises InvalidArtifactRef."""
        ref = store.put(b"present")
        absent = _sha(b"never stored")
        with pytest.raises(ArtifactNotFound, match=absent):
            get_many(store, [ref, absent, ref])
        with pytest.raises(InvalidArtifactRef):
            get_many(store, [ref, "not-a-sha"])

    def test_delete(self, store: AS) -> None:
        """delete removes one blob and is idempotent."""
        keep = store.put(b"keep")
        gone = store.put(b"gone")
        store.delete(gone)
        store.delete(gone)
        store.delete(gone.sha256)
        assert not store.exists(gone)
        assert store.exists(keep)
        assert list(store.iter_refs()) == [keep]
        with pytest.raises(ArtifactNotFound):
            store.get(gone)

    def test_delete_absent_is_not_an_error(self, store: AS) -> None:
        """Deleting a blob that was never stored does nothing."""
        store.delete(_sha(b"absent"))
        assert list(store.iter_refs()) == []

    def test_iter_refs(self, store: AS) -> None:
        """iter_refs lists every blob once, with its size."""
        refs = {store.put(bytes([i]) * i) for i in range(5)}
        assert sorted(store.iter_refs(), key=lambda r: r.sha256) == sorted(
            refs, key=lambda r: r.sha256
        )

    @pytest.mark.parametrize("bad", INVALID_REFS, ids=INVALID_REF_IDS)
    def test_invalid_ref_is_rejected(self, store: AS, bad: str) -> None:
        """Every method rejects a key that is not a sha256 hex digest before using it."""
        store.put(b"something")
        with pytest.raises(InvalidArtifactRef):
            store.get(bad)
        with pytest.raises(InvalidArtifactRef):
            store.open(bad)
        with pytest.raises(InvalidArtifactRef):
            store.exists(bad)
        with pytest.raises(InvalidArtifactRef):
            store.size(bad)
        with pytest.raises(InvalidArtifactRef):
            store.delete(bad)
        assert len(list(store.iter_refs())) == 1

    def test_drop_refused_without_force(self, store: AS) -> None:
        """drop() without force=True raises DropRefused and deletes nothing."""
        ref = store.put(b"precious")
        with pytest.raises(DropRefused):
            store.drop()
        with pytest.raises(DropRefused):
            store.drop(force=False)
        assert store.get(ref) == b"precious"
        assert list(store.iter_refs()) == [ref]

    def test_drop_force_deletes_everything(self, store: AS) -> None:
        """drop(force=True) deletes every blob of the store."""
        refs = [store.put(b"a"), store.put(b"b" * 100)]
        store.drop(force=True)
        assert list(store.iter_refs()) == []
        assert not any(store.exists(r) for r in refs)

    def test_stores_are_independent(self, store_factory: Callable[[], AS]) -> None:
        """Two fresh stores from the factory do not see each other's blobs."""
        first = store_factory()
        second = store_factory()
        ref = first.put(b"only in the first")
        assert not second.exists(ref)
        assert list(second.iter_refs()) == []


class ArtifactCorruptionContract(Generic[AS]):
    """Opt-in tests that a corrupted blob is detected; needs a store-specific ``corrupt`` hook.

    Mix into your ArtifactStoreContract subclass and implement :meth:`corrupt`, which changes
    the stored bytes of a blob behind the store's back (e.g. rewrite the file).
    """

    def corrupt(self, store: AS, sha256: str) -> None:
        """Change the stored bytes of blob ``sha256`` without going through the store API."""
        raise NotImplementedError(f"{type(self).__name__} must implement corrupt()")

    def test_get_detects_corruption(self, store: AS) -> None:
        """get() raises ArtifactCorrupted when the bytes no longer hash to the key."""
        ref = store.put(b"original bytes" * 100)
        self.corrupt(store, ref.sha256)
        with pytest.raises(ArtifactCorrupted):
            store.get(ref)

    def test_get_many_detects_corruption(self, store: AS) -> None:
        """A corrupted blob among many makes get_many raise ArtifactCorrupted naming it (100
        blobs: enough for a store that reads a batch with several threads to do so)."""
        refs = [store.put(f"intact {i}".encode() * 50) for i in range(100)]
        bad = store.put(b"original bytes" * 100)
        self.corrupt(store, bad.sha256)
        with pytest.raises(ArtifactCorrupted, match=bad.sha256):
            get_many(store, [*refs[:50], bad.sha256, *refs[50:]])
        with pytest.raises(ArtifactCorrupted, match=bad.sha256):
            get_many(store, [*refs, bad])

    def test_open_detects_corruption_at_eof(self, store: AS) -> None:
        """Reading an opened corrupted blob to EOF raises ArtifactCorrupted."""
        ref = store.put(b"original bytes" * 100)
        self.corrupt(store, ref.sha256)
        with pytest.raises(ArtifactCorrupted), store.open(ref) as reader:
            reader.read()
