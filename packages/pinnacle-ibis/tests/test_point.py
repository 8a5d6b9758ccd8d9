"""Point reads by cached plan (:mod:`pinnacle_ibis._point`) on the SQL engines.

``select(t, {col: v})`` and ``select(t, {col: {"$in": [...]}})`` skip the filter walk once the
shape has a plan. The plan must give what the generic bound path gives (the same rows, or the
same error) for every operand, including the ones it must hand back (NaN, +-inf, ints beyond
64 bits or 2**53 on a float column, NUL in a string, naive datetimes, None, a bool on an int
column), and a repeated shape must not be compiled or validated again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pinnacle_ibis import IbisDataBackend
from pinnacle_protocols.errors import PinnacleError
from pinnacle_protocols.filters import Filter, compile_filter, matcher, validate_filter
from pinnacle_protocols.records import Schema

ENGINES = [
    pytest.param("duckdb", marks=pytest.mark.duckdb),
    pytest.param("sqlite", marks=pytest.mark.sqlite),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
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


def _rows() -> list[dict[str, Any]]:
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
def filters(draw: st.DrawFn) -> Filter:
    column = draw(st.sampled_from(sorted(NEAR)))
    operand = st.one_of(
        st.sampled_from(NEAR[column]), st.sampled_from(NEAR[column]), st.sampled_from(OPERANDS)
    )
    if draw(st.booleans()):
        return {column: draw(operand)}
    # mostly one type per list (the plan's shape), sometimes mixed
    first = draw(operand)
    same = st.sampled_from([v for v in NEAR[column] if type(v) is type(first)] or [first])
    items = draw(st.lists(st.one_of(same, same, operand), min_size=1, max_size=4))
    return {column: {"$in": [first, *items]}}


def _sorted(rows: list[dict[str, Any]]) -> list[str]:
    def norm(v: Any) -> Any:
        return 0.0 if isinstance(v, float) and v == 0 else v

    return sorted(repr(sorted((k, norm(v)) for k, v in r.items())) for r in rows)


def _outcome(store: Any, where: Filter) -> tuple[str, Any]:
    try:
        return "rows", _sorted(store.select("t", where))
    except PinnacleError as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("engine", ENGINES)
def test_plan_and_generic_paths_agree(engine: str, fresh: Callable[[str], IbisDataBackend]) -> None:
    store: Any = fresh(engine)
    store.create_table("t", SCHEMA)
    rows = _rows()
    store.insert("t", rows)

    # a plan for every shape the examples can take, so their operands meet the plan's checks
    for column, valid in WARM.items():
        for value in valid:
            store.select("t", {column: value})
            for n in range(2, 6):
                store.select("t", {column: {"$in": [value] * n}})
    assert len(store._point_plans) == 5 * sum(len(v) for v in WARM.values())

    def agree(where: Filter) -> None:
        got = {}
        for point in (True, False):
            store._point_reads = point
            # twice: the first call of a shape may build the plan, the second uses it
            got[point] = [_outcome(store, where), _outcome(store, where)]
        assert got[True] == got[False], where
        assert got[True][0] == got[True][1], where
        if got[True][0][0] == "rows":
            expected = [r for r in rows if matcher(where)(r)]
            assert got[True][0][1] == _sorted(expected), where

    # every operand of note, alone, on every column
    for column, near in NEAR.items():
        for value in near:
            agree({column: value})

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(where=filters())
    def check(where: Filter) -> None:
        agree(where)

    try:
        check()
    finally:
        store._point_reads = True


@pytest.mark.parametrize("engine", ENGINES)
def test_repeated_point_reads_skip_the_compiler(
    engine: str, fresh: Callable[[str], IbisDataBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    store: Any = fresh(engine)
    store.create_table("t", SCHEMA)
    rows = _rows()
    store.insert("t", rows)
    walks: list[Filter] = []

    def counting_compile(where: Filter, *args: Any, **kwargs: Any) -> Any:
        walks.append(where)
        return compile_filter(where, *args, **kwargs)

    def counting_validate(where: Filter | None, *args: Any, **kwargs: Any) -> None:
        walks.append(where or {})
        validate_filter(where, *args, **kwargs)

    monkeypatch.setattr("pinnacle_ibis.engines.compile_filter", counting_compile)
    monkeypatch.setattr("pinnacle_ibis.engines.validate_filter", counting_validate)
    monkeypatch.setattr("pinnacle_ibis.backend.validate_filter", counting_validate)
    shapes: list[Callable[[int], Filter]] = [
        lambda n: {"i": [0, 1, -1, 7][n % 4]},
        lambda n: {"x": [0.5, 1 / 3, -2.5, 7.0][n % 4]},
        lambda n: {"x": [0, 7, -1, 2**53][n % 4]},  # ints on a float column
        lambda n: {"s": ["a", "'", "\\", "%s"][n % 4]},
        lambda n: {"b": n % 2 == 0},
        lambda n: {"by": BYTES[n % 4]},
        lambda n: {"t": T0 + timedelta(seconds=n % 3, microseconds=n % 3)},
        lambda n: {"i": {"$in": [n % 8, 7, -1]}},
        lambda n: {"s": {"$in": ["a", STRINGS[n % 6]]}},
    ]
    for shape in shapes:
        first = len(walks)
        store.select("t", shape(0))
        assert len(walks) > first, "the first call of a shape builds its plan generically"
        built = len(walks)
        for n in range(1, 9):
            where = shape(n)
            got = store.select("t", where)
            assert _sorted(got) == _sorted([r for r in rows if matcher(where)(r)]), where
        assert len(walks) == built, f"{shape(1)} was walked again: {walks[built:]}"
    # an operand the plan hands back goes the generic way (and is walked)
    before = len(walks)
    assert store.select("t", {"s": "a\x00b"}) == []
    assert len(walks) > before
    # a projection, a limit or another operator is not a point read
    before = len(walks)
    store.select("t", {"i": 1}, columns=["i"])
    store.select("t", {"i": {"$gt": 1}})
    assert len(walks) >= before + 4


@pytest.mark.parametrize("engine", ENGINES)
def test_plan_follows_a_recreated_table(
    engine: str, fresh: Callable[[str], IbisDataBackend]
) -> None:
    store: Any = fresh(engine)
    store.create_table("u", Schema.of(a="int", b="str"))
    store.insert("u", [{"a": 1, "b": "x"}])
    assert store.select("u", {"a": 1}) == [{"a": 1, "b": "x"}]
    assert store._point_plans
    store.drop_table("u")
    assert not store._point_plans
    store.create_table("u", Schema.of(a="float", c="int"))
    store.insert("u", [{"a": 1.0, "c": 3}])
    got = store.select("u", {"a": 1})
    assert got == [{"a": 1.0, "c": 3}]
    assert type(got[0]["a"]) is float


@pytest.mark.sqlite
def test_point_read_errors_are_translated_as_before(tmp_path: Any) -> None:
    """A table dropped by another connection, a closed backend: the same typed errors."""
    from pinnacle_protocols.errors import BackendUnavailable, TableNotFound

    uri = f"sqlite://{tmp_path}/data.db"
    store: Any = IbisDataBackend.from_uri(uri)
    other = IbisDataBackend.from_uri(uri)
    store.create_table("t", Schema.of(a="int"))
    store.insert("t", [{"a": 1}])
    assert store.select("t", {"a": 1}) == [{"a": 1}]
    assert store._point_plans
    other.drop_table("t")
    other.close()
    with pytest.raises(TableNotFound, match="dropped meanwhile"):
        store.select("t", {"a": 1})
    with pytest.raises(TableNotFound):
        store.select("t", {"a": 1})
    store.create_table("t", Schema.of(a="int"))
    assert store.select("t", {"a": 1}) == []
    store.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        store.select("t", {"a": 1})


@pytest.mark.parametrize("engine", ENGINES)
def test_warm_plan_is_used_only_on_its_own_schema(
    engine: str, fresh: Callable[[str], IbisDataBackend]
) -> None:
    """The warm path (no schema lookup) trusts a plan only while the cached schema is the very
    object it was built on; one row and several rows come back alike (types included)."""
    store: Any = fresh(engine)
    store.create_table("t", SCHEMA)
    one = {"i": 123, "x": 2.0, "s": "one", "b": False, "by": b"1", "t": T0, "j": [1, "a"]}
    rows = [*_rows(), one]
    store.insert("t", rows)
    store.select("t", {"i": 7})
    key = ("t", "i", 0, int)
    plan = store._point_plans[key]
    assert store.select("t", {"i": 123}) == [one]
    for where in (
        {"i": 123},
        {"s": "one"},
        {"i": 7},
        {"i": {"$in": [7, 1]}},
        {"x": 0.5},
        {"b": True},
        {"by": b"\\"},
    ):
        got = store.select("t", where)
        store._point_reads = False
        try:
            generic = store.select("t", where)
        finally:
            store._point_reads = True
        assert [repr(sorted(r.items())) for r in got] == [
            repr(sorted(r.items())) for r in generic
        ], where
    assert store._point_plans[key] is plan  # reused, not rebuilt
    # the schema cache now holds another (equal) object: the plan is rebuilt, not trusted
    store._schema_cache["t"] = Schema.of(**{f.name: f.dtype.value for f in SCHEMA.fields})
    assert _sorted(store.select("t", {"i": 7})) == _sorted([r for r in rows if r["i"] == 7])
    assert store._point_plans[key] is not plan
    assert store._point_plans[key].schema is store._schema_cache["t"]
