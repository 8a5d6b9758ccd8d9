"""db.insert of an iterator: consumed lazily, written batch by batch, ids kept compactly.

The generators look at the backend itself (``db.count``) whenever they are asked for the first
row of a batch: every row made before must be stored by then, and none after, so the insert
holds one batch at a time (benchmarks/insert/bench_stream_rss.py measures the memory of 10M
rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pinnacledb import pinnacle
from pinnacledb.base.datalayer import Datalayer, _join_ids, _keep_ids

pa = pytest.importorskip("pyarrow")

SCHEMA = {"id": "int", "n": "int", "s": "str"}
BATCH = 10


@pytest.fixture(params=["memory", "duckdb"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Datalayer]:
    data = "memory://" if request.param == "memory" else f"duckdb:///{tmp_path}/data.db"
    db = pinnacle(
        data,
        metadata_store=f"sqlite:///{tmp_path}/meta.db",
        artifact_store=f"filesystem://{tmp_path}/artifacts",
    )
    db.create_table("t", SCHEMA)
    yield db
    db.close()


def test_dicts_stream_is_consumed_lazily_in_bounded_batches(db: Datalayer) -> None:
    """At the first row of each batch the backend holds exactly the rows made before it."""
    seen: list[tuple[int, int]] = []

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(55):
            if i % BATCH == 0:
                seen.append((i, db.count("t")))
            yield {"id": i, "n": i % 7, "s": f"r{i}"}

    result = db.insert("t", rows(), batch_rows=BATCH)
    assert result == 55
    assert seen == [(i, i) for i in range(0, 55, BATCH)]
    assert db.count("t") == 55
    assert list(result.ids) == list(range(55))


def test_arrow_stream_is_consumed_lazily_in_bounded_batches(db: Datalayer) -> None:
    """The same for a generator of RecordBatches, each cut to ``batch_rows`` rows."""
    seen: list[tuple[int, int]] = []

    def batches() -> Iterator[Any]:
        for start in range(0, 60, 2 * BATCH):
            seen.append((start, db.count("t")))
            ids = list(range(start, start + 2 * BATCH))
            yield pa.RecordBatch.from_pydict(
                {"id": ids, "n": [i % 7 for i in ids], "s": [f"r{i}" for i in ids]}
            )

    result = db.insert("t", batches(), batch_rows=BATCH)
    assert result == 60
    assert seen == [(0, 0), (20, 20), (40, 40)]
    assert list(result.ids) == list(range(60))


def test_stream_ids_in_any_order_come_back_as_given(db: Datalayer) -> None:
    """Ids that are no run of consecutive ints are kept (as Arrow) and returned in order."""
    order = [*range(30), 100, 7_000_000_000, -5, *range(40, 52), 31]

    result = db.insert("t", ({"id": i, "n": 0} for i in order), batch_rows=BATCH)
    assert list(result.ids) == order


def test_ids_of_a_long_stream_stay_small() -> None:
    """A million consecutive ids kept chunk by chunk are one range; others become Arrow arrays
    (8 bytes an int), and what cannot be typed stays as given; joined, all are as given."""
    parts: list[Any] = []
    for start in range(0, 1_000_000, 1000):
        _keep_ids(parts, list(range(start, start + 1000)))
    assert parts == [range(1_000_000)]
    _keep_ids(parts, pa.chunked_array([pa.array(range(1_000_000, 1_000_100))]))
    assert parts == [range(1_000_100)]
    scattered = [5, 3, 9]
    _keep_ids(parts, scattered)
    _keep_ids(parts, ["a", "b"])
    mixed = [1, "x", None]
    _keep_ids(parts, mixed)
    _keep_ids(parts, [True, False])
    assert isinstance(parts[1], pa.Array)
    assert isinstance(parts[2], pa.Array)
    assert parts[3] is mixed
    assert _join_ids(parts) == [*range(1_000_100), 5, 3, 9, "a", "b", 1, "x", None, True, False]
    assert [type(v) for v in _join_ids(parts)[-2:]] == [bool, bool]
