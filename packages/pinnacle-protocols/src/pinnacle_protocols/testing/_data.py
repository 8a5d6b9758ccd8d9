"""The DataBackend contract: example tests and a rule-based state machine."""

from __future__ import annotations

import copy
import itertools
import math
import operator
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, Generic, Literal, TypeVar

import attrs
import pytest
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from pinnacle_protocols.errors import (
    DropRefused,
    FilterError,
    PinnacleError,
    SchemaError,
    TableExists,
    TableNotFound,
    UnsupportedOperation,
)
from pinnacle_protocols.filters import Filter, matcher
from pinnacle_protocols.protocols import (
    DataBackend,
    OrderBy,
    SupportsDefaultsFromURI,
    SupportsIndexes,
    SupportsInsertMany,
    SupportsMatchCount,
    SupportsMatchCounts,
    SupportsNativeCopy,
    SupportsScan,
    SupportsSortedScan,
)
from pinnacle_protocols.records import CountQuery, DType, Field, Schema
from pinnacle_protocols.testing._artifact import drop_without_force
from pinnacle_protocols.testing._base import ContractBase, StoreStateMachine
from pinnacle_protocols.testing.strategies import (
    HARD_JSON,
    HARD_NAMES,
    HARD_STRINGS,
    ORDERABLE_DTYPES,
    column_names,
    column_values,
    filters,
    order_bys,
    rows,
    schemas,
    table_names,
    value_pools,
)
from pinnacle_protocols.uri import RedactedURI

__all__ = [
    "FILTER_CASES",
    "DataBackendContract",
    "DataBackendStateMachine",
    "canonical",
    "check_row_types",
    "normalize_row",
    "reference_order",
]

DB = TypeVar("DB", bound=DataBackend)

# ---------------------------------------------------------------------------- model helpers

#: Python's string order (by code point), the order the contract expects of every engine.
_PY_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$lt": operator.lt,
    "$lte": operator.le,
    "$gt": operator.gt,
    "$gte": operator.ge,
}


def canonical(value: Any) -> Any:
    """A hashable form of a cell for multiset comparison.

    Numbers compare numerically (``1 == 1.0``; bool never equals int), datetimes by instant
    (a naive datetime never equals an aware one), JSON objects ignore key order.
    """
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("num", value)
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(value))
    if isinstance(value, datetime):
        return ("datetime", value)
    if isinstance(value, Mapping):
        return ("dict", tuple(sorted((str(k), canonical(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(canonical(v) for v in value))
    return ("other", repr(value))


def normalize_row(schema: Schema, row: Mapping[str, Any]) -> dict[str, Any]:
    """What the reference stores for a valid inserted row: every column, normalized types."""
    out: dict[str, Any] = {}
    for f in schema.fields:
        value = row.get(f.name)
        if value is not None:
            if f.dtype is DType.FLOAT:
                value = float(value)
            elif f.dtype is DType.DATETIME:
                value = value.astimezone(UTC)
            elif f.dtype is DType.VECTOR:
                value = [float(v) for v in value]
            elif f.dtype is DType.BYTES:
                value = bytes(value)
            else:
                value = copy.deepcopy(value)
        out[f.name] = value
    return out


def check_row_types(schema: Schema, row: Mapping[str, Any], where: str) -> None:
    """Assert every returned cell has the portable Python type of its column (or is None)."""
    for name, value in row.items():
        if name not in schema or value is None:
            continue
        dtype = schema[name].dtype
        if dtype is DType.INT:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif dtype is DType.FLOAT:
            ok = isinstance(value, float)
        elif dtype is DType.STR:
            ok = isinstance(value, str)
        elif dtype is DType.BOOL:
            ok = isinstance(value, bool)
        elif dtype is DType.BYTES:
            ok = isinstance(value, bytes)
        elif dtype is DType.DATETIME:
            ok = isinstance(value, datetime) and value.utcoffset() is not None
        elif dtype is DType.JSON:
            ok = isinstance(value, (bool, int, float, str, list, dict))
        else:
            ok = isinstance(value, list) and all(isinstance(v, float) for v in value)
        kind = type(value).__name__
        assert ok, f"{where}: column {name!r} ({dtype.value}) returned {kind} {value!r:.80}"


def reference_order(rows_: list[dict[str, Any]], order_by: OrderBy) -> list[dict[str, Any]]:
    """Sort like the reference: stable, NULL first ascending and last descending."""
    out = list(rows_)
    for item in reversed(list(order_by)):
        column, direction = (item, "asc") if isinstance(item, str) else item

        def key(row: Mapping[str, Any], column: str = column) -> tuple[Any, ...]:
            value = row[column]
            return (0,) if value is None else (1, value)

        out.sort(key=key, reverse=direction == "desc")
    return out


def _order_columns(order_by: OrderBy) -> list[str]:
    return [item if isinstance(item, str) else item[0] for item in order_by]


def _project(row: Mapping[str, Any], columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(canonical(row.get(c)) for c in columns)


def _bag_diff(got: Counter[Any], want: Counter[Any]) -> str:
    extra = list((got - want).elements())[:3]
    missing = list((want - got).elements())[:3]
    return f"unexpected rows {extra!r}; missing rows {missing!r}"


class _ArrowLike:
    """A stand-in for ``pyarrow.Table``: only ``to_pylist``."""

    def __init__(self, rows_: list[dict[str, Any]]) -> None:
        self._rows = rows_

    def to_pylist(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows]


# ---------------------------------------------------------------------------- example data
_T = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
_SCHEMA = Schema(
    fields=(
        Field(name="k", dtype=DType.INT, nullable=False),
        Field(name="i", dtype=DType.INT),
        Field(name="f", dtype=DType.FLOAT),
        Field(name="s", dtype=DType.STR),
        Field(name="b", dtype=DType.BOOL),
        Field(name="y", dtype=DType.BYTES),
        Field(name="t", dtype=DType.DATETIME),
        Field(name="j", dtype=DType.JSON),
        Field(name="v", dtype=DType.VECTOR, dim=2),
    )
)
_ROWS: list[dict[str, Any]] = [
    {"k": 0, "i": 1, "f": 1.5, "s": "a", "b": True, "y": b"\x00a", "t": _T, "j": {"x": 1},
     "v": [1.0, 2.0]},
    {"k": 1, "i": 2, "f": -0.5, "s": "b", "b": False, "y": b"b", "t": _T + timedelta(days=1),
     "j": [1, "two"], "v": [0.0, -0.5]},
    {"k": 2},
    {"k": 3, "i": 3, "f": 2, "s": "B", "b": True, "y": b"", "t": _T - timedelta(days=1),
     "j": "text", "v": [0.25, 0.125]},
]  # fmt: skip

#: (id, filter, expected ``k`` values) over the example rows: the filter semantics by example.
FILTER_CASES: tuple[tuple[str, Filter | None, set[int]], ...] = (
    ("none", None, {0, 1, 2, 3}),
    ("empty", {}, {0, 1, 2, 3}),
    ("eq-shorthand", {"i": 1}, {0}),
    ("eq", {"i": {"$eq": 2}}, {1}),
    ("eq-null", {"i": None}, {2}),
    ("eq-op-null", {"i": {"$eq": None}}, {2}),
    ("ne-matches-null", {"i": {"$ne": 1}}, {1, 2, 3}),
    ("ne-null", {"i": {"$ne": None}}, {0, 1, 3}),
    ("gt", {"i": {"$gt": 1}}, {1, 3}),
    ("gte-lt", {"i": {"$gte": 2, "$lt": 3}}, {1}),
    ("lte", {"i": {"$lte": 2}}, {0, 1}),
    ("in", {"i": {"$in": [1, 3]}}, {0, 3}),
    ("in-with-null", {"i": {"$in": [1, None]}}, {0, 2}),
    ("in-empty", {"i": {"$in": []}}, set()),
    ("nin-matches-null", {"i": {"$nin": [1]}}, {1, 2, 3}),
    ("nin-with-null", {"i": {"$nin": [1, None]}}, {1, 3}),
    ("nin-empty", {"i": {"$nin": []}}, {0, 1, 2, 3}),
    ("exists", {"i": {"$exists": True}}, {0, 1, 3}),
    ("not-exists", {"i": {"$exists": False}}, {2}),
    ("not-matches-null", {"i": {"$not": {"$gt": 1}}}, {0, 2}),
    ("not-in", {"i": {"$not": {"$in": [1, 2]}}}, {2, 3}),
    ("implicit-and", {"i": 1, "s": "a"}, {0}),
    ("and", {"$and": [{"i": {"$gte": 1}}, {"b": True}]}, {0, 3}),
    ("or", {"$or": [{"i": 1}, {"s": "b"}]}, {0, 1}),
    ("or-null", {"$or": [{"i": {"$lt": 2}}, {"i": None}]}, {0, 2}),
    ("nested", {"$or": [{"$and": [{"b": True}, {"f": {"$gt": 1.5}}]}, {"k": 1}]}, {1, 3}),
    ("float-int-operand", {"f": {"$gt": 1}}, {0, 3}),
    ("float-eq-int", {"f": 2}, {3}),
    ("str-eq-case-sensitive", {"s": {"$in": ["a", "B"]}}, {0, 3}),
    ("bool-eq", {"b": False}, {1}),
    ("bool-ne", {"b": {"$ne": True}}, {1, 2}),
    ("bytes-eq-empty", {"y": b""}, {3}),
    ("bytes-eq-nul", {"y": b"\x00a"}, {0}),
    ("datetime-gt", {"t": {"$gt": _T}}, {1}),
    ("datetime-eq", {"t": _T}, {0}),
    ("datetime-other-offset", {"t": _T.astimezone(timezone(timedelta(hours=-5)))}, {0}),
    ("json-null", {"j": None}, {2}),
    ("json-exists", {"j": {"$exists": True}}, {0, 1, 3}),
    ("vector-ne-null", {"v": {"$ne": None}}, {0, 1, 3}),
)

#: Filters on ordered str and bytes: code-point and bytewise order (a collation-dependent gap).
ORDER_FILTER_CASES: tuple[tuple[str, Filter, set[int]], ...] = (
    ("str-gt-code-point", {"s": {"$gt": "a"}}, {1}),
    ("str-lt-code-point", {"s": {"$lt": "a"}}, {3}),
    ("bytes-gt-bytewise", {"y": {"$gt": b"\x00"}}, {0, 1}),
    ("bytes-lte-bytewise", {"y": {"$lte": b"\x00a"}}, {0, 3}),
)

#: Filters every backend must reject with FilterError.
BAD_FILTERS: tuple[tuple[str, Any], ...] = (
    ("unknown-op", {"i": {"$regex": "x"}}),
    ("unknown-top-op", {"$nor": [{"i": 1}]}),
    ("unknown-column", {"nope": 1}),
    ("wrong-type", {"i": "1"}),
    ("bool-for-int", {"i": True}),
    ("gt-null", {"i": {"$gt": None}}),
    ("in-not-list", {"i": {"$in": 1}}),
    ("exists-not-bool", {"i": {"$exists": 1}}),
    ("not-a-dict", ["i", 1]),
    ("compare-json", {"j": {"x": 1}}),
    ("naive-datetime", {"t": datetime(2024, 1, 1)}),
    ("empty-or", {"$or": []}),
)

#: Rows every backend must reject with SchemaError (nothing of the insert is written).
BAD_ROWS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("unknown-column", {"k": 9, "nope": 1}),
    ("str-in-int", {"k": 9, "i": "1"}),
    ("bool-in-int", {"k": 9, "i": True}),
    ("float-in-int", {"k": 9, "i": 1.5}),
    ("bool-in-float", {"k": 9, "f": False}),
    ("int-in-bool", {"k": 9, "b": 1}),
    ("int-in-str", {"k": 9, "s": 1}),
    ("str-in-bytes", {"k": 9, "y": "x"}),
    ("naive-datetime", {"k": 9, "t": datetime(2024, 1, 1)}),
    ("str-in-datetime", {"k": 9, "t": "2024-01-01"}),
    ("non-json", {"k": 9, "j": {"x": {1, 2}}}),
    ("vector-wrong-dim", {"k": 9, "v": [1.0]}),
    ("vector-of-str", {"k": 9, "v": ["a", "b"]}),
    ("null-in-not-nullable", {"k": None}),
    ("missing-not-nullable", {"i": 1}),
    ("int-too-big", {"k": 2**63}),
)


def _bad_row(schema: Schema, draw: Callable[..., Any], good: dict[str, Any]) -> dict[str, Any]:
    """``good`` with one thing made invalid: an unknown column, a wrong type or a NULL."""
    bad = dict(good)
    names_cf = {n.casefold() for n in schema.names}
    choice = draw(st.integers(0, 2))
    if choice == 0:
        extra = draw(column_names().filter(lambda n: n.casefold() not in names_cf))
        bad[extra] = 1
        return bad
    field = draw(st.sampled_from(list(schema.fields)))
    if choice == 1 and not field.nullable:
        bad[field.name] = None
        return bad
    # NaN and infinities are not portable (a documented rule): insert must refuse them.
    not_finite = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    wrong: dict[DType, Any] = {
        DType.INT: "1",
        DType.FLOAT: draw(st.sampled_from(["1.5", not_finite])),
        DType.STR: 1,
        DType.BOOL: 1,
        DType.BYTES: "bytes",
        DType.DATETIME: datetime(2024, 1, 1),
        DType.JSON: draw(st.sampled_from([{"x": {1, 2}}, not_finite, {"a": [not_finite]}])),
        DType.VECTOR: draw(st.sampled_from([["x"], [not_finite]])),
    }
    bad[field.name] = wrong[field.dtype]
    return bad


_BAD_FILTERS: st.SearchStrategy[Filter | None] = st.sampled_from(
    [None, None, {"$nor": [{}]}, {"$where": "1"}, {"\u0000bad": 1}, {"$and": [{"$regex": 1}]}]
)
_BAD_OPS = st.sampled_from(["$regex", "$like", "$elemMatch", "$size", "eq", "$NE"])
_TABLE_ACTIONS = st.sampled_from(["create", "exists", "drop", "missing", "refuse"])


@attrs.frozen(kw_only=True)
class _Strategies:
    """Strategies built once per table (building them is the expensive part of drawing)."""

    where: st.SearchStrategy[Filter | None]
    row: st.SearchStrategy[dict[str, Any]]
    rows: st.SearchStrategy[list[dict[str, Any]]]
    values: st.SearchStrategy[dict[str, Any]]
    order_by: st.SearchStrategy[OrderBy]
    columns: st.SearchStrategy[list[str] | None]

    @classmethod
    def build(
        cls,
        schema: Schema,
        pools: Mapping[str, Sequence[Any]],
        unordered: frozenset[DType],
        per_insert: int,
    ) -> _Strategies:
        row = rows(schema, pools=pools)
        settable = {
            f.name: st.one_of(column_values(f, pools), st.none())
            if f.nullable
            else column_values(f, pools)
            for f in schema.fields
        }
        names = list(schema.names)
        return cls(
            where=filters(schema, pools=pools, unordered=unordered),
            row=row,
            rows=st.lists(row, max_size=per_insert),
            values=st.one_of(
                *[st.fixed_dictionaries({n: settable[n]}) for n in names],
                *[
                    st.fixed_dictionaries({a: settable[a], b: settable[b]})
                    for a, b in itertools.combinations(names, 2)
                ],
            ),
            order_by=st.one_of(st.just([]), order_bys(schema, unordered=unordered, min_size=1)),
            columns=st.one_of(st.none(), st.lists(st.sampled_from(names), unique=True, min_size=1)),
        )


class DataBackendStateMachine(StoreStateMachine[DB], Generic[DB]):
    """The databackend contract's state machine. Model: the main table's rows as a list of
    normalized dicts, plus side tables. Subclass it, define :meth:`make_store`, and run it (see
    :class:`StoreStateMachine`). The update and delete rules follow the store class's
    ``supports_update`` / ``supports_delete``; ``_id`` is ignored where ``has_native_ids``.

    Attributes:
        dtypes: Column types drawn (default: all of DType).
        unordered_dtypes: dtypes on which no ``$gt/$gte/$lt/$lte`` and no ``order_by`` is drawn
            (e.g. a str collation that is not code-point order).
        max_rows: Rows kept at most (default 60).
        max_rows_per_insert: Rows per insert (default 6).
        max_columns: Columns in drawn schemas (default 6).
    """

    dtypes: ClassVar[tuple[DType, ...]] = tuple(DType)
    unordered_dtypes: ClassVar[frozenset[DType]] = frozenset()
    max_rows: ClassVar[int] = 60
    max_rows_per_insert: ClassVar[int] = 6
    max_columns: ClassVar[int] = 6

    def __init__(self) -> None:
        super().__init__()
        cls = type(self.store)
        self.can_update = cls.supports_update
        self.can_delete = cls.supports_delete
        self.native_ids = cls.has_native_ids
        self.table = ""
        self.schema = Schema.of(x="int")
        self.pools: dict[str, list[Any]] = {}
        self.model: list[dict[str, Any]] = []
        self.tables: dict[str, Schema] = {}
        self.strategies: _Strategies  # set in create_main_table (the initialize rule)
        self.full_order: list[tuple[str, Literal["asc", "desc"]]] = []

    # -------------------------------------------------------------- helpers
    def got(self, result: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
        out = []
        for raw in result:
            row = {k: v for k, v in raw.items() if k != "_id"} if self.native_ids else raw
            check_row_types(self.schema, row, what)
            out.append(row)
        return out

    def matching(self, where: Filter | None) -> list[dict[str, Any]]:
        match = matcher(where)
        return [r for r in self.model if match(r)]

    def draw_where(self, data: st.DataObject) -> Filter | None:
        return data.draw(self.strategies.where, label="where")

    def taken(self, name: str) -> bool:
        return name.casefold() in {t.casefold() for t in self.tables}

    # -------------------------------------------------------------- setup
    @initialize(data=st.data())
    def create_main_table(self, data: st.DataObject) -> None:
        self.table = data.draw(table_names(), label="table")
        self.schema = data.draw(
            schemas(dtypes=self.dtypes, max_columns=self.max_columns), label="schema"
        )
        self.pools = data.draw(value_pools(self.schema), label="pools")
        self.strategies = _Strategies.build(
            self.schema, self.pools, self.unordered_dtypes, self.max_rows_per_insert
        )
        orderable = [
            f.name
            for f in self.schema.fields
            if (f.dtype in ORDERABLE_DTYPES or f.dtype is DType.BOOL)
            and f.dtype not in self.unordered_dtypes
        ]
        self.full_order = [(n, "desc" if i % 2 else "asc") for i, n in enumerate(orderable[:3])]
        self.store.create_table(self.table, self.schema)
        self.tables[self.table] = self.schema
        # Start with rows, so every example's filters have something to match.
        first = data.draw(self.strategies.rows, label="initial rows")
        assert self.store.insert(self.table, copy.deepcopy(first)) == len(first)
        self.model.extend(normalize_row(self.schema, r) for r in first)

    # -------------------------------------------------------------- writes
    @precondition(lambda self: len(self.model) < self.max_rows)
    @rule(data=st.data(), arrow=st.booleans())
    def insert(self, data: st.DataObject, arrow: bool) -> None:
        new = data.draw(self.strategies.rows, label="rows")
        payload = _ArrowLike(new) if arrow else copy.deepcopy(new)
        count = self.store.insert(self.table, payload)
        assert count == len(new), f"insert returned {count} for {len(new)} rows"
        self.model.extend(normalize_row(self.schema, r) for r in new)

    @rule(data=st.data())
    def insert_invalid(self, data: st.DataObject) -> None:
        good = data.draw(self.strategies.row, label="good row")
        bad = _bad_row(self.schema, data.draw, good)
        note(f"bad row: {bad!r}")
        with pytest.raises(SchemaError):
            self.store.insert(self.table, [good, bad])

    @precondition(lambda self: self.can_update)
    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        where = self.draw_where(data)
        values = data.draw(self.strategies.values, label="values")
        expected = self.matching(where)
        count = self.store.update(self.table, where, copy.deepcopy(values))
        assert count == len(expected), f"update matched {count}, expected {len(expected)}"
        normalized = normalize_row(self.schema, values)
        for row in expected:
            row.update({k: copy.deepcopy(normalized[k]) for k in values})

    @precondition(lambda self: self.can_delete)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        where = self.draw_where(data)
        expected = self.matching(where)
        count = self.store.delete(self.table, where)
        assert count == len(expected), f"delete removed {count}, expected {len(expected)}"
        doomed = {id(r) for r in expected}
        self.model = [r for r in self.model if id(r) not in doomed]

    @precondition(lambda self: not self.can_update)
    @rule()
    def update_unsupported(self) -> None:
        with pytest.raises(UnsupportedOperation):
            self.store.update(self.table, None, {})

    @precondition(lambda self: not self.can_delete)
    @rule()
    def delete_unsupported(self) -> None:
        with pytest.raises(UnsupportedOperation):
            self.store.delete(self.table, None)

    # -------------------------------------------------------------- reads
    @rule(data=st.data())
    def select(self, data: st.DataObject) -> None:
        where = self.draw_where(data)
        order: OrderBy = data.draw(self.strategies.order_by, label="order_by")
        names = list(self.schema.names)
        columns = data.draw(self.strategies.columns, label="columns")
        if columns is not None:
            columns += [c for c in _order_columns(order) if c not in columns]
        limit = data.draw(st.one_of(st.none(), st.integers(0, 8)), label="limit")
        result = self.got(
            self.store.select(
                self.table, where, columns=columns, limit=limit, order_by=order or None
            ),
            "select",
        )
        shown = columns if columns is not None else names
        for row in result:
            assert set(row) == set(shown), f"select returned columns {sorted(row)}, want {shown}"
        expected = self.matching(where)
        if order:
            expected = reference_order(expected, order)
            keys = _order_columns(order)
            got_keys = [_project(r, keys) for r in result]
            want_keys = [_project(r, keys) for r in expected][: len(result)]
            assert got_keys == want_keys, f"order_by {order}: got {got_keys}, want {want_keys}"
        got_bag = Counter(_project(r, shown) for r in result)
        want_bag = Counter(_project(r, shown) for r in expected)
        if limit is None:
            assert got_bag == want_bag, _bag_diff(got_bag, want_bag)
        else:
            assert len(result) == min(limit, len(expected)), (
                f"limit {limit}: got {len(result)} rows of {len(expected)} matching"
            )
            assert not (got_bag - want_bag), _bag_diff(got_bag, want_bag)

    @rule(data=st.data())
    def count(self, data: st.DataObject) -> None:
        where = self.draw_where(data)
        assert self.store.count(self.table, where) == len(self.matching(where))

    @rule(data=st.data(), where=_BAD_FILTERS)
    def bad_filter(self, data: st.DataObject, where: Filter | None) -> None:
        if where is None:  # an unknown operator on one of this table's columns
            column = data.draw(st.sampled_from(list(self.schema.names)), label="column")
            op = data.draw(_BAD_OPS, label="op")
            where = {column: {op: 1}}
        with pytest.raises(FilterError):
            self.store.select(self.table, where)
        with pytest.raises(FilterError):
            self.store.count(self.table, where)
        if self.can_delete:
            with pytest.raises(FilterError):
                self.store.delete(self.table, where)

    # -------------------------------------------------------------- tables
    @rule(data=st.data(), action=_TABLE_ACTIONS, name=table_names())
    def tables_and_drop(self, data: st.DataObject, action: str, name: str) -> None:
        """Side tables: create, create again (TableExists), drop, missing; drop refused."""
        if action == "create" and len(self.tables) < 4 and not self.taken(name):
            schema = data.draw(schemas(dtypes=self.dtypes, max_columns=2), label="side schema")
            self.store.create_table(name, schema)
            self.tables[name] = schema
        elif action == "exists":
            existing = data.draw(st.sampled_from(sorted(self.tables)), label="existing")
            with pytest.raises(TableExists):
                self.store.create_table(existing, Schema.of(other="str"))
        elif action == "drop" and len(self.tables) > 1:
            side = sorted(t for t in self.tables if t != self.table)
            victim = data.draw(st.sampled_from(side), label="drop")
            self.store.drop_table(victim)
            del self.tables[victim]
        elif action == "missing" and not self.taken(name):
            with pytest.raises(TableNotFound):
                self.store.drop_table(name)
            with pytest.raises(TableNotFound):
                self.store.count(name)
        elif action == "refuse":
            force = data.draw(st.sampled_from([None, False]), label="force")
            with pytest.raises(DropRefused):
                drop_without_force(self.store, force)

    # -------------------------------------------------------------- invariants
    @invariant()
    def same_rows(self) -> None:
        if not self.table:
            return
        names = list(self.schema.names)
        # Every row, ordered by the orderable columns (alternating asc/desc), so NULL
        # placement and type-specific order are checked after every step.
        order = self.full_order
        result = self.got(self.store.select(self.table, order_by=order or None), "select all")
        got_bag = Counter(_project(r, names) for r in result)
        want_bag = Counter(_project(r, names) for r in self.model)
        assert got_bag == want_bag, _bag_diff(got_bag, want_bag)
        if order:
            keys = _order_columns(order)
            got_keys = [_project(r, keys) for r in result]
            want_keys = [_project(r, keys) for r in reference_order(self.model, order)]
            assert got_keys == want_keys, f"order_by {order}: {got_keys} != {want_keys}"
        assert self.store.count(self.table) == len(self.model)

    @invariant()
    def same_tables(self) -> None:
        if not self.table:
            return
        assert self.store.list_tables() == sorted(self.tables)
        assert self.store.table_schema(self.table) == self.schema


class DataBackendContract(ContractBase[DB], Generic[DB]):
    """Contract tests for a :class:`~pinnacle_protocols.protocols.DataBackend`.

    Subclass as ``class TestMyBackend(DataBackendContract[MyBackend])`` and define the
    ``make_store`` fixture. Capability flags read from the *store class*: ``supports_update``,
    ``supports_delete`` (when False, the update/delete tests check UnsupportedOperation and the
    state machine skips those rules) and ``has_native_ids`` (rows may carry ``_id``, which is
    ignored in comparisons). Knobs: those of :class:`DataBackendStateMachine` (``dtypes``,
    ``unordered_dtypes``, ``max_rows``...), passed on to it. Removing a dtype or an order is a
    declared gap: also mark the example tests that use it in ``known_gaps``.
    """

    machine = DataBackendStateMachine
    machine_knobs = ("dtypes", "unordered_dtypes", "max_rows", "max_rows_per_insert", "max_columns")
    dtypes = DataBackendStateMachine.dtypes
    unordered_dtypes = DataBackendStateMachine.unordered_dtypes
    max_rows = DataBackendStateMachine.max_rows
    max_rows_per_insert = DataBackendStateMachine.max_rows_per_insert
    max_columns = DataBackendStateMachine.max_columns

    # ------------------------------------------------------------------ helpers
    def _strip(self, store: DB, got: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if type(store).has_native_ids:
            return [{k: v for k, v in r.items() if k != "_id"} for r in got]
        return got

    def _example(self, store: DB, name: str = "t") -> str:
        store.create_table(name, _SCHEMA)
        assert store.insert(name, _ROWS) == len(_ROWS)
        return name

    def _ks(self, store: DB, table: str, where: Filter | None) -> set[int]:
        got = self._strip(store, store.select(table, where))
        ks = [r["k"] for r in got]
        assert len(ks) == len(set(ks)), f"select returned duplicates: {ks}"
        return set(ks)

    # ------------------------------------------------------------------ tables
    def test_is_a_databackend(self, store: DB) -> None:
        """The store satisfies the runtime-checkable protocol, flags are bools, URI redacted."""
        assert isinstance(store, DataBackend)
        assert isinstance(store.uri, RedactedURI)
        for flag in ("supports_update", "supports_delete", "has_native_ids"):
            assert isinstance(getattr(type(store), flag), bool), f"{flag} must be a bool ClassVar"

    def test_starts_empty(self, store: DB) -> None:
        """A fresh backend has no tables."""
        assert store.list_tables() == []

    def test_create_list_drop_tables(self, store: DB) -> None:
        """Tables are listed sorted; TableExists on duplicates; TableNotFound after drop."""
        schema = Schema.of(x="int")
        for name in ("b", "a", "select", 'it\'s "quoted"', "名前"):
            store.create_table(name, schema)
        assert store.list_tables() == sorted(["b", "a", "select", 'it\'s "quoted"', "名前"])
        with pytest.raises(TableExists):
            store.create_table("a", schema)
        store.drop_table("a")
        assert "a" not in store.list_tables()
        with pytest.raises(TableNotFound):
            store.drop_table("a")

    def test_table_schema_round_trip(self, store: DB) -> None:
        """table_schema returns exactly the schema the table was created with."""
        store.create_table("t", _SCHEMA)
        assert store.table_schema("t") == _SCHEMA

    def test_missing_table(self, store: DB) -> None:
        """Every table operation raises TableNotFound for an unknown table."""
        with pytest.raises(TableNotFound):
            store.table_schema("nope")
        with pytest.raises(TableNotFound):
            store.insert("nope", [{"x": 1}])
        with pytest.raises(TableNotFound):
            store.select("nope")
        with pytest.raises(TableNotFound):
            store.count("nope")
        if type(store).supports_update:
            with pytest.raises(TableNotFound):
                store.update("nope", None, {"x": 1})
        if type(store).supports_delete:
            with pytest.raises(TableNotFound):
                store.delete("nope", None)

    # ------------------------------------------------------------------ insert / select
    def test_insert_and_select_every_dtype(self, store: DB) -> None:
        """Every portable dtype round-trips exactly; missing columns come back as NULL."""
        table = self._example(store)
        got = self._strip(store, store.select(table, order_by=["k"]))
        for row in got:
            check_row_types(_SCHEMA, row, "select")
        assert [set(r) for r in got] == [set(_SCHEMA.names)] * len(_ROWS)
        expected = [normalize_row(_SCHEMA, r) for r in _ROWS]
        assert [_project(r, _SCHEMA.names) for r in got] == [
            _project(r, _SCHEMA.names) for r in expected
        ], got

    def test_extreme_values_round_trip(self, store: DB) -> None:
        """int64 bounds, float extremes, Unicode, NUL bytes and old/new datetimes round-trip."""
        schema = Schema.of(i="int", f="float", s="str", y="bytes", t="datetime", j="json")
        extremes = [
            {"i": 2**63 - 1, "f": 1e300, "s": "😀 ' OR 1=1 --", "y": b"\x00" * 3,
             "t": datetime(1970, 1, 1, tzinfo=UTC), "j": {"n": 2**63 - 1, "x": [None]}},
            {"i": -(2**63), "f": -1e-300, "s": "trailing  ", "y": bytes(range(256)),
             "t": datetime(2099, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "j": -0.5},
            {"i": 0, "f": -0.0, "s": "", "y": b"", "t": _T, "j": ""},
        ]  # fmt: skip
        store.create_table("x", schema)
        store.insert("x", extremes)
        got = Counter(_project(r, schema.names) for r in self._strip(store, store.select("x")))
        want = Counter(_project(normalize_row(schema, r), schema.names) for r in extremes)
        assert got == want, _bag_diff(got, want)

    def test_hard_json_values_round_trip(self, store: DB) -> None:
        """Empty containers, 30-deep nesting, int64 bounds and control characters in JSON.

        The deep profile found ``{"k": [{"k": ... []}]}`` (32 containers) failing on MariaDB,
        whose ``JSON_VALID`` allows fewer than 32 levels: 30 is the portable depth.
        """
        schema = Schema.of(k="int", j="json")
        store.create_table("j", schema)
        rows = [{"k": i, "j": v} for i, v in enumerate(HARD_JSON)]
        assert store.insert("j", copy.deepcopy(rows)) == len(rows)
        got = Counter(_project(r, schema.names) for r in self._strip(store, store.select("j")))
        want = Counter(_project(normalize_row(schema, r), schema.names) for r in rows)
        assert got == want, _bag_diff(got, want)

    def test_insert_returns_count(self, store: DB) -> None:
        """insert returns the number of rows; an empty insert is 0."""
        store.create_table("t", Schema.of(x="int"))
        assert store.insert("t", []) == 0
        assert store.insert("t", [{"x": 1}, {"x": 2}, {}]) == 3
        assert store.count("t") == 3
        assert store.count("t", {"x": None}) == 1

    def test_insert_arrow_like(self, store: DB) -> None:
        """insert accepts anything with ``to_pylist()`` (a pyarrow Table)."""
        store.create_table("t", Schema.of(x="int", s="str"))
        assert store.insert("t", _ArrowLike([{"x": 1, "s": "a"}, {"x": 2, "s": None}])) == 2
        got = sorted((r["x"], r["s"]) for r in self._strip(store, store.select("t")))
        assert got == [(1, "a"), (2, None)]

    def test_int_accepted_for_float(self, store: DB) -> None:
        """An int in a float column is stored as a float."""
        store.create_table("t", Schema.of(f="float"))
        store.insert("t", [{"f": 3}])
        (row,) = self._strip(store, store.select("t"))
        assert row["f"] == 3.0
        assert isinstance(row["f"], float)

    def test_datetime_normalized_to_utc(self, store: DB) -> None:
        """A datetime with another offset is the same instant, returned timezone-aware."""
        store.create_table("t", Schema.of(t="datetime"))
        plus2 = _T.astimezone(timezone(timedelta(hours=2)))
        store.insert("t", [{"t": plus2}])
        (row,) = self._strip(store, store.select("t"))
        assert row["t"] == _T
        assert row["t"].utcoffset() is not None
        assert store.count("t", {"t": _T}) == 1

    @pytest.mark.parametrize(("case", "bad"), BAD_ROWS, ids=[c for c, _ in BAD_ROWS])
    def test_insert_rejects_bad_rows(self, store: DB, case: str, bad: dict[str, Any]) -> None:
        """SchemaError for an invalid row, and nothing of that insert is written."""
        table = self._example(store)
        with pytest.raises(SchemaError):
            store.insert(table, [{"k": 100}, bad])
        assert store.count(table) == len(_ROWS)

    def test_returned_rows_are_copies(self, store: DB) -> None:
        """Mutating inserted or returned rows never changes the stored data."""
        store.create_table("t", Schema.of(j="json", v="vector", s="str"))
        row: dict[str, Any] = {"j": {"a": [1]}, "v": [1.0, 2.0], "s": "x"}
        store.insert("t", [row])
        row["j"]["a"].append(2)
        row["v"].append(3.0)
        row["s"] = "changed"
        (got,) = self._strip(store, store.select("t"))
        got["j"]["a"].append(99)
        got["v"][0] = 42.0
        got["s"] = "mutated"
        (again,) = self._strip(store, store.select("t"))
        assert again == {"j": {"a": [1]}, "v": [1.0, 2.0], "s": "x"}

    def test_select_columns(self, store: DB) -> None:
        """``columns`` projects (in any order); an unknown column raises SchemaError."""
        table = self._example(store)
        got = self._strip(store, store.select(table, {"k": 0}, columns=["s", "k"]))
        assert got == [{"s": "a", "k": 0}]
        with pytest.raises(SchemaError):
            store.select(table, columns=["nope"])

    def test_select_limit(self, store: DB) -> None:
        """``limit`` caps the number of matching rows; 0 gives none."""
        table = self._example(store)
        assert len(store.select(table, limit=2)) == 2
        assert store.select(table, limit=0) == []
        assert len(store.select(table, {"b": True}, limit=10)) == 2
        assert set(self._ks(store, table, None)) >= {
            r["k"] for r in self._strip(store, store.select(table, limit=3))
        }

    def test_order_by_nulls(self, store: DB) -> None:
        """NULL sorts first ascending and last descending; several keys are applied in order."""
        table = self._example(store)

        def ks(order: OrderBy) -> list[int]:
            return [r["k"] for r in store.select(table, order_by=order)]

        assert ks(["i"]) == [2, 0, 1, 3]
        assert ks([("i", "asc")]) == [2, 0, 1, 3]
        assert ks([("i", "desc")]) == [3, 1, 0, 2]
        assert ks([("b", "desc"), "k"]) == [0, 3, 1, 2]
        assert ks([("t", "asc")]) == [2, 3, 0, 1]
        assert ks([("f", "desc")]) == [3, 0, 1, 2]
        limited = store.select(table, {"k": {"$gt": 0}}, order_by=["i"], limit=2)
        assert [r["k"] for r in limited] == [2, 1]

    def test_order_by_str_code_point(self, store: DB) -> None:
        """Strings order by code point ("B" < "a"), bytes bytewise."""
        table = self._example(store)
        assert [r["k"] for r in store.select(table, order_by=["s"])] == [2, 3, 0, 1]
        assert [r["k"] for r in store.select(table, order_by=[("y", "desc")])] == [1, 0, 3, 2]

    # ------------------------------------------------------------------ filters
    @pytest.mark.parametrize(
        ("case", "where", "expected"), FILTER_CASES, ids=[c for c, _, _ in FILTER_CASES]
    )
    def test_filter(self, store: DB, case: str, where: Filter | None, expected: set[int]) -> None:
        """select and count agree with the reference filter semantics."""
        table = self._example(store)
        assert self._ks(store, table, where) == expected
        assert store.count(table, where) == len(expected)

    @pytest.mark.parametrize(
        ("case", "where", "expected"), ORDER_FILTER_CASES, ids=[c for c, _, _ in ORDER_FILTER_CASES]
    )
    def test_filter_order(self, store: DB, case: str, where: Filter, expected: set[int]) -> None:
        """``$gt``... on str compare by code point and on bytes bytewise."""
        table = self._example(store)
        assert self._ks(store, table, where) == expected

    @pytest.mark.parametrize(("case", "where"), BAD_FILTERS, ids=[c for c, _ in BAD_FILTERS])
    def test_bad_filter(self, store: DB, case: str, where: Any) -> None:
        """Invalid filters raise FilterError from every method and change nothing."""
        table = self._example(store)
        with pytest.raises(FilterError):
            store.select(table, where)
        with pytest.raises(FilterError):
            store.count(table, where)
        if type(store).supports_update:
            with pytest.raises(FilterError):
                store.update(table, where, {"i": 0})
        if type(store).supports_delete:
            with pytest.raises(FilterError):
                store.delete(table, where)
        assert self._ks(store, table, None) == {0, 1, 2, 3}
        assert store.count(table, {"i": 0}) == 0

    def test_control_characters_in_values(self, store: DB) -> None:
        """Strings with control characters and backslashes compare exactly in every operation.

        Issue 19: MySQL/MariaDB stored ``"a\\x07b"`` but every filter on it matched nothing
        (the SQL literal was written ``'a\\ab'``, which MySQL reads as ``"aab"``).
        """
        schema = Schema.of(k="int", s="str", j="json")
        table = "ctl"
        store.create_table(table, schema)
        hard = list(HARD_STRINGS)
        rows = [{"k": i, "s": s, "j": {s: [s]}} for i, s in enumerate(hard)]
        assert store.insert(table, rows) == len(rows)
        got = Counter(_project(r, schema.names) for r in self._strip(store, store.select(table)))
        want = Counter(_project(normalize_row(schema, r), schema.names) for r in rows)
        assert got == want, _bag_diff(got, want)
        n = len(hard)
        for i, s in enumerate(hard):
            assert self._ks(store, table, {"s": s}) == {i}, repr(s)
            assert store.count(table, {"s": {"$eq": s}}) == 1, repr(s)
            assert store.count(table, {"s": {"$in": [s, "zz"]}}) == 1, repr(s)
            assert store.count(table, {"s": {"$ne": s}}) == n - 1, repr(s)
            assert store.count(table, {"s": {"$nin": [s]}}) == n - 1, repr(s)
            assert store.count(table, {"$or": [{"s": s}, {"k": -1}]}) == 1, repr(s)
        if type(store).supports_update:
            for i, s in enumerate(hard):
                assert store.update(table, {"s": s}, {"s": s + "\x07"}) == 1, repr(s)
                assert self._ks(store, table, {"s": s + "\x07"}) == {i}, repr(s)
        if type(store).supports_delete:
            suffix = "\x07" if type(store).supports_update else ""
            assert store.delete(table, {"s": hard[0] + suffix}) == 1
            assert store.count(table) == n - 1

    def test_filter_strings_with_nul(self, store: DB) -> None:
        """A filter string with a NUL byte is answered, not refused: no stored string holds NUL
        (records refuse it), so nothing equals it, and order compares it by code point.

        PostgreSQL refused such a parameter ("text fields cannot contain NUL") while every other
        engine answered."""
        schema = Schema.of(k="int", s="str")
        table = "nul"
        store.create_table(table, schema)
        words = ["a", "a\x01", "ab", "b", ""]
        store.insert(table, [{"k": i, "s": w} for i, w in enumerate(words)] + [{"k": 9, "s": None}])
        x = "a\x00b"
        assert self._ks(store, table, {"s": x}) == set()
        assert self._ks(store, table, {"s": {"$in": [x, "b"]}}) == {3}
        assert self._ks(store, table, {"s": {"$nin": [x]}}) == {0, 1, 2, 3, 4, 9}
        assert self._ks(store, table, {"s": {"$ne": x}}) == {0, 1, 2, 3, 4, 9}
        for op in ("$lt", "$lte", "$gt", "$gte"):
            want = {i for i, w in enumerate(words) if _PY_ORDER[op](w, x)}
            assert self._ks(store, table, {"s": {op: x}}) == want, op
            assert store.count(table, {"s": {op: x}}) == len(want), op
        if type(store).supports_update:
            assert store.update(table, {"s": x}, {"k": 100}) == 0
        if type(store).supports_delete:
            assert store.delete(table, {"s": {"$in": [x]}}) == 0
        assert store.count(table) == len(words) + 1

    def test_control_characters_in_names(self, store: DB) -> None:
        """Table and column names with control characters and backslashes work like others."""
        for name in HARD_NAMES:
            column = "c" + name
            schema = Schema.of(**{column: "str"})
            store.create_table(name, schema)
            assert name in store.list_tables(), repr(name)
            assert store.table_schema(name) == schema
            assert store.insert(name, [{column: name}, {column: "x"}]) == 2
            assert store.count(name, {column: name}) == 1, repr(name)
            assert [r[column] for r in self._strip(store, store.select(name, {column: "x"}))] == [
                "x"
            ]
            store.drop_table(name)
        assert store.list_tables() == []

    # ------------------------------------------------------------------ update / delete
    def test_update(self, store: DB) -> None:
        """update sets values on matching rows and returns how many matched."""
        table = self._example(store)
        if not type(store).supports_update:
            with pytest.raises(UnsupportedOperation):
                store.update(table, {"k": 0}, {"s": "new"})
            return
        assert store.update(table, {"i": {"$ne": 1}}, {"s": "new", "j": {"u": [1]}}) == 3
        assert self._ks(store, table, {"s": "new"}) == {1, 2, 3}
        assert self._ks(store, table, {"s": "a"}) == {0}
        assert store.update(table, {"k": 99}, {"s": "none"}) == 0
        assert store.update(table, {"k": 0}, {"s": None, "f": 7}) == 1
        (row,) = self._strip(store, store.select(table, {"k": 0}))
        assert row["s"] is None
        assert row["f"] == 7.0
        assert isinstance(row["f"], float)
        assert store.update(table, None, {"b": False}) == 4
        assert store.count(table, {"b": False}) == 4

    def test_update_rejects_bad_values(self, store: DB) -> None:
        """update validates values like insert (SchemaError) and changes nothing."""
        table = self._example(store)
        if not type(store).supports_update:
            with pytest.raises(UnsupportedOperation):
                store.update(table, None, {"i": 1})
            return
        for values in ({"nope": 1}, {"i": "x"}, {"k": None}, {"b": 0}):
            with pytest.raises(SchemaError):
                store.update(table, None, values)
        assert self._ks(store, table, {"i": 2}) == {1}

    def test_delete(self, store: DB) -> None:
        """delete removes matching rows; None and {} delete every row."""
        table = self._example(store)
        if not type(store).supports_delete:
            with pytest.raises(UnsupportedOperation):
                store.delete(table, {"k": 0})
            return
        assert store.delete(table, {"i": {"$ne": 2}}) == 3
        assert self._ks(store, table, None) == {1}
        assert store.delete(table, {"k": 99}) == 0
        store.insert(table, _ROWS)
        assert store.delete(table, {}) == 5
        assert store.count(table) == 0
        store.insert(table, _ROWS)
        assert store.delete(table, None) == 4
        assert store.count(table) == 0

    # ------------------------------------------------------------------ misc
    def test_default_uris(self, store: DB) -> None:
        """default_metadata_uri / default_artifact_uri are a RedactedURI or None; a class that
        declares them from the URI (SupportsDefaultsFromURI) answers the same."""
        for uri in (store.default_metadata_uri(), store.default_artifact_uri()):
            assert uri is None or isinstance(uri, RedactedURI)
        cls: object = type(store)  # the class itself may declare the proposal
        if isinstance(cls, SupportsDefaultsFromURI):
            assert cls.default_metadata_uri_for(store.uri) == store.default_metadata_uri()
            assert cls.default_artifact_uri_for(store.uri) == store.default_artifact_uri()

    def test_drop_refused_without_force(self, store: DB) -> None:
        """drop() without force=True raises DropRefused and drops nothing."""
        table = self._example(store)
        with pytest.raises(DropRefused):
            store.drop()
        with pytest.raises(DropRefused):
            store.drop(force=False)
        assert store.list_tables() == [table]
        assert store.count(table) == len(_ROWS)

    def test_drop_force(self, store: DB) -> None:
        """drop(force=True) drops every user table."""
        self._example(store, "a")
        self._example(store, "b")
        store.drop(force=True)
        assert store.list_tables() == []

    # ------------------------------------------------------------------ optional capabilities
    def test_create_index(self, store: DB) -> None:
        """SupportsIndexes: idempotent, checked columns, rows and filters unchanged; a unique
        index (where the engine keeps one) refuses a repeated key and stored duplicates."""
        capable = isinstance(store, SupportsIndexes)
        if not capable:
            assert not hasattr(store, "create_index"), "create_index without SupportsIndexes"
            return
        idx: Any = store  # a DataBackend that is also SupportsIndexes
        table = self._example(store)
        kept = idx.create_index(table, ["k", "i"])
        assert isinstance(kept, bool)
        assert idx.create_index(table, ["k", "i"]) is kept  # idempotent
        assert idx.create_index(table, ["s", "y", "t", "b", "f"]) is kept
        for _case, columns in (
            ("empty", []),
            ("unknown", ["nope"]),
            ("repeated", ["k", "k"]),
            ("json", ["j"]),
            ("vector", ["k", "v"]),
        ):
            with pytest.raises(SchemaError):  # case: the kind of bad columns
                idx.create_index(table, columns)
        with pytest.raises(TableNotFound):
            idx.create_index("no_such_table", ["k"])
        store.insert(table, [{"k": 4, "i": 1, "s": "a"}])
        assert self._ks(store, table, {"i": 1}) == {0, 4}
        assert self._ks(store, table, {"s": "a", "k": {"$gte": 1}}) == {4}
        unique = idx.create_index(table, ["k"], unique=True)
        assert isinstance(unique, bool)
        if unique:
            with pytest.raises(PinnacleError):
                store.insert(table, [{"k": 0}])
            with pytest.raises(PinnacleError):
                idx.create_index(table, ["b"], unique=True)  # True is stored twice
        assert store.count(table) == len(_ROWS) + 1

    def test_count_unmatched(self, store: DB) -> None:
        """SupportsMatchCount: exact, NULL-safe matching on every pair; NULL keys not counted."""
        capable = isinstance(store, SupportsMatchCount)
        if not capable:
            assert not hasattr(store, "count_unmatched"), "count_unmatched without the Protocol"
            return
        idx: Any = store  # a DataBackend that is also SupportsMatchCount
        _match_tables(store)
        assert idx.count_unmatched("l", "r", [("id", "k")]) == 0
        assert idx.count_unmatched("l", "r", [("id", "k"), ("x", "y")]) == 2  # 3, 4
        assert idx.count_unmatched("l", "r", [("id", "k"), ("f", "g")]) == 1  # 5
        assert idx.count_unmatched("l", "r", [("id", "k"), ("x", "y"), ("f", "g")]) == 3
        assert idx.count_unmatched("l", "r", [("id", "k")], other_where={"v": 0}) == 2  # 4, 5
        assert idx.count_unmatched("l", "r", [("id", "k")], where={"id": {"$gt": 3}}) == 0
        assert (
            idx.count_unmatched(
                "l", "r", [("id", "k"), ("x", "y")], where={"f": {"$lt": 3}}, other_where={"v": 0}
            )
            == 1  # 3 (5 has f NULL, not < 3)
        )
        assert idx.count_unmatched("r", "l", [("k", "id"), ("y", "x")]) == 2  # 3, 4
        for bad in ([], [("id", "nope")], [("nope", "k")], [("x", "g")], [("j", "y")]):
            with pytest.raises(SchemaError):
                idx.count_unmatched("l", "r", bad)
        with pytest.raises(TableNotFound):
            idx.count_unmatched("l", "no_such_table", [("id", "k")])

    def test_count_many(self, store: DB) -> None:
        """SupportsMatchCounts: one statement, each count what count/count_unmatched say."""
        idx: Any = store  # a DataBackend that may also be SupportsMatchCounts
        if not isinstance(idx, SupportsMatchCounts):
            assert not hasattr(store, "count_many"), "count_many without the Protocol"
            return
        assert isinstance(idx, SupportsMatchCount), "count_many without count_unmatched"
        _match_tables(store)
        assert idx.count_many([]) == []
        queries = [
            CountQuery(table="l", other="r", on=(("id", "k"), ("x", "y"))),
            CountQuery(table="r", other="l", on=(("k", "id"),), other_where={"f": {"$lt": 3}}),
            CountQuery(table="l"),
            CountQuery(table="r", where={"v": 1}),
            CountQuery(
                table="l",
                where={"f": {"$lt": 3}},
                other="r",
                on=(("id", "k"), ("x", "y")),
                other_where={"v": 0},
            ),
            CountQuery(table="l", other="l", on=(("id", "id"), ("f", "f"))),  # a self join
        ]
        expected = [2, 2, 6, 2, 1, 0]
        assert idx.count_many(queries) == expected
        for q, n in zip(queries, expected, strict=True):
            assert idx.count_many([q]) == [n]
            if q.other is None:
                assert store.count(q.table, q.where) == n
            else:
                got = idx.count_unmatched(
                    q.table, q.other, q.on, where=q.where, other_where=q.other_where
                )
                assert got == n
        with pytest.raises(SchemaError):
            idx.count_many(
                [CountQuery(table="l"), CountQuery(table="l", other="r", on=(("x", "g"),))]
            )
        with pytest.raises(TableNotFound):
            idx.count_many([CountQuery(table="l"), CountQuery(table="no_such_table")])

    def test_insert_many(self, store: DB) -> None:
        """SupportsInsertMany: rows of several tables in one transaction, all or nothing."""
        many: Any = store  # a DataBackend that may also be SupportsInsertMany
        if not isinstance(many, SupportsInsertMany):
            assert not hasattr(store, "insert_many"), "insert_many without the Protocol"
            return
        store.create_table("a", Schema.of(id="int", x="float"))
        store.create_table("b", Schema.of(id="str", j="json", v="vector"))
        b_row: dict[str, Any] = {"id": "k", "j": {"n": [1, None]}, "v": [0.5, -1.0]}
        assert many.insert_many([("a", [{"id": 1, "x": 2.5}]), ("b", [b_row])]) == [1, 1]
        more: list[dict[str, Any]] = [{"id": 2, "x": None}, {"id": 3, "x": 1.0}]
        assert many.insert_many([("a", more), ("b", [])]) == [2, 0]
        with pytest.raises(TableNotFound):
            many.insert_many([("a", [{"id": 4, "x": 0.0}]), ("no_such_table", [{"id": 4}])])
        with pytest.raises(SchemaError):
            many.insert_many([("a", [{"id": 5, "x": 0.0}]), ("b", [{"id": 5}])])
        assert sorted(r["id"] for r in store.select("a")) == [1, 2, 3]
        assert store.select("b") == [b_row]

    def test_scan(self, store: DB) -> None:
        """SupportsScan: every row once, in one fixed order that ``skip`` and ``batch_size``
        follow; checked columns and batching arguments."""
        sc: Any = store  # a DataBackend that may also be SupportsScan
        if not isinstance(sc, SupportsScan):
            assert not hasattr(store, "scan"), "scan without SupportsScan"
            return
        table = self._example(store)
        batches = list(sc.scan(table, batch_size=3))
        assert [len(b) for b in batches] == [3, 1]
        ks = [r["k"] for b in batches for r in b]
        assert sorted(ks) == [0, 1, 2, 3]
        assert [r["k"] for b in sc.scan(table, batch_size=10) for r in b] == ks
        assert [r["k"] for b in sc.scan(table, batch_size=1, skip=1) for r in b] == ks[1:]
        assert list(sc.scan(table, skip=4)) == []
        got = [r for b in sc.scan(table, columns=["s", "k"], batch_size=2) for r in b]
        assert self._strip(store, got) == [{"k": k, "s": _ROWS[k].get("s")} for k in ks]
        for bad in ({"batch_size": 0}, {"batch_size": True}, {"skip": -1}):
            with pytest.raises(FilterError):
                list(sc.scan(table, **bad))
        with pytest.raises(SchemaError):
            list(sc.scan(table, columns=["nope"]))
        with pytest.raises(TableNotFound):
            list(sc.scan("no_such_table"))

    def test_scan_sorted(self, store: DB) -> None:
        """SupportsSortedScan: the rows of the columns read, each once, in one fixed order that
        ``skip`` follows; columns it does not stream raise UnsupportedOperation at the call."""
        ss: Any = store  # a DataBackend that may also be SupportsSortedScan
        if not isinstance(ss, SupportsSortedScan):
            assert not hasattr(store, "scan_sorted"), "scan_sorted without SupportsSortedScan"
            return
        table = self._example(store)
        cols = ["b", "s", "k", "i", "f"]
        try:
            pages = ss.scan_sorted(table, columns=cols, batch_size=2)
        except UnsupportedOperation:
            pages = None
        if pages is not None:
            rows = [r for b in pages for r in b]
            assert all(set(r) == set(cols) for r in rows)
            want = [{c: r.get(c) for c in cols} for r in _ROWS]
            assert Counter(_project(r, cols) for r in rows) == Counter(
                _project(r, cols) for r in want
            )
            again = [r for b in ss.scan_sorted(table, columns=cols, skip=1) for r in b]
            assert [r["k"] for r in again] == [r["k"] for r in rows[1:]]
        with pytest.raises(UnsupportedOperation):
            ss.scan_sorted(table, columns=["k", "j"])
        for bad in ({"batch_size": 0}, {"skip": -1}):
            with pytest.raises(FilterError):
                ss.scan_sorted(table, columns=["k"], **bad)

    def test_native_copy(self, store_factory: Callable[[], DB]) -> None:
        """SupportsNativeCopy: native rows of one backend go into another of the same engine
        unchanged, in native id order, those already there skipped."""
        first = store_factory()
        src: Any = first  # DataBackends that may also be SupportsNativeCopy
        if not isinstance(src, SupportsNativeCopy):
            assert not hasattr(first, "insert_native"), "insert_native without the Protocol"
            return
        second = store_factory()
        dst: Any = second
        assert src.copies_natively_to(dst)
        assert not src.copies_natively_to(object())
        table = self._example(first)
        dst.create_native_table(table)
        dst.create_native_table(table)  # idempotent
        assert table in second.list_tables()
        docs = [d for b in src.native_rows(table, batch_size=3) for d in b]
        assert len(docs) == len(_ROWS)
        assert [d for b in src.native_rows(table, skip=1, batch_size=1) for d in b] == docs[1:]
        assert dst.insert_native(table, docs[1:3]) == 2
        assert dst.insert_native(table, docs) == len(docs) - 2
        assert dst.insert_native(table, docs) == 0
        assert [d for b in dst.native_rows(table) for d in b] == docs
        for bad in ({"batch_size": 0}, {"skip": -1}):
            with pytest.raises(FilterError):
                src.native_rows(table, **bad)

    def test_stores_are_independent(self, store_factory: Callable[[], DB]) -> None:
        """Two fresh backends from the factory do not see each other's tables."""
        first = store_factory()
        second = store_factory()
        first.create_table("t", Schema.of(x="int"))
        assert second.list_tables() == []


def _match_tables(store: Any) -> None:
    """Tables ``l`` and ``r`` of the match-count tests."""
    left = Schema(
        fields=(
            Field(name="id", dtype=DType.INT),
            Field(name="x", dtype=DType.STR),
            Field(name="f", dtype=DType.FLOAT),
            Field(name="j", dtype=DType.JSON),
        )
    )
    right = Schema(
        fields=(
            Field(name="k", dtype=DType.INT),
            Field(name="y", dtype=DType.STR),
            Field(name="g", dtype=DType.FLOAT),
            Field(name="v", dtype=DType.INT),
        )
    )
    store.create_table("l", left)
    store.create_table("r", right)
    store.insert(
        "l",
        [
            {"id": 1, "x": "a", "f": 0.5},
            {"id": 2, "x": None, "f": 1.0},
            {"id": 3, "x": "A", "f": 2.0},  # r has "a": case counts
            {"id": 4, "x": "b ", "f": 3.0},  # r has "b": trailing spaces count
            {"id": 5, "x": "c", "f": None},  # r has g=0.25: NULL is not a value
            {"id": None, "x": "z"},  # NULL keys are never counted
        ],
    )
    store.insert(
        "r",
        [
            {"k": 1, "y": "a", "g": 0.5, "v": 0},
            {"k": 2, "y": None, "g": 1.0, "v": 0},
            {"k": 3, "y": "a", "g": 2.0, "v": 0},
            {"k": 4, "y": "b", "g": 3.0, "v": 1},
            {"k": 5, "y": "c", "g": 0.25, "v": 1},
        ],
    )
