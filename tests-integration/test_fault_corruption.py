"""A blob changed behind the store's back: loading raises ArtifactCorrupted, never a wrong model.

A model and a by-reference data row are stored through the facade; then the bytes of their
blobs are changed directly on disk (filesystem store), in the bucket (S3 on SeaweedFS, through
s3fs) or in the chunks collection (GridFS on mongoeco, through pymongo): a byte flipped at a
random (seeded) position, the blob truncated, or bytes appended. ``db.load``, ``db.predict``,
``artifact_store.get`` and ``db.select`` of the row must raise ``ArtifactCorrupted``.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pinnacle_it.matrix import corrupt_gridfs, flip_byte
from pinnacle_it.seeds import derived_seed
from pinnacle_it.services import Services

from pinnacle_protocols.errors import ArtifactCorrupted
from pinnacledb import DataType, LinearModel, Table, pinnacle
from pinnacledb.base.datalayer import Datalayer

CASES = [
    ("file", "flip", ("file",)),
    ("file", "truncate", ("file",)),
    ("file", "append", ("file",)),
    ("s3", "flip", ("s3",)),
    ("s3", "truncate", ("s3",)),
    ("gridfs-mongoeco", "flip", ("gridfs", "mongoeco")),
]


def _params() -> list[Any]:
    out = []
    for store, how, marks in CASES:
        seed = derived_seed(f"corrupt-{store}-{how}")
        out.append(
            pytest.param(
                store,
                how,
                seed,
                id=f"{store}-{how}-seed{seed}",
                marks=[getattr(pytest.mark, m) for m in marks],
            )
        )
    return out


def _tamper(data: bytes, how: str, position: int) -> bytes:
    if how == "flip":
        return flip_byte(data, position)
    if how == "truncate":
        return data[: position % len(data)]
    return data + b"\x00"


@contextlib.contextmanager
def _datalayer(store: str, services: Services, tmp_path: Path) -> Iterator[Datalayer]:
    if store == "file":
        art = f"filesystem://{tmp_path}/artifacts"
    elif store == "s3":
        art = services.require("s3").fresh_uri("corrupt")
    else:
        from pinnacle_mongo.testing import fresh_database_name

        server = services.require("mongoeco")
        art = server.uri(fresh_database_name("corrupt"))
    db = pinnacle("sqlite://data.db", metadata_store="sqlite://meta.db", artifact_store=art)
    try:
        yield db
    finally:
        with contextlib.suppress(Exception):
            db.artifact_store.drop(force=True)
        db.close()


def _corrupt(store: str, db: Datalayer, services: Services, sha: str, how: str, pos: int) -> None:
    artifacts: Any = db.artifact_store
    if store == "file":
        path = Path(artifacts.root) / sha[:2] / sha
        path.write_bytes(_tamper(path.read_bytes(), how, pos))
    elif store == "s3":
        fs = services.require("s3").s3fs()
        key = f"{artifacts.root}/{sha[:2]}/{sha}"
        fs.pipe_file(key, _tamper(fs.cat_file(key), how, pos))
    else:
        assert how == "flip"
        corrupt_gridfs(artifacts, sha, pos)


def _read_all(reader: Any) -> None:
    while reader.read(1000):
        pass


@pytest.mark.parametrize(("store", "how", "seed"), _params())
def test_corrupted_blob_is_never_loaded(
    store: str, how: str, seed: int, services: Services, tmp_path: Path
) -> None:
    """Every read path raises ArtifactCorrupted after the blob's bytes changed."""
    rng = random.Random(seed)
    weights = np.linspace(0.0, 1.0, 4096)
    with _datalayer(store, services, tmp_path) as db:
        rec = db.apply(LinearModel(identifier="m", weights=weights, bias=0.5))
        ref = rec.artifacts["weights"]
        db.apply(
            Table.of(
                "t",
                id="int",
                x="float",
                v=DataType(identifier="vec", encoder="numpy", by_reference=True),
            )
        )
        db.insert("t", [{"id": 1, "x": 2.0, "v": np.arange(1000.0)}])
        row_sha = db.select("t", decode=False)[0]["v"]

        position = rng.randrange(ref.size)
        print(f"seed {seed}: {how} at byte {position} of {ref.size}")
        _corrupt(store, db, services, ref.sha256, how, position)
        with pytest.raises(ArtifactCorrupted):
            db.load("model", "m")
        with pytest.raises(ArtifactCorrupted):
            db.artifact_store.get(ref)
        with pytest.raises(ArtifactCorrupted):
            db.predict("m", "t", inputs="x")
        reader = db.artifact_store.open(ref)
        with pytest.raises(ArtifactCorrupted):
            _read_all(reader)
        reader.close()

        _corrupt(store, db, services, row_sha, how, rng.randrange(8000))
        with pytest.raises(ArtifactCorrupted):
            db.select("t")
        # the undecoded row is still readable: only the corrupt blob is refused
        assert db.select("t", decode=False)[0]["v"] == row_sha
