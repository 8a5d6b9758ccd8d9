"""Filters bound as driver parameters, statements cached by filter shape (SQL engines).

The bound path and the ibis path (``_bind_filters`` off: the filter built and compiled by ibis,
as before) must return the same rows for the values whose rendering has had bugs: control
characters, quotes and backslashes in strings, exact floats, int64 bounds, NULL tests.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from pinnacle_ibis import IbisDataBackend, _sql
from pinnacle_ibis._bound import StatementCache, finish
from pinnacle_protocols.filters import Filter, matcher
from pinnacle_protocols.records import Schema

ENGINES = [
    pytest.param("duckdb", marks=pytest.mark.duckdb),
    pytest.param("sqlite", marks=pytest.mark.sqlite),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]

SCHEMA = Schema.of(i="int", x="float", s="str", b="bool", by="bytes", t="datetime", j="json")
PLUS_TWO = timezone(timedelta(hours=2))
T0 = datetime(2021, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
STRINGS = ["a\x07b", "aab", "a\x0bb", "a\x0cb", "\x1a", "\\", "'", "%s", "%", "\n\t\r", "", "é€😀"]
FLOATS = [-0.0, 0.0, 0.1, 1 / 3, 2.0**53, 2.0**53 + 2, 1e308, -1e308, 5e-324, -2.5]
INTS = [2**63 - 1, -(2**63), 0, 1, -1, 2**53 + 1]


def _rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n in range(2 * max(len(STRINGS), len(FLOATS), len(INTS))):
        rows.append(
            {
                "i": INTS[n % len(INTS)] if n % 5 else None,
                "x": FLOATS[n % len(FLOATS)] if n % 4 else None,
                "s": STRINGS[n % len(STRINGS)] if n % 7 != 3 else None,
                "b": None if n % 7 == 0 else n % 2 == 0,
                "by": bytes([n, 0, 39, 92]) if n % 3 else None,
                "t": T0 + timedelta(seconds=n, microseconds=n) if n % 4 != 1 else None,
                "j": {"n": n} if n % 2 else None,
            }
        )
    return rows


FILTERS: list[Filter] = [
    *({"s": v} for v in STRINGS),
    {"s": {"$in": ["a\x07b", "\\", None]}},
    {"s": {"$nin": ["aab", "%"]}},
    {"s": {"$gt": "a\x07", "$lte": "a\x0c\x7f"}},
    *({"x": v} for v in FLOATS),
    {"x": 2**53 + 1},  # no double equals it
    {"x": {"$gt": 2**53 + 1}},
    {"x": {"$lt": 2**63 - 1}},
    {"x": {"$ne": -0.0}},
    {"x": {"$in": [0, 0.1, 2**53 + 1, None]}},
    *({"i": v} for v in INTS),
    {"i": {"$gte": 2**63 - 1}},
    {"i": {"$lt": -(2**63) + 1}},
    {"i": {"$nin": [0, 1, None]}},
    {"i": None},
    {"i": {"$ne": None}},
    {"b": True},
    {"b": {"$ne": False}},
    {"by": bytes([4, 0, 39, 92])},
    {"by": {"$in": [bytes([1, 0, 39, 92]), b""]}},
    {"t": T0 + timedelta(seconds=2, microseconds=2)},
    {"t": {"$gt": T0.astimezone(PLUS_TWO) + timedelta(seconds=3)}},
    {"j": {"$exists": True}},
    {"j": None},
    {"$or": [{"s": "'"}, {"x": {"$not": {"$gt": 0}}}, {"i": {"$in": []}}]},
    {"$and": [{"s": {"$ne": None}}, {"$or": [{"b": False}, {"x": {"$gte": 0.1}}]}]},
    {"x": {"$not": {"$not": {"$lt": 1}}}},
]


def _sorted(rows: list[dict[str, Any]]) -> list[str]:
    """Rows in a canonical order; -0.0 as 0.0 (equal in Python; SQLite stores it as 0.0)."""

    def norm(v: Any) -> Any:
        return 0.0 if isinstance(v, float) and v == 0 else v

    return sorted(repr(sorted((k, norm(v)) for k, v in r.items())) for r in rows)


@pytest.fixture
def filled(fresh: Callable[[str], IbisDataBackend]) -> Callable[[str], IbisDataBackend]:
    def make(engine: str) -> IbisDataBackend:
        store = fresh(engine)
        store.create_table("t", SCHEMA)
        store.insert("t", _rows())
        return store

    return make


@pytest.mark.parametrize("engine", ENGINES)
def test_bound_and_ibis_paths_agree(engine: str, filled: Callable[[str], IbisDataBackend]) -> None:
    store: Any = filled(engine)
    rows = _rows()
    for where in FILTERS:
        expected = [r for r in rows if matcher(where)(r)]
        got = {}
        for bind in (True, False):
            store._bind_filters = bind
            got[bind] = (store.select("t", where), store.count("t", where))
        assert _sorted(got[True][0]) == _sorted(got[False][0]), where
        assert got[True][1] == got[False][1] == len(expected), where
        assert _sorted(got[True][0]) == _sorted(expected), where


@pytest.mark.parametrize("engine", ENGINES)
def test_update_and_delete_agree(engine: str, filled: Callable[[str], IbisDataBackend]) -> None:
    stores: dict[bool, Any] = {bind: filled(engine) for bind in (True, False)}
    steps: list[tuple[Filter, dict[str, Any] | None]] = [
        ({"s": {"$in": ["a\x07b", "'"]}}, {"x": -0.0, "s": "q\x07%"}),
        ({"x": {"$gt": 2**53 + 1}}, {"by": b"\x00'"}),
        ({"s": "q\x07%"}, None),
        ({"i": {"$lt": -(2**63) + 1}}, None),
    ]
    for bind, store in stores.items():
        store._bind_filters = bind
        counts = []
        for where, values in steps:
            expected = len(store.select("t", where))
            got = store.delete("t", where) if values is None else store.update("t", where, values)
            assert got == expected, (where, values)
            counts.append(got)
        assert counts[0] > 0
        assert counts[2] == counts[0]
    assert _sorted(stores[True].select("t")) == _sorted(stores[False].select("t"))


@pytest.mark.parametrize("engine", ENGINES)
def test_same_shape_is_compiled_once(
    engine: str, filled: Callable[[str], IbisDataBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    store: Any = filled(engine)
    renders = []
    render = store._render

    def counting(tree: Any) -> str:
        renders.append(tree)
        return str(render(tree))

    def no_ibis(*args: Any) -> Any:
        raise AssertionError("the filter went through ibis")

    monkeypatch.setattr(store, "_render", counting)
    monkeypatch.setattr(_sql, "where_condition", no_ibis)
    calls: list[Callable[[Any], Any]] = [
        lambda v: store.select("t", {"s": v, "x": {"$gte": 0.5}}, columns=["s"], limit=3),
        lambda v: store.count("t", {"s": {"$in": [v, "aab"]}}),
        lambda v: store.update("t", {"s": v}, {"i": 7}),
        lambda v: store.delete("t", {"s": v, "i": {"$ne": 8}}),
    ]
    for call in calls:
        call("a\x07b")
        before = len(renders)
        hits = store._statements.hits
        for v in ("'", "\\", "%s", "x"):
            call(v)
        assert len(renders) == before, "a repeated shape was rendered again"
        assert store._statements.hits >= hits + 4
    # another operator, $in length or projection is another shape
    before = len(renders)
    store.count("t", {"s": {"$in": ["a", "b", "c"]}})
    assert len(renders) == before + 1


@pytest.mark.parametrize("engine", ENGINES)
def test_cache_forgets_a_dropped_table(
    engine: str, fresh: Callable[[str], IbisDataBackend]
) -> None:
    store: Any = fresh(engine)
    store.create_table("u", Schema.of(a="int"))
    store.insert("u", [{"a": 1}])
    assert store.select("u", {"a": 1}) == [{"a": 1}]
    # the select's shape; on DuckDB also the bound one-row insert
    assert len(store._statements) == (2 if engine == "duckdb" else 1)
    store.drop_table("u")
    assert len(store._statements) == 0
    store.create_table("u", Schema.of(a="datetime"))
    store.insert("u", [{"a": T0}])
    assert store.select("u", {"a": T0}) == [{"a": T0}]


@pytest.mark.parametrize("engine", ENGINES)
def test_long_in_list_goes_the_ibis_way(
    engine: str, filled: Callable[[str], IbisDataBackend]
) -> None:
    store: Any = filled(engine)
    store.max_bound_params = 3
    where = {"s": {"$in": STRINGS}}
    expected = [r for r in _rows() if matcher(where)(r)]
    assert _sorted(store.select("t", where)) == _sorted(expected)
    assert len(store._statements) == 0


def test_statement_cache_is_bounded_lru() -> None:
    cache = StatementCache(size=2)
    assert cache.get(("a", 1), lambda: "1") == "1"
    assert cache.get(("b", 2), lambda: "2") == "2"
    assert cache.get(("a", 1), lambda: "x") == "1"  # a is now the most recent
    assert cache.get(("c", 3), lambda: "3") == "3"  # b goes
    assert len(cache) == 2
    assert cache.get(("b", 2), lambda: "new") == "new"
    cache.forget("b")
    assert len(cache) == 1
    assert (cache.hits, cache.misses) == (1, 4)


def test_finish_doubles_percent_for_format() -> None:
    assert finish('SELECT "a%" FROM t WHERE x = \x00', "format") == (
        'SELECT "a%%" FROM t WHERE x = %s'
    )
    assert finish('SELECT "a%" FROM t WHERE x = \x00', "qmark") == 'SELECT "a%" FROM t WHERE x = ?'
    with pytest.raises(ValueError, match="paramstyle"):
        finish("", "named")


@pytest.mark.duckdb
def test_duckdb_small_results_as_tuples_match_arrow(
    fresh: Callable[[str], IbisDataBackend],
) -> None:
    """A statement whose last result was small is fetched with fetchall(): same values."""
    store: Any = fresh("duckdb")
    schema = Schema.of(i="int", x="float", s="str", b="bool", by="bytes", j="json", v="vector")
    store.create_table("w", schema)
    store.insert(
        "w",
        [
            {
                "i": 2**63 - 1,
                "x": -0.0,
                "s": "a\x07'\\",
                "b": False,
                "by": b"\x00'",
                "j": {"k": [1, "x", None, 2.5]},
                "v": [0.5, -0.0, 1e308],
            },
            {"i": -(2**63), "x": 5e-324, "s": "", "b": True, "by": b"", "j": "text", "v": []},
            dict.fromkeys(schema.names),
        ],
    )
    where = {"i": {"$ne": 7}}
    first = store.select("w", where, order_by=["i"])  # Arrow, then remembered as small
    sql = next(iter(store._small))
    assert store._small[sql] is True
    second = store.select("w", where, order_by=["i"])  # fetchall()
    assert repr(second) == repr(first)
    assert len(second) == 3  # $ne matches the NULL row too
