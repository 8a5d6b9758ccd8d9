"""The portable filter language: validate_filter and the reference evaluator."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pinnacle_protocols import DType, Field, FilterError, Schema, evaluate, validate_filter
from pinnacle_protocols.filters import (
    COMPARISON_OPS,
    FIELD_OPS,
    float_equal_operand,
    float_order_operand,
)

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
#: the same instant as T0, in another time zone
T0_PLUS2 = datetime(2024, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
T1 = datetime(2024, 6, 1, tzinfo=UTC)

SCHEMA = Schema(
    fields=(
        Field(name="age", dtype=DType.INT),
        Field(name="score", dtype=DType.FLOAT),
        Field(name="name", dtype=DType.STR),
        Field(name="ok", dtype=DType.BOOL),
        Field(name="blob", dtype=DType.BYTES),
        Field(name="t", dtype=DType.DATETIME),
        Field(name="meta", dtype=DType.JSON),
        Field(name="emb", dtype=DType.VECTOR, dim=3),
    )
)

# ---------------------------------------------------------------------- validation: rejects

INVALID: list[tuple[object, Schema | None, list[str]]] = [
    # unknown operators, top level and field level
    ({"$regex": "a.*"}, None, ["unknown top-level operator", "'$regex'"]),
    ({"$where": "this.a == 1"}, None, ["unknown top-level operator", "'$where'"]),
    ({"$foo": []}, None, ["unknown top-level operator", "'$foo'"]),
    ({"$not": {"a": 1}}, None, ["unknown top-level operator", "'$not'"]),
    ({"$nor": [{"a": 1}]}, None, ["unknown top-level operator", "'$nor'"]),
    ({"a": {"$regex": "x"}}, None, ["unknown operator", "'$regex'", "filter.a.$regex"]),
    ({"a": {"$where": "1"}}, None, ["unknown operator", "'$where'"]),
    ({"a": {"$foo": 1}}, None, ["unknown operator", "'$foo'", "$eq"]),
    ({"a": {"$and": [{"$gt": 1}]}}, None, ["unknown operator", "'$and'"]),
    ({"a": {"$elemMatch": {"$gt": 1}}}, None, ["unknown operator", "'$elemMatch'"]),
    ({"a": {"$not": {"$regex": "x"}}}, None, ["unknown operator", "'$regex'", "$not"]),
    ({"$or": [{"a": {"$size": 2}}]}, None, ["unknown operator", "'$size'", "$or[0]"]),
    # wrong operand types
    ({"a": {"$gt": [1]}}, None, ["filter.a.$gt", "list"]),
    ({"a": {"$gte": {"x": 1}}}, None, ["filter.a.$gte", "dict"]),
    ({"a": {"$gt": None}}, None, ["must not be None"]),
    ({"a": {"$lt": None}}, None, ["must not be None"]),
    ({"a": {"$gt": True}}, None, ["booleans are not ordered"]),
    ({"a": {"$exists": 1}}, None, ["$exists", "True or False", "got 1"]),
    ({"a": {"$exists": "yes"}}, None, ["True or False"]),
    ({"a": {"$exists": None}}, None, ["True or False"]),
    ({"a": {"$in": [1, "a"]}}, None, ["mix types", "number", "str"]),
    ({"a": {"$in": [True, 1]}}, None, ["mix types", "bool", "number"]),
    ({"a": {"$nin": [b"x", "x"]}}, None, ["mix types"]),
    ({"a": {"$in": "abc"}}, None, ["expects a list", "str"]),
    ({"a": {"$in": 3}}, None, ["expects a list", "int"]),
    ({"a": {"$in": {1, 2}}}, None, ["expects a list", "set"]),
    ({"a": {"$in": [[1]]}}, None, ["$in[0]", "list"]),
    ({"a": float("nan")}, None, ["NaN"]),
    ({"a": {"$ne": float("nan")}}, None, ["NaN"]),
    ({"a": {"$in": [1.0, float("nan")]}}, None, ["$in[1]", "NaN"]),
    ({"a": datetime(2024, 1, 1)}, None, ["naive", "timezone-aware"]),
    ({"a": {"$lt": datetime(2024, 1, 1)}}, None, ["naive"]),
    ({"a": {"$nin": [datetime(2024, 1, 1)]}}, None, ["naive"]),
    ({"a": 2**70}, None, ["64 bits"]),
    ({"a": {"$gt": -(2**63) - 1}}, None, ["64 bits"]),
    ({"a": [1, 2]}, None, ["list"]),
    ({"a": {"$eq": {"x": 1}}}, None, ["dict"]),
    ({"a": object()}, None, ["type object"]),
    ({"a": {1, 2}}, None, ["type set"]),
    # shape
    ([{"a": 1}], None, ["must be a dict", "list"]),
    ("a = 1", None, ["must be a dict", "str"]),
    (1, None, ["must be a dict", "int"]),
    ({"$and": []}, None, ["$and", "non-empty list"]),
    ({"$or": []}, None, ["$or", "non-empty list"]),
    ({"$and": {"a": 1}}, None, ["$and", "non-empty list"]),
    ({"$or": "ab"}, None, ["$or", "non-empty list"]),
    ({"$or": [{"a": 1}, 5]}, None, ["$or[1]", "must be a dict"]),
    ({"$and": [{"a": {"$foo": 1}}]}, None, ["$and[0]", "$foo"]),
    ({"a": {}}, None, ["empty operator dict"]),
    ({"a": {"b": 1}}, None, ["mixing operators and plain keys"]),
    ({"a": {"$gt": 1, "b": 2}}, None, ["mixing operators and plain keys"]),
    ({"a": {"$not": 5}}, None, ["$not", "operator dict"]),
    ({"a": {"$not": {}}}, None, ["$not", "operator dict"]),
    ({"a": {"$not": {"b": 1}}}, None, ["$not", "operator dict"]),
    ({1: 2}, None, ["keys must be strings"]),
    ({"": 1}, None, ["non-empty", "NUL"]),
    ({"a\x00b": 1}, None, ["NUL"]),
    # with a schema: unknown columns
    ({"nope": 1}, SCHEMA, ["unknown column 'nope'", "age"]),
    ({"$or": [{"age": 1}, {"nope": 1}]}, SCHEMA, ["$or[1]", "unknown column 'nope'"]),
    ({"nope": {"$exists": True}}, SCHEMA, ["unknown column 'nope'"]),
    # with a schema: type mismatches
    ({"age": "x"}, SCHEMA, ["'age' is int", "'x' is str"]),
    ({"age": True}, SCHEMA, ["'age' is int", "bool"]),
    ({"age": 1.5}, SCHEMA, ["'age' is int", "float"]),
    ({"age": {"$gt": "1"}}, SCHEMA, ["'age' is int"]),
    ({"age": {"$in": [1, "2"]}}, SCHEMA, ["$in[1]", "'age' is int"]),
    ({"age": {"$not": {"$gt": "x"}}}, SCHEMA, ["$not.$gt", "'age' is int"]),
    ({"score": "1.5"}, SCHEMA, ["'score' is float"]),
    ({"score": False}, SCHEMA, ["'score' is float", "bool"]),
    ({"name": 1}, SCHEMA, ["'name' is str"]),
    ({"name": b"x"}, SCHEMA, ["'name' is str", "bytes"]),
    ({"ok": 1}, SCHEMA, ["'ok' is bool", "int"]),
    ({"blob": "x"}, SCHEMA, ["'blob' is bytes"]),
    ({"t": "2024-01-01T00:00:00+00:00"}, SCHEMA, ["'t' is datetime", "str"]),
    ({"meta": {"$eq": 1}}, SCHEMA, ["'meta'", "json", "cannot compare"]),
    ({"emb": {"$gt": 1.0}}, SCHEMA, ["'emb'", "vector", "cannot compare"]),
]


def _stable_id(value: object) -> str:
    """The repr without memory addresses: pytest-xdist workers must collect the same ids."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))[:50]


@pytest.mark.parametrize(
    ("where", "schema", "fragments"), INVALID, ids=[_stable_id(c[0]) for c in INVALID]
)
def test_validate_rejects(where: Any, schema: Schema | None, fragments: list[str]) -> None:
    with pytest.raises(FilterError) as info:
        validate_filter(where, schema)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert isinstance(info.value, ValueError)


VALID: list[tuple[object, Schema | None]] = [
    (None, None),
    ({}, None),
    ({"a": 1}, None),
    ({"a": None}, None),
    ({"a": {"$eq": None}}, None),
    ({"a": {"$ne": None}}, None),
    ({"a": {"$in": [1, 2.5, None]}}, None),
    ({"a": {"$in": []}}, None),
    ({"a": {"$nin": (1, 2)}}, None),
    ({"a": {"$gt": 1, "$lt": 2.5}}, None),
    ({"a": {"$not": {"$not": {"$gt": 1}}}}, None),
    ({"a": {"$gte": T0}}, None),
    ({"a": {"$lt": b"\x00\xff"}}, None),
    ({"a": {"$gt": "a"}}, None),
    ({"a": {"$exists": False}}, None),
    ({"a": 2**63 - 1, "b": -(2**63)}, None),
    ({"$and": [{"a": 1}, {"$or": [{"b": 2}, {"c": {"$exists": False}}]}], "d": True}, None),
    ({"select": 1, "drop table": 2, "a'b\"c": 3, "x/y": 4, "ünï": 5}, None),
    ({"age": 1, "score": 1, "name": "x", "ok": False, "blob": b"", "t": T0}, SCHEMA),
    ({"age": {"$in": [1, None]}, "score": {"$gt": 0.5}}, SCHEMA),
    ({"emb": None, "meta": {"$exists": True}}, SCHEMA),
    ({"meta": {"$eq": None}, "emb": {"$ne": None}}, SCHEMA),
]


@pytest.mark.parametrize(("where", "schema"), VALID, ids=[repr(c[0])[:50] for c in VALID])
def test_validate_accepts(where: Any, schema: Schema | None) -> None:
    validate_filter(where, schema)


# ---------------------------------------------------------------------- evaluate table

NULL: dict[str, Any] = {"a": None}
MISSING: dict[str, Any] = {}

EVAL_CASES: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    # empty filter matches everything
    ({}, MISSING, True),
    ({}, {"a": 1}, True),
    # equality and NULL
    ({"a": 1}, {"a": 1}, True),
    ({"a": 1}, {"a": 2}, False),
    ({"a": 1}, NULL, False),
    ({"a": 1}, MISSING, False),
    ({"a": None}, NULL, True),
    ({"a": None}, MISSING, True),
    ({"a": None}, {"a": 0}, False),
    ({"a": None}, {"a": ""}, False),
    ({"a": None}, {"a": False}, False),
    ({"a": {"$eq": None}}, MISSING, True),
    # $ne matches NULL (as in MongoDB)
    ({"a": {"$ne": 1}}, NULL, True),
    ({"a": {"$ne": 1}}, MISSING, True),
    ({"a": {"$ne": 1}}, {"a": 1}, False),
    ({"a": {"$ne": 1}}, {"a": 2}, True),
    ({"a": {"$ne": None}}, NULL, False),
    ({"a": {"$ne": None}}, MISSING, False),
    ({"a": {"$ne": None}}, {"a": 0}, True),
    # bool never equals int; int and float compare numerically
    ({"a": 1}, {"a": True}, False),
    ({"a": True}, {"a": 1}, False),
    ({"a": 0}, {"a": False}, False),
    ({"a": True}, {"a": True}, True),
    ({"a": {"$ne": 1}}, {"a": True}, True),
    ({"a": 1}, {"a": 1.0}, True),
    ({"a": 1.0}, {"a": 1}, True),
    ({"a": 2**53 + 1}, {"a": 2**53 + 1}, True),
    ({"a": {"$in": [1]}}, {"a": True}, False),
    ({"a": {"$in": [True]}}, {"a": 1}, False),
    ({"a": {"$in": [1.0]}}, {"a": 1}, True),
    # other types: no cross-type equality
    ({"a": "1"}, {"a": 1}, False),
    ({"a": b"x"}, {"a": "x"}, False),
    ({"a": T0}, {"a": T0_PLUS2}, True),
    # comparisons are false on NULL
    ({"a": {"$gt": 0}}, NULL, False),
    ({"a": {"$gte": 0}}, MISSING, False),
    ({"a": {"$lt": 0}}, NULL, False),
    ({"a": {"$lte": 0}}, MISSING, False),
    ({"a": {"$gt": 0}}, {"a": 1}, True),
    ({"a": {"$gt": 1}}, {"a": 1}, False),
    ({"a": {"$gte": 1}}, {"a": 1}, True),
    ({"a": {"$gte": 1}}, {"a": 1.0}, True),
    ({"a": {"$lt": 1.5}}, {"a": 1}, True),
    ({"a": {"$lte": 0.5}}, {"a": 1}, False),
    ({"a": {"$gt": 0}}, {"a": True}, False),
    ({"a": {"$lt": 5}}, {"a": False}, False),
    ({"a": {"$gt": 0}}, {"a": "1"}, False),
    ({"a": {"$lt": "b"}}, {"a": "a"}, True),
    ({"a": {"$lt": "b"}}, {"a": "B"}, True),
    ({"a": {"$gt": "a"}}, {"a": "é"}, True),
    ({"a": {"$lt": "a"}}, {"a": ""}, True),
    ({"a": {"$gt": b"\x00"}}, {"a": b"\x01"}, True),
    ({"a": {"$gt": b"\x7f"}}, {"a": b"\x80"}, True),
    ({"a": {"$lt": T1}}, {"a": T0}, True),
    ({"a": {"$gte": T0}}, {"a": T0_PLUS2}, True),
    ({"a": {"$gt": T0}}, {"a": T0_PLUS2}, False),
    # implicit AND of several operators on one column
    ({"a": {"$gt": 1, "$lt": 3}}, {"a": 2}, True),
    ({"a": {"$gt": 1, "$lt": 3}}, {"a": 3}, False),
    ({"a": {"$gt": 1, "$lt": 3}}, NULL, False),
    ({"a": {"$gte": 1, "$lte": 1}}, {"a": 1.0}, True),
    ({"a": {"$ne": 2, "$exists": True}}, NULL, False),
    ({"a": {"$ne": 2, "$exists": True}}, {"a": 3}, True),
    # implicit AND of several columns
    ({"a": 1, "b": 2}, {"a": 1, "b": 2}, True),
    ({"a": 1, "b": 2}, {"a": 1, "b": 3}, False),
    ({"a": 1, "b": None}, {"a": 1}, True),
    # $in / $nin
    ({"a": {"$in": [1, 2]}}, {"a": 2}, True),
    ({"a": {"$in": [1, 2]}}, {"a": 3}, False),
    ({"a": {"$in": [1, 2]}}, NULL, False),
    ({"a": {"$in": [1, None]}}, NULL, True),
    ({"a": {"$in": [1, None]}}, MISSING, True),
    ({"a": {"$in": [None]}}, {"a": 0}, False),
    ({"a": {"$in": []}}, {"a": 1}, False),
    ({"a": {"$in": []}}, NULL, False),
    ({"a": {"$nin": [1, 2]}}, {"a": 3}, True),
    ({"a": {"$nin": [1, 2]}}, {"a": 1}, False),
    ({"a": {"$nin": [1, 2]}}, NULL, True),
    ({"a": {"$nin": [1, None]}}, NULL, False),
    ({"a": {"$nin": [None]}}, {"a": 5}, True),
    ({"a": {"$nin": []}}, NULL, True),
    # $exists
    ({"a": {"$exists": True}}, {"a": 0}, True),
    ({"a": {"$exists": True}}, {"a": False}, True),
    ({"a": {"$exists": True}}, NULL, False),
    ({"a": {"$exists": True}}, MISSING, False),
    ({"a": {"$exists": False}}, NULL, True),
    ({"a": {"$exists": False}}, MISSING, True),
    ({"a": {"$exists": False}}, {"a": ""}, False),
    # $not negates its operator dict, so it matches NULL
    ({"a": {"$not": {"$gt": 5}}}, {"a": 3}, True),
    ({"a": {"$not": {"$gt": 5}}}, {"a": 7}, False),
    ({"a": {"$not": {"$gt": 5}}}, NULL, True),
    ({"a": {"$not": {"$gt": 5}}}, MISSING, True),
    ({"a": {"$not": {"$eq": None}}}, NULL, False),
    ({"a": {"$not": {"$gt": 1, "$lt": 3}}}, {"a": 2}, False),
    ({"a": {"$not": {"$gt": 1, "$lt": 3}}}, {"a": 5}, True),
    ({"a": {"$not": {"$in": [1, 2]}}}, {"a": 2}, False),
    ({"a": {"$not": {"$not": {"$gt": 5}}}}, NULL, False),
    ({"a": {"$not": {"$exists": True}}}, MISSING, True),
    # $and / $or, nested
    ({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 2}, True),
    ({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1}, False),
    ({"$or": [{"a": 1}, {"b": 2}]}, {"b": 2}, True),
    ({"$or": [{"a": 1}, {"b": 2}]}, {"a": 2, "b": 3}, False),
    ({"$or": [{"a": None}, {"a": {"$gt": 5}}]}, MISSING, True),
    ({"$or": [{"a": {"$gt": 5}}, {"a": {"$lt": 1}}]}, NULL, False),
    (
        {"$and": [{"$or": [{"a": 1}, {"a": 2}]}, {"$or": [{"b": 3}, {"b": {"$exists": False}}]}]},
        {"a": 2},
        True,
    ),
    (
        {"$and": [{"$or": [{"a": 1}, {"a": 2}]}, {"$or": [{"b": 3}, {"b": {"$exists": False}}]}]},
        {"a": 2, "b": 4},
        False,
    ),
    ({"$or": [{"$and": [{"a": 1}, {"b": 1}]}, {"c": 1}]}, {"a": 1, "c": 1}, True),
    # logical operators and columns at one level are ANDed
    ({"$or": [{"a": 1}, {"a": 2}], "b": 3}, {"a": 1, "b": 3}, True),
    ({"$or": [{"a": 1}, {"a": 2}], "b": 3}, {"a": 1, "b": 4}, False),
    ({"$and": [{"a": 1}], "$or": [{"b": 1}, {"b": 2}]}, {"a": 1, "b": 2}, True),
    ({"$and": [{"a": 1}], "$or": [{"b": 1}, {"b": 2}]}, {"a": 1, "b": 3}, False),
    # awkward column names
    ({"drop table x": 1, "a'b": "c"}, {"drop table x": 1, "a'b": "c"}, True),
]


@pytest.mark.parametrize(
    ("where", "row", "expected"), EVAL_CASES, ids=[f"{c[0]!r}~{c[1]!r}"[:70] for c in EVAL_CASES]
)
def test_evaluate_table(where: dict[str, Any], row: dict[str, Any], expected: bool) -> None:
    validate_filter(where)
    assert evaluate(where, row) is expected


def test_evaluate_none_filter_matches_everything() -> None:
    assert evaluate(None, {"a": 1}) is True
    assert evaluate(None, {}) is True


# ---------------------------------------------------------------------- properties

_KINDS = ("number", "str", "bytes", "datetime", "bool")
_DATETIMES = [
    T0,
    T0_PLUS2,
    T1,
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2024, 1, 1, 12, 0, 0, 1000, tzinfo=UTC),
]


def _scalars(kind: str) -> st.SearchStrategy[Any]:
    if kind == "number":
        return st.one_of(
            st.integers(-3, 3),
            # no inf: no column stores one, and an infinite operand is a FilterError
            st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.5, 1e308, -1e308]),
        )
    if kind == "str":
        return st.text(alphabet="aAé", max_size=2)
    if kind == "bytes":
        return st.binary(max_size=2).map(lambda b: bytes(x % 3 for x in b))
    if kind == "datetime":
        return st.sampled_from(_DATETIMES)
    return st.booleans()


#: Row cells: any kind, NULL, NaN, or (see rows()) a missing key.
_cells = st.one_of(st.none(), st.just(float("nan")), *(_scalars(k) for k in _KINDS))


@st.composite
def _op_dicts(draw: st.DrawFn, depth: int = 1) -> dict[str, Any]:
    kind = draw(st.sampled_from(_KINDS))
    ops = sorted(FIELD_OPS - ({"$not"} if depth <= 0 else set()))
    if kind == "bool":
        ops = [o for o in ops if o not in COMPARISON_OPS]
    chosen = draw(st.lists(st.sampled_from(ops), min_size=1, max_size=3, unique=True))
    result: dict[str, Any] = {}
    for op in chosen:
        if op in ("$eq", "$ne"):
            result[op] = draw(st.none() | _scalars(kind))
        elif op in COMPARISON_OPS:
            result[op] = draw(_scalars(kind))
        elif op in ("$in", "$nin"):
            result[op] = draw(st.lists(st.none() | _scalars(kind), max_size=3))
        elif op == "$exists":
            result[op] = draw(st.booleans())
        else:
            result[op] = draw(_op_dicts(depth=depth - 1))
    return result


@st.composite
def _rows(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for col in ("a", "b"):
        if draw(st.booleans()):
            row[col] = draw(_cells)
    return row


_columns = st.sampled_from(["a", "b"])


@st.composite
def _filters(draw: st.DrawFn, depth: int = 2) -> dict[str, Any]:
    choice = draw(st.integers(0, 3 if depth > 0 else 1))
    if choice == 0:
        return {draw(_columns): draw(_op_dicts())}
    if choice == 1:
        return {draw(_columns): draw(st.none() | st.one_of(*(_scalars(k) for k in _KINDS)))}
    subs = draw(st.lists(_filters(depth=depth - 1), min_size=1, max_size=3))
    return {"$and" if choice == 2 else "$or": subs}


@given(ops=_op_dicts(), row=_rows(), col=_columns)
def test_not_negates(ops: dict[str, Any], row: dict[str, Any], col: str) -> None:
    where = {col: ops}
    negated = {col: {"$not": ops}}
    validate_filter(where)
    validate_filter(negated)
    assert evaluate(where, row) is (not evaluate(negated, row))


@given(ops=_op_dicts(), row=_rows(), col=_columns)
def test_several_ops_are_an_and_of_single_ops(
    ops: dict[str, Any], row: dict[str, Any], col: str
) -> None:
    singles = [{col: {op: operand}} for op, operand in ops.items()]
    assert evaluate({col: ops}, row) is all(evaluate(s, row) for s in singles)
    assert evaluate({col: ops}, row) is evaluate({"$and": singles}, row)
    # De Morgan: not (A and B) == (not A) or (not B)
    not_singles = [{col: {"$not": {op: operand}}} for op, operand in ops.items()]
    assert evaluate({col: {"$not": ops}}, row) is evaluate({"$or": not_singles}, row)


@given(f=_filters(), g=_filters(), row=_rows())
def test_and_or_are_boolean(f: dict[str, Any], g: dict[str, Any], row: dict[str, Any]) -> None:
    validate_filter({"$and": [f, g]})
    ef, eg = evaluate(f, row), evaluate(g, row)
    assert evaluate({"$and": [f, g]}, row) is (ef and eg)
    assert evaluate({"$or": [f, g]}, row) is (ef or eg)
    assert evaluate({"$or": [f]}, row) is ef
    assert evaluate({"$and": [f]}, row) is ef
    # keys at one level are ANDed: {"$and": F, "$or": G} == $and of both
    both = {"$and": [f], "$or": [g]}
    assert evaluate(both, row) is (ef and eg)


@given(
    value=st.none() | st.one_of(*(_scalars(k) for k in _KINDS)),
    row=_rows(),
    col=_columns,
)
def test_complementary_operators(value: Any, row: dict[str, Any], col: str) -> None:
    eq = evaluate({col: {"$eq": value}}, row)
    assert evaluate({col: value}, row) is eq
    assert evaluate({col: {"$ne": value}}, row) is (not eq)
    assert evaluate({col: {"$in": [value]}}, row) is eq
    assert evaluate({col: {"$nin": [value]}}, row) is (not eq)
    exists = evaluate({col: {"$exists": True}}, row)
    assert evaluate({col: {"$exists": False}}, row) is (not exists)
    assert exists is (row.get(col) is not None)
    assert evaluate({col: {"$ne": None}}, row) is exists


@given(items=st.lists(st.none() | _scalars("number"), max_size=4), row=_rows(), col=_columns)
def test_in_is_an_or_of_eq(items: list[Any], row: dict[str, Any], col: str) -> None:
    expected = any(evaluate({col: {"$eq": i}}, row) for i in items)
    assert evaluate({col: {"$in": items}}, row) is expected
    assert evaluate({col: {"$nin": items}}, row) is (not expected)


@given(
    kind=st.sampled_from(["number", "str", "bytes", "datetime"]),
    data=st.data(),
)
def test_comparisons_are_a_total_order_within_a_kind(kind: str, data: st.DataObject) -> None:
    value = data.draw(_scalars(kind))
    cell = data.draw(_scalars(kind))
    row = {"a": cell}
    lt = evaluate({"a": {"$lt": value}}, row)
    eq = evaluate({"a": {"$eq": value}}, row)
    gt = evaluate({"a": {"$gt": value}}, row)
    assert [lt, eq, gt].count(True) == 1
    assert evaluate({"a": {"$lte": value}}, row) is (lt or eq)
    assert evaluate({"a": {"$gte": value}}, row) is (gt or eq)


@given(
    op=st.sampled_from(sorted(COMPARISON_OPS)),
    value=st.one_of(*(_scalars(k) for k in ("number", "str", "bytes", "datetime"))),
    cell=st.none() | st.just(float("nan")) | st.booleans(),
)
def test_comparisons_are_false_on_null_nan_and_bool(op: str, value: Any, cell: Any) -> None:
    assert evaluate({"a": {op: value}}, {"a": cell}) is False
    assert evaluate({"a": {"$not": {op: value}}}, {"a": cell}) is True


@given(where=_filters())
def test_generated_filters_validate(where: Mapping[str, Any]) -> None:
    validate_filter(where)


@pytest.mark.parametrize(
    "where",
    [{"f": float("inf")}, {"f": {"$lt": float("inf")}}, {"f": {"$in": [1.0, -float("inf")]}}],
)
def test_infinite_operands_are_refused(where: dict[str, Any]) -> None:
    """MariaDB has no infinity and no column stores one: refused everywhere (issue 15)."""
    with pytest.raises(FilterError, match="inf is not portable"):
        validate_filter(where)


def test_limit_is_checked_once_for_every_backend() -> None:
    """check_limit: None or an int 0..2**31-1; bool, float, negative and huge ints refused."""
    from pinnacle_protocols.filters import MAX_LIMIT, check_limit

    assert check_limit(None) is None
    assert check_limit(0) == 0
    assert check_limit(MAX_LIMIT) == MAX_LIMIT
    for bad in (MAX_LIMIT + 1, 2**70, -1, True, 1.0, "3"):
        with pytest.raises(FilterError, match="limit must be"):
            check_limit(bad)


_PY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
_BIG = math.nextafter(math.inf, 0.0)


@given(
    st.one_of(
        st.integers(-(2**64), 2**64), st.integers(2**1023, 2**1025).map(lambda n: n * (-1) ** n)
    ),
    st.sampled_from(sorted(COMPARISON_OPS)),
    st.integers(-3, 3),
)
def test_float_operands_answer_as_python_compares(n: int, op: str, step: int) -> None:
    """On the doubles around ``n``, an engine that rounds operands to doubles answers the
    rewritten comparison as Python answers the exact one."""
    try:
        near = float(n)
    except OverflowError:
        near = _BIG if n > 0 else -_BIG
    x = near
    for _ in range(abs(step)):
        x = math.nextafter(x, math.copysign(math.inf, step))
    if not math.isfinite(x):
        return
    exact = _PY_OPS[op](x, n)
    rewritten = float_order_operand(op, n)
    # An engine rounds the operand to a double before it compares.
    assert (rewritten is not None and _PY_OPS[rewritten[0]](x, float(rewritten[1]))) == exact
    equal = float_equal_operand(n)
    assert (equal is not None and x == float(equal)) == (x == n)
    if equal is not None:
        assert rewritten == (op, n)
