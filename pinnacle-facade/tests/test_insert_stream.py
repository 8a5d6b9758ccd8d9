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

from pinnacle_ibis import IbisDataBackend
from pinnacle_protocols.arrow import CONVERT_ROWS
from pinnacle_protocols.errors import PinnacleError, SchemaError
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


#: The source batches' pool. Module-wide: pyarrow's buffers keep a bare pointer to the pool
#: that allocated them, so it must outlive any buffer (a pool local to a test could be freed
#: before the last of them and crash the process).
_SOURCE_POOL = pa.proxy_memory_pool(pa.default_memory_pool())


class _Row(dict[str, Any]):
    """A dict that counts how many of its kind are alive (CPython frees it at once)."""

    alive = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        type(self).alive += 1

    def __del__(self) -> None:
        type(self).alive -= 1


def test_a_dicts_stream_holds_a_bounded_number_of_source_rows(db: Datalayer) -> None:
    """The generator counts its rows still alive whenever it makes one: on DuckDB (which takes
    Arrow) never more than ``CONVERT_ROWS`` dicts of the stream are held (each part becomes
    Arrow at once), elsewhere never more than one batch (the batch before is let go before
    the next is gathered). The rows are stored as made."""
    batch = 3 * CONVERT_ROWS
    total = 2 * batch + 1000
    most = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal most
        for i in range(total):
            most = max(most, _Row.alive)
            yield _Row(id=i, n=i % 7, s=f"r{i}")

    _Row.alive = 0
    result = db.insert("t", rows(), batch_rows=batch)
    assert result == total
    bound = CONVERT_ROWS if isinstance(db.databackend, IbisDataBackend) else batch
    assert most <= bound, (most, bound)
    stored = sorted(db.select("t"), key=lambda r: r["id"])
    assert stored == [{"id": i, "n": i % 7, "s": f"r{i}"} for i in range(total)]
    assert list(result.ids) == list(range(total))


def test_an_arrow_stream_lets_each_batch_go_before_the_next_is_made(db: Datalayer) -> None:
    """The generator's batches are allocated from a pool of their own: when it is asked for
    the next batch, none of the bytes of the batches before is alive any more."""
    pool = _SOURCE_POOL
    held: list[int] = []

    def batches() -> Iterator[Any]:
        for start in range(0, 60, 2 * BATCH):
            held.append(pool.bytes_allocated())
            ids = list(range(start, start + 2 * BATCH))
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(ids, pa.int64(), memory_pool=pool),
                    pa.array([i % 7 for i in ids], pa.int64(), memory_pool=pool),
                    pa.array([f"r{i}" for i in ids], pa.string(), memory_pool=pool),
                ],
                names=["id", "n", "s"],
            )

    result = db.insert("t", batches(), batch_rows=BATCH)
    assert result == 60
    assert held == [0, 0, 0]
    assert pool.bytes_allocated() == 0  # nor the last one once the insert returned
    stored = sorted(db.select("t"), key=lambda r: r["id"])
    assert stored == [{"id": i, "n": i % 7, "s": f"r{i}"} for i in range(60)]
    assert list(result.ids) == list(range(60))


def test_a_bad_row_in_a_converted_part_is_named_by_its_place_in_the_batch(db: Datalayer) -> None:
    """On DuckDB dicts become Arrow part by part; a bad row in a later part of a later batch
    is still numbered within its batch, nothing of that batch is written, as elsewhere."""
    batch = 2 * CONVERT_ROWS
    bad = batch + CONVERT_ROWS + 5

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(3 * batch):
            yield {"id": i, "n": "x" if i == bad else i, "s": "r"}

    pattern = rf"row {CONVERT_ROWS + 5}\b.*'n'.* starting at row {batch}; the {batch} rows"
    with pytest.raises(SchemaError, match=pattern):
        db.insert("t", rows(), batch_rows=batch)
    assert db.count("t") == batch


def test_an_empty_stream_into_a_missing_table_writes_nothing(db: Datalayer) -> None:
    """As before the conversion by parts: an empty stream is 0 rows, not an error."""
    assert db.insert("nope", iter([])) == 0


def test_an_arrow_batch_the_engine_rejects_late_leaves_nothing_of_it(tmp_path: Path) -> None:
    """On DuckDB a streamed Arrow batch of several chunks is one all-or-nothing write even when
    the engine itself (not the vectorised validation) rejects a row in its last chunk, after
    the chunks before were scanned: the batches before it stay, nothing of it is stored.

    The table's CHECK constraint is the engine's: ``n = -1`` is a valid int for pinnacle and
    fails only inside DuckDB's INSERT. A write per chunk (autocommitted slices) would leave
    the batch's first chunks behind.
    """
    db = pinnacle(
        f"duckdb:///{tmp_path}/data.db",
        metadata_store=f"sqlite:///{tmp_path}/meta.db",
        artifact_store=f"filesystem://{tmp_path}/artifacts",
    )
    try:
        backend = db.databackend
        assert isinstance(backend, IbisDataBackend)
        backend.raw_sql("CREATE TABLE c (id BIGINT, n BIGINT CHECK (n >= 0), s VARCHAR)")
        batch = 3 * CONVERT_ROWS
        bad = 2 * batch - 3  # in the last chunk of the second batch

        def batches() -> Iterator[Any]:
            for start in range(0, 3 * batch, batch):
                ids = list(range(start, start + batch))
                table = pa.table(
                    {
                        "id": pa.array(ids, pa.int64()),
                        "n": pa.array([-1 if i == bad else i for i in ids], pa.int64()),
                        "s": pa.array([f"r{i}" for i in ids], pa.string()),
                    }
                )
                # the batch as the engine would get it in slices: chunks of CONVERT_ROWS rows
                yield pa.Table.from_batches(table.to_batches(max_chunksize=CONVERT_ROWS))

        with pytest.raises(PinnacleError, match=r"(?i)constraint") as caught:
            db.insert("c", batches(), batch_rows=batch)
        assert f"starting at row {batch}" in str(caught.value)
        assert db.count("c") == batch
        stored = db.select("c", format="arrow").column("id").to_pylist()
        assert sorted(stored) == list(range(batch))
        # and the rows of the batch before the bad one are insertable again (nothing half-kept)
        assert db.insert("c", [{"id": batch, "n": 0, "s": "again"}]) == 1
        assert db.count("c") == batch + 1
    finally:
        db.close()


class _QuotaExceeded(PinnacleError):
    """An error type of a third-party databackend, built with more than a message."""

    def __init__(self, table: str, *, limit: int) -> None:
        super().__init__(f"table {table!r} is over its quota of {limit} rows")
        self.limit = limit


def test_a_later_batchs_error_of_a_type_built_otherwise_is_kept_and_located() -> None:
    """A databackend's own PinnacleError subclass whose constructor is not ``(message)`` is
    raised as it is (not a TypeError from rebuilding it), with a note saying which batch failed
    and how many rows were written. The backend is the real in-memory one, refusing the second
    batch as a third-party backend with a row quota would."""
    from pinnacle_protocols.memory import (
        MemoryArtifactStore,
        MemoryDataBackend,
        MemoryMetadataStore,
    )

    class QuotaBackend(MemoryDataBackend):
        def insert(self, table: str, rows: Any) -> int:
            if self.count(table) >= BATCH:
                raise _QuotaExceeded(table, limit=BATCH)
            return super().insert(table, rows)

    db = Datalayer(
        databackend=QuotaBackend(),
        metadata=MemoryMetadataStore(),
        artifact_store=MemoryArtifactStore(),
    )
    db.create_table("t", SCHEMA)
    rows = ({"id": i, "n": i, "s": f"r{i}"} for i in range(3 * BATCH))
    with pytest.raises(_QuotaExceeded) as caught:
        db.insert("t", rows, batch_rows=BATCH)
    assert caught.value.limit == BATCH
    assert caught.value.__notes__ == [
        f"in the batch of the insert stream starting at row {BATCH}; the {BATCH} rows before "
        "it were written"
    ]
    assert db.count("t") == BATCH
