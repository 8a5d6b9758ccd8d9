"""Range filters and ``order_by`` against the reference semantics, on every server.

The mongoeco contract class declares the orderable dtypes unordered (mongoeco matches ``null``
cells with ``$lt``/``$lte``), so this property test covers what that takes out of its state
machine: ``$gt $gte $lt $lte`` (also under ``$not``, ``$and``, ``$or``) on NOT NULL columns of
every orderable dtype, including the bytewise order of ``bytes`` and sub-millisecond datetime
operands, and ``order_by`` (NULL first ascending, last descending) on nullable columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pinnacle_mongo import MongoDataBackend
from pinnacle_mongo.testing import FreshDatabases
from pinnacle_protocols.errors import PinnacleError
from pinnacle_protocols.filters import Filter, evaluate
from pinnacle_protocols.protocols import OrderBy
from pinnacle_protocols.records import DType, Field, Schema
from pinnacle_protocols.testing.contracts import canonical, normalize_row, reference_order
from pinnacle_protocols.testing.strategies import filters, order_bys, rows, value_pools

NOT_NULL = Schema(
    fields=(
        Field(name="i", dtype=DType.INT, nullable=False),
        Field(name="f", dtype=DType.FLOAT, nullable=False),
        Field(name="s", dtype=DType.STR, nullable=False),
        Field(name="y", dtype=DType.BYTES, nullable=False),
        Field(name="t", dtype=DType.DATETIME, nullable=False),
    )
)
SCHEMA = Schema(
    fields=(
        *NOT_NULL.fields,
        Field(name="ni", dtype=DType.INT),
        Field(name="ns", dtype=DType.STR),
        Field(name="ny", dtype=DType.BYTES),
        Field(name="nb", dtype=DType.BOOL),
    )
)
EXAMPLES = {"mongoeco": 40, "nx27017": 25, "mongodb": 100}

notyet = pytest.mark.notyet
KNOWN_GAPS = {
    "test_ranges_and_order_match_the_reference[nx27017]": notyet(
        reason="nx-27017: {$eq: 0} matches nothing, True == 1, binary equality and $not are "
        "broken, so rows differ from the reference",
        raises=(AssertionError, PinnacleError),
    ),
}


@st.composite
def _case(draw: st.DrawFn) -> tuple[list[dict[str, Any]], Filter | None, OrderBy]:
    pools = draw(value_pools(SCHEMA, size=3))
    table = draw(st.lists(rows(SCHEMA, pools=pools), min_size=1, max_size=12))
    where = draw(filters(NOT_NULL, pools=pools))
    if draw(st.booleans()):
        # A datetime operand between two stored milliseconds.
        t = draw(st.sampled_from([r["t"] for r in table]))
        op = draw(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]))
        extra: Filter = {"t": {op: t + timedelta(microseconds=draw(st.integers(1, 999)))}}
        where = {"$and": [where, extra]} if where else extra
    order = draw(order_bys(SCHEMA))
    return table, where, order


@pytest.fixture
def backend(dbs: FreshDatabases) -> Iterator[MongoDataBackend]:
    store = MongoDataBackend.from_uri(dbs.uri())
    yield store
    store.close()


def test_ranges_and_order_match_the_reference(kind: str, backend: MongoDataBackend) -> None:
    """select with random range filters and order_by equals the reference evaluation."""
    counter = iter(range(10**6))
    phases = [Phase.explicit, Phase.reuse, Phase.generate]
    if kind != "nx27017":  # a known wrong server: find the failure, don't spend minutes shrinking
        phases.append(Phase.shrink)

    @settings(
        max_examples=EXAMPLES[kind],
        deadline=None,
        phases=phases,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=kind == "nx27017",
    )
    @given(_case())
    def check(case: tuple[list[dict[str, Any]], Filter | None, OrderBy]) -> None:
        table_rows, where, order = case
        table = f"r{next(counter)}"
        backend.create_table(table, SCHEMA)
        try:
            backend.insert(table, table_rows)
            model = [normalize_row(SCHEMA, r) for r in table_rows]
            expected = reference_order([r for r in model if evaluate(where, r)], order)
            got = backend.select(table, where, order_by=order or None)
            names = SCHEMA.names
            got_rows = [tuple(canonical(r[n]) for n in names) for r in got]
            want_rows = [tuple(canonical(r[n]) for n in names) for r in expected]
            assert sorted(got_rows) == sorted(want_rows), f"filter {where!r}"
            keys = [o if isinstance(o, str) else o[0] for o in order]
            assert [tuple(canonical(r[k]) for k in keys) for r in got] == [
                tuple(canonical(r[k]) for k in keys) for r in expected
            ], f"order_by {order!r}"
            assert backend.count(table, where) == len(expected)
        finally:
            backend.drop_table(table)

    check()
