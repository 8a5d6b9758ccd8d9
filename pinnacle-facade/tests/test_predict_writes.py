"""How a predict task writes its outputs: exactly once per source id, whichever writes it can
skip.

A task gathers whole batches and writes them together, and deletes previous outputs only where
some may exist (a count over its partition at its first write, and the ids it wrote itself);
these tests pin the cases where a previous output does exist, on every stack.
"""

from __future__ import annotations

from collections import Counter

import pytest

from pinnacle_protocols.records import JobStatus
from pinnacledb import Model
from pinnacledb.base.datalayer import Datalayer


# Module-level classes so the standard library's pickle can store them.
class Double:
    def predict(self, xs: list[float]) -> list[float]:
        return [2.0 * x for x in xs]


class FailsOnCall:
    """``2 * x``, but call number ``bad`` raises (every time when ``always``, else once)."""

    def __init__(self, bad: int, *, always: bool) -> None:
        self.bad = bad
        self.always = always
        self.calls = 0

    def predict(self, xs: list[float]) -> list[float]:
        self.calls += 1
        if self.calls == self.bad or (self.always and self.calls > self.bad):
            raise ValueError(f"call {self.calls} fails")
        return [2.0 * x for x in xs]


def _fill(db: Datalayer, ids: list[int] | list[str]) -> None:
    kind = "int" if isinstance(ids[0], int) else "str"
    db.create_table("src", {"id": kind, "x": "float"})
    db.insert("src", [{"id": i, "x": float(n)} for n, i in enumerate(ids)])


def _per_source(db: Datalayer) -> Counter[object]:
    return Counter(r["source_id"] for r in db.select("outputs__m"))


def test_outputs_written_before_are_replaced_not_duplicated(db: Datalayer) -> None:
    """A first predict over part of the rows, then one over all in a single partition: the
    partition's count finds the earlier outputs, so they are deleted before the insert."""
    _fill(db, list(range(40)))
    model = Model(identifier="m", object=Double(), serializer="pickle")
    db.predict(model, "src", inputs="x", where={"id": {"$gte": 10, "$lt": 20}})
    result = db.predict(model, "src", inputs="x", batch_size=7, partition_size=40)
    assert result.rows == 40
    if db.databackend.supports_delete:
        assert _per_source(db) == Counter(range(40))
        assert {r["job_id"] for r in db.select("outputs__m")} == {result.job.job_id}


def test_string_ids_written_before_are_replaced_not_duplicated(db: Datalayer) -> None:
    """The same with string ids (partitions are id lists; the count is a ``$in`` of them)."""
    _fill(db, [f"k{i:03d}" for i in range(30)])
    model = Model(identifier="m", object=Double(), serializer="pickle")
    db.predict(model, "src", inputs="x", where={"id": {"$in": ["k003", "k017", "k029"]}})
    result = db.predict(model, "src", inputs="x", batch_size=4, partition_size=30)
    assert result.rows == 30
    if db.databackend.supports_delete:
        assert _per_source(db) == Counter(f"k{i:03d}" for i in range(30))


def test_a_retried_task_replaces_what_its_failed_attempt_wrote(db: Datalayer) -> None:
    """The model fails on the task's third batch once; the retry finds the two batches the
    failed attempt wrote and replaces them."""
    _fill(db, list(range(30)))
    model = Model(identifier="m", object=FailsOnCall(3, always=False), serializer="pickle")
    result = db.predict(model, "src", inputs="x", batch_size=5, partition_size=30, retries=1)
    assert result.job.status is JobStatus.SUCCESS
    assert result.rows == 30
    if db.databackend.supports_delete:
        assert _per_source(db) == Counter(range(30))


def test_batches_before_a_failing_one_are_written(db: Datalayer) -> None:
    """Batches are gathered before writing, but a model error still leaves the batches before
    the failing one written (as when each batch was written on its own)."""
    _fill(db, list(range(30)))
    model = Model(identifier="m", object=FailsOnCall(3, always=True), serializer="pickle")
    with pytest.raises(ValueError, match="call 3 fails"):
        db.predict(model, "src", inputs="x", batch_size=5, partition_size=30)
    counts = _per_source(db)
    assert sum(counts.values()) == 10
    assert set(counts.values()) == {1}


def test_a_source_id_repeated_in_two_batches_has_one_output(db: Datalayer) -> None:
    """An id column that is not unique: each batch replaces the outputs of its ids, so an id in
    two batches of one write keeps one output (the later batch's), as one write per batch did."""
    db.create_table("src", {"id": "int", "x": "float"})
    db.insert("src", [{"id": i % 3, "x": float(i)} for i in range(6)])
    model = Model(identifier="m", object=Double(), serializer="pickle")
    result = db.predict(model, "src", inputs="x", batch_size=1)
    assert result.rows == 6
    if db.databackend.supports_delete:
        assert _per_source(db) == Counter(range(3))
