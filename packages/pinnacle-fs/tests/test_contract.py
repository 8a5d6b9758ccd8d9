"""The pinnacle_protocols ArtifactStore contract on file://, memory:// and s3:// (SeaweedFS)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from pinnacle_fs import FsspecArtifactStore
from pinnacle_protocols.testing import ArtifactCorruptionContract, ArtifactStoreContract

if TYPE_CHECKING:
    from conftest import S3Target


def _flip_first_byte(data: bytes) -> bytes:
    return bytes([data[0] ^ 0xFF]) + data[1:] if data else b"x"


@pytest.mark.file
class TestFileContract(
    ArtifactStoreContract[FsspecArtifactStore], ArtifactCorruptionContract[FsspecArtifactStore]
):
    """file:// on a fresh temporary directory per store."""

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Callable[[], FsspecArtifactStore]:
        counter = itertools.count()
        return lambda: FsspecArtifactStore.from_uri(f"file://{tmp_path}/s{next(counter)}")

    def corrupt(self, store: FsspecArtifactStore, sha256: str) -> None:
        path = Path(store.root) / sha256[:2] / sha256
        path.write_bytes(_flip_first_byte(path.read_bytes()))


@pytest.mark.file
class TestFilesystemRelativeContract(ArtifactStoreContract[FsspecArtifactStore]):
    """filesystem://./relative (the spec's form), relative to the working directory."""

    @pytest.fixture
    def make_store(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Callable[[], FsspecArtifactStore]:
        monkeypatch.chdir(tmp_path)
        counter = itertools.count()
        return lambda: FsspecArtifactStore.from_uri(f"filesystem://./data/s{next(counter)}")


@pytest.mark.memory
class TestMemoryContract(
    ArtifactStoreContract[FsspecArtifactStore], ArtifactCorruptionContract[FsspecArtifactStore]
):
    """memory:// (fsspec's process-wide memory filesystem), a fresh root per store.

    ``memory`` is not one of pinnacle-fs's entry points (pinnacle-protocols owns the scheme for
    its reference store); ``FsspecArtifactStore.from_uri`` accepts it when called directly.
    """

    @pytest.fixture
    def make_store(self) -> Callable[[], FsspecArtifactStore]:
        return lambda: FsspecArtifactStore.from_uri(f"memory://pinnacle-test-{uuid.uuid4().hex}")

    def corrupt(self, store: FsspecArtifactStore, sha256: str) -> None:
        import fsspec

        fs = fsspec.filesystem("memory")
        path = f"/{store.root}/{sha256[:2]}/{sha256}"
        fs.pipe_file(path, _flip_first_byte(fs.cat_file(path)))


@pytest.mark.s3
class TestS3Contract(
    ArtifactStoreContract[FsspecArtifactStore], ArtifactCorruptionContract[FsspecArtifactStore]
):
    """s3:// against SeaweedFS on 127.0.0.1, a fresh prefix per store.

    Tuned to fit the package's time budget under the ci profile (200 examples kept): every
    step is one or more S3 requests plus a listing for the invariant, each 5-10 ms through
    s3fs on SeaweedFS here (SeaweedFS also writes at only ~30 MiB/s on this machine), so
    examples run 15 steps instead of 30 and blobs stay under 1 MiB instead of 4 MiB.
    Multipart uploads are covered by test_s3.py.
    """

    max_blob_size: ClassVar[int] = 1 * 2**20
    stateful_step_count: ClassVar[int | None] = 15

    @pytest.fixture
    def make_store(self, s3: S3Target) -> Callable[[], FsspecArtifactStore]:
        self._s3 = s3
        return lambda: s3.store(f"c-{uuid.uuid4().hex[:16]}")

    def corrupt(self, store: FsspecArtifactStore, sha256: str) -> None:
        fs: Any = self._s3.s3fs()
        path = f"{store.root}/{sha256[:2]}/{sha256}"
        fs.pipe_file(path, _flip_first_byte(fs.cat_file(path)))
