"""Point plans (:mod:`pinnacle_protocols.point`) against the generic path: data and the check.

A backend with point plans answers ``select(t, {col: v})`` and ``select(t, {col: {"$in":
[...]}})`` by plan once the shape has one. :func:`assert_point_paths_agree` checks that the plan
gives what the generic path gives (the same rows, or the same error) for every operand of note,
including the ones a plan must hand back (NaN, +-inf, ints beyond 64 bits or 2**53 on a float
column, NUL in a string, naive datetimes, None, a bool on an int column), then on
Hypothesis-generated filters. Used by pinnacle-ibis's SQL engines and pinnacle-sql's SQLite
databackend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinnacle_protocols.errors import PinnacleError
from pinnacle_protocols.filters import Filter, matcher
from pinnacle_protocols.records import Schema

__all__ = [
    "BYTES",
    "NEAR",
    "SCHEMA",
    "STRINGS",
    "T0",
    "WARM",
    "assert_point_paths_agree",
    "point_filters",
    "point_rows",
    "sorted_rows",
    "warm_point_plans",
]

SCHEMA = Schema.of(i="int", x="float", s="str", b="bool", by="bytes", t="datetime", j="json")
T0 = datetime(2021, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))
INTS = [0, 1, -1, 7, 2**53, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**70]
FLOATS = [0.0, -0.0, 0.5, 1 / 3, 7.0, 2.0**53, 1e308, -2.5, math.nan, math.inf, -math.inf]
STRINGS = ["", "a", "aab", "'", "\\", "%s", "a\x00b", "\x00", "é😀", "a\x07b"]
BYTES = [b"", b"\x00'", bytes([1, 0, 39, 92]), b"\\"]
TIMES = [
    T0,
    T0 + timedelta(seconds=1, microseconds=1),
    T0.astimezone(PLUS_TWO),
    T0.replace(tzinfo=None),
]


def point_rows() -> list[dict[str, Any]]:
    """24 rows of :data:`SCHEMA` with NULLs and the edge values of every column."""
    finite = [f for f in FLOATS if math.isfinite(f)]
    storable = [s for s in STRINGS if "\x00" not in s]
    rows = []
    for n in range(24):
        rows.append(
            {
                "i": [0, 1, -1, 7, 2**53, 2**53 + 1, 2**63 - 1, -(2**63)][n % 8] if n % 5 else None,
                "x": finite[n % len(finite)] if n % 4 else None,
                "s": storable[n % len(storable)] if n % 7 != 3 else None,
                "b": None if n % 6 == 0 else n % 2 == 0,
                "by": BYTES[n % len(BYTES)] if n % 3 else None,
                "t": T0 + timedelta(seconds=n % 3, microseconds=n % 3) if n % 4 != 1 else None,
                "j": {"n": n} if n % 2 else None,
            }
        )
    return rows


#: A valid operand of each type a column's plans take.
WARM: dict[str, list[Any]] = {
    "i": [1],
    "x": [0.5, 7],
    "s": ["a"],
    "b": [True],
    "by": [b"\\"],
    "t": [T0],
}

#: Operands of every column, of every type (most go the generic way on most columns).
OPERANDS = [*INTS, *FLOATS, *STRINGS, *BYTES, *TIMES, True, False, None, 7.5, 2**53 + 2]
#: The operands that matter most for a column: its own type's edge cases and near misses.
NEAR: dict[str, list[Any]] = {
    "i": [*INTS, True, 7.0, None],
    "x": [*FLOATS, *INTS, 2**53 + 2, True, None],
    "s": [*STRINGS, b"a", 1, None],
    "b": [True, False, 1, 0, None],
    "by": [*BYTES, "a", None],
    "t": [*TIMES, "2021-03-04", None],
    "j": [None, 1, "a"],
}


@st.composite
def point_filters(draw: st.DrawFn) -> Filter:
    """``{col: v}`` or ``{col: {"$in": [...]}}`` on :data:`SCHEMA`, operands from :data:`NEAR`
    (mostly) and :data:`OPERANDS`; ``$in`` lists mostly of one type (a plan's shape)."""
    column = draw(st.sampled_from(sorted(NEAR)))
    operand = st.one_of(
        st.sampled_from(NEAR[column]), st.sampled_from(NEAR[column]), st.sampled_from(OPERANDS)
    )
    if draw(st.booleans()):
        return {column: draw(operand)}
    first = draw(operand)
    same = st.sampled_from([v for v in NEAR[column] if type(v) is type(first)] or [first])
    items = draw(st.lists(st.one_of(same, same, operand), min_size=1, max_size=4))
    return {column: {"$in": [first, *items]}}


def sorted_rows(rows: list[dict[str, Any]]) -> list[str]:
    """Rows as sorted reprs (order-free comparison; -0.0 and 0.0 alike)."""

    def norm(v: Any) -> Any:
        return 0.0 if isinstance(v, float) and v == 0 else v

    return sorted(repr(sorted((k, norm(v)) for k, v in r.items())) for r in rows)


def _outcome(store: Any, table: str, where: Filter) -> tuple[str, Any]:
    try:
        return "rows", sorted_rows(store.select(table, where))
    except PinnacleError as exc:
        return type(exc).__name__, str(exc)


def warm_point_plans(store: Any, table: str = "t") -> None:
    """Select every :data:`WARM` shape once (``{col: v}`` and ``$in`` of 2 to 5 items), so the
    operands that follow meet the plans' checks."""
    for column, valid in WARM.items():
        for value in valid:
            store.select(table, {column: value})
            for n in range(2, 6):
                store.select(table, {column: {"$in": [value] * n}})


def assert_point_paths_agree(
    store: Any,
    rows: list[dict[str, Any]],
    set_point_reads: Callable[[bool], None],
    *,
    table: str = "t",
    examples: int = 150,
) -> None:
    """Every operand of :data:`NEAR` and ``examples`` Hypothesis filters: the plan path
    (``set_point_reads(True)``) and the generic path give the same rows or the same error,
    twice in a row (the first call of a shape may build the plan), and rows as
    :func:`~pinnacle_protocols.filters.matcher` over ``rows`` (the table's contents)."""

    def agree(where: Filter) -> None:
        got = {}
        for point in (True, False):
            set_point_reads(point)
            got[point] = [_outcome(store, table, where), _outcome(store, table, where)]
        assert got[True] == got[False], where
        assert got[True][0] == got[True][1], where
        if got[True][0][0] == "rows":
            expected = [r for r in rows if matcher(where)(r)]
            assert got[True][0][1] == sorted_rows(expected), where

    for column, near in NEAR.items():
        for value in near:
            agree({column: value})

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(where=point_filters())
    def check(where: Filter) -> None:
        agree(where)

    try:
        check()
    finally:
        set_point_reads(True)
