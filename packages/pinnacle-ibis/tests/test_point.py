"""Point reads by cached plan (:mod:`pinnacle_protocols.point`) on the SQL engines.

``select(t, {col: v})`` and ``select(t, {col: {"$in": [...]}})`` skip the filter walk once the
shape has a plan. The plan must give what the generic bound path gives (the same rows, or the
same error) for every operand, including the ones it must hand back (NaN, +-inf, ints beyond
64 bits or 2**53 on a float column, NUL in a string, naive datetimes, None, a bool on an int
column), and a repeated shape must not be compiled or validated again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from pinnacle_ibis import IbisDataBackend
from pinnacle_protocols.filters import Filter, compile_filter, matcher, validate_filter
from pinnacle_protocols.records import Schema
from pinnacle_protocols.testing.point import (
    BYTES,
    SCHEMA,
    STRINGS,
    T0,
    WARM,
    assert_point_paths_agree,
    point_rows,
    sorted_rows,
    warm_point_plans,
)

ENGINES = [
    pytest.param("duckdb", marks=pytest.mark.duckdb),
    pytest.param("sqlite", marks=pytest.mark.sqlite),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]


@pytest.mark.parametrize("engine", ENGINES)
def test_plan_and_generic_paths_agree(engine: str, fresh: Callable[[str], IbisDataBackend]) -> None:
    store: Any = fresh(engine)
    store.create_table("t", SCHEMA)
    rows = point_rows()
    store.insert("t", rows)

    # a plan for every shape the examples can take, so their operands meet the plan's checks
    warm_point_plans(store)
    assert len(store._point_plans) == 5 * sum(len(v) for v in WARM.values())

    def set_point_reads(on: bool) -> None:
        store._point_reads = on

    assert_point_paths_agree(store, rows, set_point_reads)


@pytest.mark.parametrize("engine", ENGINES)
def test_repeated_point_reads_skip_the_compiler(
    engine: str, fresh: Callable[[str], IbisDataBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    store: Any = fresh(engine)
    store.create_table("t", SCHEMA)
    rows = point_rows()
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
            assert sorted_rows(got) == sorted_rows([r for r in rows if matcher(where)(r)]), where
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
    rows = [*point_rows(), one]
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
    assert sorted_rows(store.select("t", {"i": 7})) == sorted_rows([r for r in rows if r["i"] == 7])
    assert store._point_plans[key] is not plan
    assert store._point_plans[key].schema is store._schema_cache["t"]
