"""By-reference DataType cells are fetched per batch of rows, one artifact-store call each.

The stores here are real ones (a filesystem store subclass that counts its calls, and the
in-memory store of pinnacle_protocols, which has no ``get_many`` and takes the fallback).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pinnacle_fs import FsspecArtifactStore
from pinnacle_protocols import ArtifactCorrupted, RefLike, SupportsGetMany
from pinnacle_protocols.memory import MemoryArtifactStore
from pinnacledb import DataType, Table, pinnacle
from pinnacledb.base import datalayer as datalayer_module
from pinnacledb.base.datalayer import Datalayer

BATCH = datalayer_module._DECODE_BATCH
N = 2 * BATCH + 452  # three batches, the last one partial


class CountingStore(FsspecArtifactStore):
    """A filesystem artifact store that records its reads."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri, fsync=False)
        self.gets = 0
        self.batches: list[list[str]] = []

    def get(self, ref: RefLike) -> bytes:
        self.gets += 1
        return super().get(ref)

    def get_many(self, refs: Sequence[RefLike]) -> list[bytes]:
        self.batches.append([r if isinstance(r, str) else r.sha256 for r in refs])
        return super().get_many(refs)


def _rows(n: int) -> list[dict[str, Any]]:
    """Rows with repeated arrays (distinct every 700 rows), None cells and an inline column."""
    rows: list[dict[str, Any]] = []
    for i in range(n):
        rows.append(
            {
                "id": i,
                "vec": None if i % 11 == 0 else np.full(16, i % 700, dtype=np.float32),
                "meta": None if i % 13 == 0 else {"k": i % 5},
                "thumb": np.arange(i % 3, dtype=np.int64),
            }
        )
    return rows


def _db(tmp_path: Path, store: Any) -> Datalayer:
    db = pinnacle("memory://", metadata_store=f"sqlite://{tmp_path}/meta.db", artifact_store=store)
    db.apply(
        Table.of(
            "items",
            id="int",
            vec=DataType(identifier="vec", encoder="numpy", by_reference=True),
            meta=DataType(identifier="meta", encoder="json", by_reference=True),
            thumb=DataType(identifier="thumb", encoder="numpy"),
        )
    )
    db.insert("items", _rows(N))
    return db


def _old_path(db: Datalayer) -> list[dict[str, Any]]:
    """What select returned before batching: one verified ``get`` and decode per cell."""
    codec = db.table_codec("items")
    assert codec is not None
    rows = db.select("items", decode=False, order_by=["id"])
    for row in rows:
        for col, dt in codec.items():
            value = row[col]
            if value is not None:
                blob = db.artifact_store.get(value) if dt.by_reference else bytes(value)
                row[col] = dt.decode(blob, db.serializers)
    return rows


def _assert_same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for col in w:
            assert type(g[col]) is type(w[col]), (w["id"], col)
            if isinstance(w[col], np.ndarray):
                assert g[col].dtype == w[col].dtype
                np.testing.assert_array_equal(g[col], w[col])
            else:
                assert g[col] == w[col]


def test_select_fetches_by_reference_cells_with_one_call_per_batch(tmp_path: Path) -> None:
    store = CountingStore(f"filesystem://{tmp_path}/artifacts")
    assert isinstance(store, SupportsGetMany)
    db = _db(tmp_path, store)
    store.gets, store.batches = 0, []
    rows = db.select("items", order_by=["id"])
    assert store.gets == 0
    assert len(store.batches) == 3  # ceil(N / BATCH): one per batch, not one per cell
    for batch in store.batches:
        assert len(batch) == len(set(batch))  # each distinct sha256 once per batch
    first = _rows(BATCH)  # the first batch: its distinct non-None arrays and dicts
    arrays = {int(r["vec"][0]) for r in first if r["vec"] is not None}
    dicts = {r["meta"]["k"] for r in first if r["meta"] is not None}
    assert len(store.batches[0]) == len(arrays) + len(dicts)
    _assert_same(rows, _old_path(db))
    assert rows[0]["vec"] is None
    assert rows[0]["meta"] is None
    assert rows[1]["vec"] is not rows[701]["vec"]  # equal blobs, separate decoded objects
    np.testing.assert_array_equal(rows[1]["vec"], rows[701]["vec"])


def test_select_without_get_many_falls_back_to_get(tmp_path: Path) -> None:
    store = MemoryArtifactStore()
    assert not isinstance(store, SupportsGetMany)
    db = _db(tmp_path, store)
    _assert_same(db.select("items", order_by=["id"]), _old_path(db))
    frame = db.select("items", order_by=["id"], format="pandas", columns=["id", "vec"])
    np.testing.assert_array_equal(frame["vec"][5], np.full(16, 5, dtype=np.float32))


def test_a_corrupt_blob_among_many_raises_naming_it(tmp_path: Path) -> None:
    store = CountingStore(f"filesystem://{tmp_path}/artifacts")
    db = _db(tmp_path, store)
    sha = db.select("items", {"id": 1500}, decode=False)[0]["vec"]
    (Path(store.root) / sha[:2] / sha).write_bytes(b"not the array")
    with pytest.raises(ArtifactCorrupted, match=sha):
        db.select("items")
    with pytest.raises(ArtifactCorrupted, match=sha):
        db.select("items", {"id": {"$gte": 1400}}, format="arrow")
    assert len(db.select("items", {"id": {"$lt": 100}})) == 100  # other blobs still decode


def test_table_codec_decodes_only_when_the_table_record_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A select reads the latest Table record each call (one metadata read) but decodes the
    codec from it only when the record changed (it used to resolve the record and each
    referenced DataType on every call); a new version applied by another Datalayer on the
    same stores (another process) is picked up at the next call."""
    data, md, art = (
        f"sqlite:///{tmp_path / 'data.db'}",
        f"sqlite:///{tmp_path / 'md.db'}",
        f"filesystem://{tmp_path / 'art'}",
    )
    db = pinnacle(data, metadata_store=md, artifact_store=art)
    other = pinnacle(data, metadata_store=md, artifact_store=art)
    as_json = DataType(identifier="enc", encoder="json")
    db.apply(Table.of("t", id="int", v=as_json))
    db.insert("t", [{"id": 1, "v": [1.0, 2.0]}])
    decoded: list[str] = []
    original = db._io.from_record

    def counting(record: Any, cache: Any) -> Any:
        decoded.append(record.key.type_id)
        return original(record, cache)

    monkeypatch.setattr(db._io, "from_record", counting)
    for _ in range(5):
        assert db.select("t", {"id": 1}) == [{"id": 1, "v": [1.0, 2.0]}]
    assert decoded.count("table") <= 1
    # another process re-applies the table with another DataType of the same storage
    renamed = DataType(identifier="enc2", encoder="json")
    other.apply(Table.of("t", id="int", v=renamed))
    before = decoded.count("table")
    assert db.table_codec("t") == {"v": renamed}
    assert decoded.count("table") == before + 1
